package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
)

// purgeSetup publishes seven messages to jobs/workers (one partition, key
// ordering, MaxInFlight 3) and puts them in every state a purge must
// settle: m4 acknowledged; m0, m5 and m6 in flight (m0 holding key a); m1
// held back behind m0 by key ordering; m2 delayed by an hour; m3 nacked,
// to be delivered again in 10 s. It returns the deliveries in flight.
func purgeSetup(t *testing.T) (*Broker, *clock.Fake, string, *QueueMember, []Delivery) {
	t.Helper()
	b, clk, dir := newQueueEnv(t, SubscriptionConfig{KeyOrdering: true, MaxInFlight: 3, AckDeadline: time.Minute}, 1)
	a := []byte("a")
	publish(t, b, "jobs",
		Message{Key: a, Value: []byte("m0")},
		Message{Key: a, Value: []byte("m1")},
		Message{Value: []byte("m2"), DeliverAt: clk.Now().Add(time.Hour)},
		Message{Value: []byte("m3")},
		Message{Value: []byte("m4")},
		Message{Value: []byte("m5")},
		Message{Value: []byte("m6")})
	w := join(t, b)
	first := receive(t, w, 3)
	if got := values(first); !slices.Equal(got, []string{"m0", "m3", "m4"}) {
		t.Fatalf("first take %v", got)
	}
	if err := w.Ack(first[2].ID); err != nil {
		t.Fatal(err)
	}
	if err := w.Nack(first[1].ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	second := receive(t, w, 3)
	if got := values(second); !slices.Equal(got, []string{"m5", "m6"}) {
		t.Fatalf("second take %v", got)
	}
	inFlight := append([]Delivery{first[0]}, second...)
	si, _ := b.DescribeSubscription("jobs", "workers")
	if p := si.Partitions[0]; p.Backlog != 6 || p.InFlight != 3 {
		t.Fatalf("before the purge: %+v", p)
	}
	return b, clk, dir, w, inFlight
}

func TestPurgeQueueSettlesEveryState(t *testing.T) {
	b, clk, _, w, inFlight := purgeSetup(t)
	n, err := b.PurgeSubscription(bg, "jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Fatalf("purged %d, want 6 (7 stored, 1 acknowledged)", n)
	}
	si, _ := b.DescribeSubscription("jobs", "workers")
	if p := si.Partitions[0]; p.Backlog != 0 || p.InFlight != 0 || p.AckFloor != 7 || p.EndOffset != 7 {
		t.Fatalf("after the purge: %+v", p)
	}

	// The deliveries in flight are gone, as after their deadline.
	if err := w.Ack(inFlight[0].ID); !errors.Is(err, ErrUnknownDelivery) {
		t.Errorf("ack of a purged delivery: %v", err)
	}
	if err := w.Nack(inFlight[1].ID, 0); !errors.Is(err, ErrUnknownDelivery) {
		t.Errorf("nack of a purged delivery: %v", err)
	}
	if _, err := w.Extend(inFlight[2].ID, time.Minute); !errors.Is(err, ErrUnknownDelivery) {
		t.Errorf("extend of a purged delivery: %v", err)
	}

	// Nothing purged comes back: not the delayed one, not the nacked one,
	// not the one behind the key, not the ones in flight past their
	// deadline.
	clk.Advance(2 * time.Hour)
	if ds := receive(t, w, 10); len(ds) != 0 {
		t.Fatalf("purged messages delivered: %v", values(ds))
	}

	// New messages are delivered, key a included, and the member's three
	// slots (MaxInFlight) are free again.
	publish(t, b, "jobs", Message{Key: []byte("a"), Value: []byte("n0")}, Message{Value: []byte("n1")}, Message{Value: []byte("n2")})
	ds := receive(t, w, 10)
	if got := values(ds); !slices.Equal(got, []string{"n0", "n1", "n2"}) {
		t.Fatalf("after the purge got %v, want n0 n1 n2", got)
	}
	for _, d := range ds {
		if d.Count != 1 {
			t.Errorf("%s delivered with count %d", d.Message.Value, d.Count)
		}
		if err := w.Ack(d.ID); err != nil {
			t.Error(err)
		}
	}
	si, _ = b.DescribeSubscription("jobs", "workers")
	if p := si.Partitions[0]; p.Backlog != 0 || p.AckFloor != 10 {
		t.Fatalf("after acking the new ones: %+v", p)
	}
}

// The purge is on disk: after a restart nothing purged is delivered, and
// no per-offset state of the purged messages is left in the metadata store.
func TestPurgeQueueSurvivesRestart(t *testing.T) {
	b, clk, dir, _, _ := purgeSetup(t)
	if _, err := b.PurgeSubscription(bg, "jobs", "workers"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs", Message{Value: []byte("new")})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir, Options{Clock: clk, DefaultFsync: "never"})
	var left []string
	b.meta.Scan(stateKey("jobs", "workers"), func(key string, _ []byte) bool {
		if strings.Count(strings.TrimPrefix(key, stateKey("jobs", "workers")), "/") == 2 {
			left = append(left, key)
		}
		return true
	})
	if len(left) != 0 {
		t.Errorf("state of purged offsets left: %v", left)
	}
	clk.Advance(2 * time.Hour)
	w := join(t, b)
	if got := values(receive(t, w, 10)); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("after a restart got %v, want only the message published after the purge", got)
	}
}

// A member waiting at MaxInFlight is woken by the purge, which frees its
// slot, and takes the next message published.
func TestPurgeWakesMemberAtMaxInFlight(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{MaxInFlight: 1}, 2)
	publish(t, b, "jobs", Message{Value: []byte("old0")}, Message{Value: []byte("old1")})
	w := join(t, b)
	if ds := receive(t, w, 5); len(ds) != 1 {
		t.Fatalf("took %v at MaxInFlight 1", values(ds))
	}
	got := make(chan []Delivery, 1)
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	go func() {
		ds, err := w.Receive(ctx, 5)
		got <- ds
		errc <- err
	}()
	if n, err := b.PurgeSubscription(bg, "jobs", "workers"); err != nil || n != 2 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	publish(t, b, "jobs", Message{Value: []byte("new")})
	ds := <-got
	if err := <-errc; err != nil {
		t.Fatalf("receive: %v", err)
	}
	if v := values(ds); !slices.Equal(v, []string{"new"}) {
		t.Fatalf("waiting member got %v, want new", v)
	}
}

