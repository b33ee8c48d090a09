package meta

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/storage/vfs"
)

// entriesOf iterates a fixed list of entries, for appendCheckpoint.
func entriesOf(es []entry) func(func(entry) bool) {
	return func(fn func(entry) bool) {
		for _, e := range es {
			if !fn(e) {
				return
			}
		}
	}
}

func decodeAll(data []byte) (int64, []entry, error) {
	var es []entry
	covered, _, err := decodeCheckpoint(data, func(k, v []byte) error {
		es = append(es, entry{key: string(k), value: append([]byte{}, v...)})
		return nil
	})
	return covered, es, err
}

func sampleEntries(n int) []entry {
	es := []entry{{key: "", value: []byte{}}}
	for i := range n {
		es = append(es, entry{key: key("k/%05d", i), value: []byte(strings.Repeat("v", i%40))})
	}
	return es
}

func TestCheckpointRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		chunk int
	}{
		{"empty", -1, ckptChunkBytes},
		{"one batch", 100, ckptChunkBytes},
		{"many batches", 1000, 512},
		{"one entry a batch", 20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var es []entry
			if tc.n >= 0 {
				es = sampleEntries(tc.n)
			}
			data := appendCheckpoint(nil, 4242, tc.chunk, entriesOf(es))
			covered, got, err := decodeAll(data)
			if err != nil {
				t.Fatal(err)
			}
			if covered != 4242 || len(got) != len(es) {
				t.Fatalf("decoded offset %d, %d entries; want 4242, %d", covered, len(got), len(es))
			}
			for i := range es {
				if got[i].key != es[i].key || string(got[i].value) != string(es[i].value) {
					t.Fatalf("entry %d: %q=%q, want %q=%q", i, got[i].key, got[i].value, es[i].key, es[i].value)
				}
			}
			// Every proper prefix and every single flipped byte is refused.
			for n := 0; n < len(data); n += 1 + n/7 {
				if _, _, err := decodeCheckpoint(data[:n], func(k, v []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("prefix of %d/%d bytes: %v", n, len(data), err)
				}
			}
			for i := 0; i < len(data); i += 1 + i/5 {
				bad := append([]byte{}, data...)
				bad[i] ^= 0x40
				if _, _, err := decodeCheckpoint(bad, func(k, v []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d flipped: %v", i, err)
				}
			}
		})
	}
}

func TestCheckpointRefusesUnsortedKeys(t *testing.T) {
	data := appendCheckpoint(nil, 1, ckptChunkBytes, entriesOf([]entry{{key: "b", value: []byte{}}, {key: "a", value: []byte{}}}))
	if _, _, err := decodeAll(data); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not after") {
		t.Fatalf("unsorted checkpoint: %v", err)
	}
}

func TestCorruptCheckpointIsAHardError(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustApply(t, s, Written, func(b *Batch) { b.Put("topic/orders", []byte("partitions=3")) })
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, checkpointFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("open with a damaged checkpoint: %v", err)
	}
}

func TestChangeLogGapIsAHardError(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	for i := range 10 {
		mustApply(t, s, Written, func(b *Batch) { b.Put(key("k%d", i), []byte("v")) })
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The change log replaced by an empty one: it ends before the checkpoint.
	if err := os.RemoveAll(filepath.Join(dir, changesDir)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "ends at offset 0") {
		t.Fatalf("open with a lost change log: %v", err)
	}
}

func TestChangeLogStartingAfterCheckpointIsAHardError(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1 << 10, CheckpointBytes: -1}
	s := openStore(t, dir, opts)
	mustApply(t, s, Written, func(b *Batch) { b.Put("a", []byte("1")) })
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		mustApply(t, s, Written, func(b *Batch) { b.Put(key("k%d", i), make([]byte, 100)) })
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// An old checkpoint put back: the changes after it were deleted.
	if err := os.WriteFile(filepath.Join(dir, checkpointFile), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, opts); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "after the checkpoint") {
		t.Fatalf("open with an old checkpoint: %v", err)
	}
}

func TestLeftoverTempCheckpointIgnored(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustApply(t, s, Written, func(b *Batch) { b.Put("a", []byte("1")) })
	s.Close()
	tmp := filepath.Join(dir, checkpointFile+".tmp")
	if err := os.WriteFile(tmp, []byte("half a checkpoi"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	checkSameState(t, dump(s), []kv{{"a", "1"}})
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temporary checkpoint not removed: %v", err)
	}
}

// A large state is written in several batches and read back.
func TestLargeCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	s := openStore(t, dir, Options{FS: vfs.Default})
	value := make([]byte, 1000)
	for i := range 10 {
		mustApply(t, s, Written, func(b *Batch) {
			for j := range 1000 {
				b.Put(key("big/%02d/%04d", i, j), value)
			}
		})
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	want := dump(s)
	s.Close()
	s = openStore(t, dir, Options{})
	checkSameState(t, dump(s), want)
	if rec := s.Recovery(); rec.CheckpointEntries != 10000 || rec.ReplayedBatches != 0 {
		t.Fatalf("recovery %+v", rec)
	}
}
