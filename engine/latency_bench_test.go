package engine

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// BenchmarkQueueLatency publishes 128-byte messages at a fixed 10,000
// messages/s (fsync=always) to a queue subscription and measures the time
// from each message's scheduled send time to its delivery to a waiting
// worker. 64 publishers send the scheduled messages. Measuring from the schedule, not from the actual send, corrects
// for coordinated omission: a stall delays every later message's clock too.
// One op is one message; run with -benchtime 20000x for 2 seconds.
func BenchmarkQueueLatency(b *testing.B) {
	const rate = 10000
	br := benchBroker(b, "always")
	ctx := context.Background()
	br.CreateTopic(ctx, "lat", TopicConfig{})
	br.CreateSubscription(ctx, "lat", "w", SubscriptionConfig{Kind: KindQueue, MaxInFlight: 100000})
	m, _ := br.JoinQueue("lat", "w")
	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	n := b.N
	done := make(chan struct{})
	go func() {
		defer close(done)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for got := 0; got < n; {
			ds, err := m.Receive(cctx, 1000)
			if err != nil {
				b.Error(err)
				return
			}
			now := time.Now()
			ids := make([]string, len(ds))
			for i, d := range ds {
				sched := time.Unix(0, int64(binary.BigEndian.Uint64(d.Message.Value)))
				hist.RecordValue(max(int64(now.Sub(sched)/time.Microsecond), 1))
				ids[i] = d.ID
			}
			m.Ack(ids...)
			got += len(ds)
		}
	}()
	// 64 publishers take the scheduled sends, as many clients would: with
	// fsync=always one publisher alone could not keep up with the rate, and
	// concurrent publishes share fsyncs (group commit).
	sends := make(chan time.Time, 1024)
	for range 64 {
		go func() {
			for sched := range sends {
				v := make([]byte, 128)
				binary.BigEndian.PutUint64(v, uint64(sched.UnixNano()))
				if _, err := br.Publish(ctx, "lat", Message{Value: v}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / rate
	for i := range n {
		sched := start.Add(time.Duration(i) * interval)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		sends <- sched
	}
	close(sends)
	<-done
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99.9))/1000, "p99.9-ms")
	b.ReportMetric(float64(hist.Max())/1000, "max-ms")
}
