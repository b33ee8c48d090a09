package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/internal/crashtest"
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

// The incident of the lost catalogue: a broker ran on a data folder that was
// deleted (rm -rf) under it; a second broker started on the same path (its
// LOCK is a new file, so the lock did not stop it) and exited at once (its
// listener could not bind the port the first one held). The first broker
// went on serving: its CreateTopic wrote the catalogue entry to its change
// log, a file no longer in any folder, and made the topic's folder by name in
// the new tree. The next broker found a 0-byte change log, an empty
// catalogue, and removed the topic's folder, messages and all, as the
// leftover of a delete. Now the first broker notices its folder is gone and
// stops serving, and a folder nothing explains is never removed.
func TestRegressionDataFolderReplacedUnderRunningBroker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	var logs syncBuffer
	old, err := Open(Options{Dir: dir, Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	createTopic(t, old, "orders", TopicConfig{})
	publish(t, old, "orders", Message{Value: []byte("before")})

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("a broker on the new folder of that name: %v", err)
	}
	fresh.Close()

	// Catalogue changes check the folder at once.
	if _, err := old.CreateTopic(bg, "jobs", TopicConfig{Partitions: 4}); !errors.Is(err, ErrDataFolderGone) {
		t.Fatalf("create topic on a broker whose folder is gone: %v", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("no error logged:\n%s", logs.String())
	}
	if _, err := old.Publish(bg, "orders", Message{Value: []byte("after")}); !errors.Is(err, ErrDataFolderGone) {
		t.Fatalf("publish on a broker whose folder is gone: %v", err)
	}
	if err := old.Close(); err != nil && !errors.Is(err, ErrDataFolderGone) {
		t.Logf("close: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "topics", "*")); len(m) != 0 {
		t.Fatalf("the old broker made topic folders in the new data folder: %v", m)
	}
}

// The periodic check stops a broker whose folder went while nothing changed
// the catalogue: publishes fail from then on.
func TestRegressionDataFolderGonePeriodicCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	b, err := Open(Options{Dir: dir, Clock: clk, FolderCheckInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	createTopic(t, b, "orders", TopicConfig{})
	if _, err := b.CreateSubscription(bg, "orders", "work", SubscriptionConfig{Kind: KindQueue}); err != nil {
		t.Fatal(err)
	}
	m, err := b.JoinQueue("orders", "work")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second) // checks that find nothing wrong
	publish(t, b, "orders", Message{Value: []byte("v")}, Message{Value: []byte("w")})
	ds, err := m.Receive(bg, 2)
	if err != nil || len(ds) != 2 {
		t.Fatalf("receive: %v %v", ds, err)
	}
	if err := m.Ack(ds[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := b.Publish(bg, "orders", Message{Value: []byte("v")}); !errors.Is(err, ErrDataFolderGone) {
		t.Fatalf("publish after the folder moved: %v", err)
	}
	// An ack is not confirmed either: the change log is not where the next
	// broker on this path will look.
	if err := m.Ack(ds[1].ID); !errors.Is(err, ErrDataFolderGone) {
		t.Fatalf("ack after the folder moved: %v", err)
	}
	if err := b.EnforceRetention(); !errors.Is(err, ErrDataFolderGone) {
		t.Fatalf("retention after the folder moved: %v", err)
	}
	if _, err := b.ListTopics(); !errors.Is(err, ErrDataFolderGone) {
		t.Fatalf("list after the folder moved: %v", err)
	}
}

// A data folder whose metadata is lost (or replaced by an empty store) keeps
// every topic folder: before, Open removed them all as leftovers of deletes.
func TestRegressionLostCatalogueKeepsTopicData(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, b, "jobs", TopicConfig{Partitions: 4})
	for i := 0; i < 8; i++ {
		publish(t, b, "jobs", Message{Value: []byte(fmt.Sprint(i))})
	}
	b.Close()
	folders, _ := filepath.Glob(filepath.Join(dir, "topics", "jobs~*"))
	if len(folders) != 1 {
		t.Fatalf("topic folders %v", folders)
	}
	if err := os.RemoveAll(filepath.Join(dir, "meta")); err != nil {
		t.Fatal(err)
	}
	b, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.StrayTopicFolders(); len(got) != 1 || got[0] != filepath.Base(folders[0]) {
		t.Fatalf("stray folders %v", got)
	}
	var bytes int64
	for p := 0; p < 4; p++ {
		fi, err := os.Stat(filepath.Join(folders[0], fmt.Sprint(p), "00000000000000000000.log"))
		if err != nil {
			t.Fatalf("partition %d removed: %v", p, err)
		}
		bytes += fi.Size()
	}
	if bytes == 0 {
		t.Fatal("the kept folder lost its messages")
	}
}

const lockChildEnv = "FERRY_ENGINE_LOCK_CHILD_DIR"

// TestRegressionLockChild opens the broker, creates a topic (a synced
// catalogue change), says so, and then either waits to be killed or, with
// FERRY_ENGINE_LOCK_CHILD_CLOSE set, closes the broker (to be killed in the
// middle of that).
func TestRegressionLockChild(t *testing.T) {
	dir := os.Getenv(lockChildEnv)
	if dir == "" {
		t.Skip("run by TestRegressionSecondProcess")
	}
	b, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	if _, err := b.CreateTopic(bg, name, TopicConfig{Partitions: 4}); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	if _, err := b.CreateSubscription(bg, name, "q", SubscriptionConfig{Kind: KindQueue}); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("created %s\n", name)
	if os.Getenv("FERRY_ENGINE_LOCK_CHILD_CLOSE") != "" {
		b.Close()
		fmt.Println("closed")
	}
	time.Sleep(time.Minute)
}

// The LOCK keeps a second process off the folder while the first runs, and
// a kill -9 of the first right after a catalogue change, or in the middle of
// its Close, loses nothing.
func TestRegressionSecondProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	var created []string
	for round := 0; round < 6; round++ {
		env := []string{lockChildEnv + "=" + dir}
		closing := round%2 == 1
		if closing {
			env = append(env, "FERRY_ENGINE_LOCK_CHILD_CLOSE=1")
		}
		child := crashtest.Child{Run: "^TestRegressionLockChild$", Env: env}
		var lockErr error
		lines := child.RunAndKill(t, func(line string) bool {
			if !strings.HasPrefix(line, "created ") {
				return false
			}
			if !closing {
				// The child holds the folder: a second broker must not open it.
				b, err := Open(Options{Dir: dir})
				if err == nil {
					b.Close()
				}
				lockErr = err
			}
			return true
		}, time.Duration(round)*time.Millisecond)
		if !closing && !errors.Is(lockErr, vfs.ErrLocked) {
			t.Fatalf("round %d: open while another process holds the folder: %v", round, lockErr)
		}
		for _, l := range lines {
			if name, ok := strings.CutPrefix(l, "created "); ok {
				created = append(created, name)
			}
		}
		b, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		for _, name := range created {
			if _, err := b.DescribeSubscription(name, "q"); err != nil {
				t.Fatalf("round %d: topic %s created before the kill: %v", round, name, err)
			}
		}
		if s := b.StrayTopicFolders(); len(s) != 0 {
			t.Fatalf("round %d: stray folders %v", round, s)
		}
		b.Close()
	}
}

// A broker opening the folder while the previous one is closing waits for
// the lock, which is released only after the metadata is closed: it never
// sees a half-closed store, and the catalogue survives every hand-over.
func TestRegressionOpenWhileClosing(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("t%d", i)
		createTopic(t, b, name, TopicConfig{Partitions: 2})
		publish(t, b, name, Message{Value: []byte("v")})
		done := make(chan struct{})
		go func(b *Broker) {
			defer close(done)
			b.Close()
		}(b)
		var next *Broker
		for next == nil {
			n, err := Open(Options{Dir: dir})
			switch {
			case err == nil:
				next = n
			case !errors.Is(err, vfs.ErrLocked):
				t.Fatalf("round %d: open: %v", i, err)
			}
		}
		<-done
		b = next
		list, err := b.ListTopics()
		if err != nil || len(list) != i+1 {
			t.Fatalf("round %d: topics after the hand-over: %d %v", i, len(list), err)
		}
		if s := b.StrayTopicFolders(); len(s) != 0 {
			t.Fatalf("round %d: stray folders %v", i, s)
		}
	}
	b.Close()
}

// A dead-letter topic created by hand keeps the default message limit, so
// a message near its queue topic's limit, with the dead-letter headers
// added, did not fit: it was dropped with only a log line. The limit of the
// dead-letter topic is raised instead, and the message kept.
func TestRegressionDeadLetterTooLargeForItsTopic(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, DefaultFsync: "never"})
	createTopic(t, b, "jobs", TopicConfig{MaxMessageBytes: 4096})
	createTopic(t, b, "jobs.dead", TopicConfig{MaxMessageBytes: 4096})
	if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue, MaxDeliveries: 1, DeadLetterTopic: "jobs.dead"}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 4000)
	publish(t, b, "jobs", Message{Value: big})
	m := join(t, b)
	d := receive(t, m, 1)
	if len(d) != 1 {
		t.Fatalf("deliveries %v", d)
	}
	if err := m.Nack(d[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	res, err := b.Read(bg, "jobs.dead", 0, 0, ReadOptions{MaxMessages: 1})
	if err != nil || len(res.Messages) != 1 || !bytes.Equal(res.Messages[0].Value, big) {
		t.Fatalf("dead letter: %v, %v", res.Messages, err)
	}
	info, _ := b.DescribeTopic("jobs.dead")
	if info.Config.MaxMessageBytes < 4096+deadLetterOverhead {
		t.Errorf("dead-letter topic's limit %d", info.Config.MaxMessageBytes)
	}
	sub, _ := b.DescribeSubscription("jobs", "workers")
	if sub.Partitions[0].Backlog != 0 {
		t.Errorf("backlog %d after the dead letter moved", sub.Partitions[0].Backlog)
	}
}
