package meta

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/vfs"
)

// faultyStore opens a store on a Faulty file system. Rules match paths by
// substring, so they use full paths under dir (a test's temp folder carries
// the test's name, which may contain "checkpoint").
func faultyStore(t *testing.T, opts Options) (*Store, *vfs.Faulty, string) {
	t.Helper()
	dir := t.TempDir()
	fs := vfs.NewFaulty(vfs.Default)
	opts.FS = fs
	return openStore(t, dir, opts), fs, dir
}

func TestDiskFullOnApply(t *testing.T) {
	for _, keep := range []int{0, 30} { // nothing written, and a short write
		s, fs, dir := faultyStore(t, Options{})
		mustApply(t, s, Written, func(b *Batch) { b.Put("pos/a", []byte("1")) })
		fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: filepath.Join(dir, changesDir), Err: vfs.ErrNoSpace, Keep: keep, Count: 1})
		var b Batch
		b.Put("pos/a", []byte("2"))
		b.Put("pos/b", []byte("2"))
		err := s.Apply(&b, Written)
		if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, log.ErrWrite) {
			t.Fatalf("apply on a full disk: %v", err)
		}
		checkSameState(t, dump(s), []kv{{"pos/a", "1"}})

		// The disk has room again (the rule was used up).
		mustApply(t, s, Synced, func(b *Batch) { b.Put("pos/c", []byte("3")) })
		want := []kv{{"pos/a", "1"}, {"pos/c", "3"}}
		checkSameState(t, dump(s), want)
		s.Close()
		checkSameState(t, dump(openStore(t, dir, Options{})), want)
	}
}

func TestFailedFsyncOnSyncedApply(t *testing.T) {
	s, fs, dir := faultyStore(t, Options{})
	mustApply(t, s, Synced, func(b *Batch) { b.Put("topic/a", []byte("1")) })
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: filepath.Join(dir, changesDir), Err: syscall.EIO})
	var b Batch
	b.Put("topic/b", []byte("1"))
	if err := s.Apply(&b, Synced); !errors.Is(err, syscall.EIO) {
		t.Fatalf("synced apply with failing fsync: %v", err)
	}
	// The change log refuses writes until reopened: nothing more is confirmed.
	if err := s.Apply(&b, Written); !errors.Is(err, log.ErrFailed) {
		t.Fatalf("apply after a failed fsync: %v", err)
	}
	fs.Clear()
	s.Close()
	s = openStore(t, dir, Options{})
	if v, ok := s.Get("topic/a"); !ok || string(v) != "1" {
		t.Fatalf("topic/a after reopen: %q, %v", v, ok)
	}
	mustApply(t, s, Synced, func(b *Batch) { b.Put("topic/c", []byte("1")) })
}

func TestFailedCheckpointLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule vfs.Rule
	}{
		{"disk full", vfs.Rule{Op: vfs.OpWrite, PathContains: checkpointFile + ".tmp", Err: vfs.ErrNoSpace, Keep: 50}},
		{"create fails", vfs.Rule{Op: vfs.OpOpen, PathContains: checkpointFile + ".tmp", Err: syscall.EACCES}},
		{"fsync fails", vfs.Rule{Op: vfs.OpSync, PathContains: checkpointFile + ".tmp", Err: syscall.EIO}},
		{"rename fails", vfs.Rule{Op: vfs.OpRename, PathContains: checkpointFile, Err: syscall.EIO}},
		{"change log fsync fails", vfs.Rule{Op: vfs.OpSync, PathContains: changesDir, Err: syscall.EIO}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := tc.rule
			s, fs, dir := faultyStore(t, Options{CheckpointBytes: -1, SegmentBytes: 1 << 10})
			m := model{}
			put := func(k, v string) {
				var b Batch
				b.Put(k, []byte(v))
				b.Put(k+"/copy", []byte(v))
				if err := s.Apply(&b, Written); err != nil {
					t.Fatal(err)
				}
				m.apply(&b)
			}
			for i := range 20 {
				put(key("a/%d", i), "first")
			}
			if err := s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			first := s.log.StartOffset()
			for i := range 20 {
				put(key("a/%d", i), "second")
				put(key("b/%d", i), "second")
			}
			rule.PathContains = filepath.Join(dir, rule.PathContains)
			fs.Add(rule)
			if err := s.Checkpoint(); err == nil {
				t.Fatal("checkpoint succeeded despite the fault")
			}
			if s.log.StartOffset() != first {
				t.Fatalf("failed checkpoint dropped change log: start %d, was %d", s.log.StartOffset(), first)
			}
			fs.Clear()
			checkSameState(t, dump(s), m.dump())
			s.Close()
			s = openStore(t, dir, Options{})
			checkSameState(t, dump(s), m.dump())
			if rec := s.Recovery(); rec.CheckpointOffset != first {
				t.Fatalf("recovery %+v: want the first checkpoint (offset %d) in use", rec, first)
			}
		})
	}
}

// A dir fsync failing after the rename leaves the new checkpoint in place but
// unconfirmed: the change log behind it is kept, and either one loads.
func TestCheckpointDirSyncFails(t *testing.T) {
	s, fs, dir := faultyStore(t, Options{CheckpointBytes: -1})
	m := model{}
	for i := range 30 {
		var b Batch
		b.Put(key("k/%d", i), []byte("v"))
		if err := s.Apply(&b, Written); err != nil {
			t.Fatal(err)
		}
		m.apply(&b)
	}
	fs.Add(vfs.Rule{Op: vfs.OpSyncDir, PathContains: dir, Err: syscall.EIO, Count: 1})
	if err := s.Checkpoint(); err == nil {
		t.Fatal("checkpoint succeeded despite a failing dir fsync")
	}
	if s.log.StartOffset() != 0 {
		t.Fatal("change log dropped after an unconfirmed checkpoint")
	}
	s.Close()
	checkSameState(t, dump(openStore(t, dir, Options{})), m.dump())
}

func TestAutomaticCheckpointFailureIsRetried(t *testing.T) {
	s, fs, dir := faultyStore(t, Options{CheckpointBytes: 8 << 10})
	results := make(chan error, 100)
	s.onAutoCheckpoint = func(err error) { results <- err }
	fs.Add(vfs.Rule{Op: vfs.OpWrite, PathContains: filepath.Join(dir, checkpointFile), Err: vfs.ErrNoSpace, Count: 1})
	m := model{}
	var got []error
	for i := 0; len(got) < 2; i++ {
		if i > 5000 {
			t.Fatalf("automatic checkpoints so far: %v", got)
		}
		var b Batch
		b.Put(key("k/%03d", i%300), make([]byte, 64))
		if err := s.Apply(&b, Written); err != nil {
			t.Fatal(err)
		}
		m.apply(&b)
		select {
		case err := <-results:
			got = append(got, err)
		default:
		}
	}
	if got[0] == nil || !errors.Is(got[0], syscall.ENOSPC) || got[1] != nil {
		t.Fatalf("automatic checkpoints: %v; want a failure, then a success", got)
	}
	s.Close()
	checkSameState(t, dump(openStore(t, dir, Options{})), m.dump())
}
