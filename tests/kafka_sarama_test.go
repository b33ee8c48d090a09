package tests

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaConfig is a sarama configuration for Ferry: Kafka 2.8's protocol
// versions, which Ferry serves (Fetch 12, Produce 9, ListOffsets 6,
// Metadata 11), and short retries. Below V2_8_0_0 sarama fetches at
// version 11 or less and drops the connection on a partition with no new
// records (see skipIfEmptyFetchIsNull).
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "ferry-sarama-test"
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

// TestKafkaSarama drives sarama: its cluster admin creates and describes a
// topic, a SyncProducer sends keyed messages with headers, partition
// consumers read them back, and a consumer group reads them too.
func TestKafkaSarama(t *testing.T) {
	s, _ := startServer(t)
	addrs := []string{s.KafkaAddr()}
	cfg := saramaConfig()

	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("sr", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.bytes": new("1048576")}}, false); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if err := admin.CreateTopic("sr", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Fatalf("create an existing topic: %v", err)
	}
	if err := admin.CreatePartitions("sr", 3, nil, false); err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "sr"})
	if err != nil {
		t.Fatalf("describe config: %v", err)
	}
	cfgs := map[string]string{}
	for _, e := range entries {
		cfgs[e.Name] = e.Value
	}
	if cfgs["retention.bytes"] != "1048576" || cfgs["cleanup.policy"] != "delete" {
		t.Fatalf("topic configs: %v", cfgs)
	}
	brokers, controller, err := admin.DescribeCluster()
	if err != nil || len(brokers) != 1 || controller != 0 {
		t.Fatalf("describe cluster: %v %v %d", err, brokers, controller)
	}

	const n = 60
	prod, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := map[string]int32{} // value -> partition
	keyPart := map[string]int32{}
	send := func(t *testing.T, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			k := fmt.Sprintf("k%d", i%6)
			m := &sarama.ProducerMessage{Topic: "sr", Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i)),
				Headers: []sarama.RecordHeader{{Key: []byte("i"), Value: fmt.Appendf(nil, "%d", i)}}}
			p, _, err := prod.SendMessage(m)
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if q, ok := keyPart[k]; ok && q != p {
				t.Fatalf("key %s went to partitions %d and %d", k, q, p)
			}
			keyPart[k], sent[fmt.Sprintf("v%d", i)] = p, p
		}
	}
	send(t, 0, n/2)

	check := func(t *testing.T, msgs []*sarama.ConsumerMessage) {
		t.Helper()
		next := map[int32]int64{}
		seen := map[string]bool{}
		for _, m := range msgs {
			if m.Offset != next[m.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
			}
			next[m.Partition]++
			v := string(m.Value)
			var i int
			if _, err := fmt.Sscanf(v, "v%d", &i); err != nil {
				t.Fatalf("value %q", v)
			}
			if sent[v] != m.Partition || string(m.Key) != fmt.Sprintf("k%d", i%6) || len(m.Headers) != 1 || string(m.Headers[0].Value) != fmt.Sprint(i) {
				t.Fatalf("message %+v", m)
			}
			seen[v] = true
		}
		if len(seen) != n {
			t.Fatalf("%d distinct messages of %d", len(seen), n)
		}
	}

	t.Run("PartitionConsumer", func(t *testing.T) {
		ccfg := saramaConfig()
		ccfg.Consumer.MaxWaitTime = 10 * time.Millisecond
		ccfg.Consumer.Return.Errors = true
		cons, err := sarama.NewConsumer(addrs, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		parts, err := cons.Partitions("sr")
		if err != nil || len(parts) != 3 {
			t.Fatalf("partitions: %v %v", parts, err)
		}
		msgs := make(chan *sarama.ConsumerMessage, n)
		errs := make(chan error, 3)
		for _, p := range parts {
			pc, err := cons.ConsumePartition("sr", p, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.AsyncClose()
			go func() {
				for m := range pc.Messages() {
					msgs <- m
				}
			}()
			go func() {
				for err := range pc.Errors() {
					select {
					case errs <- err:
					default:
					}
				}
			}()
		}
		var got []*sarama.ConsumerMessage
		timeout := time.After(30 * time.Second)
		receive := func(upTo int) {
			for len(got) < upTo {
				select {
				case m := <-msgs:
					got = append(got, m)
				case err := <-errs:
					t.Fatalf("partition consumer: %v", err)
				case <-timeout:
					t.Fatalf("consumed %d of %d messages before the time ran out", len(got), upTo)
				}
			}
		}
		receive(n / 2)
		// Caught up, the consumers fetch nothing (every 10 ms) until the
		// rest comes, a partition at a time.
		send(t, n/2, n)
		receive(n)
		check(t, got)
	})

	t.Run("ConsumerGroup", func(t *testing.T) {
		skipWithoutGroups(t, s.KafkaAddr())
		group, err := sarama.NewConsumerGroup(addrs, "srgroup", cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer group.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h := &saramaHandler{want: n, done: cancel}
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{"sr"}, h); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("consume: %v", err)
			}
		}
		check(t, h.messages())
	})
}

// saramaHandler collects a group member's messages until it has want.
type saramaHandler struct {
	want int
	done context.CancelFunc
	mu   sync.Mutex
	got  []*sarama.ConsumerMessage
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		sess.MarkMessage(m, "")
		h.mu.Lock()
		h.got = append(h.got, m)
		if len(h.got) >= h.want {
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

func (h *saramaHandler) messages() []*sarama.ConsumerMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got
}
