package tests

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/server"
)

// createTopic makes a topic through the native API.
func createTopic(t *testing.T, base, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, name, client.TopicConfig{Partitions: int32(partitions)}); err != nil {
		t.Fatal(err)
	}
}

// produceAndCheck produces n keyed records with prod to topic and reads
// the topic back from the start with a new client: every record once, in
// order per partition, with its key, value and header.
func produceAndCheck(t *testing.T, addr string, prod *kgo.Client, topic string, n, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%97), Value: fmt.Appendf(nil, "%s-%d", topic, i),
			Headers: []kgo.RecordHeader{{Key: "i", Value: fmt.Append(nil, i)}}}
		prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce %s: %v", r.Value, err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons := kafkaClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	recs := consumeN(t, cons, n)
	next := map[int32]int64{}
	last := map[int32]int{}
	keyAt := map[string]int32{}
	seen := map[int]bool{}
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(string(r.Value), topic+"-%d", &i); err != nil {
			t.Fatalf("value %q", r.Value)
		}
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, expected %d", r.Partition, r.Offset, next[r.Partition])
		}
		if prev, ok := last[r.Partition]; ok && i <= prev {
			t.Fatalf("partition %d: record %d after %d", r.Partition, i, prev)
		}
		if p, ok := keyAt[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		if string(r.Key) != fmt.Sprintf("k%d", i%97) || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) || seen[i] {
			t.Fatalf("record %d (seen %v): key %q headers %v", i, seen[i], r.Key, r.Headers)
		}
		next[r.Partition]++
		last[r.Partition], keyAt[string(r.Key)], seen[i] = i, r.Partition, true
	}
	if len(seen) != n || len(next) != partitions {
		t.Fatalf("%d distinct records of %d, from %d partitions of %d", len(seen), n, len(next), partitions)
	}
}

// TestKafkaProduceCodecs: franz-go, idempotent (its default), produces with
// each compression codec to a topic of 4 partitions; everything reads back
// once and in order.
func TestKafkaProduceCodecs(t *testing.T) {
	s, base := startServer(t)
	for _, c := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := "codec-" + c.name
			createTopic(t, base, topic, 4)
			prod := kafkaClient(t, s.KafkaAddr(), kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(5*time.Millisecond))
			produceAndCheck(t, s.KafkaAddr(), prod, topic, 400, 4)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if id, epoch, err := prod.ProducerID(ctx); err != nil || id < 0 || epoch < 0 {
				t.Fatalf("the producer is not idempotent: id %d epoch %d, %v", id, epoch, err)
			}
		})
	}
}

// TestKafkaProduceAcks: acks 0 (no response at all), acks 1 and acks all
// each store every record once.
func TestKafkaProduceAcks(t *testing.T) {
	s, base := startServer(t)
	for _, c := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"none", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
		{"leader", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
		{"all", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := "acks-" + c.name
			createTopic(t, base, topic, 3)
			prod := kafkaClient(t, s.KafkaAddr(), c.opts...)
			produceAndCheck(t, s.KafkaAddr(), prod, topic, 150, 3)
		})
	}
}

