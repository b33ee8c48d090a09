package log

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

func TestAppendReadDenseOffsets(t *testing.T) {
	for _, mode := range []string{"always", "never", "interval:1ms"} {
		t.Run(mode, func(t *testing.T) {
			fs, err := ParseFsync(mode)
			if err != nil {
				t.Fatal(err)
			}
			l := openT(t, t.TempDir(), Options{Fsync: fs, SegmentBytes: 4096})
			defer l.Close()
			var want int64
			for i := range 50 {
				n := 1 + i%7
				res := mustAppend(t, l, batchOf(fmt.Sprint(i), n, int64(1000+i)))
				if res.BaseOffset != want || res.LastOffset != want+int64(n-1) {
					t.Fatalf("batch %d at %d..%d, want base %d", i, res.BaseOffset, res.LastOffset, want)
				}
				want += int64(n)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			if l.SegmentCount() < 2 {
				t.Fatalf("expected rolls with 4 KiB segments, have %d segment", l.SegmentCount())
			}
			recs := readAll(t, l, 0)
			if int64(len(recs)) != want {
				t.Fatalf("read %d records, want %d", len(recs), want)
			}
			for i, r := range recs {
				if r.Offset != int64(i) {
					t.Fatalf("record %d has offset %d", i, r.Offset)
				}
			}
			// Reading from the middle of a batch returns that batch.
			mid := readAll(t, l, 10)
			if mid[0].Offset != 10 || int64(len(mid)) != want-10 {
				t.Fatalf("read from 10: first %d, %d records", mid[0].Offset, len(mid))
			}
		})
	}
}

func TestReadLimitsAndRange(t *testing.T) {
	l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}})
	defer l.Close()
	for i := range 10 {
		mustAppend(t, l, batchOf(fmt.Sprint(i), 10, 1))
	}
	one := len(batchOf("0", 10, 1))
	res, err := l.Read(0, 1) // smaller than a batch: still one whole batch
	if err != nil || len(res.Data) != one || res.NextOffset != 10 {
		t.Fatalf("read(0,1) = %d bytes next %d err %v", len(res.Data), res.NextOffset, err)
	}
	res, err = l.Read(25, 2*one+10)
	if err != nil || len(res.Data) != 2*one || res.NextOffset != 40 {
		t.Fatalf("read(25) = %d bytes next %d err %v", len(res.Data), res.NextOffset, err)
	}
	if res, err := l.Read(100, 1000); err != nil || len(res.Data) != 0 || res.HighWatermark != 100 {
		t.Fatalf("read at end = %+v %v", res, err)
	}
	if _, err := l.Read(101, 1000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	if _, err := l.Read(-1, 1000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read before start: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{SegmentBytes: 2048})
	for i := range 40 {
		mustAppend(t, l, batchOf(fmt.Sprint(i), 3, int64(i)))
	}
	segs := l.SegmentCount()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, Options{SegmentBytes: 2048})
	defer l.Close()
	if rep := l.Recovery(); rep.CutBytes != 0 || len(rep.RebuiltIndexes) != 0 || rep.Segments != segs {
		t.Fatalf("clean reopen reported %+v", rep)
	}
	if l.EndOffset() != 120 {
		t.Fatalf("end %d", l.EndOffset())
	}
	res := mustAppend(t, l, batchOf("after", 1, 99))
	if res.BaseOffset != 120 {
		t.Fatalf("append after reopen at %d", res.BaseOffset)
	}
	if n := len(readAll(t, l, 0)); n != 121 {
		t.Fatalf("read %d records", n)
	}
}

func TestRollByAge(t *testing.T) {
	clk := newFakeClock()
	l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, SegmentAge: time.Hour, Now: clk.Now})
	defer l.Close()
	mustAppend(t, l, batchOf("a", 1, 1))
	mustAppend(t, l, batchOf("b", 1, 1))
	if l.SegmentCount() != 1 {
		t.Fatal("rolled too early")
	}
	clk.Advance(time.Hour)
	mustAppend(t, l, batchOf("c", 1, 1))
	if l.SegmentCount() != 2 {
		t.Fatalf("segments %d, want a roll after an hour", l.SegmentCount())
	}
	if n := len(readAll(t, l, 0)); n != 3 {
		t.Fatalf("read %d", n)
	}
}

