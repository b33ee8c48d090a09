package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/metrics"
)

// BenchmarkDeliveryHooks measures what the delivery hooks cost a
// consumer: a queue member taking 500 at a time and acking them, and a
// stream member taking 2,000 at a time as stored batches, with no hooks
// and with metrics.Hooks (the delivery counters and the end-to-end
// latency histogram). The messages (128 bytes, published beforehand in
// calls of 100) are not timed. One op is one message.
func BenchmarkDeliveryHooks(b *testing.B) {
	for _, kind := range []engine.SubscriptionKind{engine.KindQueue, engine.KindStream} {
		for _, hooked := range []bool{false, true} {
			name := string(kind) + "/hooks=none"
			if hooked {
				name = string(kind) + "/hooks=metrics"
			}
			b.Run(name, func(b *testing.B) {
				var hs []engine.Hook
				if hooked {
					hs = []engine.Hook{metrics.NewHooks(prometheus.NewRegistry())}
				}
				br, err := engine.Open(engine.Options{Dir: b.TempDir(), DefaultFsync: "never", Hooks: hs})
				if err != nil {
					b.Fatal(err)
				}
				defer br.Close()
				if _, err := br.CreateTopic(bg, "t", engine.TopicConfig{}); err != nil {
					b.Fatal(err)
				}
				if _, err := br.CreateSubscription(bg, "t", "s", engine.SubscriptionConfig{Kind: kind, StartAt: engine.StartEarliest, MaxInFlight: 5000}); err != nil {
					b.Fatal(err)
				}
				msgs := make([]engine.Message, 100)
				for i := range msgs {
					msgs[i] = engine.Message{Value: make([]byte, 128)}
				}
				for n := 0; n < b.N; n += len(msgs) {
					if _, err := br.Publish(bg, "t", msgs[:min(len(msgs), b.N-n)]...); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				if kind == engine.KindQueue {
					m, err := br.JoinQueue("t", "s")
					if err != nil {
						b.Fatal(err)
					}
					ids := make([]string, 0, 500)
					for got := 0; got < b.N; {
						ds, err := m.Poll(500)
						if err != nil {
							b.Fatal(err)
						}
						ids = ids[:0]
						for _, d := range ds {
							ids = append(ids, d.ID)
						}
						if err := m.Ack(ids...); err != nil {
							b.Fatal(err)
						}
						got += len(ds)
					}
					return
				}
				m, err := br.JoinStream("t", "s", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				var sc engine.Scratch
				for got := 0; got < b.N; {
					bs, err := m.FetchBatches(bg, 2000, &sc)
					if err != nil {
						b.Fatal(err)
					}
					for _, x := range bs {
						got += x.Count()
					}
				}
			})
		}
	}
}
