// Package driver is the one small interface the workload runner drives:
// every system under test (Ferry, NATS, Redis, later RabbitMQ) implements it
// with that system's fast path, as its expert users would run it.
//
// The runner owns the messages: it writes each one's id and scheduled send
// time into the payload, counts what comes back and times it. A driver only
// moves opaque payloads from producers to handlers and says what its
// acknowledgements promise.
package driver

import (
	"context"
	"errors"

	"github.com/ferrymq/ferry/bench/workload"
)

// ErrUnsupported: the system has no way to run the workload as asked (a
// durable fan-out on a driver that only fans out live, say).
var ErrUnsupported = errors.New("driver: workload not supported by this system")

// Driver is one system under test, connected to one running broker.
type Driver interface {
	// Name is the system's name in results: "ferry", "nats", "redis".
	Name() string
	// Durability says in a few words what an acknowledged publish of
	// spec promises on this system as it runs ("fsync before ack",
	// "in memory; AOF fsynced every second", "none: live only").
	Durability(spec workload.Spec) string
	// Setup creates what spec needs (topics, streams, queues, durable
	// subscriptions), named after run, which is unique to the run and
	// made of [a-z0-9] only. ErrUnsupported when the system cannot.
	Setup(ctx context.Context, spec workload.Spec, run string) (Bench, error)
	// Close releases the driver's own connections.
	Close() error
}

// Bench is one workload's resources on one system, between Setup and
// Teardown.
type Bench interface {
	// Producer connects producer i (of spec.Producers), each on its own
	// connection where the system's clients work that way.
	Producer(ctx context.Context, i int) (Producer, error)
	// Subscribe attaches member (of spec.Consumers) to subscription sub
	// (of spec.Subscriptions) and returns once the broker will deliver
	// to it everything published from then on. Queue and latency
	// workloads: the members of subscription 0 share the messages and each
	// message is acknowledged after h returns. PubSub: every subscription
	// receives every message. Not used by stream workloads.
	Subscribe(ctx context.Context, sub, member int, h Handler) (Consumer, error)
	// Replay reads everything stored, from the start of every partition
	// to its end as of the call, with the given number of readers, and
	// returns when all is read. handler(r) is reader r's handler. Stream
	// workloads only.
	Replay(ctx context.Context, readers int, handler func(reader int) Handler) error
	// Teardown deletes what Setup created.
	Teardown(ctx context.Context) error
}

// Handler receives one message's payload. Per consumer (or replay reader)
// the driver calls it from one goroutine at a time. It must not keep
// payload after it returns.
type Handler func(payload []byte)

// Producer publishes with the system's asynchronous fast path.
type Producer interface {
	// Publish sends payload to the given partition (0 ≤ partition <
	// spec.Partitions) and returns without waiting for the
	// acknowledgement, unless the system's flow control makes it wait
	// (too many unacknowledged), or ctx ends. done is called exactly once,
	// from any goroutine, when the system acknowledged the message (nil)
	// or failed it; for systems without acknowledgements (NATS core, Redis
	// Pub/Sub) when the message was handed to the connection. The caller
	// does not change payload until done; the driver does not touch it
	// after. An error returned means done will not be called.
	Publish(ctx context.Context, partition int, payload []byte, done func(error)) error
	// Flush sends what waits in buffers and returns once done was called
	// for every message published before, or ctx ends.
	Flush(ctx context.Context) error
	// Close closes the producer's connection.
	Close() error
}

// Consumer is an attached subscriber.
type Consumer interface {
	// Close detaches it; the handler is not called after Close returns.
	Close() error
}