func TestOffsetForTime(t *testing.T) {
	l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 2048, IndexIntervalBytes: 200})
	defer l.Close()
	// Timestamps rise by 10 per record, with one batch out of order.
	ts := int64(1000)
	for i := range 60 {
		var b record.Builder
		for j := range 3 {
			t0 := ts + int64(j)*10
			if i == 30 {
				t0 = 500 // late records
			}
			b.Add(record.Record{Timestamp: t0, Value: []byte("v")})
		}
		mustAppend(t, l, b.Build())
		ts += 30
	}
	cases := []struct {
		ts   int64
		want int64
		ok   bool
	}{
		{0, 0, true},
		{1000, 0, true},
		{1001, 1, true},
		{1010, 1, true},
		{1015, 2, true},
		{1900, 93, true}, // batch 30 (offsets 90..92) holds ts 500; 93 has 1930
		{1925, 93, true},
		{2770, 177, true},
		{2790, 179, true},
		{2791, 0, false},
	}
	for _, c := range cases {
		got, ok, err := l.OffsetForTime(c.ts)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("OffsetForTime(%d) = %d,%v want %d,%v", c.ts, got, ok, c.want, c.ok)
		}
	}
	// The same answers after a reopen (indexes loaded from files).
	dir := l.Dir()
	l.Close()
	l2 := openT(t, dir, Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 2048, IndexIntervalBytes: 200})
	defer l2.Close()
	for _, c := range cases {
		got, ok, _ := l2.OffsetForTime(c.ts)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("after reopen OffsetForTime(%d) = %d,%v want %d,%v", c.ts, got, ok, c.want, c.ok)
		}
	}
}

func TestRetention(t *testing.T) {
	clk := newFakeClock()
	nowMs := clk.Now().UnixMilli()
	t.Run("age", func(t *testing.T) {
		l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 1024, Now: clk.Now,
			Retention: Retention{MaxAge: time.Hour}})
		defer l.Close()
		for i := range 30 {
			mustAppend(t, l, batchOf("old", 2, nowMs-int64(3*time.Hour/time.Millisecond)+int64(i)))
		}
		for range 10 {
			mustAppend(t, l, batchOf("new", 2, nowMs))
		}
		res, err := l.EnforceRetention()
		if err != nil {
			t.Fatal(err)
		}
		if res.Segments == 0 {
			t.Fatal("nothing deleted")
		}
		recs := readAll(t, l, l.StartOffset())
		for _, r := range recs {
			if r.Offset < 60 && r.Offset >= l.StartOffset() && string(r.Key) == "new" {
				t.Fatalf("record %d is new", r.Offset)
			}
		}
		if string(recs[len(recs)-1].Key) != "new" || l.StartOffset() > 60 {
			t.Fatalf("start %d: new records lost", l.StartOffset())
		}
		if _, err := l.Read(0, 100); !errors.Is(err, ErrOffsetOutOfRange) && l.StartOffset() > 0 {
			t.Fatalf("read of deleted offset: %v", err)
		}
	})
	t.Run("size", func(t *testing.T) {
		l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 1024, Now: clk.Now,
			Retention: Retention{MaxBytes: 3000}})
		defer l.Close()
		for range 100 {
			mustAppend(t, l, batchOf("x", 2, nowMs))
		}
		before := l.Size()
		if _, err := l.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		// As Kafka's retention.bytes: the oldest segments go while what
		// remains without them is still at least the limit.
		if l.Size() < 3000 || l.Size() > 3000+1024 || l.Size() >= before {
			t.Fatalf("size %d (was %d), limit 3000", l.Size(), before)
		}
		if l.EndOffset() != 200 {
			t.Fatal("end moved")
		}
	})
	t.Run("floor", func(t *testing.T) {
		dir := t.TempDir()
		l := openT(t, dir, Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 1024, Now: clk.Now})
		for range 50 {
			mustAppend(t, l, batchOf("x", 2, nowMs))
		}
		l.SetDeleteFloor(40)
		if _, err := l.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		if s := l.StartOffset(); s > 40 || s == 0 {
			t.Fatalf("start %d after floor 40", s)
		}
		// Everything acknowledged: the active segment rolls and goes too.
		l.SetDeleteFloor(100)
		if _, err := l.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		if l.StartOffset() != 100 || l.EndOffset() != 100 || l.Size() != 0 {
			t.Fatalf("start %d end %d size %d", l.StartOffset(), l.EndOffset(), l.Size())
		}
		l.Close()
		l = openT(t, dir, Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 1024, Now: clk.Now})
		defer l.Close()
		if res := mustAppend(t, l, batchOf("y", 1, nowMs)); res.BaseOffset != 100 {
			t.Fatalf("append after emptying at %d", res.BaseOffset)
		}
	})
}

func TestLimitsAndInvalidBatches(t *testing.T) {
	l := openT(t, t.TempDir(), Options{MaxBatchBytes: 4096, MaxRecordBytes: 512})
	defer l.Close()
	big := record.Encode(record.Record{Value: make([]byte, 5000)})
	if _, err := l.Append(big); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("big batch: %v", err)
	}
	bigRec := record.Encode(record.Record{Value: make([]byte, 1000)})
	if _, err := l.Append(bigRec); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("big record: %v", err)
	}
	bad := batchOf("a", 2, 1)
	bad[len(bad)-1] ^= 1
	if _, err := l.Append(bad); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("bad crc: %v", err)
	}
	if _, err := l.Append(record.Encode()); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("empty batch: %v", err)
	}
	if _, err := l.Append([]byte("junk")); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("junk: %v", err)
	}
	if res := mustAppend(t, l, batchOf("ok", 1, 1)); res.BaseOffset != 0 {
		t.Fatalf("rejected batches took offsets: %d", res.BaseOffset)
	}
}

