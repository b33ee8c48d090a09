package log

import (
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/vfs"
)

// fsyncs records what Options.OnFsync is told.
type fsyncs struct {
	mu   sync.Mutex
	ok   int
	errs []error
}

func (f *fsyncs) observe(took time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if took < 0 {
		panic("negative fsync time")
	}
	if err != nil {
		f.errs = append(f.errs, err)
	} else {
		f.ok++
	}
}

func (f *fsyncs) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ok, len(f.errs)
}

func TestOnFsyncSeesEveryDataFsync(t *testing.T) {
	var seen fsyncs
	fs := vfs.NewFaulty(vfs.Default)
	l := openT(t, t.TempDir(), Options{FS: fs, OnFsync: seen.observe})
	mustAppend(t, l, batchOf("a", 1, 1)) // FsyncAlways: answered after an fsync
	if ok, bad := seen.counts(); ok < 1 || bad != 0 {
		t.Fatalf("after an append: %d fsyncs, %d failed; want at least 1, 0", ok, bad)
	}
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: ".log", Err: syscall.EIO, Count: 1})
	if _, err := l.Append(batchOf("b", 1, 2)); err == nil {
		t.Fatal("append with a failing fsync succeeded")
	}
	seen.mu.Lock()
	if len(seen.errs) == 0 || !errors.Is(seen.errs[0], syscall.EIO) {
		t.Errorf("failed fsync reported as %v", seen.errs)
	}
	seen.mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOnFsyncUnderFsyncNever(t *testing.T) {
	var seen fsyncs
	l := openT(t, t.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}, OnFsync: seen.observe})
	mustAppend(t, l, batchOf("a", 1, 1))
	if ok, _ := seen.counts(); ok != 0 {
		t.Errorf("%d fsyncs for an append under never", ok)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := seen.counts(); ok != 1 {
		t.Errorf("%d fsyncs after Sync, want 1", ok)
	}
	l.Close()
}
