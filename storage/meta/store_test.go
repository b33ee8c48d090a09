package meta

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPutGetDelete(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if _, ok := s.Get("a"); ok {
		t.Fatal("empty store has key a")
	}
	val := []byte("one")
	var b Batch
	b.Put("a", val)
	b.Put("b", []byte("two"))
	b.Put("c", []byte("three"))
	val[0] = 'X' // Put copied the value
	if err := s.Apply(&b, Written); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "one", "b": "two", "c": "three"} {
		if got, ok := s.Get(k); !ok || string(got) != want {
			t.Errorf("Get(%q) = %q, %v; want %q", k, got, ok, want)
		}
	}
	got, _ := s.Get("a")
	got[0] = 'Y' // Get returned a copy
	if again, _ := s.Get("a"); string(again) != "one" {
		t.Fatalf("Get after modifying a returned value: %q", again)
	}

	mustApply(t, s, Synced, func(b *Batch) {
		b.Delete("b")
		b.Delete("missing")
		b.Put("a", []byte("uno"))
	})
	if _, ok := s.Get("b"); ok {
		t.Error("b still there after Delete")
	}
	checkSameState(t, dump(s), []kv{{"a", "uno"}, {"c", "three"}})
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}

func TestOperationsApplyInOrder(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	mustApply(t, s, Written, func(b *Batch) {
		b.Put("t/1", []byte("a"))
		b.Delete("t/1")
		b.Put("t/2", []byte("b"))
		b.DeletePrefix("t/")
		b.Put("t/3", []byte("c"))
		b.Put("x", []byte("1"))
		b.Put("x", []byte("2"))
	})
	checkSameState(t, dump(s), []kv{{"t/3", "c"}, {"x", "2"}})
}

func TestEmptyKeyAndValue(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustApply(t, s, Written, func(b *Batch) {
		b.Put("", nil)
		b.Put("k", []byte{})
	})
	check := func(s *Store) {
		t.Helper()
		for _, k := range []string{"", "k"} {
			v, ok := s.Get(k)
			if !ok || len(v) != 0 {
				t.Fatalf("Get(%q) = %q, %v; want empty, true", k, v, ok)
			}
		}
	}
	check(s)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Written, func(b *Batch) { b.Put("", []byte{}) })
	s.Close()
	check(openStore(t, dir, Options{}))
}

func TestScanOrderAndPrefix(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	var keys []string
	for i := range 300 {
		keys = append(keys, key("topic/%c/%03d", 'a'+rune(i%5), i))
	}
	keys = append(keys, "topic", "topic/", "topic/a", "topicX", "a", "zzz", "topic/b\xff")
	rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for i := 0; i < len(keys); i += 50 {
		mustApply(t, s, Written, func(b *Batch) {
			for _, k := range keys[i:min(i+50, len(keys))] {
				b.Put(k, []byte(k))
			}
		})
	}
	all := dump(s)
	checkSorted(t, all)
	if len(all) != len(keys) {
		t.Fatalf("scan saw %d keys, want %d", len(all), len(keys))
	}

	var got []string
	s.Scan("topic/b", func(k string, v []byte) bool {
		if k != string(v) {
			t.Errorf("value of %q is %q", k, v)
		}
		got = append(got, k)
		return true
	})
	if len(got) != 61 || got[0] != "topic/b/001" || got[60] != "topic/b\xff" {
		t.Fatalf("Scan(topic/b) = %d keys from %q to %q", len(got), got[0], got[len(got)-1])
	}
	for _, k := range got {
		if !strings.HasPrefix(k, "topic/b") {
			t.Fatalf("Scan(topic/b) returned %q", k)
		}
	}

	n := 0
	s.Scan("", func(string, []byte) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("scan went on after false: %d calls", n)
	}
	s.Scan("nothing", func(k string, _ []byte) bool { t.Fatalf("Scan(nothing) returned %q", k); return false })
}

func TestScanIsSnapshotAndMayApply(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	mustApply(t, s, Written, func(b *Batch) {
		for i := range 100 {
			b.Put(key("k/%03d", i), []byte("old"))
		}
	})
	seen := 0
	s.Scan("k/", func(k string, v []byte) bool {
		if string(v) != "old" {
			t.Fatalf("scan saw %q=%q written after it started", k, v)
		}
		seen++
		// Writing from inside a scan must not deadlock, nor show up in it.
		mustApply(t, s, Written, func(b *Batch) {
			b.Put("k/000", []byte("new"))
			b.Put("k/999", []byte("new"))
			b.Delete(key("k/%03d", 99-seen))
		})
		_, _ = s.Get(k)
		return true
	})
	if seen != 100 {
		t.Fatalf("scan saw %d keys, want 100", seen)
	}
}

