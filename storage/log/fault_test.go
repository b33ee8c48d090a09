package log

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/vfs"
)

func faultyLog(t *testing.T, mode FsyncMode) (*Log, *vfs.Faulty, string) {
	t.Helper()
	fs := vfs.NewFaulty(vfs.Default)
	dir := t.TempDir()
	return openT(t, dir, Options{FS: fs, Fsync: Fsync{Mode: mode}, SegmentBytes: 4096}), fs, dir
}

// checkReopen closes l, reopens dir on a healthy disk and checks that it holds
// exactly n records and Open cut nothing.
func checkReopen(t *testing.T, l *Log, dir string, n int) {
	t.Helper()
	l.Close()
	l2 := openT(t, dir, Options{SegmentBytes: 4096})
	defer l2.Close()
	if rep := l2.Recovery(); rep.CutBytes != 0 {
		t.Fatalf("reopen cut %d bytes: %s", rep.CutBytes, rep.CutReason)
	}
	if got := len(readAll(t, l2, 0)); got != n {
		t.Fatalf("reopen: %d records, want %d", got, n)
	}
}

func TestDiskFullOnWrite(t *testing.T) {
	l, fs, dir := faultyLog(t, FsyncAlways)
	mustAppend(t, l, batchOf("a", 3, 1))
	// The disk fills up part way through the next batch.
	fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: ".log", Err: vfs.ErrNoSpace, Keep: 20})
	_, err := l.Append(batchOf("b", 3, 1))
	if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if l.EndOffset() != 3 {
		t.Fatalf("end %d after failed append", l.EndOffset())
	}
	if got := len(readAll(t, l, 0)); got != 3 {
		t.Fatalf("read %d", got)
	}
	fs.Clear()
	if res := mustAppend(t, l, batchOf("c", 2, 1)); res.BaseOffset != 3 {
		t.Fatalf("append after space returns at %d", res.BaseOffset)
	}
	checkReopen(t, l, dir, 5)
}

func TestShortWrite(t *testing.T) {
	l, fs, dir := faultyLog(t, FsyncNever)
	mustAppend(t, l, batchOf("a", 1, 1))
	fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: ".log", Err: io.ErrShortWrite, Keep: 70, Count: 1})
	if _, err := l.Append(batchOf("b", 2, 1)); !errors.Is(err, ErrWrite) {
		t.Fatalf("short write: %v", err)
	}
	if res := mustAppend(t, l, batchOf("c", 2, 1)); res.BaseOffset != 1 {
		t.Fatalf("next append at %d", res.BaseOffset)
	}
	checkReopen(t, l, dir, 3)
}

func TestFsyncFailureCutsUnsyncedAppends(t *testing.T) {
	l, fs, dir := faultyLog(t, FsyncAlways)
	mustAppend(t, l, batchOf("a", 2, 1))
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: ".log", Err: syscall.EIO, Count: 1})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked int64
	var failed int
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := l.Append(batchOf("b", 1, 1))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.EIO) {
					t.Errorf("append error %v", err)
				}
				failed++
				return
			}
			acked++
			_ = res
		}()
	}
	wg.Wait()
	if failed == 0 {
		t.Fatal("no append saw the fsync failure")
	}
	if fs.Hits(vfs.OpSync) != 1 {
		t.Fatalf("sync faults hit %d times", fs.Hits(vfs.OpSync))
	}
	// Whatever was acknowledged is there, and the log goes on.
	want := 2 + acked
	if l.EndOffset() != want || l.VisibleOffset() != want {
		t.Fatalf("end %d visible %d, want %d", l.EndOffset(), l.VisibleOffset(), want)
	}
	mustAppend(t, l, batchOf("c", 1, 1))
	checkReopen(t, l, dir, int(want)+1)
}

func TestUndoFailureFailsLogUntilReopen(t *testing.T) {
	l, fs, dir := faultyLog(t, FsyncNever)
	mustAppend(t, l, batchOf("a", 2, 1))
	fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: ".log", Err: syscall.EIO, Keep: 30, Count: 1})
	fs.Add(vfs.Rule{Op: vfs.OpTruncate, PathContains: ".log", Err: syscall.EIO, Count: 1})
	if _, err := l.Append(batchOf("b", 1, 1)); !errors.Is(err, ErrWrite) && !errors.Is(err, ErrFailed) {
		t.Fatalf("append: %v", err)
	}
	if _, err := l.Append(batchOf("c", 1, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("append on failed log: %v", err)
	}
	if got := len(readAll(t, l, 0)); got != 2 {
		t.Fatalf("reads on a failed log: %d", got)
	}
	l.Close()
	l2 := openT(t, dir, Options{SegmentBytes: 4096})
	defer l2.Close()
	if rep := l2.Recovery(); rep.CutBytes != 30 || rep.CutAtOffset != 2 {
		t.Fatalf("reopen report %+v", rep)
	}
	if res := mustAppend(t, l2, batchOf("d", 1, 1)); res.BaseOffset != 2 {
		t.Fatalf("append after reopen at %d", res.BaseOffset)
	}
}

func TestRollFailure(t *testing.T) {
	l, fs, dir := faultyLog(t, FsyncAlways)
	n := 0
	for l.SegmentCount() == 1 {
		mustAppend(t, l, batchOf("a", 4, 1))
		n += 4
	}
	// The next roll cannot create its segment file.
	fs.Add(vfs.Rule{Op: vfs.OpOpen, PathContains: ".log", Err: vfs.ErrNoSpace})
	var err error
	for range 100 {
		if _, err = l.Append(batchOf("b", 4, 1)); err != nil {
			break
		}
		n += 4
	}
	if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append needing a roll on a full disk: %v", err)
	}
	fs.Clear()
	mustAppend(t, l, batchOf("c", 4, 1))
	n += 4
	checkReopen(t, l, dir, n)
}

func TestCloseReportsFailureAndSyncAfterClose(t *testing.T) {
	fs := vfs.NewFaulty(vfs.Default)
	l := openT(t, t.TempDir(), Options{FS: fs, Fsync: Fsync{Mode: FsyncInterval, Interval: time.Hour}})
	mustAppend(t, l, batchOf("a", 1, 1))
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: ".log", Err: syscall.EIO, Count: 1})
	if err := l.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("sync: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("close of a failed log: %v", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
}
