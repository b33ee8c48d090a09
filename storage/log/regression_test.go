package log

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

// ---------------------------------------------------------------------------
// hookFS: a file system whose Sync and WriteAt can be blocked or failed by the
// test, and which can model the kernel dropping dirty pages on a failed fsync.

type hookFS struct {
	vfs.FS
	mu sync.Mutex
	// syncHook runs before every Sync of a path; a non-nil error fails it.
	syncHook func(path string) error
	// writeHook runs before every WriteAt; a non-nil error fails it (no bytes).
	writeHook func(path string) error
	// dropOnFailedSync zero-fills the ranges written since the last good
	// fsync when an fsync fails (the kernel dropped those dirty pages).
	dropOnFailedSync bool
	dirty            map[string][][2]int64
}

func newHookFS() *hookFS { return &hookFS{FS: vfs.Default, dirty: map[string][][2]int64{}} }

func (h *hookFS) setSyncHook(f func(string) error) {
	h.mu.Lock()
	h.syncHook = f
	h.mu.Unlock()
}

func (h *hookFS) setWriteHook(f func(string) error) {
	h.mu.Lock()
	h.writeHook = f
	h.mu.Unlock()
}

func (h *hookFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := h.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &hookFile{File: f, fs: h}, nil
}

type hookFile struct {
	vfs.File
	fs *hookFS
}

func (f *hookFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	hook := f.fs.writeHook
	f.fs.mu.Unlock()
	if hook != nil {
		if err := hook(f.Name()); err != nil {
			return 0, err
		}
	}
	n, err := f.File.WriteAt(p, off)
	f.fs.mu.Lock()
	f.fs.dirty[f.Name()] = append(f.fs.dirty[f.Name()], [2]int64{off, off + int64(n)})
	f.fs.mu.Unlock()
	return n, err
}

func (f *hookFile) Sync() error {
	f.fs.mu.Lock()
	hook := f.fs.syncHook
	f.fs.mu.Unlock()
	var err error
	if hook != nil {
		err = hook(f.Name())
	}
	if err == nil {
		err = f.File.Sync()
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	ranges := f.fs.dirty[f.Name()]
	delete(f.fs.dirty, f.Name())
	if err != nil && f.fs.dropOnFailedSync {
		fi, serr := f.File.Stat()
		if serr == nil {
			for _, r := range ranges {
				from, to := r[0], min(r[1], fi.Size())
				if to > from {
					f.File.WriteAt(make([]byte, to-from), from)
				}
			}
		}
	}
	return err
}

// waitFor polls cond for at most 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fillUntilRollNext appends durable batches until appending next would roll
// the active segment.
func fillUntilRollNext(t *testing.T, l *Log, next []byte) int {
	t.Helper()
	n := 0
	for {
		l.mu.RLock()
		size := l.segments[len(l.segments)-1].size
		l.mu.RUnlock()
		if size > 0 && size+int64(len(next)) > l.opts.SegmentBytes {
			return n
		}
		mustAppend(t, l, batchOf("fill", 1, 1))
		n++
	}
}

func valueAt(t *testing.T, l *Log, off int64) (string, error) {
	t.Helper()
	res, err := l.Read(off, 1<<16)
	if err != nil {
		return "", err
	}
	var v string
	record.Split(res.Data, func(h record.Header, b []byte) error {
		return record.Records(b, record.Limits{}, func(r record.Record) error {
			if r.Offset == off {
				v = string(r.Value)
			}
			return nil
		})
	})
	return v, nil
}

// ---------------------------------------------------------------------------
// Bug 1: roll() leaves durablePos stale when nothing was pending (setDurable
// returns early because durable == next), so the first failed fsync in the new
// segment "cuts" to the old segment's size: the file is extended with zeros,
// the cut batch stays at position 0 and is served in place of the next one,
// and reopening cuts the acknowledged batch written after the zero gap.

func TestRegressionStaleDurablePosAfterRollCutsWrongBytes(t *testing.T) {
	fs := vfs.NewFaulty(vfs.Default)
	dir := t.TempDir()
	l := openT(t, dir, Options{FS: fs, SegmentBytes: 1024})
	x := batchOf("x", 1, 1)
	n := fillUntilRollNext(t, l, x)
	// The next append rolls; its own (first) fsync in the new segment fails.
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: SegmentName(l.EndOffset()) + ".log", Err: syscall.EIO, Count: 1})
	if _, err := l.Append(x); !errors.Is(err, ErrWrite) {
		t.Fatalf("append x: want ErrWrite, got %v", err)
	}
	fs.Clear()
	y, err := l.Append(batchOf("y", 1, 1))
	if err != nil {
		t.Fatalf("append y on a healthy disk after the failed fsync: %v", err)
	}
	if v, err := valueAt(t, l, y.BaseOffset); err != nil || v != "y-0" {
		t.Errorf("read at %d after ack of y: value %q err %v (want y-0)", y.BaseOffset, v, err)
	}
	l.Close()
	l2 := openT(t, dir, Options{SegmentBytes: 1024})
	defer l2.Close()
	if got := len(readAll(t, l2, 0)); got != n+1 {
		t.Errorf("after reopen %d records, want %d (acknowledged y lost); recovery %+v", got, n+1, l2.Recovery())
	}
}