// The count is the backlog over every partition; a second purge finds
// nothing; dead letters moved before stay in the dead-letter topic.
func TestPurgeQueueCountsAndDeadLetters(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{MaxDeliveries: 1}, 3)
	for i := range 30 {
		publish(t, b, "jobs", Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "m%d", i)})
	}
	w := join(t, b)
	ds := receive(t, w, 5)
	if len(ds) != 5 {
		t.Fatalf("took %d", len(ds))
	}
	if err := w.Ack(ds[0].ID, ds[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := w.Nack(ds[2].ID, 0); err != nil { // dead-lettered: MaxDeliveries 1
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		ti, err := b.DescribeTopic("jobs.workers.dlq")
		return err == nil && ti.Partitions[0].EndOffset == 1
	})
	waitUntil(t, func() bool {
		si, _ := b.DescribeSubscription("jobs", "workers")
		var n int64
		for _, p := range si.Partitions {
			n += p.Backlog
		}
		return n == 27
	})
	n, err := b.PurgeSubscription(bg, "jobs", "workers")
	if err != nil || n != 27 {
		t.Fatalf("purge: %d, %v; want 27 (30, 2 acknowledged, 1 dead-lettered)", n, err)
	}
	if n, err := b.PurgeSubscription(bg, "jobs", "workers"); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v", n, err)
	}
	if ti, _ := b.DescribeTopic("jobs.workers.dlq"); ti.Partitions[0].EndOffset != 1 {
		t.Fatalf("dead-letter topic after the purge: %+v", ti.Partitions)
	}
	if ti, _ := b.DescribeTopic("jobs"); ti.Partitions[0].EndOffset+ti.Partitions[1].EndOffset+ti.Partitions[2].EndOffset != 30 {
		t.Fatalf("the topic lost messages: %+v", ti.Partitions)
	}
	// Another subscription still has them all: a purge is one subscription's.
	if _, err := b.CreateSubscription(bg, "jobs", "audit", SubscriptionConfig{Kind: KindQueue, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	si, _ := b.DescribeSubscription("jobs", "audit")
	var backlog int64
	for _, p := range si.Partitions {
		backlog += p.Backlog
	}
	if backlog != 30 {
		t.Fatalf("another subscription's backlog %d, want 30", backlog)
	}
}

// On a work queue, a purge lets retention delete what was purged.
func TestPurgeLetsWorkRetentionDelete(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{SegmentBytes: 1024, Retention: Retention{Work: true}})
	b.CreateSubscription(bg, "jobs", "w", SubscriptionConfig{Kind: KindQueue})
	for i := range 50 {
		publish(t, b, "jobs", Message{Value: fmt.Appendf(nil, "%040d", i)})
	}
	if _, err := b.PurgeSubscription(bg, "jobs", "w"); err != nil {
		t.Fatal(err)
	}
	b.EnforceRetention()
	if ti, _ := b.DescribeTopic("jobs"); ti.Partitions[0].StartOffset != 50 {
		t.Fatalf("purged and still stored: %+v", ti.Partitions[0])
	}
}

