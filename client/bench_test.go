package client_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

// Run: go test -run '^$' -bench . -benchtime 20000x ./client/
// Each benchmark starts its own broker (fsync never) on 127.0.0.1.

var protocols = []struct {
	name string
	opts []client.Option
}{
	{"connect", nil},
	{"grpc", []client.Option{client.WithConnectOptions(connect.WithGRPC())}},
	{"connect-gzip", []client.Option{client.WithCompression(true)}},
}

func BenchmarkPublishAsync(b *testing.B) {
	value := make([]byte, 256)
	for _, p := range protocols {
		b.Run(p.name, func(b *testing.B) {
			s := startServer(b, b.TempDir(), "127.0.0.1:0")
			c := newClient(b, s, p.opts...)
			createTopic(b, c, "bench", 4)
			ctx := context.Background()
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			for i := range b.N {
				c.PublishAsync(ctx, "bench", client.Message{Key: fmt.Appendf(nil, "%d", i%64), Value: value})
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkPublishSync(b *testing.B) {
	value := make([]byte, 256)
	for _, p := range protocols[:2] {
		b.Run(p.name, func(b *testing.B) {
			s := startServer(b, b.TempDir(), "127.0.0.1:0")
			c := newClient(b, s, p.opts...)
			createTopic(b, c, "bench", 1)
			ctx := context.Background()
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Publish(ctx, "bench", client.Message{Value: value}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkConsumeStream(b *testing.B) {
	for _, p := range protocols[:2] {
		b.Run(p.name, func(b *testing.B) {
			s := startServer(b, b.TempDir(), "127.0.0.1:0")
			c := newClient(b, s, p.opts...)
			createTopic(b, c, "bench", 1)
			createSub(b, c, "bench", "g", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest})
			ctx := context.Background()
			value := make([]byte, 256)
			for range b.N {
				c.PublishAsync(ctx, "bench", client.Message{Value: value})
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			sc, err := c.ConsumeStream(ctx, "bench", "g", client.WithSubscribeCredit(1000))
			if err != nil {
				b.Fatal(err)
			}
			defer sc.Close()
			for range b.N {
				if _, err := sc.Next(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSubscribeQueue runs an instant handler, with SubscribeQueue's
// default credit (twice the concurrency: every few messages wait for a
// grant's round trip) and with a credit of 256, what short handlers want.
func BenchmarkSubscribeQueue(b *testing.B) {
	for _, tc := range []struct {
		conc   int
		credit int // 0: the default
	}{{1, 0}, {16, 0}, {1, 2}, {1, 256}, {16, 256}} {
		conc := tc.conc
		opts := []client.SubscribeOption{client.WithConcurrency(conc)}
		name := fmt.Sprintf("concurrency-%d/credit-default", conc)
		if tc.credit > 0 {
			opts = append(opts, client.WithSubscribeCredit(tc.credit))
			name = fmt.Sprintf("concurrency-%d/credit-%d", conc, tc.credit)
		}
		b.Run(name, func(b *testing.B) {
			s := startServer(b, b.TempDir(), "127.0.0.1:0")
			c := newClient(b, s)
			createTopic(b, c, "bench", 4)
			createSub(b, c, "bench", "w", client.SubscriptionConfig{Kind: client.KindQueue, StartAt: client.StartEarliest})
			ctx := context.Background()
			value := make([]byte, 256)
			for range b.N {
				c.PublishAsync(ctx, "bench", client.Message{Value: value})
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			var n atomic.Int64
			ctx, cancel := context.WithCancel(ctx)
			err := c.SubscribeQueue(ctx, "bench", "w", func(ctx context.Context, d *client.Delivery) error {
				if n.Add(1) == int64(b.N) {
					cancel()
				}
				return nil
			}, opts...)
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
