package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
)

func newQueueEnv(t *testing.T, cfg SubscriptionConfig, partitions int) (*Broker, *clock.Fake, string) {
	t.Helper()
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	dir := t.TempDir()
	b := openBroker(t, dir, Options{Clock: clk, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{Partitions: partitions})
	cfg.Kind = KindQueue
	if _, err := b.CreateSubscription(bg, "jobs", "workers", cfg); err != nil {
		t.Fatal(err)
	}
	return b, clk, dir
}

func join(t *testing.T, b *Broker) *QueueMember {
	t.Helper()
	m, err := b.JoinQueue("jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// receive returns what is deliverable now, without waiting.
func receive(t *testing.T, m *QueueMember, max int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	ds, err := m.Receive(ctx, max)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive: %v", err)
	}
	return ds
}

func values(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Message.Value))
	}
	return out
}

func TestQueueWorkersShareAndAck(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{}, 2)
	for i := range 10 {
		publish(t, b, "jobs", Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	w1, w2 := join(t, b), join(t, b)
	got := map[string]int{}
	for _, w := range []*QueueMember{w1, w2} {
		for _, d := range receive(t, w, 5) {
			got[string(d.Message.Value)]++
			if d.Count != 1 {
				t.Fatalf("first delivery has count %d", d.Count)
			}
			if err := w.Ack(d.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(got) != 10 {
		t.Fatalf("two workers got %v", got)
	}
	for v, n := range got {
		if n != 1 {
			t.Fatalf("message %s delivered %d times", v, n)
		}
	}
	if ds := receive(t, w1, 10); len(ds) != 0 {
		t.Fatalf("acknowledged messages delivered again: %v", values(ds))
	}
	si, _ := b.DescribeSubscription("jobs", "workers")
	for _, p := range si.Partitions {
		if p.Backlog != 0 || p.AckFloor != p.EndOffset {
			t.Fatalf("after acking everything: %+v", si.Partitions)
		}
	}
	// Acking twice is an error for that id only.
	if err := w1.Ack("0-0-1"); !errors.Is(err, ErrUnknownDelivery) {
		t.Fatalf("second ack: %v", err)
	}
}

func TestQueueStartsAtLatest(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk})
	createTopic(t, b, "jobs", TopicConfig{})
	publish(t, b, "jobs", Message{Value: []byte("before")})
	b.CreateSubscription(bg, "jobs", "late", SubscriptionConfig{Kind: KindQueue})
	b.CreateSubscription(bg, "jobs", "all", SubscriptionConfig{Kind: KindQueue, StartAt: StartEarliest})
	publish(t, b, "jobs", Message{Value: []byte("after")})
	late, _ := b.JoinQueue("jobs", "late")
	all, _ := b.JoinQueue("jobs", "all")
	if v := values(receive(t, late, 10)); len(v) != 1 || v[0] != "after" {
		t.Fatalf("latest got %v", v)
	}
	if v := values(receive(t, all, 10)); len(v) != 2 {
		t.Fatalf("earliest got %v", v)
	}
}

func TestQueueNackDeadlineAndDeadLetter(t *testing.T) {
	b, clk, _ := newQueueEnv(t, SubscriptionConfig{AckDeadline: 10 * time.Second, MaxDeliveries: 3}, 1)
	publish(t, b, "jobs", Message{Key: []byte("k"), Value: []byte("poison"), Headers: []Header{{Key: "h", Value: []byte("1")}}})
	w := join(t, b)

	d := receive(t, w, 1)
	if len(d) != 1 || d[0].Count != 1 {
		t.Fatalf("first: %+v", d)
	}
	// Nack with a delay: not redelivered before it.
	if err := w.Nack(d[0].ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ds := receive(t, w, 1); len(ds) != 0 {
		t.Fatalf("redelivered before the delay: %v", values(ds))
	}
	clk.Advance(5 * time.Second)
	d = receive(t, w, 1)
	if len(d) != 1 || d[0].Count != 2 {
		t.Fatalf("after the delay: %+v", d)
	}
	// Extend, then let the deadline pass: delivered a third time.
	if _, err := w.Extend(d[0].ID, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(15 * time.Second)
	if ds := receive(t, w, 1); len(ds) != 0 {
		t.Fatalf("redelivered before the extended deadline")
	}
	clk.Advance(6 * time.Second)
	d = receive(t, w, 1)
	if len(d) != 1 || d[0].Count != 3 {
		t.Fatalf("after the deadline: %+v", d)
	}
	// The third failure moves it to the dead-letter topic.
	if err := w.Nack(d[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	if ds := receive(t, w, 1); len(ds) != 0 {
		t.Fatalf("dead letter delivered again: %v", values(ds))
	}
	dead := readAllOf(t, b, "jobs.workers.dlq", 0)
	if len(dead) != 1 || string(dead[0].Value) != "poison" || string(dead[0].Key) != "k" {
		t.Fatalf("dead-letter topic holds %+v", dead)
	}
	h := map[string]string{}
	for _, x := range dead[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h["h"] != "1" || h[HeaderDeadTopic] != "jobs" || h[HeaderDeadPartition] != "0" || h[HeaderDeadOffset] != "0" ||
		h[HeaderDeadReason] != "nacked" || h[HeaderDeadDeliveries] != "3" || h[HeaderDeadSubscription] != "workers" {
		t.Fatalf("dead-letter headers %v", h)
	}
	si, _ := b.DescribeSubscription("jobs", "workers")
	if si.Partitions[0].Backlog != 0 {
		t.Fatalf("dead letter still in the backlog: %+v", si.Partitions[0])
	}
}

func TestQueueMaxInFlightAndLeave(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{MaxInFlight: 2}, 1)
	for i := range 5 {
		publish(t, b, "jobs", Message{Value: []byte(strconv.Itoa(i))})
	}
	w1, w2 := join(t, b), join(t, b)
	d1 := receive(t, w1, 10)
	if len(d1) != 2 {
		t.Fatalf("max in flight 2, got %d", len(d1))
	}
	if len(receive(t, w1, 10)) != 0 {
		t.Fatal("past max in flight")
	}
	// When w1 leaves, its deliveries go to w2, counted again.
	if err := w1.Leave(); err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Receive(bg, 1); !errors.Is(err, ErrMemberClosed) {
		t.Fatalf("receive after leave: %v", err)
	}
	d2 := receive(t, w2, 2)
	if len(d2) != 2 || d2[0].Count != 2 || string(d2[0].Message.Value) != "0" {
		t.Fatalf("after leave: %+v", d2)
	}
}

func TestQueueKeyOrdering(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{KeyOrdering: true}, 1)
	for i, k := range []string{"a", "a", "b", "a", "b"} {
		publish(t, b, "jobs", Message{Key: []byte(k), Value: []byte(k + strconv.Itoa(i))})
	}
	w1, w2 := join(t, b), join(t, b)
	d := receive(t, w1, 10)
	if v := values(d); len(v) != 2 || v[0] != "a0" || v[1] != "b2" {
		t.Fatalf("one in flight per key: %v", v)
	}
	if v := values(receive(t, w2, 10)); len(v) != 0 {
		t.Fatalf("second worker got held keys: %v", v)
	}
	// Nack a0: it comes back before a1.
	w1.Nack(d[0].ID, 0)
	if v := values(receive(t, w2, 10)); len(v) != 1 || v[0] != "a0" {
		t.Fatalf("after nack: %v", v)
	}
}

func TestQueueDelayedDelivery(t *testing.T) {
	b, clk, _ := newQueueEnv(t, SubscriptionConfig{}, 1)
	now := clk.Now()
	publish(t, b, "jobs", Message{Value: []byte("later"), DeliverAt: now.Add(time.Minute)}, Message{Value: []byte("now")})
	w := join(t, b)
	first := receive(t, w, 10)
	if v := values(first); len(v) != 1 || v[0] != "now" {
		t.Fatalf("before its time: %v", v)
	}
	w.Ack(first[0].ID)
	// A waiting Receive is woken by the clock.
	got := make(chan []Delivery, 1)
	go func() {
		ds, err := w.Receive(bg, 10)
		if err != nil {
			t.Error(err)
		}
		got <- ds
	}()
	waitUntil(t, func() bool { return clk.Pending() > 0 })
	clk.Advance(time.Minute)
	if v := values(<-got); len(v) != 1 || v[0] != "later" {
		t.Fatalf("at its time: %v", v)
	}
}

func TestQueueStateSurvivesRestart(t *testing.T) {
	b, clk, dir := newQueueEnv(t, SubscriptionConfig{MaxDeliveries: 5}, 2)
	for i := range 20 {
		publish(t, b, "jobs", Message{Value: []byte(strconv.Itoa(i))})
	}
	w := join(t, b)
	acked := map[string]bool{}
	ds := receive(t, w, 20)
	for i, d := range ds {
		if i%3 == 0 {
			continue // left unacknowledged
		}
		if err := w.Ack(d.ID); err != nil {
			t.Fatal(err)
		}
		acked[string(d.Message.Value)] = true
	}
	b.Close()
	b = openBroker(t, dir, Options{Clock: clk, DefaultFsync: "never"})
	w = join(t, b)
	again := receive(t, w, 100)
	if len(again) != 20-len(acked) {
		t.Fatalf("after restart %d redelivered, want %d", len(again), 20-len(acked))
	}
	for _, d := range again {
		if acked[string(d.Message.Value)] {
			t.Fatalf("acknowledged %s delivered again", d.Message.Value)
		}
		if d.Count != 2 {
			t.Fatalf("delivery count after restart %d, want 2", d.Count)
		}
	}
}

func TestSubscriptionCatalogue(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{}, 1)
	if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue}); !errors.Is(err, ErrSubscriptionExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := b.CreateSubscription(bg, "nope", "w", SubscriptionConfig{Kind: KindQueue}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := b.CreateSubscription(bg, "jobs", "w", SubscriptionConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no kind: %v", err)
	}
	w := join(t, b)
	if err := b.DeleteSubscription(bg, "jobs", "workers"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Receive(bg, 1); !errors.Is(err, ErrMemberClosed) {
		t.Fatalf("member of a deleted subscription: %v", err)
	}
	if subs, _ := b.ListSubscriptions("jobs"); len(subs) != 0 {
		t.Fatalf("left %+v", subs)
	}
}

func TestWorkRetentionDropsAcknowledged(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{SegmentBytes: 1024, Retention: Retention{Work: true}})
	b.CreateSubscription(bg, "jobs", "a", SubscriptionConfig{Kind: KindQueue})
	b.CreateSubscription(bg, "jobs", "b", SubscriptionConfig{Kind: KindQueue})
	for i := range 50 {
		publish(t, b, "jobs", Message{Value: fmt.Appendf(nil, "%040d", i)})
	}
	ackAll := func(sub string) {
		m, _ := b.JoinQueue("jobs", sub)
		for _, d := range receive(t, m, 100) {
			m.Ack(d.ID)
		}
	}
	ackAll("a")
	b.EnforceRetention()
	if ti, _ := b.DescribeTopic("jobs"); ti.Partitions[0].StartOffset != 0 {
		t.Fatalf("deleted before every subscription acknowledged: %+v", ti.Partitions[0])
	}
	ackAll("b")
	b.EnforceRetention()
	if ti, _ := b.DescribeTopic("jobs"); ti.Partitions[0].StartOffset != 50 {
		t.Fatalf("acknowledged by all and still stored: %+v", ti.Partitions[0])
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOffsetStateKey(t *testing.T) {
	if got, want := countKey("jobs", "w", 3, 42), fmt.Sprintf("q/jobs/w/3/c/%020d", 42); got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if got, want := ackKey("a.b", "s", 0, 1<<62), fmt.Sprintf("q/a.b/s/0/a/%020d", int64(1)<<62); got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

func TestQueueFloorFollowsRetention(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{SegmentBytes: 1024, Retention: Retention{MaxAge: time.Hour}})
	b.CreateSubscription(bg, "jobs", "w", SubscriptionConfig{Kind: KindQueue})
	for i := range 40 {
		publish(t, b, "jobs", Message{Value: fmt.Appendf(nil, "%040d", i)})
	}
	clk.Advance(2 * time.Hour) // retention deletes every sealed segment
	ti, _ := b.DescribeTopic("jobs")
	start := ti.Partitions[0].StartOffset
	if start == 0 {
		t.Fatal("retention deleted nothing")
	}
	publish(t, b, "jobs", Message{Value: []byte("new")})
	m, _ := b.JoinQueue("jobs", "w")
	ds := receive(t, m, 100)
	if len(ds) == 0 || ds[0].Message.Offset != start {
		t.Fatalf("first delivery %+v, want offset %d", ds, start)
	}
	for _, d := range ds {
		m.Ack(d.ID)
	}
	si, _ := b.DescribeSubscription("jobs", "w")
	if p := si.Partitions[0]; p.AckFloor != p.EndOffset || p.Backlog != 0 {
		t.Fatalf("floor did not follow retention: %+v", p)
	}
}

// Extending a delivery by less than it had left moves its deadline
// earlier: it expires then, not at the deadline it had (expire skips its
// scan until the earliest deadline it knows of, which the shorter
// extension must lower).
func TestQueueExtendShorterExpiresEarlier(t *testing.T) {
	b, clk, _ := newQueueEnv(t, SubscriptionConfig{AckDeadline: 30 * time.Second}, 1)
	publish(t, b, "jobs", Message{Value: []byte("a")})
	w := join(t, b)
	d := receive(t, w, 1)
	if len(d) != 1 {
		t.Fatalf("deliveries %v", d)
	}
	if _, err := w.Extend(d[0].ID, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	again := receive(t, w, 1)
	if len(again) != 1 || again[0].Count != 2 {
		t.Fatalf("after the shorter extension passed: %+v", again)
	}
}

// TestQueueNackDelayWakesWaiter: a member already waiting in Receive gets
// a message nacked with a delay once the delay passes, without polling
// again: the nack sets the timer (it no longer rescans every delivery in
// flight, so this guards that the timer is still set).
func TestQueueNackDelayWakesWaiter(t *testing.T) {
	b, clk, _ := newQueueEnv(t, SubscriptionConfig{AckDeadline: time.Hour}, 1)
	publish(t, b, "jobs", Message{Value: []byte("x")})
	w := join(t, b)
	d := receive(t, w, 1)
	if len(d) != 1 {
		t.Fatalf("first: %+v", d)
	}
	got := make(chan []Delivery, 1)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	go func() {
		ds, _ := w.Receive(ctx, 1)
		got <- ds
	}()
	if err := w.Nack(d[0].ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case ds := <-got:
		t.Fatalf("redelivered before the delay: %v", values(ds))
	case <-time.After(50 * time.Millisecond):
	}
	clk.Advance(5 * time.Second)
	select {
	case ds := <-got:
		if len(ds) != 1 || ds[0].Count != 2 {
			t.Fatalf("after the delay: %+v", ds)
		}
	case <-ctx.Done():
		t.Fatal("the waiting member was not woken when the delay passed")
	}
}
