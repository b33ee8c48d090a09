package vfs

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Op names a file-system operation that Faulty can fail.
type Op int

// The operations Faulty can fail.
const (
	OpOpen Op = iota
	OpWrite
	OpRead
	OpSync
	OpTruncate
	OpRemove
	OpRename
	OpMkdir
	OpSyncDir
)

var opNames = [...]string{"open", "write", "read", "sync", "truncate", "remove", "rename", "mkdir", "syncdir"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// ErrNoSpace is the error a full disk gives (ENOSPC), as the kernel reports it.
var ErrNoSpace error = syscall.ENOSPC

// Rule is one fault: operations of kind Op on paths containing PathContains
// fail with Err. For writes, the first Keep bytes are written before the error
// (a short write). Count is how many operations fail; 0 means every one until
// the rule is removed.
type Rule struct {
	Op           Op
	PathContains string
	Err          error
	Keep         int
	Count        int
}

// Faulty wraps a file system and fails operations that match its rules. It is
// safe for concurrent use; rules may change while files are open.
type Faulty struct {
	FS FS

	mu    sync.Mutex
	rules []*Rule
	hits  map[Op]int
}

// NewFaulty wraps fs with no rules set.
func NewFaulty(fs FS) *Faulty { return &Faulty{FS: fs, hits: make(map[Op]int)} }

// Add installs a rule.
func (f *Faulty) Add(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &r)
}

// Clear removes every rule: the disk is healthy again.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Hits reports how many operations of kind op were failed so far.
func (f *Faulty) Hits(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[op]
}

// check returns the matching rule's error and keep count, consuming one use.
func (f *Faulty) check(op Op, path string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.Op != op || !strings.Contains(path, r.PathContains) {
			continue
		}
		if r.Count > 0 {
			r.Count--
			if r.Count == 0 {
				f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
			}
		}
		f.hits[op]++
		return r.Keep, &os.PathError{Op: "injected " + op.String(), Path: path, Err: r.Err}
	}
	return 0, nil
}

// OpenFile implements FS.
func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if _, err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: file, fs: f}, nil
}

// Remove implements FS.
func (f *Faulty) Remove(name string) error {
	if _, err := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.FS.Remove(name)
}

// RemoveAll implements FS.
func (f *Faulty) RemoveAll(name string) error {
	if _, err := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.FS.RemoveAll(name)
}

// Rename implements FS.
func (f *Faulty) Rename(oldname, newname string) error {
	if _, err := f.check(OpRename, newname); err != nil {
		return err
	}
	return f.FS.Rename(oldname, newname)
}

// MkdirAll implements FS.
func (f *Faulty) MkdirAll(dir string, perm os.FileMode) error {
	if _, err := f.check(OpMkdir, dir); err != nil {
		return err
	}
	return f.FS.MkdirAll(dir, perm)
}

// ReadDir implements FS.
func (f *Faulty) ReadDir(dir string) ([]os.DirEntry, error) { return f.FS.ReadDir(dir) }

// Stat implements FS.
func (f *Faulty) Stat(name string) (os.FileInfo, error) { return f.FS.Stat(name) }

// Lock implements FS.
func (f *Faulty) Lock(name string) (io.Closer, error) {
	if _, err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	return f.FS.Lock(name)
}

// SyncDir implements FS.
func (f *Faulty) SyncDir(dir string) error {
	if _, err := f.check(OpSyncDir, dir); err != nil {
		return err
	}
	return f.FS.SyncDir(dir)
}

type faultyFile struct {
	File
	fs *Faulty
}

func (f *faultyFile) Write(p []byte) (int, error) {
	return f.write(p, f.File.Write)
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	return f.write(p, func(b []byte) (int, error) { return f.File.WriteAt(b, off) })
}

// write applies the write rules: a matching rule lets its Keep bytes through,
// then fails.
func (f *faultyFile) write(p []byte, do func([]byte) (int, error)) (int, error) {
	keep, err := f.fs.check(OpWrite, f.Name())
	if err == nil {
		return do(p)
	}
	keep = min(keep, len(p))
	n := 0
	if keep > 0 {
		n, _ = do(p[:keep])
	}
	return n, err
}

func (f *faultyFile) ReadAt(p []byte, off int64) (int, error) {
	if _, err := f.fs.check(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *faultyFile) Sync() error {
	if _, err := f.fs.check(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	if _, err := f.fs.check(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}
