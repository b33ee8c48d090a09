// Package redisdriver runs workloads on Redis with
// github.com/redis/go-redis/v9, each pattern the way Redis users run it
// fast:
//
//   - publish: pipelined. Each producer has its own connection and one
//     goroutine that sends whatever has queued up (up to 1,000 commands)
//     as one pipeline, waits for the replies, and sends the next: natural
//     batching, with no linger at low rates. At most 10,000 messages wait.
//   - pub/sub (durability none): PUBLISH, and a SUBSCRIBE connection per
//     subscriber read with ReceiveMessage. Nothing is stored; a subscriber
//     past client-output-buffer-limit pubsub (32 MB hard, 8 MB for 60 s
//     by default) is disconnected and loses messages, which the count
//     check reports.
//   - queue and latency: Streams, one stream key per partition. XADD;
//     a consumer group read with XREADGROUP (COUNT 1,000, BLOCK 100 ms)
//     over every partition's key, the XACKs of one batch pipelined with
//     the next read, so acknowledging costs no round trip of its own.
//     Acknowledged entries stay in the stream (no XDEL, as most users run
//     it; Redis 8.2's XACKDEL is not in Debian 12's 7.0).
//   - stream: XADD, then XRANGE pages of 1,000 per key from the start.
//
// Redis acknowledges a write once it is in memory and in the append-only
// file's buffer, which it writes before replying; with appendfsync
// everysec the file is synced to disk once a second, so a crash of the
// machine can lose about a second of acknowledged writes.
package redisdriver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Config says where the server is.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// Name is the system's name in results; "redis" when empty.
	Name string
}

const (
	maxPipeline = 1000
	maxWaiting  = 10000
	readCount   = 1000
	readBlock   = 100 * time.Millisecond
	rangeCount  = 1000
	group       = "w"
	field       = "d"
)

// Driver is Redis under test.
type Driver struct {
	cfg Config
	rdb *redis.Client
}

var _ driver.Driver = (*Driver)(nil)

// New connects to the server (lazily).
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = "redis"
	}
	return &Driver{cfg: cfg, rdb: newClient(cfg.Addr)}, nil
}

func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, PoolSize: 2, MaxRetries: -1})
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return d.cfg.Name }

// Durability implements driver.Driver.
func (d *Driver) Durability(spec workload.Spec) string {
	if spec.Pattern == workload.PubSub {
		return "none: Pub/Sub, live only"
	}
	return "in memory and written to the AOF before ack, fsync every second (appendfsync everysec)"
}

// Close implements driver.Driver.
func (d *Driver) Close() error { return d.rdb.Close() }

// Setup implements driver.Driver.
func (d *Driver) Setup(ctx context.Context, spec workload.Spec, run string) (driver.Bench, error) {
	b := &bench{d: d, spec: spec, run: run}
	if spec.Pattern == workload.PubSub && spec.Durability != workload.None {
		return nil, fmt.Errorf("%w: durable fan-out on Redis (a consumer group per subscription) is not built yet", driver.ErrUnsupported)
	}
	if spec.QueueLike() {
		for p := range spec.Partitions {
			if err := d.rdb.XGroupCreateMkStream(ctx, b.key(p), group, "0").Err(); err != nil {
				return nil, errors.Join(err, b.Teardown(ctx))
			}
		}
	}
	return b, nil
}

type bench struct {
	d    *Driver
	spec workload.Spec
	run  string
}

func (b *bench) key(p int) string { return fmt.Sprintf("bench:%s:%d", b.run, p) }
func (b *bench) channel() string  { return "bench:" + b.run }

func (b *bench) Teardown(ctx context.Context) error {
	if b.spec.Pattern == workload.PubSub {
		return nil
	}
	keys := make([]string, b.spec.Partitions)
	for p := range keys {
		keys[p] = b.key(p)
	}
	return b.d.rdb.Del(ctx, keys...).Err()
}