func TestDeletePrefix(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustApply(t, s, Written, func(b *Batch) {
		for _, k := range []string{"topic/a/p0", "topic/a/p1", "topic/ab/p0", "topic/b/p0", "topic/a", "sub/x"} {
			b.Put(k, []byte("v"))
		}
	})
	mustApply(t, s, Written, func(b *Batch) { b.DeletePrefix("topic/a/") })
	want := []kv{{"sub/x", "v"}, {"topic/a", "v"}, {"topic/ab/p0", "v"}, {"topic/b/p0", "v"}}
	checkSameState(t, dump(s), want)
	mustApply(t, s, Written, func(b *Batch) { b.DeletePrefix("nothing/") })
	checkSameState(t, dump(s), want)
	s.Close()

	s = openStore(t, dir, Options{})
	checkSameState(t, dump(s), want)
	mustApply(t, s, Synced, func(b *Batch) { b.DeletePrefix("") })
	if s.Len() != 0 {
		t.Fatalf("DeletePrefix(\"\") left %d keys", s.Len())
	}
	s.Close()
	if n := openStore(t, dir, Options{}).Len(); n != 0 {
		t.Fatalf("after reopen %d keys, want 0", n)
	}
}

// randomBatch fills b with a mix of operations on a small key space.
func randomBatch(r *rand.Rand, b *Batch, tag string) {
	for range 1 + r.IntN(6) {
		k := key("%c/%02d", 'a'+rune(r.IntN(4)), r.IntN(30))
		switch x := r.IntN(20); {
		case x == 0:
			b.DeletePrefix(k[:2])
		case x < 5:
			b.Delete(k)
		default:
			b.Put(k, []byte(key("%s-%d", tag, r.Int())))
		}
	}
}

func TestReopenPreservesState(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	m := model{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		var b Batch
		randomBatch(r, &b, key("%d", i))
		if err := s.Apply(&b, Durability(i%2)); err != nil {
			t.Fatal(err)
		}
		m.apply(&b)
	}
	checkSameState(t, dump(s), m.dump())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	checkSameState(t, dump(s), m.dump())
	if rec := s.Recovery(); rec.ReplayedBatches != 500 || rec.CheckpointOffset != 0 {
		t.Fatalf("recovery %+v, want 500 batches replayed and no checkpoint", rec)
	}
}

func TestCheckpointAndReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10, CheckpointBytes: -1}
	s := openStore(t, dir, opts)
	m := model{}
	r := rand.New(rand.NewPCG(3, 4))
	applyN := func(n int) {
		for i := range n {
			var b Batch
			randomBatch(r, &b, key("%d", i))
			if err := s.Apply(&b, Written); err != nil {
				t.Fatal(err)
			}
			m.apply(&b)
		}
	}
	applyN(300)
	segsBefore := s.log.SegmentCount()
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	covered := s.log.EndOffset()
	if s.log.StartOffset() != covered || s.log.SegmentCount() >= segsBefore {
		t.Fatalf("after checkpoint change log starts at %d with %d segments (had %d); want start %d",
			s.log.StartOffset(), s.log.SegmentCount(), segsBefore, covered)
	}
	if err := s.Checkpoint(); err != nil { // nothing new: a no-op
		t.Fatal(err)
	}
	applyN(120)
	checkSameState(t, dump(s), m.dump())
	s.Close()

	s = openStore(t, dir, opts)
	checkSameState(t, dump(s), m.dump())
	rec := s.Recovery()
	if rec.CheckpointOffset != covered || rec.ReplayedBatches != 120 {
		t.Fatalf("recovery %+v, want checkpoint offset %d and 120 batches replayed", rec, covered)
	}
	// A checkpoint right after reopen, then reopen with nothing to replay.
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir, opts)
	checkSameState(t, dump(s), m.dump())
	if rec := s.Recovery(); rec.ReplayedBatches != 0 || rec.CheckpointEntries != len(m) {
		t.Fatalf("recovery %+v, want 0 batches replayed and %d entries", rec, len(m))
	}
}

