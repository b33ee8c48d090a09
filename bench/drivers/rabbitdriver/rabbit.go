// Package rabbitdriver runs workloads on RabbitMQ with
// github.com/rabbitmq/amqp091-go (AMQP 0-9-1), each pattern the way
// RabbitMQ users run it fast:
//
//   - publish: one connection (one channel) per producer in confirm mode,
//     confirms handled asynchronously (NotifyPublish, in delivery-tag
//     order, the broker's multiple acks included) with up to 1,000
//     unconfirmed per producer: Publish waits while the window is full.
//     (On queue-durable, 128 B, quorum, windows of 500, 1,000 and 2,000
//     delivered the same msgs/s within the noise of 3 s smoke runs on a
//     shared 2-core machine; larger windows only queued more, p99 rising
//     with them.) Persistent delivery mode for durable queues and
//     streams.
//   - queue and latency: one durable queue per partition
//     (bench-RUN-P, x-queue-type quorum or classic as configured),
//     published to through the default exchange. Each consumer has its
//     own connection and consumes every partition's queue, on a channel
//     per queue (prefetch 1,000), as the other drivers' consumers read
//     every partition: each queue has every consumer, so none waits on a
//     slow one. Manual acks, batched: multiple=true up to the last message
//     handled, every 200 messages or 5 ms after the first one not yet
//     acknowledged, so a message is acknowledged only after its handler
//     returned, and a quorum queue's log gets an entry per batch of acks
//     rather than per message.
//   - pub/sub (durability none): a fanout exchange (bench-RUN, not
//     durable); each subscription has its own classic non-durable,
//     auto-delete queue bound to it (exclusive to its consumer's
//     connection when the subscription has one consumer, as in the
//     RabbitMQ tutorials; shared by its consumers otherwise). Consumed as
//     above (manual acks in batches, prefetch 1,000), not with auto-ack:
//     with a prefetch a slow subscriber makes its queue grow on the broker
//     (bounded by the broker's memory alarm) instead of in the client's
//     unbounded delivery buffer. Published with confirms too: for a
//     transient queue the broker confirms once the message is enqueued in
//     every bound queue (in memory), which bounds what is in flight.
//   - stream: one stream queue per partition (x-queue-type stream),
//     appended to with confirms; replayed with a consumer per stream from
//     x-stream-offset "first" (prefetch 2,000; streams over AMQP need a
//     prefetch and acks, which only return credit), partitions split
//     among the readers. A reader stops once it has read as many
//     messages as the stream held when Replay began: the appends this
//     driver saw confirmed on it (the broker's message count for a
//     stream, in queue.declare-ok, comes from statistics gathered every
//     few seconds: it said 0 right after some 1,000 confirmed appends).
//
// What a confirm promises depends on the queue: a quorum queue confirms
// once the message is in its Raft log, fsynced, on a quorum of replicas
// (one here). A durable classic queue confirms a persistent message once
// it is persisted to disk; the broker fsyncs in batches (every few hundred
// ms at most, or when the queue is idle: RabbitMQ's confirms guide), so
// confirms wait for the next batch. (Messages under 4 KiB, as here, go to
// the queue index's journal, which strace showed fsynced 18 times for
// some 4,000 messages.) A stream confirms once the message is written to
// its segment file on a quorum of replicas, without fsync: streams rely
// on replication and the OS writing its page cache back (strace showed
// no fsync of a segment file, only of the stream coordinator's log).
// A transient queue (pub/sub) stores nothing.
package rabbitdriver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Queue types for Config.QueueType.
const (
	Quorum  = "quorum"
	Classic = "classic"
)

// Config says where the broker is and which queues to use.
type Config struct {
	// URL is the broker's AMQP URL: amqp://guest:guest@127.0.0.1:5672/.
	URL string
	// QueueType is the queue and latency workloads' queue type: Quorum
	// (the default) or Classic. Pub/sub and stream workloads use
	// transient classic queues and stream queues whatever it is.
	QueueType string
	// Name is the system's name in results; "rabbitmq-" + QueueType when
	// empty.
	Name string
}

const (
	confirmWindow  = 1000
	prefetch       = 1000
	ackEvery       = 200
	ackDelay       = 5 * time.Millisecond
	replayPrefetch = 2000
	replayAckEvery = 500
)

// Driver is RabbitMQ under test.
type Driver struct {
	cfg  Config
	mu   sync.Mutex // conn's channels are opened one at a time
	conn *amqp.Connection
}

var _ driver.Driver = (*Driver)(nil)

