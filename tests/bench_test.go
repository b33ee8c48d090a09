package tests

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/server"
)

// Client → server → client over loopback: the Go client, the native API and
// the engine together. 128-byte messages throughout, as in the engine's own
// benchmarks (engine/bench_test.go), which these mirror; docs/benchmarks.md
// sets the figures side by side.

func benchClient(b *testing.B, fsync string, opts ...client.Option) (*client.Client, func() *client.Client) {
	b.Helper()
	cfg := server.Defaults()
	cfg.DataDir = b.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.Fsync = fsync
	s, err := server.Start(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	var clients []*client.Client
	connect := func() *client.Client {
		c, err := client.New("http://"+s.Addr(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		return c
	}
	b.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return connect(), connect
}

// publishAsync publishes n 128-byte messages with PublishAsync and waits for
// every acknowledgement.
func publishAsync(b *testing.B, c *client.Client, topic string, n int) {
	b.Helper()
	ctx := context.Background()
	var futures []*client.Future
	for i := range n {
		v := make([]byte, 128)
		binary.BigEndian.PutUint64(v, uint64(i))
		futures = append(futures, c.PublishAsync(ctx, topic, client.Message{Value: v}))
		if len(futures) == 10000 {
			waitFutures(b, futures)
			futures = futures[:0]
		}
	}
	waitFutures(b, futures)
}

func waitFutures(b *testing.B, fs []*client.Future) {
	b.Helper()
	for _, f := range fs {
		if _, err := f.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetQueue: one client publishes with PublishAsync (fsync=always)
// while 2 consumers, each on its own connection, take the messages with
// SubscribeQueue (credit 2000; the client acknowledges in batches). One op
// is one message published, delivered and acknowledged.
func BenchmarkNetQueue(b *testing.B) {
	c, connect := benchClient(b, "always")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "q", client.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "q", "w", client.SubscriptionConfig{Kind: client.KindQueue, MaxInFlight: 5000}); err != nil {
		b.Fatal(err)
	}
	n := int64(b.N)
	var handled atomic.Int64
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 2 {
		consumer := connect()
		wg.Go(func() {
			// Returns once ctx ends and the last acknowledgements are sent.
			err := consumer.SubscribeQueue(cctx, "q", "w", func(context.Context, *client.Delivery) error {
				if handled.Add(1) == n {
					cancel()
				}
				return nil
			}, client.WithSubscribeCredit(2000))
			if err != nil {
				b.Error(err)
			}
		})
	}
	publishAsync(b, c, "q", b.N)
	wg.Wait()
	if handled.Load() < n {
		b.Fatalf("handled %d of %d", handled.Load(), n)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkNetFanOut: subs ephemeral subscribers, each on its own
// connection, read every message of a topic (published while they are
// subscribed, fsync=never, before the timer starts; the server holds them
// in the log and sends each subscriber what its credit allows). One op is
// one message; deliveries/s counts every subscriber's copy.
func BenchmarkNetFanOut(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run(fmt.Sprintf("subscriptions=%d", subs), func(b *testing.B) {
			c, connect := benchClient(b, "never")
			ctx := context.Background()
			if _, err := c.CreateTopic(ctx, "t", client.TopicConfig{}); err != nil {
				b.Fatal(err)
			}
			var es []*client.EphemeralConsumer
			for range subs {
				e, err := connect().ConsumeEphemeral(ctx, "t", client.WithBuffer(1<<40), client.WithSubscribeCredit(10000))
				if err != nil {
					b.Fatal(err)
				}
				es = append(es, e)
			}
			publishAsync(b, c, "t", b.N)
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, e := range es {
				wg.Go(func() {
					defer e.Close()
					cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
					defer cancel()
					for got := 0; got < b.N; got++ {
						if _, err := e.Next(cctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkNetStreamAppend: one client appends with PublishAsync to a topic
// of 4 partitions, fsync=always. One op is one message stored and
// acknowledged.
func BenchmarkNetStreamAppend(b *testing.B) {
	c, _ := benchClient(b, "always")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "s", client.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	publishAsync(b, c, "s", b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkNetStreamReplay: a stream subscription of 4 members, each on its
// own connection, reads a 4-partition topic from the start (published
// beforehand) and commits what it processed. One op is one message.
func BenchmarkNetStreamReplay(b *testing.B) {
	c, connect := benchClient(b, "never")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "s", client.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "s", "g", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest}); err != nil {
		b.Fatal(err)
	}
	publishAsync(b, c, "s", b.N)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b.ResetTimer()
	var total atomic.Int64
	var members []*client.StreamConsumer
	for range 4 {
		sc, err := connect().ConsumeStream(cctx, "s", "g", client.WithSubscribeCredit(10000))
		if err != nil {
			b.Fatal(err)
		}
		members = append(members, sc)
	}
	var wg sync.WaitGroup
	for _, sc := range members {
		wg.Go(func() {
			defer sc.Close()
			for _, err := range sc.Messages(cctx) {
				if err != nil {
					if cctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				if total.Add(1) == int64(b.N) {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(total.Load())/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkNetRead: one reader replays a topic of one partition from the
// start with Client.Replay (successive Reads of up to 1 MiB), without a
// subscription. One op is one message.
func BenchmarkNetRead(b *testing.B) {
	c, connect := benchClient(b, "never")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "r", client.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	publishAsync(b, c, "r", b.N)
	reader := connect()
	b.ResetTimer()
	n := 0
	for _, err := range reader.Replay(ctx, "r", 0, client.Earliest(), client.ReadOptions{}) {
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
	if n != b.N {
		b.Fatalf("replayed %d of %d", n, b.N)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkNetQueueLatency publishes 128-byte messages at a fixed 10,000
// messages/s (fsync=always) with PublishAsync (no linger) to a queue
// subscription, consumed by SubscribeQueue (which acknowledges in batches)
// on another connection, and measures per message the time from its
// scheduled send to the handler. Measuring from the schedule corrects for
// coordinated omission. One op is one message: run with -benchtime 20000x
// for 2 seconds.
func BenchmarkNetQueueLatency(b *testing.B) {
	rate, fsync := 10000, "always"
	if v := os.Getenv("FERRY_BENCH_RATE"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("FERRY_BENCH_FSYNC"); v != "" {
		fsync = v
	}
	c, connect := benchClient(b, fsync, client.WithPublishLinger(0))
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "lat", client.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "lat", "w", client.SubscriptionConfig{Kind: client.KindQueue, MaxInFlight: 10000}); err != nil {
		b.Fatal(err)
	}
	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	n := int64(b.N)
	var got atomic.Int64
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done := make(chan error, 1)
	consumer := connect()
	go func() {
		done <- consumer.SubscribeQueue(cctx, "lat", "w", func(_ context.Context, d *client.Delivery) error {
			sched := time.Unix(0, int64(binary.BigEndian.Uint64(d.Message.Value)))
			hist.RecordValue(max(int64(time.Since(sched)/time.Microsecond), 1))
			if got.Add(1) == n {
				cancel()
			}
			return nil
		})
	}()
	// Start the clock once the consumer is attached, and the first
	// message's fsync (which writes the segment's zeros ahead) is done.
	for {
		sub, err := c.DescribeSubscription(ctx, "lat", "w")
		if err != nil {
			b.Fatal(err)
		}
		if sub.Members == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var futures []*client.Future
	for i := range b.N {
		sched := start.Add(time.Duration(i) * interval)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		v := make([]byte, 128)
		binary.BigEndian.PutUint64(v, uint64(sched.UnixNano()))
		futures = append(futures, c.PublishAsync(ctx, "lat", client.Message{Value: v}))
	}
	waitFutures(b, futures)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got.Load() < n {
		b.Fatalf("received %d of %d", got.Load(), n)
	}
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99.9))/1000, "p99.9-ms")
	b.ReportMetric(float64(hist.Max())/1000, "max-ms")
}
