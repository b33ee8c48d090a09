package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := WriteFileAtomic(Default, name, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(Default, name, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(Default, name); err != nil || string(b) != "two" {
		t.Fatalf("read %q %v", b, err)
	}
	// A failed rewrite leaves the old content and no temporary file.
	fs := NewFaulty(Default)
	fs.Add(Rule{Op: OpSync, Err: syscall.EIO, Count: 1})
	if err := WriteFileAtomic(fs, name, []byte("three")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("err %v", err)
	}
	if b, _ := ReadFile(Default, name); string(b) != "two" {
		t.Fatalf("content %q after failed rewrite", b)
	}
	if _, err := os.Stat(name + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestFaultyRules(t *testing.T) {
	dir := t.TempDir()
	fs := NewFaulty(Default)
	f, err := fs.OpenFile(filepath.Join(dir, "a.log"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A short write: 3 bytes reach the file, then ENOSPC, twice.
	fs.Add(Rule{Op: OpWrite, PathContains: ".log", Err: ErrNoSpace, Keep: 3, Count: 2})
	for range 2 {
		n, err := f.Write([]byte("abcdef"))
		if n != 3 || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write = %d, %v", n, err)
		}
	}
	if n, err := f.Write([]byte("xy")); n != 2 || err != nil {
		t.Fatalf("rule should be used up: %d %v", n, err)
	}
	if fi, _ := f.Stat(); fi.Size() != 8 {
		t.Fatalf("file size %d, want 8", fi.Size())
	}
	if fs.Hits(OpWrite) != 2 {
		t.Fatalf("hits %d", fs.Hits(OpWrite))
	}
	// Rules match by path; Clear removes them.
	fs.Add(Rule{Op: OpSync, PathContains: ".index", Err: syscall.EIO})
	if err := f.Sync(); err != nil {
		t.Fatalf("sync of another path failed: %v", err)
	}
	fs.Add(Rule{Op: OpSync, Err: syscall.EIO})
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v", err)
	}
	fs.Clear()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.OpenFile(filepath.Join(dir, "missing"), os.O_RDONLY, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
}

func TestLock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	l, err := Default.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Default.Lock(name); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	l.Close()
	l2, err := Default.Lock(name)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Close()
}