// bytesOf views a reply's string as bytes without copying; the handler
// only reads it.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Subscribe implements driver.Bench.
func (b *bench) Subscribe(ctx context.Context, sub, member int, h driver.Handler) (driver.Consumer, error) {
	rdb := newClient(b.d.cfg.Addr)
	cctx, cancel := context.WithCancel(context.Background())
	c := &consumer{rdb: rdb, cancel: cancel, done: make(chan error, 1)}
	switch {
	case b.spec.Pattern == workload.PubSub:
		ps := rdb.Subscribe(ctx, b.channel())
		// Receive waits for the subscription's confirmation: from then
		// on the server sends this connection every message.
		if _, err := ps.Receive(ctx); err != nil {
			cancel()
			return nil, errors.Join(err, ps.Close(), rdb.Close())
		}
		// ReceiveMessage does not return when its context ends, only
		// when the connection closes: Close closes it.
		c.unblock = ps.Close
		go func() {
			for {
				m, err := ps.ReceiveMessage(cctx)
				if err != nil {
					if cctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
						err = nil
					}
					c.done <- err
					return
				}
				h(bytesOf(m.Payload))
			}
		}()
	case b.spec.QueueLike():
		go func() { c.done <- b.readGroup(cctx, rdb, fmt.Sprintf("c%d", member), h) }()
	default:
		cancel()
		rdb.Close()
		return nil, fmt.Errorf("%w: subscribe on a %s workload", driver.ErrUnsupported, b.spec.Pattern)
	}
	return c, nil
}

type consumer struct {
	rdb     *redis.Client
	cancel  context.CancelFunc
	unblock func() error
	done    chan error
}

func (c *consumer) Close() error {
	c.cancel()
	if c.unblock != nil {
		c.unblock()
	}
	err := <-c.done
	return errors.Join(err, c.rdb.Close())
}

// readGroup reads the group until ctx ends, acknowledging each batch in
// the same pipeline as the next read.
func (b *bench) readGroup(ctx context.Context, rdb *redis.Client, name string, h driver.Handler) error {
	streams := make([]string, 0, 2*b.spec.Partitions)
	for p := range b.spec.Partitions {
		streams = append(streams, b.key(p))
	}
	for range b.spec.Partitions {
		streams = append(streams, ">")
	}
	acks := map[string][]string{}
	ack := func(pipe redis.Pipeliner, ctx context.Context) {
		for k, ids := range acks {
			if len(ids) > 0 {
				pipe.XAck(ctx, k, group, ids...)
				acks[k] = ids[:0]
			}
		}
	}
	for ctx.Err() == nil {
		pipe := rdb.Pipeline()
		ack(pipe, ctx)
		read := pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: name, Streams: streams, Count: readCount, Block: readBlock,
		})
		cmds, err := pipe.Exec(ctx)
		if err != nil && !errors.Is(err, redis.Nil) {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		for _, cmd := range cmds[:len(cmds)-1] {
			if err := cmd.Err(); err != nil {
				return fmt.Errorf("XACK: %w", err)
			}
		}
		for _, s := range read.Val() {
			for _, m := range s.Messages {
				v, _ := m.Values[field].(string)
				h(bytesOf(v))
				acks[s.Stream] = append(acks[s.Stream], m.ID)
			}
		}
	}
	// What was handled is acknowledged before the consumer goes.
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := rdb.Pipeline()
	ack(pipe, fctx)
	if pipe.Len() == 0 {
		return nil
	}
	_, err := pipe.Exec(fctx)
	return err
}

// Replay implements driver.Bench: reader r pages through the keys of
// partitions r, r+readers, ... with XRANGE.
func (b *bench) Replay(ctx context.Context, readers int, handler func(int) driver.Handler) error {
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for r := range min(readers, b.spec.Partitions) {
		wg.Go(func() {
			rdb := newClient(b.d.cfg.Addr)
			defer rdb.Close()
			h := handler(r)
			for part := r; part < b.spec.Partitions; part += readers {
				start := "-"
				for {
					msgs, err := rdb.XRangeN(ctx, b.key(part), start, "+", rangeCount).Result()
					if err != nil {
						errs[r] = fmt.Errorf("XRANGE %s: %w", b.key(part), err)
						return
					}
					for _, m := range msgs {
						v, _ := m.Values[field].(string)
						h(bytesOf(v))
					}
					if len(msgs) < rangeCount {
						break
					}
					start = "(" + msgs[len(msgs)-1].ID
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
