package engine

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/vfs"
)

// Two messages with the same ID in one Publish call: the second claim waits
// for the first, which is only finished after the loop: Publish never
// returns and holds b.mu shared forever.
func TestRegressionDuplicateIDInOneCall(t *testing.T) {
	b, err := Open(Options{Dir: t.TempDir(), DefaultFsync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, b, "t", TopicConfig{})
	done := make(chan error, 1)
	go func() {
		_, err := b.Publish(bg, "t", Message{ID: "x", Value: []byte("a")}, Message{ID: "x", Value: []byte("a")})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("Publish with a repeated ID in one call never returns (self-deadlock in dedup.claim)")
	}
}

// KeyOrdering false: messages of one key should still be handed out in
// parallel; the flag is never consulted.
func TestRegressionKeyOrderingOffIgnored(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{KeyOrdering: false}, 1)
	for range 3 {
		publish(t, b, "jobs", Message{Key: []byte("same"), Value: []byte("v")})
	}
	w := join(t, b)
	if ds := receive(t, w, 10); len(ds) != 3 {
		t.Fatalf("KeyOrdering off, got %d of 3 same-key messages at once", len(ds))
	}
}

// DeleteSubscription does not wake a stream member blocked in Fetch.
func TestRegressionStreamDeleteWakesFetch(t *testing.T) {
	b, _, _ := newStreamEnv(t, 1)
	m, err := b.JoinStream("events", "group", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 3*time.Second)
		defer cancel()
		_, err := m.Fetch(ctx, 10)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := b.DeleteSubscription(bg, "events", "group"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrMemberClosed) {
			t.Fatalf("fetch after delete: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Fetch still asleep 1s after its subscription was deleted")
	}
}

// Broker.Close does not wake queue members blocked in Receive.
func TestRegressionCloseWakesReceive(t *testing.T) {
	b, _, _ := newQueueEnv(t, SubscriptionConfig{}, 1)
	w := join(t, b)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 3*time.Second)
		defer cancel()
		_, err := w.Receive(ctx, 1)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	b.Close()
	select {
	case err := <-done:
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("receive: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Receive still asleep 1s after Close")
	}
}

