// Package kafkadriver runs workloads on Ferry through its Kafka front door
// (protocol/kafka) with franz-go (github.com/twmb/franz-go/pkg/kgo), the
// way a Kafka user runs it fast:
//
//   - publish: one kgo.Client (its own connections) per producer,
//     Produce with acks=-1 (all in-sync replicas: Ferry acknowledges once
//     the batch is stored, fsynced when the topic's policy says so), the
//     idempotent producer (franz-go's default; see Durability), no
//     compression, a linger of 5 ms (the native driver's) and franz-go's
//     default buffer of 50,000 records, past which Produce blocks: the
//     flow control. The runner's partition is the record's (the manual
//     partitioner).
//   - stream: append as above; replay assigns every partition directly
//     (kgo.ConsumePartitions, no consumer group) from its first offset,
//     each reader with its own client and partitions r, r+readers, …, up
//     to the partition's end offset (ListOffsets) at the replay's start.
//   - pub/sub: each subscriber assigns every partition directly from its
//     end offset (asked with ListOffsets before Subscribe returns, so
//     nothing published afterwards is missed); the members of one
//     subscription split its partitions (member m takes m, m+members, …).
//     Ferry stores the topic as any other, at the topic's fsync policy.
//   - queue and latency: not supported. A work queue needs consumer
//     groups and per-message acks, which the Kafka door does not serve
//     yet (Supports says so, and systems skips those runs).
//
// Topics are created and deleted through Ferry's native API (the Kafka
// door serves no CreateTopics yet), with the partitions the workload asks
// for and the driver's fsync policy; everything else goes through the
// Kafka listener.
package kafkadriver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
	"github.com/ferrymq/ferry/client"
)

// Config says where the broker is and how to run on it.
type Config struct {
	// Addr is the broker's native API address (host:port or a URL), for
	// creating and deleting topics.
	Addr string
	// KafkaAddr is the broker's Kafka listener: host:port.
	KafkaAddr string
	// Fsync is every topic's fsync policy; the broker's default when
	// empty.
	Fsync string
	// Name is the system's name in results; "ferry-kafka" when empty.
	Name string
}

const (
	linger = 5 * time.Millisecond
	// initProducerIDKey is InitProducerID's API key: a broker that
	// serves it gives idempotent producers their id.
	initProducerIDKey = 22
)

// Supports says whether the driver can run spec: nil, or an error
// wrapping driver.ErrUnsupported that says why not. It needs no broker,
// so a suite can skip what a system cannot run before starting it.
func Supports(spec workload.Spec) error {
	if spec.QueueLike() {
		return fmt.Errorf("%w: a %s workload needs consumer groups and per-message acks, which Ferry's Kafka door does not serve yet",
			driver.ErrUnsupported, spec.Pattern)
	}
	return nil
}

// Driver is Ferry under test through its Kafka listener.
type Driver struct {
	cfg   Config
	admin *client.Client
	// kc asks the broker for offsets (ListOffsets); it produces and
	// consumes nothing.
	kc *kgo.Client
	// idempotent: the broker serves InitProducerID, so franz-go's
	// producers get an id and the broker sees their sequence numbers.
	idempotent bool
}

var _ driver.Driver = (*Driver)(nil)

// New connects to the broker and asks its Kafka listener which APIs it
// serves.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = "ferry-kafka"
	}
	admin, err := client.New(cfg.Addr)
	if err != nil {
		return nil, err
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(cfg.KafkaAddr))
	if err != nil {
		admin.Close()
		return nil, err
	}
	d := &Driver{cfg: cfg, admin: admin, kc: kc}
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, kc)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("kafka ApiVersions on %s: %w", cfg.KafkaAddr, err), d.Close())
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == initProducerIDKey {
			d.idempotent = true
		}
	}
	return d, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return d.cfg.Name }

// Durability implements driver.Driver. Without InitProducerID franz-go
// produces without a producer id (it logs so and goes on), so a retried
// batch may be stored twice: the row says so.
func (d *Driver) Durability(workload.Spec) string {
	var s string
	switch f := d.cfg.Fsync; {
	case f == "" || f == "always":
		s = "fsync before ack (acks=-1, group commit)"
	case f == "never":
		s = "no fsync: written to the page cache before ack (acks=-1)"
	case strings.HasPrefix(f, "interval:"):
		s = "written before ack (acks=-1); fsync every " + strings.TrimPrefix(f, "interval:")
	default:
		s = "fsync " + f + " (acks=-1)"
	}
	if !d.idempotent {
		s += "; not idempotent: no InitProducerID on the Kafka door yet"
	}
	return s
}

// Close implements driver.Driver.
func (d *Driver) Close() error {
	d.kc.Close()
	return d.admin.Close()
}

// Setup implements driver.Driver.
func (d *Driver) Setup(ctx context.Context, spec workload.Spec, run string) (driver.Bench, error) {
	if err := Supports(spec); err != nil {
		return nil, err
	}
	b := &bench{d: d, spec: spec, topic: "bench." + run}
	if _, err := d.admin.CreateTopic(ctx, b.topic, client.TopicConfig{Partitions: int32(spec.Partitions), Fsync: d.cfg.Fsync}); err != nil {
		return nil, err
	}
	return b, nil
}

type bench struct {
	d     *Driver
	spec  workload.Spec
	topic string
}

func (b *bench) Teardown(ctx context.Context) error { return b.d.admin.DeleteTopic(ctx, b.topic) }

// newClient is a franz-go client of the broker's Kafka listener.
func (b *bench) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.d.cfg.KafkaAddr)}, opts...)...)
}

// Special timestamps of ListOffsets.
const (
	latest   = -1
	earliest = -2
)

// offsets asks the broker for the given partitions' earliest or latest
// offset.
func (b *bench) offsets(ctx context.Context, partitions []int32, which int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = b.topic
	for _, p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, which
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, b.d.kc)
	if err != nil {
		return nil, fmt.Errorf("ListOffsets: %w", err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("ListOffsets %s/%d: %w", rt.Topic, rp.Partition, err)
			}
			out[rp.Partition] = rp.Offset
		}
	}
	for _, p := range partitions {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("ListOffsets: no answer for %s/%d", b.topic, p)
		}
	}
	return out, nil
}

// share lists the partitions of a topic of n that reader (or member) i of
// k takes: i, i+k, …
func share(n, i, k int) []int32 {
	var out []int32
	for p := i; p < n; p += k {
		out = append(out, int32(p))
	}
	return out
}