// Same root cause when the segment rolled by age (old size small, so no
// wedge): the next acknowledged append lands after a zero gap, a read of its
// offset serves the cut batch, and reopening cuts the acknowledged one.
func TestRegressionStaleDurablePosAfterAgeRoll(t *testing.T) {
	fs := vfs.NewFaulty(vfs.Default)
	dir := t.TempDir()
	clock := newFakeClock()
	opts := Options{FS: fs, SegmentBytes: 1 << 20, SegmentAge: time.Hour, Now: clock.Now}
	l := openT(t, dir, opts)
	for range 3 {
		mustAppend(t, l, batchOf("old", 1, 1))
	}
	clock.Advance(2 * time.Hour) // the next append rolls by age
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: SegmentName(l.EndOffset()) + ".log", Err: syscall.EIO, Count: 1})
	if _, err := l.Append(batchOf("x", 1, 1)); !errors.Is(err, ErrWrite) {
		t.Fatalf("append x: want ErrWrite, got %v", err)
	}
	fs.Clear()
	y, err := l.Append(batchOf("y", 1, 1))
	if err != nil {
		t.Fatalf("append y: %v", err)
	}
	if v, err := valueAt(t, l, y.BaseOffset); err != nil || v != "y-0" {
		t.Errorf("read at %d after ack of y: value %q err %v (want y-0)", y.BaseOffset, v, err)
	}
	l.Close()
	l2 := openT(t, dir, Options{SegmentBytes: 1 << 20})
	defer l2.Close()
	recs := readAll(t, l2, 0)
	if len(recs) != 4 || string(recs[3].Value) != "y-0" {
		var vals []string
		for _, r := range recs {
			vals = append(vals, string(r.Value))
		}
		t.Errorf("after reopen: %v, want [old-0 old-0 old-0 y-0]; recovery %+v", vals, l2.Recovery())
	}
}

// Same root cause, reader side: with the stale durablePos, OffsetForTime
// scans the new active segment past the durable end and reports an offset
// that is neither durable nor visible (and that a failed fsync then reuses).
func TestRegressionStaleDurablePosOffsetForTimeSeesUnsynced(t *testing.T) {
	hfs := newHookFS()
	l := openT(t, t.TempDir(), Options{FS: hfs, SegmentBytes: 1024})
	defer l.Close()
	x := batchOf("x", 1, 5000)
	fillUntilRollNext(t, l, x)
	newSeg := SegmentName(l.EndOffset()) + ".log"
	entered, release := make(chan struct{}), make(chan error)
	var once sync.Once
	hfs.setSyncHook(func(p string) error {
		if !strings.HasSuffix(p, newSeg) {
			return nil
		}
		var err error
		once.Do(func() { close(entered); err = <-release })
		return err
	})
	done := make(chan error, 1)
	go func() { _, err := l.Append(x); done <- err }()
	<-entered // x is written to the new segment, its fsync has not returned
	off, ok, err := l.OffsetForTime(5000)
	vis := l.VisibleOffset()
	release <- syscall.EIO // the fsync fails: x is cut
	if aerr := <-done; !errors.Is(aerr, ErrWrite) {
		t.Fatalf("append x: %v", aerr)
	}
	if err == nil && ok && off >= vis {
		t.Errorf("OffsetForTime returned offset %d (visible %d) of an unsynced batch that was then cut", off, vis)
	}
	if err != nil {
		t.Errorf("OffsetForTime: %v", err)
	}
}