// New connects to the broker.
func New(cfg Config) (*Driver, error) {
	switch cfg.QueueType {
	case "":
		cfg.QueueType = Quorum
	case Quorum, Classic:
	default:
		return nil, fmt.Errorf("rabbitdriver: queue type %q: want %q or %q", cfg.QueueType, Quorum, Classic)
	}
	if cfg.Name == "" {
		cfg.Name = "rabbitmq-" + cfg.QueueType
	}
	conn, err := dial(cfg.URL, "admin")
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, conn: conn}, nil
}

func dial(url, role string) (*amqp.Connection, error) {
	return amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "ferrybench " + role}})
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return d.cfg.Name }

// Durability implements driver.Driver.
func (d *Driver) Durability(spec workload.Spec) string {
	switch {
	case spec.Pattern == workload.PubSub:
		return "none: live only (fanout to transient queues)"
	case spec.Pattern == workload.Stream:
		return "written before confirm, no fsync (stream queue)"
	case d.cfg.QueueType == Classic:
		return "fsync before confirm, batched (classic durable queue, persistent messages)"
	default:
		return "fsync before confirm (quorum queue, Raft log)"
	}
}

// Close implements driver.Driver.
func (d *Driver) Close() error { return d.conn.Close() }

// admin runs f on a channel of the driver's connection, opened for it: a
// failed declaration closes its channel.
func (d *Driver) admin(f func(ch *amqp.Channel) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, err := d.conn.Channel()
	if err != nil {
		return err
	}
	err = f(ch)
	if cerr := ch.Close(); err == nil && !errors.Is(cerr, amqp.ErrClosed) {
		err = cerr
	}
	return err
}

// Setup implements driver.Driver.
func (d *Driver) Setup(ctx context.Context, spec workload.Spec, run string) (driver.Bench, error) {
	b := &bench{d: d, spec: spec, run: run, appended: make([]atomic.Int64, spec.Partitions)}
	var err error
	switch {
	case spec.Pattern == workload.PubSub:
		if spec.Durability != workload.None {
			return nil, fmt.Errorf("%w: durable fan-out on RabbitMQ (a durable queue per subscription) is not built yet", driver.ErrUnsupported)
		}
		err = d.admin(func(ch *amqp.Channel) error {
			if err := ch.ExchangeDeclare(b.exchange(), amqp.ExchangeFanout, false, false, false, false, nil); err != nil {
				return err
			}
			b.exchanges = append(b.exchanges, b.exchange())
			return nil
		})
	default:
		qtype := amqp.QueueTypeStream
		if spec.QueueLike() {
			qtype = d.cfg.QueueType
		}
		err = d.admin(func(ch *amqp.Channel) error {
			for p := range spec.Partitions {
				if _, err := ch.QueueDeclare(b.queue(p), true, false, false, false, amqp.Table{amqp.QueueTypeArg: qtype}); err != nil {
					return err
				}
				b.queues = append(b.queues, b.queue(p))
			}
			return nil
		})
	}
	if err != nil {
		return nil, errors.Join(err, b.Teardown(ctx))
	}
	return b, nil
}

type bench struct {
	d    *Driver
	spec workload.Spec
	run  string

	mu        sync.Mutex
	queues    []string // to delete
	exchanges []string

	// appended counts each partition's confirmed publishes (streams).
	appended []atomic.Int64
}

func (b *bench) queue(p int) string        { return fmt.Sprintf("bench-%s-%d", b.run, p) }
func (b *bench) exchange() string          { return "bench-" + b.run }
func (b *bench) subscription(s int) string { return fmt.Sprintf("bench-%s-sub%d", b.run, s) }

// target is where a message for partition p goes: exchange and routing
// key.
func (b *bench) target(p int) (string, string) {
	if b.spec.Pattern == workload.PubSub {
		return b.exchange(), ""
	}
	return "", b.queue(p)
}

// Teardown implements driver.Bench.
func (b *bench) Teardown(ctx context.Context) error {
	b.mu.Lock()
	queues, exchanges := b.queues, b.exchanges
	b.queues, b.exchanges = nil, nil
	b.mu.Unlock()
	var errs []error
	for _, q := range queues {
		// Deleting a queue that is gone (an auto-delete one) is not an
		// error in RabbitMQ.
		errs = append(errs, b.d.admin(func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(q, false, false, false)
			return err
		}))
	}
	for _, x := range exchanges {
		errs = append(errs, b.d.admin(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) }))
	}
	return errors.Join(errs...)
}
