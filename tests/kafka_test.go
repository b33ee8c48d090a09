package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/server"
)

// kafkaClient is a franz-go client of the server's Kafka listener.
func kafkaClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	kc, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// kafkaTopic starts a server with a topic of that many partitions and
// returns the server, a native client of it and a context that ends
// after timeout (or with the test).
func kafkaTopic(t *testing.T, topic string, partitions int32, timeout time.Duration) (*server.Server, *client.Client, context.Context) {
	t.Helper()
	return kafkaTopicWith(t, topic, client.TopicConfig{Partitions: partitions}, timeout)
}

// kafkaTopicWith is kafkaTopic with the topic's whole config.
func kafkaTopicWith(t *testing.T, topic string, cfg client.TopicConfig, timeout time.Duration) (*server.Server, *client.Client, context.Context) {
	t.Helper()
	s, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.CreateTopic(ctx, topic, cfg); err != nil {
		t.Fatal(err)
	}
	return s, c, ctx
}

// consumeN polls kc until it has n records or the time is up.
func consumeN(t *testing.T, kc *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := kc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the time ran out", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// TestKafkaProduceConsume: franz-go produces to a topic of 3 partitions
// (keys, headers, its default snappy compression) and consumes everything
// back from the start, in order per partition; a topic it names that does
// not exist is created on first use.
func TestKafkaProduceConsume(t *testing.T) {
	s, c, ctx := kafkaTopic(t, "kp", 3, 30*time.Second)
	prod := kafkaClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic("kp"), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "auto", Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatalf("produce to a new topic: %v", err)
	}
	if ti, err := c.DescribeTopic(ctx, "auto"); err != nil || len(ti.Partitions) != 1 {
		t.Fatalf("auto-created topic: %+v, %v", ti, err)
	}
	const n = 300
	for i := range n {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []kgo.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", i)}}}
		prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons := kafkaClient(t, s.KafkaAddr(), kgo.ConsumeTopics("kp"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	recs := consumeN(t, cons, n)
	seen := map[string]bool{}
	next := map[int32]int64{}
	for _, r := range recs {
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, expected %d", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		var i int
		if _, err := fmt.Sscanf(string(r.Value), "v%d", &i); err != nil {
			t.Fatalf("value %q", r.Value)
		}
		if string(r.Key) != fmt.Sprintf("k%d", i%7) || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) {
			t.Fatalf("record %d: key %q headers %v", i, r.Key, r.Headers)
		}
		seen[string(r.Value)] = true
	}
	if len(seen) != n || len(next) != 3 {
		t.Fatalf("%d distinct records of %d, from %d partitions", len(seen), n, len(next))
	}
}

// TestKafkaNativeInterop: what the native API publishes, a Kafka consumer
// reads, and what a Kafka producer sends, the native client reads; keys,
// headers and values survive both ways.
func TestKafkaNativeInterop(t *testing.T) {
	s, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "x", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "x", client.Message{Key: []byte("nk"), Value: []byte("from native"),
		Headers: []client.Header{{Key: "a", Value: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	kc := kafkaClient(t, s.KafkaAddr(), kgo.ConsumeTopics("x"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic("x"))
	got := consumeN(t, kc, 1)[0]
	if string(got.Key) != "nk" || string(got.Value) != "from native" || len(got.Headers) != 1 || got.Headers[0].Key != "a" {
		t.Fatalf("Kafka read %+v", got)
	}
	if err := kc.ProduceSync(ctx, &kgo.Record{Key: []byte("kk"), Value: []byte("from kafka"),
		Headers: []kgo.RecordHeader{{Key: "b", Value: []byte("2")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Read(ctx, "x", 0, client.AtOffset(1), client.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 {
		t.Fatalf("native read %d messages", len(res.Messages))
	}
	m := res.Messages[0]
	if string(m.Key) != "kk" || string(m.Value) != "from kafka" || len(m.Headers) != 1 || m.Headers[0].Key != "b" || string(m.Headers[0].Value) != "2" {
		t.Fatalf("native read %+v", m)
	}
}

// TestKafkaAdvertisedAddress: Metadata names the broker by the advertised
// address, not the listener's.
func TestKafkaAdvertisedAddress(t *testing.T) {
	s, _ := startServer(t, func(c *server.Config) { c.KafkaAdvertisedAddr = "kafka.example:19092" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kc := kafkaClient(t, s.KafkaAddr())
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].Host != "kafka.example" || resp.Brokers[0].Port != 19092 {
		t.Fatalf("brokers %+v", resp.Brokers)
	}
}

// TestKafkaFetchLongPoll: a fetch with nothing to return waits (up to
// max_wait_ms) and answers as soon as a record arrives in any of its
// partitions.
func TestKafkaFetchLongPoll(t *testing.T) {
	s, c, ctx := kafkaTopic(t, "lp", 3, 20*time.Second)
	kc := kafkaClient(t, s.KafkaAddr())
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 10000, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "lp"
	for p := range int32(3) {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, 0, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
	}
	req.Topics = append(req.Topics, ft)
	type result struct {
		resp *kmsg.FetchResponse
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, err := req.RequestWith(ctx, kc)
		done <- result{resp, err, time.Since(start)}
	}()
	select {
	case r := <-done:
		t.Fatalf("the fetch returned at once (%v, %v) with nothing stored", r.took, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := c.PublishTo(ctx, "lp", 2, client.Message{Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.took > 8*time.Second {
		t.Fatalf("the fetch waited %v: it did not wake when the record came", r.took)
	}
	var got int
	for _, ft := range r.resp.Topics {
		for _, fp := range ft.Partitions {
			if fp.ErrorCode != 0 {
				t.Fatalf("partition %d: error %d", fp.Partition, fp.ErrorCode)
			}
			if len(fp.RecordBatches) > 0 {
				if fp.Partition != 2 {
					t.Fatalf("records in partition %d", fp.Partition)
				}
				got++
			}
		}
	}
	if got != 1 {
		t.Fatalf("%d partitions with records, want 1", got)
	}
}