func TestWaitLongPoll(t *testing.T) {
	l := openT(t, t.TempDir(), Options{})
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on empty log: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- l.Wait(ctx, 0)
	}()
	mustAppend(t, l, batchOf("x", 1, 1))
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	// Wait returns at once when data is there.
	if err := l.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentBytes: 16 << 10})
	defer l.Close()
	const writers, per = 8, 40
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A tailing reader sees every record exactly once, in offset order.
	got := make(chan int, 1)
	go func() {
		off, n := int64(0), 0
		for n < writers*per {
			if err := l.Wait(ctx, off); err != nil {
				got <- -1
				return
			}
			res, err := l.Read(off, 1<<20)
			if err != nil {
				got <- -1
				return
			}
			record.Split(res.Data, func(h record.Header, b []byte) error {
				return record.Records(b, record.Limits{}, func(r record.Record) error {
					if r.Offset >= off {
						n++
					}
					return nil
				})
			})
			off = res.NextOffset
		}
		got <- n
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := l.Append(batchOf(fmt.Sprintf("w%d-%d", w, i), 1, 1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := <-got; n != writers*per {
		t.Fatalf("reader saw %d records", n)
	}
	if l.EndOffset() != writers*per {
		t.Fatalf("end %d", l.EndOffset())
	}
}

func TestOrphansAndStrayFilesOnOpen(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{SegmentBytes: 1024})
	for range 20 {
		mustAppend(t, l, batchOf("x", 2, 1))
	}
	l.Close()
	os.WriteFile(filepath.Join(dir, SegmentName(99999)+indexSuffix), []byte{1, 2}, 0o644)
	os.WriteFile(filepath.Join(dir, SegmentName(0)+indexSuffix+".tmp"), []byte{1}, 0o644)
	l = openT(t, dir, Options{SegmentBytes: 1024})
	defer l.Close()
	if len(l.Recovery().RemovedOrphans) != 2 {
		t.Fatalf("orphans removed: %v", l.Recovery().RemovedOrphans)
	}
	if n := len(readAll(t, l, 0)); n != 40 {
		t.Fatalf("read %d", n)
	}
}

func TestParseFsync(t *testing.T) {
	for in, want := range map[string]string{"always": "always", "": "always", "never": "never", "interval:10ms": "interval:10ms"} {
		f, err := ParseFsync(in)
		if err != nil || f.String() != want {
			t.Errorf("ParseFsync(%q) = %v, %v", in, f, err)
		}
	}
	for _, bad := range []string{"sometimes", "interval:", "interval:-1s", "interval:0s"} {
		if _, err := ParseFsync(bad); err == nil {
			t.Errorf("ParseFsync(%q) accepted", bad)
		}
	}
}

func TestAgeRetentionWithoutTimestamps(t *testing.T) {
	clk := newFakeClock()
	l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, SegmentBytes: 1024, Now: clk.Now,
		Retention: Retention{MaxAge: time.Hour}})
	defer l.Close()
	for range 30 {
		mustAppend(t, l, batchOf("no-ts", 2, -1)) // Kafka's "no timestamp"
	}
	if res, err := l.EnforceRetention(); err != nil || res.Segments != 0 {
		t.Fatalf("records without timestamps deleted as if from 1970: %+v %v", res, err)
	}
	clk.Advance(2 * time.Hour)
	if res, err := l.EnforceRetention(); err != nil || res.Segments == 0 {
		t.Fatalf("old segments kept: %+v %v", res, err)
	}
}

// TestAppendAsync: batches placed one after the other get consecutive
// offsets at once, become visible only when durable, and one wait covers
// what was placed before it under FsyncAlways.
func TestAppendAsync(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncAlways, FsyncNever} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: mode}})
			var waits []func() error
			for i := range 3 {
				res, wait, err := l.AppendAsync(batchOf(fmt.Sprint(i), 2, 1))
				if err != nil || res.BaseOffset != int64(2*i) || res.LastOffset != int64(2*i+1) {
					t.Fatalf("batch %d: %+v, %v", i, res, err)
				}
				waits = append(waits, wait)
			}
			if _, _, err := l.AppendAsync([]byte("not a batch")); err == nil {
				t.Fatal("a malformed batch was placed")
			}
			for i := len(waits) - 1; i >= 0; i-- {
				if err := waits[i](); err != nil {
					t.Fatal(err)
				}
			}
			if got := readAll(t, l, 0); len(got) != 6 || l.VisibleOffset() != 6 {
				t.Fatalf("read %d records, visible %d; want 6", len(got), l.VisibleOffset())
			}
		})
	}
}
