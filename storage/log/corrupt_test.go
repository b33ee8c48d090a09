package log

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// batchPos is where a batch sits in the original tail segment.
type batchPos struct {
	pos, size int64
	base      int64
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptionRecovery flips bytes in and truncates the files of a closed
// log at random positions, then checks that Open keeps exactly the batches
// before the damage, reports the cut, and serves nothing that fails its CRC.
func TestCorruptionRecovery(t *testing.T) {
	src := t.TempDir()
	opts := Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 8 << 10, IndexIntervalBytes: 256}
	l := openT(t, src, opts)
	for i := range 200 {
		mustAppend(t, l, batchOf("k", 1+i%4, int64(1000+i)))
	}
	want := readAll(t, l, 0)
	tail := l.segments[len(l.segments)-1]
	tailName := filepath.Base(tail.logPath())
	var tailBatches []batchPos
	buf, _ := os.ReadFile(tail.logPath())
	var p int64
	record.Split(buf, func(h record.Header, b []byte) error {
		tailBatches = append(tailBatches, batchPos{pos: p, size: int64(len(b)), base: h.BaseOffset})
		p += int64(len(b))
		return nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(tailBatches) < 5 {
		t.Fatalf("tail has %d batches", len(tailBatches))
	}
	indexFiles, _ := filepath.Glob(filepath.Join(src, "*index"))

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for round := range 60 {
		dir := t.TempDir()
		copyDir(t, src, dir)
		tailPath := filepath.Join(dir, tailName)
		kind := round % 4
		var damaged *batchPos
		switch kind {
		case 0: // flip one byte of the tail segment
			b, _ := os.ReadFile(tailPath)
			at := rng.Int64N(int64(len(b)))
			b[at] ^= byte(1 + rng.IntN(255))
			os.WriteFile(tailPath, b, 0o644)
			damaged = batchAt(tailBatches, at)
			// The leader epoch is outside the CRC by design (the log stamps
			// it), so a flip there is not damage the format can see.
			if rel := at - damaged.pos; rel >= 12 && rel < 16 {
				damaged = nil
			}
		case 1: // truncate the tail segment
			b, _ := os.ReadFile(tailPath)
			at := rng.Int64N(int64(len(b)))
			os.Truncate(tailPath, at)
			damaged = batchAt(tailBatches, at)
			if !bytes.ContainsFunc(b[damaged.pos:at], func(r rune) bool { return r != 0 }) {
				// A clean cut on a boundary, or a torn batch of which only
				// zeros (high bytes of its base offset) remain: that looks
				// like space written ahead and goes without a report.
				damaged = &batchPos{pos: at, base: damaged.base, size: 0}
			}
		case 2: // flip bytes in an index file
			f := indexFiles[rng.IntN(len(indexFiles))]
			b, _ := os.ReadFile(filepath.Join(dir, filepath.Base(f)))
			if len(b) > 0 {
				b[rng.IntN(len(b))] ^= 0xff
			}
			os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
		case 3: // truncate or delete an index file
			f := filepath.Join(dir, filepath.Base(indexFiles[rng.IntN(len(indexFiles))]))
			if rng.IntN(2) == 0 {
				os.Remove(f)
			} else {
				fi, _ := os.Stat(f)
				os.Truncate(f, rng.Int64N(fi.Size()+1))
			}
		}

		l, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("round %d (kind %d): open: %v", round, kind, err)
		}
		rep := l.Recovery()
		end := int64(len(want))
		if damaged != nil {
			end = damaged.base
			if damaged.size != 0 && rep.CutAtOffset != damaged.base {
				t.Fatalf("round %d: cut at %d, damage in batch %d (report %+v)", round, rep.CutAtOffset, damaged.base, rep)
			}
		}
		if l.EndOffset() != end {
			t.Fatalf("round %d (kind %d): end %d, want %d (report %+v)", round, kind, l.EndOffset(), end, rep)
		}
		got := readAll(t, l, 0)
		if int64(len(got)) != end {
			t.Fatalf("round %d: read %d records, want %d", round, len(got), end)
		}
		for i := range got {
			if !bytes.Equal(got[i].Value, want[i].Value) || got[i].Timestamp != want[i].Timestamp {
				t.Fatalf("round %d: record %d differs", round, i)
			}
		}
		// Time search still agrees with the records.
		ts := want[rng.IntN(int(end))].Timestamp
		off, ok, err := l.OffsetForTime(ts)
		if err != nil || !ok || got[off].Timestamp < ts || (off > 0 && got[off-1].Timestamp >= ts) {
			t.Fatalf("round %d: OffsetForTime(%d) = %d %v %v", round, ts, off, ok, err)
		}
		// The log takes appends after recovery.
		if res := mustAppend(t, l, batchOf("new", 1, 1)); res.BaseOffset != end {
			t.Fatalf("round %d: append after recovery at %d, want %d", round, res.BaseOffset, end)
		}
		l.Close()
	}
}

func batchAt(bs []batchPos, pos int64) *batchPos {
	for i := range bs {
		if pos < bs[i].pos+bs[i].size {
			return &bs[i]
		}
	}
	return &bs[len(bs)-1]
}

// TestSealedSegmentDamageIsNeverServed: a flipped byte inside an older
// segment is not found by Open (only the tail is scanned), but Read refuses
// the damaged batch instead of serving it.
func TestSealedSegmentDamageIsNeverServed(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 4 << 10}
	l := openT(t, dir, opts)
	for range 100 {
		mustAppend(t, l, batchOf("k", 2, 5))
	}
	first := l.segments[0]
	path := first.logPath()
	l.Close()
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0x55
	os.WriteFile(path, b, 0o644)
	l = openT(t, dir, opts)
	defer l.Close()
	var sawErr bool
	for off := int64(0); off < l.EndOffset(); {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			sawErr = true
			off++
			continue
		}
		if err := record.Split(res.Data, func(record.Header, []byte) error { return nil }); err != nil {
			t.Fatalf("Read served a batch that fails its check: %v", err)
		}
		off = res.NextOffset
	}
	if !sawErr {
		t.Fatal("no read reported the damage")
	}
}

// TestPreallocatedTailAfterCrash: under fsync=always the active segment has
// zeros written ahead of its data; a log copied while open (as after kill -9)
// reopens with every record and no cut.
func TestPreallocatedTailAfterCrash(t *testing.T) {
	src := t.TempDir()
	l := openT(t, src, Options{})
	defer l.Close()
	for range 20 {
		mustAppend(t, l, batchOf("k", 3, 1))
	}
	name := filepath.Join(src, SegmentName(0)+logSuffix)
	fi, err := os.Stat(name)
	if err != nil || fi.Size() <= l.Size() {
		t.Fatalf("segment file %d bytes for %d of data (%v): no space written ahead", fi.Size(), l.Size(), err)
	}
	dir := t.TempDir()
	copyDir(t, src, dir)
	l2 := openT(t, dir, Options{})
	defer l2.Close()
	if rep := l2.Recovery(); rep.CutBytes != 0 || rep.CutAtOffset != -1 {
		t.Fatalf("recovery cut %+v", rep)
	}
	if got := len(readAll(t, l2, 0)); got != 60 {
		t.Fatalf("read %d records", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, SegmentName(0)+logSuffix)); fi.Size() != l2.Size() {
		t.Fatalf("zeros not trimmed: file %d, data %d", fi.Size(), l2.Size())
	}
}