// sendDead settles with no check that the subscription still exists: state
// keys are written back after DeleteSubscription removed them; a subscription
// created again with that name loses the message after a restart.
func TestRegressionDeadLetterAfterDeleteResurrectsState(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	dir := t.TempDir()
	b, err := Open(Options{Dir: dir, Clock: clk, DefaultFsync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, b, "jobs", TopicConfig{})
	cfg := SubscriptionConfig{Kind: KindQueue, MaxDeliveries: 1, StartAt: StartEarliest}
	if _, err := b.CreateSubscription(bg, "jobs", "workers", cfg); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs", Message{Value: []byte("m0")}, Message{Value: []byte("m1")})
	w := join(t, b)
	ds := receive(t, w, 2)
	if len(ds) != 2 {
		t.Fatalf("got %d", len(ds))
	}
	// Nack(ds[1]) up to the point where it drops the locks...
	q := w.s
	unlock, err := w.lock()
	if err != nil {
		t.Fatal(err)
	}
	qp, in, err := q.take(w, ds[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	delete(qp.inflight, in.offset)
	w.inflight--
	dead := q.failed(qp, in, clk.Now(), "nacked")
	unlock()
	// ...the subscription is deleted meanwhile, then sendDead runs.
	if err := b.DeleteSubscription(bg, "jobs", "workers"); err != nil {
		t.Fatal(err)
	}
	q.sendDead(dead)
	var left []string
	b.meta.Scan(stateKey("jobs", "workers"), func(k string, _ []byte) bool { left = append(left, k); return true })
	if _, err := b.CreateSubscription(bg, "jobs", "workers", cfg); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openBroker(t, dir, Options{Clock: clk, DefaultFsync: "never"})
	w2 := join(t, b)
	got := values(receive(t, w2, 10))
	if len(left) > 0 || len(got) != 2 {
		t.Fatalf("state keys left after delete: %v; new subscription after restart got %v, want m0 m1", left, got)
	}
}

// A message near max_message_bytes cannot be dead-lettered: the dead-letter
// headers push it past the DLQ's (default) limit, the publish fails, and
// the message is delivered again past MaxDeliveries, forever.
func TestRegressionDeadLetterTooLarge(t *testing.T) {
	b, clk, _ := newQueueEnv(t, SubscriptionConfig{MaxDeliveries: 1}, 1)
	publish(t, b, "jobs", Message{Value: make([]byte, DefaultMaxMessageBytes-50)})
	w := join(t, b)
	ds := receive(t, w, 1)
	if len(ds) != 1 {
		t.Fatal("no delivery")
	}
	if err := w.Nack(ds[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	again := receive(t, w, 1)
	res, _ := b.Read(bg, "jobs.workers.dlq", 0, 0, ReadOptions{})
	if len(again) != 0 || len(res.Messages) != 1 {
		c := 0
		if len(again) > 0 {
			c = again[0].Count
		}
		t.Fatalf("max deliveries 1: delivered again %d (count %d); dead-letter topic holds %d", len(again), c, len(res.Messages))
	}
}

// A keyed message deleted by retention while waiting for redelivery keeps
// its key held: later messages of that key are never delivered.
func TestRegressionRetentionHoldsKeyForever(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, DefaultFsync: "never", RetentionInterval: time.Hour})
	createTopic(t, b, "jobs", TopicConfig{Retention: Retention{MaxAge: time.Minute}})
	if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue, KeyOrdering: true}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs", Message{Key: []byte("k"), Value: []byte("old")})
	w := join(t, b)
	ds := receive(t, w, 1)
	if len(ds) != 1 {
		t.Fatal("no delivery")
	}
	if err := w.Nack(ds[0].ID, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(90 * time.Second)
	if err := b.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs", Message{Key: []byte("k"), Value: []byte("new")})
	clk.Advance(time.Minute)
	if got := values(receive(t, w, 10)); len(got) != 1 || got[0] != "new" {
		t.Fatalf("new message of key k: got %v", got)
	}
}

// A read error on redelivery is taken for "deleted by retention": the
// message is dropped silently (never delivered again, never acked).
func TestRegressionReadErrorDropsRedelivery(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	fs := vfs.NewFaulty(vfs.Default)
	b := openBroker(t, t.TempDir(), Options{Clock: clk, FS: fs, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{})
	if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs", Message{Value: []byte("x")})
	w := join(t, b)
	ds := receive(t, w, 1)
	if err := w.Nack(ds[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	fs.Add(vfs.Rule{Op: vfs.OpRead, PathContains: "jobs~", Err: syscall.EIO, Count: 1})
	w.Poll(1) // hits the injected read error
	fs.Clear()
	if fs.Hits(vfs.OpRead) == 0 {
		t.Fatal("fault not hit")
	}
	clk.Advance(5 * time.Second)
	if got := receive(t, w, 1); len(got) != 1 {
		t.Fatalf("after one transient read error the message is gone: got %d deliveries", len(got))
	}
}

// AlterTopic reopens the logs without their work-retention delete floor:
// acknowledged messages are no longer deleted.
func TestRegressionAlterTopicDropsWorkFloor(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never", RetentionInterval: time.Hour})
	createTopic(t, b, "jobs", TopicConfig{Retention: Retention{Work: true}, SegmentBytes: 1024})
	if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		publish(t, b, "jobs", Message{Value: make([]byte, 200)})
	}
	w, _ := b.JoinQueue("jobs", "workers")
	ds, _ := w.Poll(100)
	for _, d := range ds {
		if err := w.Ack(d.ID); err != nil {
			t.Fatal(err)
		}
	}
	mb := 2 << 20
	if _, err := b.AlterTopic(bg, "jobs", TopicChange{MaxMessageBytes: &mb}); err != nil {
		t.Fatal(err)
	}
	if err := b.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	ti, _ := b.DescribeTopic("jobs")
	if ti.Partitions[0].StartOffset == 0 {
		t.Fatalf("all 20 acknowledged, work retention deleted nothing after AlterTopic: %+v", ti.Partitions[0])
	}
}

// A long-poll Read in progress during AlterTopic fails with ErrClosed
// ("broker closed") though the broker is open.
func TestRegressionReadDuringAlterTopic(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "t", TopicConfig{})
	done := make(chan error, 1)
	go func() {
		_, err := b.Read(bg, "t", 0, 0, ReadOptions{Wait: 500 * time.Millisecond})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	mb := 2 << 20
	if _, err := b.AlterTopic(bg, "t", TopicChange{MaxMessageBytes: &mb}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("long-poll read during AlterTopic: %v", err)
	}
}
