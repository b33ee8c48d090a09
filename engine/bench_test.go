package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var benchValue = make([]byte, 128)

func benchBroker(b *testing.B, fsync string) *Broker {
	b.Helper()
	br, err := Open(Options{Dir: b.TempDir(), DefaultFsync: fsync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

// publishN publishes n 128-byte messages in batches of batch.
func publishN(b *testing.B, br *Broker, topic string, n, batch int) {
	b.Helper()
	msgs := make([]Message, batch)
	for i := range msgs {
		msgs[i] = Message{Value: benchValue}
	}
	for done := 0; done < n; done += batch {
		if _, err := br.Publish(context.Background(), topic, msgs[:min(batch, n-done)]...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueuePublishAck: publishers (batches of 100) and 2 workers
// (receive up to 500, ack them in one call), fsync=always, 128-byte
// messages. One op is one message published and acknowledged.
func BenchmarkQueuePublishAck(b *testing.B) {
	for _, c := range []struct{ publishers, partitions int }{{4, 4}, {16, 1}, {16, 4}} {
		b.Run(fmt.Sprintf("publishers=%d/partitions=%d", c.publishers, c.partitions), func(b *testing.B) {
			benchQueue(b, c.publishers, c.partitions)
		})
	}
}

func benchQueue(b *testing.B, publishers, partitions int) {
	br := benchBroker(b, "always")
	ctx := context.Background()
	br.CreateTopic(ctx, "q", TopicConfig{Partitions: partitions})
	br.CreateSubscription(ctx, "q", "w", SubscriptionConfig{Kind: KindQueue, MaxInFlight: 5000})
	per := (b.N + publishers - 1) / publishers
	total := int64(per * publishers)
	var acked atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishN(b, br, "q", per, 100)
		}()
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := br.JoinQueue("q", "w")
			for acked.Load() < total {
				ds, err := m.Receive(cctx, 500)
				if err != nil {
					return
				}
				ids := make([]string, len(ds))
				for i, d := range ds {
					ids[i] = d.ID
				}
				if err := m.Ack(ids...); err != nil {
					b.Error(err)
					return
				}
				if acked.Add(int64(len(ds))) >= total {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(acked.Load())/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFanOut: subs ephemeral subscriptions each read every message of
// a topic (published beforehand, 128 bytes each). One op is one message;
// deliveries/s counts every subscriber's copy.
func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run(fmt.Sprintf("subscriptions=%d", subs), func(b *testing.B) {
			br := benchBroker(b, "never")
			ctx := context.Background()
			br.CreateTopic(ctx, "t", TopicConfig{})
			var es []*Ephemeral
			for range subs {
				e, _ := br.SubscribeEphemeral("t", EphemeralOptions{Buffer: 1 << 40})
				es = append(es, e)
			}
			publishN(b, br, "t", b.N, 1000)
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, e := range es {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for got := 0; got < b.N; {
						ms, err := e.Receive(ctx, 10000)
						if err != nil {
							b.Error(err)
							return
						}
						got += len(ms)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkStreamGroup: a stream subscription of 4 members on 4 partitions
// reads every message (published beforehand) and commits.
func BenchmarkStreamGroup(b *testing.B) {
	br := benchBroker(b, "never")
	ctx := context.Background()
	br.CreateTopic(ctx, "s", TopicConfig{Partitions: 4})
	br.CreateSubscription(ctx, "s", "g", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest})
	publishN(b, br, "s", b.N, 1000)
	var members []*StreamMember
	for range 4 {
		m, _ := br.JoinStream("s", "g", time.Minute)
		members = append(members, m)
	}
	for range 2 {
		for _, m := range members {
			m.Heartbeat()
		}
	}
	b.ResetTimer()
	var total atomic.Int64
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < int64(b.N) {
				ms, err := m.Fetch(cctx, 10000)
				if err != nil {
					return // cancelled: every message was read
				}
				commit := map[int]int64{}
				for _, msg := range ms {
					commit[msg.Partition] = msg.Offset + 1
				}
				if err := m.Commit(commit); err != nil {
					b.Error(err)
					return
				}
				if total.Add(int64(len(ms))) >= int64(b.N) {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	if total.Load() < int64(b.N) {
		b.Fatalf("read %d of %d", total.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReplay reads a partition from offset 0 with Read, reusing the
// result slice as a replay loop would.
func BenchmarkReplay(b *testing.B) {
	br := benchBroker(b, "never")
	ctx := context.Background()
	br.CreateTopic(ctx, "r", TopicConfig{})
	publishN(b, br, "r", b.N, 1000)
	b.ResetTimer()
	var reuse []Message
	for off := int64(0); off < int64(b.N); {
		res, err := br.Read(ctx, "r", 0, off, ReadOptions{Reuse: reuse})
		if err != nil {
			b.Fatal(err)
		}
		off, reuse = res.NextOffset, res.Messages
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkQueueRedeliver: a batch of 2,000 messages stored in one record
// batch is delivered, nacked and delivered again; one op is one
// redelivery. Redeliveries read the log one offset at a time (readAt),
// unlike first deliveries, which read ahead.
func BenchmarkQueueRedeliver(b *testing.B) {
	br := benchBroker(b, "never")
	ctx := context.Background()
	if _, err := br.CreateTopic(ctx, "r", TopicConfig{Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	if _, err := br.CreateSubscription(ctx, "r", "w", SubscriptionConfig{Kind: KindQueue, MaxInFlight: 100000, MaxDeliveries: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	const n = 2000
	publishN(b, br, "r", n, n)
	m, err := br.JoinQueue("r", "w")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Leave()
	take := func() []Delivery {
		var all []Delivery
		for len(all) < n {
			ds, err := m.Poll(n - len(all))
			if err != nil || len(ds) == 0 {
				b.Fatalf("polled %d of %d: %v", len(all), n, err)
			}
			all = append(all, ds...)
		}
		return all
	}
	ds := take()
	b.ResetTimer()
	for done := 0; done < b.N; done += n {
		for _, d := range ds {
			if err := m.Nack(d.ID, 0); err != nil {
				b.Fatal(err)
			}
		}
		ds = take()
	}
}