func TestAutomaticCheckpointDropsOldChanges(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10, CheckpointBytes: 32 << 10}
	s := openStore(t, dir, opts)
	done := make(chan error, 1000)
	s.onAutoCheckpoint = func(err error) { done <- err }
	m := model{}
	value := []byte(strings.Repeat("v", 100))
	// About 150 bytes a batch: 32 KiB is about 220 batches.
	checkpoints := 0
	for i := 0; checkpoints < 3; i++ {
		if i > 20000 {
			t.Fatal("no automatic checkpoint after 20000 batches")
		}
		var b Batch
		b.Put(key("pos/%04d", i%500), value)
		if err := s.Apply(&b, Written); err != nil {
			t.Fatal(err)
		}
		m.apply(&b)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("automatic checkpoint: %v", err)
			}
			checkpoints++
		default:
		}
	}
	if s.log.StartOffset() == 0 {
		t.Fatal("change log still starts at 0 after automatic checkpoints")
	}
	if n := s.log.Size(); n > 64<<10 {
		t.Fatalf("change log holds %d bytes after checkpoints every 32 KiB", n)
	}
	files, err := os.ReadDir(filepath.Join(dir, changesDir))
	if err != nil {
		t.Fatal(err)
	}
	logs := 0
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".log") {
			logs++
		}
	}
	if logs != s.log.SegmentCount() {
		t.Fatalf("change log folder has %d segment files, the log says %d segments", logs, s.log.SegmentCount())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, opts)
	checkSameState(t, dump(s), m.dump())
	if rec := s.Recovery(); rec.CheckpointOffset == 0 || rec.ReplayedBytes > 64<<10 {
		t.Fatalf("recovery %+v: want a checkpoint and a short replay", rec)
	}
}

func TestConcurrentAppliersThenReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 16 << 10, CheckpointBytes: 64 << 10}
	s := openStore(t, dir, opts)
	const writers, perWriter = 8, 250
	var wg sync.WaitGroup
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { // a reader checking that scans are sorted and batches whole
		defer readers.Done()
		for {
			select {
			case <-stopReaders:
				return
			default:
			}
			var prev string
			pairs := map[string]string{}
			s.Scan("", func(k string, v []byte) bool {
				if prev != "" && k <= prev {
					t.Errorf("scan out of order: %q after %q", k, prev)
				}
				prev = k
				if strings.HasPrefix(k, "pair/") {
					pairs[k] = string(v)
				}
				return true
			})
			for k, v := range pairs {
				if strings.HasSuffix(k, "/x") && pairs[strings.TrimSuffix(k, "/x")+"/y"] != v {
					t.Errorf("scan saw half a batch: %s=%s but its pair is %q", k, v, pairs[strings.TrimSuffix(k, "/x")+"/y"])
				}
			}
		}
	}()
	go func() { // checkpoints racing the writers
		defer readers.Done()
		for {
			select {
			case <-stopReaders:
				return
			default:
			}
			if err := s.Checkpoint(); err != nil {
				t.Errorf("checkpoint: %v", err)
				return
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWriter {
				var b Batch
				randomBatch(r, &b, key("w%d-%d", w, i))
				v := []byte(key("%d-%d", w, i))
				b.Put(key("pair/%d/x", w), v)
				b.Put(key("pair/%d/y", w), v)
				b.Put(key("last/%d", w), v)
				if err := s.Apply(&b, Durability(i%2)); err != nil {
					t.Errorf("apply: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stopReaders)
	readers.Wait()
	for w := range writers {
		if v, _ := s.Get(key("last/%d", w)); string(v) != key("%d-%d", w, perWriter-1) {
			t.Errorf("last/%d = %q", w, v)
		}
	}
	want := dump(s)
	checkSorted(t, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkSameState(t, dump(openStore(t, dir, opts)), want)
}

func TestBatchTooLarge(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{MaxBatchBytes: 4 << 10})
	mustApply(t, s, Written, func(b *Batch) { b.Put("a", []byte("1")) })
	var b Batch
	b.Put("a", []byte("2"))
	b.Put("big", make([]byte, 5<<10))
	if err := s.Apply(&b, Written); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("apply of 5 KiB with a 4 KiB limit: %v", err)
	}
	checkSameState(t, dump(s), []kv{{"a", "1"}})
}

func TestApplyEdgeCases(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	var empty Batch
	if err := s.Apply(&empty, Synced); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	if s.log.EndOffset() != 0 {
		t.Fatal("an empty batch reached the change log")
	}
	var b Batch
	b.Put("a", nil)
	if err := s.Apply(&b, Durability(7)); err == nil {
		t.Fatal("unknown durability accepted")
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatal("Reset left operations")
	}
	b.Put("a", []byte("1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&b, Written); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
	if err := s.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	if err := s.Checkpoint(); !errors.Is(err, ErrClosed) {
		t.Fatalf("checkpoint after close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

func TestOptions(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if o.SyncInterval != DefaultSyncInterval || o.CheckpointBytes != DefaultCheckpointBytes ||
		o.SegmentBytes != DefaultSegmentBytes || o.MaxBatchBytes != DefaultMaxBatchBytes {
		t.Fatalf("defaults: %+v", o)
	}
	bad := Options{SyncInterval: -1, SegmentBytes: 10, MaxBatchBytes: 2 << 30}
	bad.EnsureDefaults()
	err := bad.Validate()
	for _, want := range []string{"sync interval", "segment bytes", "max batch bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := Open(t.TempDir(), bad); err == nil {
		t.Fatal("Open accepted bad options")
	}
}
