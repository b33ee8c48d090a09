package tests

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/client"
)

// fetchOffsetRaw is the group's committed offset for one partition, by
// OffsetFetch.
func fetchOffsetRaw(t *testing.T, ctx context.Context, kc *kgo.Client, group, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{partition}}}
	resp, err := req.RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("offset fetch: error %d", p.ErrorCode)
	}
	return resp.Topics[0].Partitions[0].Offset
}

// commitOffsetRaw commits offset on partition 0 without a member, as a
// consumer that assigns itself partitions does.
func commitOffsetRaw(t *testing.T, ctx context.Context, kc *kgo.Client, group, topic string, offset int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset}}}}
	resp, err := req.RequestWith(ctx, kc)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit %d: %+v, %v", offset, resp, err)
	}
}

func produceN(t *testing.T, ctx context.Context, kc *kgo.Client, topic string, n int) {
	t.Helper()
	for range n {
		if err := kc.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKafkaGroupOffsetFetchCommitZero: a commit of 0 on an empty partition
// is a commit: OffsetFetch answers 0 once records arrive, as Kafka does
// (it used to answer -1, so a client resetting to latest skipped them),
// and a partition of the topic never committed reads as its start.
func TestKafkaGroupOffsetFetchCommitZero(t *testing.T) {
	s, _, ctx := kafkaTopic(t, "zero", 2, 30*time.Second)
	kc := rawGroupClient(t, s.KafkaAddr())
	commitOffsetRaw(t, ctx, kc, "gz", "zero", 0)
	produceN(t, ctx, kc, "zero", 2)
	if off := fetchOffsetRaw(t, ctx, kc, "gz", "zero", 0); off != 0 {
		t.Fatalf("committed 0, then 2 records produced: OffsetFetch answers %d", off)
	}
	if off := fetchOffsetRaw(t, ctx, kc, "gz", "zero", 1); off != 0 {
		t.Fatalf("a partition never committed, of a topic committed on: %d, want its start 0", off)
	}
}

// TestKafkaGroupOffsetFetchAfterWorkRetention: a group commits all it read
// (3), work retention deletes the whole log (the partition now starts at
// 3), five records arrive: OffsetFetch answers 3, and a consumer whose
// reset policy is latest reads the five (it used to get -1, reset to the
// end and lose them).
func TestKafkaGroupOffsetFetchAfterWorkRetention(t *testing.T) {
	s, c, ctx := kafkaTopicWith(t, "work", client.TopicConfig{Partitions: 1, Retention: client.Retention{Work: true}}, 30*time.Second)
	kc := rawGroupClient(t, s.KafkaAddr())
	produceN(t, ctx, kc, "work", 3)
	commitOffsetRaw(t, ctx, kc, "gw", "work", 3)
	if err := s.Broker().EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	ti, err := c.DescribeTopic(ctx, "work")
	if err != nil || ti.Partitions[0].StartOffset != 3 {
		t.Fatalf("after retention: %+v, %v", ti, err)
	}
	produceN(t, ctx, kc, "work", 5)
	if off := fetchOffsetRaw(t, ctx, kc, "gw", "work", 0); off != 3 {
		t.Fatalf("OffsetFetch after retention: %d, want 3", off)
	}
	cons := kafkaClient(t, s.KafkaAddr(), kgo.ConsumerGroup("gw"), kgo.ConsumeTopics("work"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond))
	if got := consumeN(t, cons, 5); len(got) != 5 || got[0].Offset != 3 {
		t.Fatalf("a consumer resetting to latest read %d records", len(got))
	}
}

// TestKafkaGroupOffsetFetchCreatesNothing: an OffsetFetch for a group that
// never committed (an admin tool, a one-off consumer) answers -1 and
// leaves no subscription behind, so it pins nothing: work retention then
// follows the one group that commits.
func TestKafkaGroupOffsetFetchCreatesNothing(t *testing.T) {
	s, c, ctx := kafkaTopicWith(t, "pin", client.TopicConfig{Partitions: 1, Retention: client.Retention{Work: true}}, 30*time.Second)
	kc := rawGroupClient(t, s.KafkaAddr())
	produceN(t, ctx, kc, "pin", 3)
	if off := fetchOffsetRaw(t, ctx, kc, "probe", "pin", 0); off != -1 {
		t.Fatalf("OffsetFetch of a group that never committed: %d", off)
	}
	if _, err := c.DescribeSubscription(ctx, "pin", "probe"); err == nil {
		t.Fatal("OffsetFetch made a subscription")
	}
	commitOffsetRaw(t, ctx, kc, "real", "pin", 3)
	if err := s.Broker().EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	ti, err := c.DescribeTopic(ctx, "pin")
	if err != nil || ti.Partitions[0].StartOffset != 3 {
		t.Fatalf("after the only group committed 3 and retention ran: %+v, %v", ti, err)
	}
}
