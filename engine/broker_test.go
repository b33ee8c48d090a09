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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

var bg = context.Background()

func openBroker(t testing.TB, dir string, opts Options) *Broker {
	t.Helper()
	opts.Dir = dir
	b, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func createTopic(t testing.TB, b *Broker, name string, cfg TopicConfig) TopicInfo {
	t.Helper()
	ti, err := b.CreateTopic(bg, name, cfg)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return ti
}

func publish(t testing.TB, b *Broker, topic string, msgs ...Message) []Published {
	t.Helper()
	res, err := b.Publish(bg, topic, msgs...)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return res
}

func readAllOf(t testing.TB, b *Broker, topic string, partition int) []Message {
	t.Helper()
	var out []Message
	off := int64(0)
	for {
		res, err := b.Read(bg, topic, partition, off, ReadOptions{})
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(res.Messages) == 0 {
			return out
		}
		out = append(out, res.Messages...)
		off = res.NextOffset
	}
}

func TestTopicLifecycle(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, Options{})
	ti := createTopic(t, b, "orders.eu", TopicConfig{Partitions: 3, Retention: Retention{MaxAge: time.Hour}})
	if len(ti.Partitions) != 3 || ti.Config.MaxMessageBytes != DefaultMaxMessageBytes || ti.Config.DedupWindow != DefaultDedupWindow || ti.Config.Fsync != "always" {
		t.Fatalf("created %+v", ti)
	}
	if _, err := b.CreateTopic(bg, "orders.eu", TopicConfig{}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v", err)
	}
	for _, bad := range []string{"", "a b", "..", string(make([]byte, 250))} {
		if _, err := b.CreateTopic(bg, bad, TopicConfig{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("create %q: %v", bad, err)
		}
	}
	if _, err := b.CreateTopic(bg, "x", TopicConfig{Partitions: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative partitions: %v", err)
	}
	if _, err := b.CreateTopic(bg, "x", TopicConfig{Fsync: "sometimes"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad fsync: %v", err)
	}
	createTopic(t, b, "audit", TopicConfig{Fsync: "never"})
	publish(t, b, "orders.eu", Message{Key: []byte("k"), Value: []byte("v")})

	// Alter, add partitions; everything survives a restart.
	ret := Retention{MaxBytes: 1 << 30}
	mmb := 1000
	if _, err := b.AlterTopic(bg, "orders.eu", TopicChange{Retention: &ret, MaxMessageBytes: &mmb}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddPartitions(bg, "orders.eu", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddPartitions(bg, "orders.eu", 4); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("shrink: %v", err)
	}
	b.Close()
	b = openBroker(t, dir, Options{})
	list, err := b.ListTopics()
	if err != nil || len(list) != 2 || list[0].Name != "audit" || list[1].Name != "orders.eu" {
		t.Fatalf("list after restart: %+v %v", list, err)
	}
	ti = list[1]
	if len(ti.Partitions) != 5 || ti.Config.Retention != ret || ti.Config.MaxMessageBytes != 1000 {
		t.Fatalf("after restart: %+v", ti)
	}
	var total int64
	for _, p := range ti.Partitions {
		total += p.EndOffset
	}
	if total != 1 {
		t.Fatalf("messages after restart: %d", total)
	}

	// Delete removes the data; a new topic of the same name starts empty.
	if err := b.DeleteTopic(bg, "orders.eu"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DescribeTopic("orders.eu"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("describe deleted: %v", err)
	}
	if err := b.DeleteTopic(bg, "orders.eu"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("delete twice: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "topics", "orders.eu~*")); len(m) != 0 {
		t.Fatalf("deleted topic's folder remains: %v", m)
	}
	createTopic(t, b, "orders.eu", TopicConfig{})
	if ti, _ := b.DescribeTopic("orders.eu"); ti.Partitions[0].EndOffset != 0 {
		t.Fatalf("recreated topic not empty: %+v", ti)
	}
}

// A topic folder that neither the catalogue nor a drop key explains is kept
// and reported, never removed: it may be the only copy of a topic whose
// metadata was lost.
func TestStrayTopicFolderKeptOnOpen(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, Options{})
	createTopic(t, b, "keep", TopicConfig{})
	b.Close()
	stray := filepath.Join(dir, "topics", "gone~0123456789abcdef", "0")
	if err := os.MkdirAll(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stray, "00000000000000000000.log"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	b = openBroker(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if _, err := os.Stat(filepath.Join(stray, "00000000000000000000.log")); err != nil {
		t.Fatalf("stray folder removed: %v", err)
	}
	if got := b.StrayTopicFolders(); len(got) != 1 || got[0] != "gone~0123456789abcdef" {
		t.Fatalf("stray folders %v", got)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "gone~0123456789abcdef") || !strings.Contains(out, "KEPT") {
		t.Fatalf("no loud report of the stray folder:\n%s", out)
	}
	if _, err := b.DescribeTopic("keep"); err != nil {
		t.Fatal(err)
	}
	// Still there, and still reported, at the next open.
	b.Close()
	b = openBroker(t, dir, Options{})
	if got := b.StrayTopicFolders(); len(got) != 1 {
		t.Fatalf("stray folders after a second open %v", got)
	}
}

// dropKeys lists the broker's drop keys (topic folders that may be removed).
func dropKeys(b *Broker) []string {
	var keys []string
	b.meta.Scan(dropPrefix, func(key string, _ []byte) bool {
		keys = append(keys, key)
		return true
	})
	return keys
}

// A delete whose folder removal failed (or was cut by a crash) is finished
// by the next open: the drop key written with the catalogue change says so.
func TestInterruptedDeleteFinishedOnOpen(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.NewFaulty(vfs.Default)
	b := openBroker(t, dir, Options{FS: fs})
	createTopic(t, b, "doomed", TopicConfig{Partitions: 2})
	publish(t, b, "doomed", Message{Value: []byte("v")})
	createTopic(t, b, "kept", TopicConfig{})
	if keys := dropKeys(b); len(keys) != 0 {
		t.Fatalf("drop keys after creates: %v", keys)
	}
	fs.Add(vfs.Rule{Op: vfs.OpRemove, PathContains: "doomed~", Err: syscall.EIO, Count: 1})
	if err := b.DeleteTopic(bg, "doomed"); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "topics", "doomed~*"))
	if len(left) != 1 {
		t.Fatalf("the injected failure did not keep the folder: %v", left)
	}
	if keys := dropKeys(b); len(keys) != 1 || keys[0] != dropKey(filepath.Base(left[0])) {
		t.Fatalf("drop keys after the interrupted delete: %v", keys)
	}
	b.Close()

	b = openBroker(t, dir, Options{})
	if _, err := os.Stat(left[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted topic's folder kept: %v", err)
	}
	if keys := dropKeys(b); len(keys) != 0 {
		t.Fatalf("drop keys after open: %v", keys)
	}
	if s := b.StrayTopicFolders(); len(s) != 0 {
		t.Fatalf("stray folders: %v", s)
	}
	if _, err := b.DescribeTopic("kept"); err != nil {
		t.Fatal(err)
	}
	// A completed delete leaves no key behind.
	if err := b.DeleteTopic(bg, "kept"); err != nil {
		t.Fatal(err)
	}
	if keys := dropKeys(b); len(keys) != 0 {
		t.Fatalf("drop keys after a delete: %v", keys)
	}
}

// A create that failed after making the topic's folder, and could not remove
// it, leaves a folder the next open removes.
func TestInterruptedCreateFinishedOnOpen(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.NewFaulty(vfs.Default)
	b := openBroker(t, dir, Options{FS: fs})
	fs.Add(vfs.Rule{Op: vfs.OpOpen, PathContains: "/1/00000000000000000000.log", Err: syscall.EIO, Count: 1})
	fs.Add(vfs.Rule{Op: vfs.OpRemove, PathContains: "new~", Err: syscall.EIO, Count: 1})
	if _, err := b.CreateTopic(bg, "new", TopicConfig{Partitions: 2}); err == nil {
		t.Fatal("create succeeded despite the injected failure")
	}
	left, _ := filepath.Glob(filepath.Join(dir, "topics", "new~*"))
	if len(left) != 1 {
		t.Fatalf("the injected failure did not keep the folder: %v", left)
	}
	if keys := dropKeys(b); len(keys) != 1 || keys[0] != dropKey(filepath.Base(left[0])) {
		t.Fatalf("drop keys after the failed create: %v", keys)
	}
	b.Close()

	b = openBroker(t, dir, Options{})
	if _, err := os.Stat(left[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder of the failed create kept: %v", err)
	}
	if keys := dropKeys(b); len(keys) != 0 {
		t.Fatalf("drop keys after open: %v", keys)
	}
	createTopic(t, b, "new", TopicConfig{Partitions: 2})
}

func TestPublishPartitioning(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "t", TopicConfig{Partitions: 4})
	for _, k := range []string{"a", "b", "user-17", "21"} {
		res := publish(t, b, "t", Message{Key: []byte(k), Value: []byte("v")})
		if want := KeyPartition([]byte(k), 4); res[0].Partition != want {
			t.Errorf("key %q went to %d, Kafka's partitioner says %d", k, res[0].Partition, want)
		}
	}
	// Keyless messages of one call stay together; calls rotate.
	seen := map[int]bool{}
	for range 4 {
		res := publish(t, b, "t", Message{Value: []byte("x")}, Message{Value: []byte("y")})
		if res[0].Partition != res[1].Partition || res[1].Offset != res[0].Offset+1 {
			t.Fatalf("keyless batch split: %+v", res)
		}
		seen[res[0].Partition] = true
	}
	if len(seen) != 4 {
		t.Fatalf("keyless calls used partitions %v", seen)
	}
	res, err := b.PublishTo(bg, "t", 2, Message{Key: []byte("a"), Value: []byte("z")})
	if err != nil || res[0].Partition != 2 {
		t.Fatalf("PublishTo: %+v %v", res, err)
	}
	if _, err := b.PublishTo(bg, "t", 4, Message{}); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("PublishTo 4: %v", err)
	}
	if _, err := b.Publish(bg, "nope", Message{}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestPublishReadRoundTrip(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{})
	createTopic(t, b, "t", TopicConfig{MaxMessageBytes: 100})
	ts := time.UnixMilli(1_700_000_000_123)
	at := time.UnixMilli(1_700_000_900_000)
	in := []Message{
		{Key: []byte("k"), Value: []byte("v"), Timestamp: ts, ID: "id-1", DeliverAt: at,
			Headers: []Header{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: nil}}},
		{Key: nil, Value: nil},
		{Key: []byte{}, Value: []byte{}},
	}
	res := publish(t, b, "t", in...)
	if res[0].Offset != 0 || res[2].Offset != 2 {
		t.Fatalf("offsets %+v", res)
	}
	got := readAllOf(t, b, "t", 0)
	if len(got) != 3 {
		t.Fatalf("read %d", len(got))
	}
	m := got[0]
	if m.Topic != "t" || m.Partition != 0 || m.Offset != 0 || !m.Timestamp.Equal(ts) || string(m.Key) != "k" ||
		string(m.Value) != "v" || m.ID != "id-1" || !m.DeliverAt.Equal(at) || len(m.Headers) != 2 ||
		m.Headers[0].Key != "h1" || string(m.Headers[0].Value) != "x" || m.Headers[1].Value != nil {
		t.Fatalf("message 0 came back as %+v", m)
	}
	if got[1].Key != nil || got[1].Value != nil || got[2].Key == nil || got[2].Value == nil {
		t.Fatalf("null and empty not kept apart: %+v %+v", got[1], got[2])
	}
	if _, err := b.Publish(bg, "t", Message{Value: make([]byte, 101)}); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := b.Publish(bg, "t", Message{Headers: []Header{{Key: "ferry-id"}}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("reserved header: %v", err)
	}
	if _, err := b.Read(bg, "t", 0, 5, ReadOptions{}); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	if r, err := b.Read(bg, "t", 0, 1, ReadOptions{MaxMessages: 1}); err != nil || len(r.Messages) != 1 || r.NextOffset != 2 {
		t.Fatalf("read max 1: %+v %v", r, err)
	}
}

func TestDeduplication(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	dir := t.TempDir()
	b := openBroker(t, dir, Options{Clock: clk})
	createTopic(t, b, "t", TopicConfig{Partitions: 2})
	first := publish(t, b, "t", Message{ID: "order-1", Value: []byte("a")})
	again := publish(t, b, "t", Message{ID: "order-1", Value: []byte("a")}, Message{ID: "order-2", Value: []byte("b")})
	if !again[0].Duplicate || again[0].Offset != first[0].Offset || again[0].Partition != first[0].Partition || again[1].Duplicate {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	// Concurrent retries of one id store it once.
	var wg sync.WaitGroup
	results := make([]Published, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := b.Publish(bg, "t", Message{ID: "order-3", Value: []byte("c")})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = r[0]
		}()
	}
	wg.Wait()
	stored := 0
	for _, r := range results {
		if !r.Duplicate {
			stored++
		}
		if r.Offset != results[0].Offset || r.Partition != results[0].Partition {
			t.Fatalf("concurrent retries got different offsets: %+v", results)
		}
	}
	if stored != 1 {
		t.Fatalf("stored %d copies", stored)
	}
	// After a restart within the window the id is still known.
	b.Close()
	clk.Advance(time.Minute)
	b = openBroker(t, dir, Options{Clock: clk})
	if r := publish(t, b, "t", Message{ID: "order-1", Value: []byte("a")}); !r[0].Duplicate || r[0].Offset != first[0].Offset {
		t.Fatalf("after restart: %+v", r)
	}
	// Past the window it is stored again.
	clk.Advance(2 * time.Minute)
	if r := publish(t, b, "t", Message{ID: "order-1", Value: []byte("a")}); r[0].Duplicate {
		t.Fatalf("past the window: %+v", r)
	}
	// A topic with deduplication off stores every copy.
	createTopic(t, b, "nodedup", TopicConfig{DedupWindow: -1})
	publish(t, b, "nodedup", Message{ID: "x"})
	if r := publish(t, b, "nodedup", Message{ID: "x"}); r[0].Duplicate || r[0].Offset != 1 {
		t.Fatalf("dedup off: %+v", r)
	}
}

func TestReadLongPollAndTime(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{})
	createTopic(t, b, "t", TopicConfig{})
	done := make(chan ReadResult, 1)
	go func() {
		r, err := b.Read(bg, "t", 0, 0, ReadOptions{Wait: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	publish(t, b, "t", Message{Value: []byte("late"), Timestamp: time.UnixMilli(5000)})
	if r := <-done; len(r.Messages) != 1 || string(r.Messages[0].Value) != "late" {
		t.Fatalf("long poll got %+v", r)
	}
	// A wait that times out returns nothing, no error.
	r, err := b.Read(bg, "t", 0, 1, ReadOptions{Wait: 10 * time.Millisecond})
	if err != nil || len(r.Messages) != 0 || r.HighWatermark != 1 {
		t.Fatalf("timed-out wait: %+v %v", r, err)
	}
	publish(t, b, "t", Message{Value: []byte("b"), Timestamp: time.UnixMilli(9000)})
	for ts, want := range map[int64]int64{0: 0, 5000: 0, 5001: 1, 9000: 1, 9001: 2} {
		if off, err := b.OffsetForTime("t", 0, time.UnixMilli(ts)); err != nil || off != want {
			t.Errorf("OffsetForTime(%d) = %d %v, want %d", ts, off, err, want)
		}
	}
}

func TestDiskFull(t *testing.T) {
	fs := vfs.NewFaulty(vfs.Default)
	b := openBroker(t, t.TempDir(), Options{FS: fs})
	createTopic(t, b, "t", TopicConfig{})
	publish(t, b, "t", Message{Value: []byte("a")})
	fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: "topics", Err: vfs.ErrNoSpace})
	if _, err := b.Publish(bg, "t", Message{Value: []byte("b")}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("publish on a full disk: %v", err)
	}
	fs.Clear()
	if r := publish(t, b, "t", Message{Value: []byte("c")}); r[0].Offset != 1 {
		t.Fatalf("after space returns: %+v", r)
	}
	if got := readAllOf(t, b, "t", 0); len(got) != 2 || string(got[1].Value) != "c" {
		t.Fatalf("read %+v", got)
	}
}

func TestRetentionByAge(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), Options{Clock: clk, DefaultFsync: "never", RetentionInterval: time.Minute})
	createTopic(t, b, "t", TopicConfig{SegmentBytes: 1024, Retention: Retention{MaxAge: time.Hour}})
	for i := range 40 {
		publish(t, b, "t", Message{Value: fmt.Appendf(nil, "%040d", i)})
	}
	clk.Advance(30 * time.Minute) // retention runs, nothing is old enough
	if ti, _ := b.DescribeTopic("t"); ti.Partitions[0].StartOffset != 0 {
		t.Fatalf("deleted too early: %+v", ti.Partitions[0])
	}
	clk.Advance(31 * time.Minute)
	ti, _ := b.DescribeTopic("t")
	if ti.Partitions[0].StartOffset != 40 || ti.Partitions[0].EndOffset != 40 {
		t.Fatalf("after an hour: %+v", ti.Partitions[0])
	}
}

func TestReadReuse(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "t", TopicConfig{})
	for i := range 20 {
		publish(t, b, "t", Message{Value: []byte(fmt.Sprint(i))})
	}
	first, err := b.Read(bg, "t", 0, 0, ReadOptions{MaxMessages: 10})
	if err != nil || len(first.Messages) != 10 {
		t.Fatalf("%+v %v", first, err)
	}
	buf := first.Messages
	second, err := b.Read(bg, "t", 0, first.NextOffset, ReadOptions{Reuse: buf})
	if err != nil || len(second.Messages) != 10 || string(second.Messages[0].Value) != "10" {
		t.Fatalf("%+v %v", second, err)
	}
	if &second.Messages[0] != &buf[:1][0] {
		t.Fatal("the reused slice's storage was not used")
	}
}

func TestOneBrokerPerDataFolder(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, Options{})
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second broker on the folder: %v", err)
	}
	b.Close()
	b2, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	b2.Close()
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPublishBatch: a producer's batch is stored byte for byte (but its
// base offset) and read back as its records; records with ferry-id go
// through publish deduplication; bad batches are refused with nothing
// stored.
func TestPublishBatch(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "pb", TopicConfig{Partitions: 2})
	var bl record.Builder
	for i := range 3 {
		bl.Add(record.Record{Timestamp: 1700000000000 + int64(i), Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []record.RecordHeader{{Key: "h", Value: []byte("x")}}})
	}
	batch := bl.Build()
	stored := bytes.Clone(batch)
	off, err := b.PublishBatch(bg, "pb", 1, batch)
	if err != nil || off != 0 {
		t.Fatalf("PublishBatch: offset %d, %v", off, err)
	}
	if off, err := b.PublishBatch(bg, "pb", 1, bytes.Clone(stored)); err != nil || off != 3 {
		t.Fatalf("second PublishBatch: offset %d, %v", off, err)
	}
	res, err := b.Read(bg, "pb", 1, 0, ReadOptions{AsBatches: true})
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(stored, 0)
	if !bytes.Equal(res.Batches.Data[:len(stored)], stored) {
		t.Fatal("the stored batch differs from the producer's")
	}
	msgs, err := b.Read(bg, "pb", 1, 0, ReadOptions{})
	if err != nil || len(msgs.Messages) != 6 || string(msgs.Messages[2].Value) != "v2" ||
		msgs.Messages[2].Timestamp.UnixMilli() != 1700000000002 || msgs.Messages[2].Headers[0].Key != "h" {
		t.Fatalf("read back %+v, %v", msgs.Messages, err)
	}

	// ferry-id: deduplicated like a Publish with that ID.
	var idb record.Builder
	idb.Add(record.Record{Value: []byte("once"), Headers: []record.RecordHeader{{Key: "ferry-id", Value: []byte("id-1")}}})
	first, err := b.PublishBatch(bg, "pb", 0, idb.Build())
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.PublishBatch(bg, "pb", 0, idb.Build())
	if err != nil || again != first {
		t.Fatalf("a repeated id stored again: offsets %d and %d, %v", first, again, err)
	}
	if got, _ := b.Read(bg, "pb", 0, 0, ReadOptions{}); len(got.Messages) != 1 || got.Messages[0].ID != "id-1" {
		t.Fatalf("partition 0 holds %+v", got.Messages)
	}

	bad := bytes.Clone(bl.Build()) // Build reuses its buffer
	bad[len(bad)-1] ^= 0xff        // the CRC no longer matches
	for name, tc := range map[string]struct {
		batch []byte
		part  int
		want  error
	}{
		"bad crc":           {bad, 1, ErrInvalidMessage},
		"short":             {stored[:30], 1, ErrInvalidMessage},
		"unknown partition": {bytes.Clone(bl.Build()), 2, ErrUnknownPartition},
	} {
		if _, err := b.PublishBatch(bg, "pb", tc.part, tc.batch); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := b.PublishBatch(bg, "nope", 0, bl.Build()); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if ti, _ := b.DescribeTopic("pb"); ti.Partitions[1].EndOffset != 6 {
		t.Fatalf("partition 1 ends at %d after refused batches, want 6", ti.Partitions[1].EndOffset)
	}

	// Placed one after the other, then waited for: consecutive offsets.
	o1, w1, err1 := b.PublishBatchAsync(bg, "pb", 1, bytes.Clone(bl.Build()))
	o2, w2, err2 := b.PublishBatchAsync(bg, "pb", 1, bytes.Clone(bl.Build()))
	if err1 != nil || err2 != nil || o1 != 6 || o2 != 9 {
		t.Fatalf("placed at %d and %d: %v, %v", o1, o2, err1, err2)
	}
	if err := errors.Join(w2(), w1()); err != nil {
		t.Fatal(err)
	}
	if ti, _ := b.DescribeTopic("pb"); ti.Partitions[1].EndOffset != 12 {
		t.Fatalf("partition 1 ends at %d, want 12", ti.Partitions[1].EndOffset)
	}
	if off, err := b.StartOffset("pb", 1); err != nil || off != 0 {
		t.Fatalf("StartOffset: %d, %v", off, err)
	}
	if _, err := b.StartOffset("pb", 9); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("StartOffset of a partition that does not exist: %v", err)
	}
}