// TestKafkaIdempotentRetry sends an idempotent producer's batches by hand:
// a retried batch is answered with its first offset and stored once; a
// gap, an old epoch and an unknown producer id are refused; what is stored
// reads back with a real client.
func TestKafkaIdempotentRetry(t *testing.T) {
	s, base := startServer(t)
	createTopic(t, base, "idem", 2)
	rk := dialKafka(t, s.KafkaAddr())
	init := kmsg.NewPtrInitProducerIDRequest()
	init.SetVersion(4)
	init.ProducerID, init.ProducerEpoch = -1, -1
	ir := rk.request(t, init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 || ir.ProducerID < 0 || ir.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId: %+v", ir)
	}
	again := rk.request(t, init).(*kmsg.InitProducerIDResponse)
	if again.ProducerID == ir.ProducerID {
		t.Fatalf("producer id %d handed out twice", ir.ProducerID)
	}
	pid := ir.ProducerID
	produce := func(p int32, epoch int16, seq int32, values ...string) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		return rk.produce(t, "idem", p, kafkaBatch(pid, epoch, seq, values...))
	}
	expect := func(rp kmsg.ProduceResponseTopicPartition, code int16, offset int64) {
		t.Helper()
		if rp.ErrorCode != code || code == 0 && rp.BaseOffset != offset {
			t.Fatalf("partition %d: error %d (%v) offset %d, want error %d offset %d", rp.Partition, rp.ErrorCode, kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset, code, offset)
		}
	}
	expect(produce(0, 0, 0, "a", "b", "c"), 0, 0)
	expect(produce(0, 0, 0, "a", "b", "c"), 0, 0) // the retry
	expect(produce(0, 0, 3, "d"), 0, 3)
	expect(produce(0, 0, 0, "a", "b", "c"), 0, 0) // still remembered
	expect(produce(0, 0, 3, "d"), 0, 3)
	expect(produce(0, 0, 9, "gap"), kerr.OutOfOrderSequenceNumber.Code, 0)
	expect(produce(0, 0, 2, "overlap"), kerr.OutOfOrderSequenceNumber.Code, 0)
	expect(produce(1, 0, 1, "not the first"), kerr.OutOfOrderSequenceNumber.Code, 0)
	expect(produce(1, 0, 0, "x"), 0, 0) // partitions have their own sequences
	expect(produce(1, 1, 0, "y"), 0, 1) // the producer bumped its epoch (KIP-360)
	expect(produce(1, 0, 1, "old epoch"), kerr.InvalidProducerEpoch.Code, 0)
	pid = 1 << 40
	expect(produce(1, 0, 0, "unknown"), kerr.UnknownProducerID.Code, 0)

	cons := kafkaClient(t, s.KafkaAddr(), kgo.ConsumeTopics("idem"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	recs := consumeN(t, cons, 6)
	got := map[int32][]string{}
	for _, r := range recs {
		got[r.Partition] = append(got[r.Partition], string(r.Value))
	}
	if !slices.Equal(got[0], []string{"a", "b", "c", "d"}) || !slices.Equal(got[1], []string{"x", "y"}) {
		t.Fatalf("stored %v", got)
	}
	if ends := endOffsets(t, base, "idem"); !slices.Equal(ends, []int64{4, 2}) {
		t.Fatalf("end offsets %v, want [4 2]", ends)
	}
}

// endOffsets are a topic's partitions' end offsets, from the native API.
func endOffsets(t *testing.T, base, topic string) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ti, err := c.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for _, p := range ti.GetPartitions() {
		ends = append(ends, p.GetEndOffset())
	}
	return ends
}

// TestKafkaShutdownUnderLoadKeepsAcknowledged: a graceful shutdown while
// Kafka producers send loses no record the broker acknowledged, and the
// produces in flight when it starts are answered rather than cut.
func TestKafkaShutdownUnderLoadKeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	s, err := server.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Broker().CreateTopic(ctx, "kload", engine.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	type acked struct {
		p     int32
		off   int64
		value string
	}
	var (
		mu   sync.Mutex
		got  []acked
		sent atomic.Int64
	)
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.DefaultProduceTopic("kload"),
		kgo.RecordRetries(0), kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			kc.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					got = append(got, acked{r.Partition, r.Offset, string(r.Value)})
					mu.Unlock()
					sent.Add(1)
				}
			})
		}
	}()
	waitFor(t, 20*time.Second, func() bool { return sent.Load() >= 5000 })
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	close(stop)
	<-done
	kc.Close() // fails what was never answered: only answered records count

	b, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, a := range got {
		res, err := b.Read(ctx, "kload", int(a.p), a.off, engine.ReadOptions{MaxMessages: 1})
		if err != nil || len(res.Messages) != 1 || string(res.Messages[0].Value) != a.value {
			t.Fatalf("acknowledged %s at %d/%d: read %v, %v", a.value, a.p, a.off, res.Messages, err)
		}
	}
	t.Logf("%d acknowledged records all found after shutdown", len(got))
}
