package engine

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

// countingHook records every event it is told of.
type countingHook struct {
	mu                                                     sync.Mutex
	published, delivered, redelivered, acked, nacked, dead int
	rebalances                                             int
}

func (h *countingHook) OnPublish(topic string, partition, messages, bytes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published += messages
}
func (h *countingHook) OnDeliver(topic, sub string, n, again, _ int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered += n
	h.redelivered += again
}
func (h *countingHook) OnAck(topic, sub string, n int)  { h.mu.Lock(); h.acked += n; h.mu.Unlock() }
func (h *countingHook) OnNack(topic, sub string, n int) { h.mu.Lock(); h.nacked += n; h.mu.Unlock() }
func (h *countingHook) OnDeadLetter(topic, sub string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dead += n
}
func (h *countingHook) OnRebalance(topic, sub string, gen int64, members int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rebalances++
}

func TestHooksSeeEvents(t *testing.T) {
	h := &countingHook{}
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, Hooks: []Hook{h}, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{})
	b.CreateSubscription(bg, "jobs", "w", SubscriptionConfig{Kind: KindQueue, MaxDeliveries: 2})
	b.CreateSubscription(bg, "jobs", "s", SubscriptionConfig{Kind: KindStream})
	publish(t, b, "jobs", Message{Value: []byte("a")}, Message{Value: []byte("b")})
	m, _ := b.JoinQueue("jobs", "w")
	ds, _ := m.Poll(10)
	m.Ack(ds[0].ID)
	m.Nack(ds[1].ID, 0)
	ds, _ = m.Poll(10)
	m.Nack(ds[0].ID, 0) // second failure: dead letter
	sm, _ := b.JoinStream("jobs", "s", 0)
	sm.Leave()
	h.mu.Lock()
	defer h.mu.Unlock()
	// The dead letter's publish to the dead-letter topic counts as a publish.
	if h.published != 3 || h.delivered != 3 || h.redelivered != 1 || h.acked != 1 || h.nacked != 2 || h.dead != 1 || h.rebalances != 2 {
		t.Fatalf("hooks saw %+v", h)
	}
}

// TestDeadLetterHookCountsOnlyWhatMoved: a dead letter whose settling
// could not be written down is delivered again, and counted when it is
// moved for good, not twice.
func TestDeadLetterHookCountsOnlyWhatMoved(t *testing.T) {
	h := &countingHook{}
	fs := vfs.NewFaulty(vfs.Default)
	b := openBroker(t, t.TempDir(), Options{FS: fs, Hooks: []Hook{h}, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{})
	createTopic(t, b, "jobs.w.dlq", TopicConfig{})
	if _, err := b.CreateSubscription(bg, "jobs", "w", SubscriptionConfig{Kind: KindQueue, MaxDeliveries: 1}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs", Message{Value: []byte("a")})
	m, err := b.JoinQueue("jobs", "w")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := m.Poll(10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("poll: %d, %v", len(ds), err)
	}
	fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: "meta", Err: syscall.EIO})
	m.Nack(ds[0].ID, 0) // its last failure: moved, but not settled
	fs.Clear()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead != 0 {
		t.Fatalf("dead letters counted %d, want 0: the move was not settled", h.dead)
	}
}

// timingHook records publish latencies and fsyncs by topic and partition.
type timingHook struct {
	mu        sync.Mutex
	latencies map[string]int
	fsyncs    map[string]int
}

func (h *timingHook) OnPublishLatency(topic string, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if took < 0 {
		panic("negative latency")
	}
	h.latencies[topic]++
}

func (h *timingHook) OnFsync(topic string, p int, took time.Duration, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.fsyncs[fmt.Sprintf("%s/%d", topic, p)]++
	}
}

func TestLatencyAndFsyncHooks(t *testing.T) {
	h := &timingHook{latencies: map[string]int{}, fsyncs: map[string]int{}}
	b := openBroker(t, t.TempDir(), Options{Hooks: []Hook{h}}) // fsync always
	createTopic(t, b, "t", TopicConfig{Partitions: 2})
	publish(t, b, "t", Message{Value: []byte("a")}) // one call: one latency
	var bl record.Builder
	bl.Add(record.Record{Timestamp: 1700000000000, Value: []byte("b")})
	if _, err := b.PublishBatch(bg, "t", 1, bl.Build()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(bg, "nope", Message{Value: []byte("x")}); err == nil {
		t.Fatal("publish to a missing topic succeeded")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.latencies["t"] != 2 || len(h.latencies) != 1 {
		t.Errorf("latencies %v, want t:2 (failed publishes are not timed)", h.latencies)
	}
	if h.fsyncs["t/1"] < 1 {
		t.Errorf("fsyncs %v, want at least one on t/1", h.fsyncs)
	}
}