func TestPurgeStreamSeeksToLatest(t *testing.T) {
	b, _, _ := newStreamEnv(t, 2)
	for i := range 10 {
		publish(t, b, "events", Message{Key: fmt.Appendf(nil, "%d", i), Value: fmt.Appendf(nil, "old%d", i)})
	}
	m, err := b.JoinStream("events", "group", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	heartbeat(t, m)
	// The member reads 3 and commits them: 7 left as lag.
	ctx, cancel := context.WithTimeout(bg, time.Second)
	ms, err := m.Fetch(ctx, 3)
	cancel()
	if err != nil || len(ms) != 3 {
		t.Fatalf("fetch: %d, %v", len(ms), err)
	}
	next := map[int]int64{}
	for _, msg := range ms {
		next[msg.Partition] = msg.Offset + 1
	}
	if err := m.Commit(next); err != nil {
		t.Fatal(err)
	}
	n, err := b.PurgeSubscription(bg, "events", "group")
	if err != nil || n != 7 {
		t.Fatalf("purge: %d, %v; want the lag, 7", n, err)
	}
	si, _ := b.DescribeSubscription("events", "group")
	for _, p := range si.Partitions {
		if p.Committed != p.EndOffset || p.Backlog != 0 {
			t.Fatalf("after the purge: %+v", si.Partitions)
		}
	}
	publish(t, b, "events", Message{Value: []byte("new")})
	if got := fetchNow(t, m); len(got) != 1 || string(got[0].Value) != "new" {
		t.Fatalf("after the purge the member fetched %d messages, want only new", len(got))
	}
}

func TestPurgeErrors(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{}, 1)
	if _, err := b.PurgeSubscription(bg, "nope", "workers"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if _, err := b.PurgeSubscription(bg, "jobs", "nope"); !errors.Is(err, ErrUnknownSubscription) {
		t.Errorf("unknown subscription: %v", err)
	}
	// An ephemeral subscription has no name and nothing stored to purge.
	if _, err := b.PurgeSubscription(bg, "jobs", ""); !errors.Is(err, ErrUnknownSubscription) {
		t.Errorf("no name: %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := b.PurgeSubscription(ctx, "jobs", "workers"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	b.Close()
	if _, err := b.PurgeSubscription(bg, "jobs", "workers"); !errors.Is(err, ErrClosed) {
		t.Errorf("closed: %v", err)
	}
}

type purgeHook struct {
	mu    sync.Mutex
	calls []string
}

func (h *purgeHook) OnPurge(topic, sub string, kind SubscriptionKind, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, fmt.Sprintf("%s/%s %s %d", topic, sub, kind, n))
}

func TestPurgeHook(t *testing.T) {
	h := &purgeHook{}
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never", Hooks: []Hook{h}})
	createTopic(t, b, "t", TopicConfig{})
	b.CreateSubscription(bg, "t", "q", SubscriptionConfig{Kind: KindQueue})
	b.CreateSubscription(bg, "t", "s", SubscriptionConfig{Kind: KindStream})
	publish(t, b, "t", Message{Value: []byte("a")}, Message{Value: []byte("b")})
	for _, sub := range []string{"q", "s", "q"} {
		if _, err := b.PurgeSubscription(bg, "t", sub); err != nil {
			t.Fatal(err)
		}
	}
	b.PurgeSubscription(bg, "t", "nope")
	want := []string{"t/q queue 2", "t/s stream 2", "t/q queue 0"}
	if !slices.Equal(h.calls, want) {
		t.Fatalf("hook calls %q, want %q", h.calls, want)
	}
}