// ---------------------------------------------------------------------------
// Bug 2: roll() treats a failed fsync as a plain error: the batches it just
// wrote stay, and the flusher's next (successful) fsync acknowledges them,
// although the kernel may have dropped their pages at the failed fsync.

func TestRegressionRollFsyncFailureAcksLostData(t *testing.T) {
	hfs := newHookFS()
	hfs.dropOnFailedSync = true
	l := openT(t, t.TempDir(), Options{FS: hfs, SegmentBytes: 1024})
	defer l.Close()
	big := batchOf(strings.Repeat("b", 600), 1, 1)
	fillUntilRollNext(t, l, big)

	l.syncMu.Lock() // the flusher has not started its round yet
	type result struct {
		res AppendResult
		err error
	}
	aDone := make(chan result, 1)
	end := l.EndOffset()
	go func() { r, err := l.Append(batchOf("a", 1, 1)); aDone <- result{r, err} }()
	waitFor(t, "a pending", func() bool { return l.EndOffset() > end })

	var once sync.Once
	hfs.setSyncHook(func(p string) error {
		var err error
		once.Do(func() { err = syscall.EIO }) // the next fsync fails: the roll's or the flusher's
		return err
	})
	bigDone := make(chan error, 1)
	go func() { _, err := l.Append(big); bigDone <- err }()
	l.syncMu.Unlock()
	if err := <-bigDone; err != nil && !errors.Is(err, ErrWrite) {
		t.Fatalf("append big (roll): %v", err)
	}
	a := <-aDone
	if a.err == nil {
		_, rerr := l.Read(a.res.BaseOffset, 1<<16)
		t.Errorf("append a acknowledged after the fsync covering it failed; read of it now: %v", rerr)
	}
}

// ---------------------------------------------------------------------------
// Bug 3: syncOnce captures (target, pos) before its fsync and applies them
// afterwards without checking that no cut happened meanwhile. A cut by
// roll()'s writePending during that fsync leaves durable/visible above next:
// visible offsets are unreadable and get reused, and later appends are
// acknowledged without any fsync.

func TestRegressionFlusherRaisesDurableAboveCut(t *testing.T) {
	hfs := newHookFS()
	l := openT(t, t.TempDir(), Options{FS: hfs, SegmentBytes: 1024})
	defer l.Close()
	for range 3 {
		mustAppend(t, l, batchOf("p", 1, 1))
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	hfs.setSyncHook(func(string) error {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return nil
	})
	errs := make(chan error, 2)
	go func() { _, err := l.Append(batchOf("a", 1, 1)); errs <- err }()
	<-entered // the flusher wrote a and is inside its fsync, mu released
	end := l.EndOffset()
	go func() { _, err := l.Append(batchOf("c", 1, 1)); errs <- err }()
	waitFor(t, "c pending", func() bool { return l.EndOffset() > end })

	// A roll whose write of the pending batch fails: syncFailed cuts.
	var wonce sync.Once
	hfs.setWriteHook(func(string) error {
		var err error
		wonce.Do(func() { err = syscall.EIO })
		return err
	})
	big := batchOf(strings.Repeat("b", 900), 1, 1)
	// The roll waits for the flusher's round (syncMu), so no cut can happen
	// under it: a is acknowledged, c is cut by whichever write fails.
	bigDone := make(chan error, 1)
	go func() { _, err := l.Append(big); bigDone <- err }()
	close(release)
	var nerr int
	for range 2 {
		if err := <-errs; err != nil {
			if !errors.Is(err, ErrWrite) {
				t.Errorf("cut appender: %v", err)
			}
			nerr++
		}
	}
	if nerr != 1 {
		t.Errorf("%d of a and c failed, want exactly c", nerr)
	}
	if err := <-bigDone; err != nil && !errors.Is(err, ErrWrite) {
		t.Errorf("append big: %v", err)
	}
	l.syncMu.Lock() // the flusher's round is over
	l.syncMu.Unlock()
	if vis, next := l.VisibleOffset(), l.EndOffset(); vis > next {
		_, rerr := l.Read(next, 1<<16)
		t.Errorf("visible %d above end %d after a cut; read of visible offset %d: %v", vis, next, next, rerr)
	}
}

// ---------------------------------------------------------------------------
// Bug 4: relative offsets are uint32 but nothing rolls a segment before
// next-base exceeds it. Compressed batches carry their own record count
// (validate trusts it), so a few of them overflow the offset and time
// indexes, and OffsetForTime skips records.

func hugeCompressedBatch(ts int64) []byte {
	b := batchOf("z", 1, ts)
	be := binary.BigEndian
	be.PutUint16(b[21:], uint16(record.CompressionGzip))
	be.PutUint32(b[23:], math.MaxInt32-1) // lastOffsetDelta
	be.PutUint32(b[57:], math.MaxInt32)   // recordCount
	be.PutUint32(b[17:], record.Checksum(b))
	return b
}

func TestRegressionRelativeOffsetOverflow(t *testing.T) {
	l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, IndexIntervalBytes: 1})
	defer l.Close()
	var bases []int64
	for k := range 5 {
		r := mustAppend(t, l, hugeCompressedBatch(int64(1000+k)))
		bases = append(bases, r.BaseOffset)
	}
	off, ok, err := l.OffsetForTime(1002)
	if err != nil || !ok || off != bases[2] {
		t.Errorf("OffsetForTime(1002) = %d, %v, %v; want %d (batch 2)", off, ok, err, bases[2])
	}
}

// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------
// Bug 6: a roll whose SyncDir fails removes the new empty segment file; when
// that removal fails too (or is lost in a crash: the folder was never
// synced), the file stays. Appends that still fit go on into the old segment
// at offsets >= the empty file's base; reopening takes the empty file as the
// active segment, flags the old one "damaged", hides those acknowledged
// records and hands their offsets out again.

// createThenFailSyncDir fails the first SyncDir after name was created.
type createThenFailSyncDir struct {
	*vfs.Faulty
	name    string
	created atomic.Bool
	fired   atomic.Bool
}

func (f *createThenFailSyncDir) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.Faulty.OpenFile(name, flag, perm)
	if err == nil && flag&os.O_CREATE != 0 && f.name != "" && strings.HasSuffix(name, f.name) {
		f.created.Store(true)
	}
	return file, err
}

func (f *createThenFailSyncDir) SyncDir(dir string) error {
	if f.created.Load() && f.fired.CompareAndSwap(false, true) {
		return syscall.EIO
	}
	return f.Faulty.SyncDir(dir)
}

func TestRegressionLeftoverEmptySegmentAfterFailedRoll(t *testing.T) {
	fs := &createThenFailSyncDir{Faulty: vfs.NewFaulty(vfs.Default)}
	dir := t.TempDir()
	l := openT(t, dir, Options{FS: fs, SegmentBytes: 1024})
	big := batchOf(strings.Repeat("b", 300), 1, 1)
	n := fillUntilRollNext(t, l, big)
	ns := SegmentName(l.EndOffset()) + ".log"
	fs.name = ns
	fs.Add(vfs.Rule{Op: vfs.OpRemove, PathContains: ns, Err: syscall.EIO, Count: 1})
	if _, err := l.Append(big); !errors.Is(err, ErrWrite) {
		t.Fatalf("append big: %v", err)
	}
	// The empty file could not be removed: rather than append beside it,
	// the log refuses appends until it is reopened.
	if _, err := l.Append(batchOf("s", 1, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after the failed removal: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("close: %v", err)
	}
	l2 := openT(t, dir, Options{SegmentBytes: 1024})
	defer l2.Close()
	if end, vis := l2.EndOffset(), l2.VisibleOffset(); end != int64(n) || vis != int64(n) {
		t.Errorf("after reopen end %d visible %d, want %d; recovery %+v", end, vis, n, l2.Recovery())
	}
	if r := mustAppend(t, l2, big); r.BaseOffset != int64(n) {
		t.Errorf("append after reopen at %d, want %d", r.BaseOffset, n)
	}
	if got := len(readAll(t, l2, 0)); got != n+1 {
		t.Errorf("read %d records, want %d", got, n+1)
	}
}
