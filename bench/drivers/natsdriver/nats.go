// Package natsdriver runs workloads on NATS with github.com/nats-io/nats.go,
// each pattern the way NATS users run it fast:
//
//   - pub/sub (durability none): core NATS. Publish is buffered and
//     flushed by the client in the background (no acknowledgement exists:
//     done means handed to the connection; Flush is a PING/PONG round trip,
//     so the server has everything before it returns). Each subscriber has
//     its own connection and no client-side pending limit, so the client
//     never drops messages as a slow consumer on its side.
//   - queue and latency: JetStream. One work-queue stream per partition
//     (file storage, one replica), a durable pull consumer on each with
//     explicit acks and max_ack_pending 10,000; producers publish with
//     PublishAsync (up to 10,000 unacknowledged); consumers use Consume
//     (the client keeps overlapping pull requests of up to 1,000 messages
//     in flight) and Ack, which sends the ack without waiting for a reply.
//   - stream: one limits-retention stream per partition, appended with
//     PublishAsync, replayed with an ordered consumer from the start
//     (no acks; the client re-creates it on a gap), 2,000 messages per
//     pull.
//
// JetStream acknowledges a publish once the message is written to its
// store's file, and syncs that file to disk every 2 minutes by default
// (sync_interval): a power cut can lose what was acknowledged since.
package natsdriver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Config says where the server is.
type Config struct {
	// URL is the server's address: nats://127.0.0.1:4222.
	URL string
	// Name is the system's name in results; "nats" when empty.
	Name string
}

const (
	maxAckPending   = 10000
	maxAsyncPending = 10000
	pullBatch       = 1000
	replayBatch     = 2000
	consumerName    = "w"
)

// Driver is NATS under test.
type Driver struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
}

var _ driver.Driver = (*Driver)(nil)

// New connects to the server.
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = "nats"
	}
	nc, err := connect(cfg.URL)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Driver{cfg: cfg, nc: nc, js: js}, nil
}

func connect(url string) (*nats.Conn, error) {
	return nats.Connect(url, nats.Name("ferrybench"), nats.MaxReconnects(0))
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return d.cfg.Name }

// Durability implements driver.Driver.
func (d *Driver) Durability(spec workload.Spec) string {
	if spec.Pattern == workload.PubSub {
		return "none: core NATS, live only"
	}
	return "JetStream file store: written before ack, fsync every 2 min (default sync_interval)"
}

// Close implements driver.Driver.
func (d *Driver) Close() error {
	d.nc.Close()
	return nil
}

// Setup implements driver.Driver.
func (d *Driver) Setup(ctx context.Context, spec workload.Spec, run string) (driver.Bench, error) {
	b := &bench{d: d, spec: spec, run: run}
	if spec.Pattern == workload.PubSub {
		if spec.Durability != workload.None {
			return nil, fmt.Errorf("%w: durable fan-out on NATS (JetStream, a consumer per subscription) is not built yet", driver.ErrUnsupported)
		}
		return b, nil
	}
	retention := jetstream.LimitsPolicy
	if spec.QueueLike() {
		retention = jetstream.WorkQueuePolicy
	}
	for p := range spec.Partitions {
		s, err := d.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:      b.stream(p),
			Subjects:  []string{b.subject(p)},
			Retention: retention,
			Storage:   jetstream.FileStorage,
			Replicas:  1,
		})
		if err != nil {
			return nil, errors.Join(err, b.Teardown(ctx))
		}
		b.streams = append(b.streams, s.CachedInfo().Config.Name)
		if spec.QueueLike() {
			if _, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable:       consumerName,
				AckPolicy:     jetstream.AckExplicitPolicy,
				DeliverPolicy: jetstream.DeliverAllPolicy,
				MaxAckPending: maxAckPending,
			}); err != nil {
				return nil, errors.Join(err, b.Teardown(ctx))
			}
		}
	}
	return b, nil
}

type bench struct {
	d       *Driver
	spec    workload.Spec
	run     string
	streams []string
}

func (b *bench) stream(p int) string  { return fmt.Sprintf("bench_%s_%d", b.run, p) }
func (b *bench) subject(p int) string { return fmt.Sprintf("bench.%s.%d", b.run, p) }

func (b *bench) Teardown(ctx context.Context) error {
	var errs []error
	for _, s := range b.streams {
		if err := b.d.js.DeleteStream(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	b.streams = nil
	return errors.Join(errs...)
}

// guarded calls h one at a time, and not at all after stop: a NATS
// connection may run several callback goroutines (one per subscription)
// and may still be in one when the subscription is closed.
type guarded struct {
	mu      sync.Mutex
	h       driver.Handler
	stopped bool
}

func (g *guarded) call(p []byte) {
	g.mu.Lock()
	if !g.stopped {
		g.h(p)
	}
	g.mu.Unlock()
}

func (g *guarded) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// coreProducer publishes with core NATS.
type coreProducer struct {
	nc      *nats.Conn
	subject string
}

func (p *coreProducer) Publish(_ context.Context, _ int, payload []byte, done func(error)) error {
	// Publish copies payload into the connection's buffer.
	if err := p.nc.Publish(p.subject, payload); err != nil {
		return err
	}
	done(nil)
	return nil
}

func (p *coreProducer) Flush(ctx context.Context) error { return p.nc.FlushWithContext(ctx) }
func (p *coreProducer) Close() error                    { p.nc.Close(); return nil }

// coreConsumer is a core NATS subscriber.
type coreConsumer struct {
	nc  *nats.Conn
	sub *nats.Subscription
	g   *guarded
}

func (c *coreConsumer) Close() error {
	c.g.stop()
	err := c.sub.Unsubscribe()
	c.nc.Close()
	if errors.Is(err, nats.ErrConnectionClosed) {
		err = nil
	}
	return err
}

func (b *bench) subscribeCore(ctx context.Context, h driver.Handler) (driver.Consumer, error) {
	nc, err := connect(b.d.cfg.URL)
	if err != nil {
		return nil, err
	}
	g := &guarded{h: h}
	sub, err := nc.Subscribe(b.subject(0), func(m *nats.Msg) { g.call(m.Data) })
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err == nil {
		// Once the server answers the PING it has the subscription.
		err = nc.FlushWithContext(ctx)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &coreConsumer{nc: nc, sub: sub, g: g}, nil
}
