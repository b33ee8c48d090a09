package meta

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
)

// Durability says when Apply returns; see the package doc.
type Durability int

const (
	// Written: Apply returns after the change log's write. Survives kill -9;
	// on disk with the next group commit, within Options.SyncInterval.
	Written Durability = iota
	// Synced: Apply returns after an fsync covers the change.
	Synced
)

// String names the durability: "written" or "synced".
func (d Durability) String() string {
	switch d {
	case Written:
		return "written"
	case Synced:
		return "synced"
	}
	return fmt.Sprintf("durability(%d)", int(d))
}

const (
	changesDir     = "changes"
	checkpointFile = "checkpoint"
	// replayReadBytes is how much change log Open reads at a time.
	replayReadBytes = 4 << 20
	// btreeDegree suits string keys: nodes of up to 63 entries.
	btreeDegree = 32
)

// entry is one key-value pair of the map. value is never modified once
// stored: a Put replaces the entry.
type entry struct {
	key   string
	value []byte
}

func entryLess(a, b entry) bool { return a.key < b.key }

// Store is the metadata store: an ordered key-value map in memory, made
// durable by a change log and checkpoints. It is safe for concurrent use.
//
// The map is a B-tree (github.com/google/btree), not a Go map with sorted
// keys: prefix scans come out in order without sorting, inserting a new key
// is O(log n) where a sorted slice would move n keys (acks create and delete
// keys all the time), and its O(1) copy-on-write Clone lets checkpoints and
// scans read a consistent snapshot while Apply goes on.
//
// Lock order: ckptMu, then writeMu, then mu. writeMu orders appends to the
// change log and their application to the map, so the map always equals the
// log replayed up to its end. mu guards the map alone and is held only for
// in-memory work, so readers never wait for a disk write.
type Store struct {
	dir  string
	opts Options
	log  *log.Log

	writeMu  sync.Mutex
	closed   bool
	appended int64 // change-log bytes written since Open, replay included
	// ckptMark is appended as of the last checkpoint's capture, retryMark
	// as of the last failed automatic one: the next automatic checkpoint
	// waits for CheckpointBytes past both.
	ckptMark, retryMark int64

	mu   sync.RWMutex
	tree *btree.BTreeG[entry]

	ckptMu  sync.Mutex
	covered int64 // offset the checkpoint on disk covers

	// builders reuses record builders across Apply calls.
	builders sync.Pool

	ckptReq  chan struct{}
	stop     chan struct{}
	stopped  chan struct{}
	recovery Recovery

	// onAutoCheckpoint, when set (by tests, before the first Apply), is
	// called after each automatic checkpoint attempt.
	onAutoCheckpoint func(error)
}

// Recovery reports what Open loaded.
type Recovery struct {
	// CheckpointOffset is the change-log offset the loaded checkpoint
	// covers; 0 when there was none.
	CheckpointOffset int64
	// CheckpointEntries is the number of entries the checkpoint held.
	CheckpointEntries int
	// ReplayedBatches and ReplayedBytes measure the change log replayed
	// after the checkpoint.
	ReplayedBatches int
	ReplayedBytes   int64
	// ChangeLog is the change log's own recovery report (a torn tail cut,
	// indexes rebuilt).
	ChangeLog log.Recovery
}

// Open opens the store in dir, creating it when missing: it loads the latest
// checkpoint and replays the change log after it.
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("meta options: %w", err)
	}
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open meta %s: %w", dir, err)
	}
	s := &Store{
		dir:     dir,
		opts:    opts,
		tree:    btree.NewG(btreeDegree, entryLess),
		ckptReq: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	covered, n, err := s.loadCheckpoint()
	if err != nil {
		return nil, err
	}
	s.covered = covered
	s.recovery.CheckpointOffset, s.recovery.CheckpointEntries = covered, n

	l, err := log.Open(filepath.Join(dir, changesDir), log.Options{
		FS:             opts.FS,
		Fsync:          log.Fsync{Mode: log.FsyncInterval, Interval: opts.SyncInterval},
		SegmentBytes:   opts.SegmentBytes,
		MaxBatchBytes:  opts.MaxBatchBytes,
		MaxRecordBytes: opts.MaxBatchBytes,
		Logger:         opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open meta change log: %w", err)
	}
	s.log = l
	s.recovery.ChangeLog = l.Recovery()
	if err := s.replay(covered); err != nil {
		l.Close()
		return nil, err
	}
	s.logRecovery()
	go s.checkpointLoop()
	return s, nil
}

func (s *Store) logRecovery() {
	r := s.recovery
	lr := r.ChangeLog
	if lr.CutSegment >= 0 {
		s.opts.Logger.Warn("meta change log: torn tail cut",
			"dir", s.dir, "from_offset", lr.CutAtOffset, "bytes", lr.CutBytes, "reason", lr.CutReason)
	}
	if len(lr.RebuiltIndexes) > 0 || len(lr.DamagedSegments) > 0 || len(lr.RemovedOrphans) > 0 {
		s.opts.Logger.Warn("meta change log: repaired",
			"dir", s.dir, "rebuilt_indexes", lr.RebuiltIndexes, "damaged_segments", lr.DamagedSegments,
			"removed_orphans", lr.RemovedOrphans)
	}
	s.opts.Logger.Info("meta store opened", "dir", s.dir,
		"checkpoint_offset", r.CheckpointOffset, "checkpoint_entries", r.CheckpointEntries,
		"replayed_batches", r.ReplayedBatches, "replayed_bytes", r.ReplayedBytes,
		"change_log_segments", lr.Segments, "keys", s.Len())
}

// replay applies the change log from offset covered to its end.
func (s *Store) replay(covered int64) error {
	start, end := s.log.StartOffset(), s.log.EndOffset()
	if start > covered {
		return fmt.Errorf("%w: change log starts at offset %d, after the checkpoint's %d: changes in between are lost",
			ErrCorrupt, start, covered)
	}
	if end < covered {
		return fmt.Errorf("%w: change log ends at offset %d, before the checkpoint's %d: the change log was damaged or replaced",
			ErrCorrupt, end, covered)
	}
	var ops []op
	for off := covered; off < end; {
		res, err := s.log.Read(off, replayReadBytes)
		if err != nil {
			return fmt.Errorf("replay meta change log at offset %d: %w", off, err)
		}
		if len(res.Data) == 0 {
			return fmt.Errorf("%w: change log has no batch at offset %d (ends at %d)", ErrCorrupt, off, end)
		}
		err = record.Split(res.Data, func(h record.Header, batch []byte) error {
			if h.BaseOffset != off {
				return fmt.Errorf("%w: change log batch at offset %d, want %d", ErrCorrupt, h.BaseOffset, off)
			}
			ops = ops[:0]
			if err := record.Records(batch, record.Limits{}, func(r record.Record) error {
				o, err := decodeOp(r)
				ops = append(ops, o)
				return err
			}); err != nil {
				return fmt.Errorf("%w: change log batch at offset %d: %w", ErrCorrupt, off, err)
			}
			s.applyOps(ops)
			clear(ops)
			off = h.NextOffset()
			s.appended += int64(len(batch))
			s.recovery.ReplayedBatches++
			s.recovery.ReplayedBytes += int64(len(batch))
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay meta change log: %w", err)
		}
	}
	return nil
}

// Get returns a copy of key's value.
func (s *Store) Get(key string) ([]byte, bool) {
	s.mu.RLock()
	e, ok := s.tree.Get(entry{key: key})
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	v := make([]byte, len(e.value))
	copy(v, e.value)
	return v, true
}

// Len is the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Len()
}

// Scan calls fn for each key that starts with prefix, in ascending key order,
// until fn returns false. It sees the map as of its start (a copy-on-write
// snapshot), so fn may call any method of the store, Apply included, and
// sees each batch whole or not at all. The value passed to fn must not be
// modified; the store never changes it, so fn may keep it.
func (s *Store) Scan(prefix string, fn func(key string, value []byte) bool) {
	// Clone is O(1); it makes the next writes copy the nodes they touch.
	s.mu.Lock()
	snap := s.tree.Clone()
	s.mu.Unlock()
	snap.AscendGreaterOrEqual(entry{key: prefix}, func(e entry) bool {
		if !strings.HasPrefix(e.key, prefix) {
			return false
		}
		return fn(e.key, e.value)
	})
}

// Apply writes the batch to the change log as one record batch and applies
// it to the map: all of it or, after an error or a crash, none (but see the
// package doc for a failed fsync under Synced). An empty batch is a no-op.
// d says when Apply returns.
func (s *Store) Apply(b *Batch, d Durability) error {
	if d != Written && d != Synced {
		return fmt.Errorf("meta apply: unknown durability %d", int(d))
	}
	if len(b.ops) == 0 {
		return nil
	}
	bld, _ := s.builders.Get().(*record.Builder)
	if bld == nil {
		bld = new(record.Builder)
	}
	defer s.putBuilder(bld)
	bld.Reset()
	encodeBatch(bld, b.ops, time.Now().UnixMilli())
	if n := bld.Size(); n > s.opts.MaxBatchBytes {
		return fmt.Errorf("%w: %d operations encode to %d bytes, limit %d", ErrBatchTooLarge, len(b.ops), n, s.opts.MaxBatchBytes)
	}
	data := bld.Build()

	s.writeMu.Lock()
	if s.closed {
		s.writeMu.Unlock()
		return ErrClosed
	}
	if _, err := s.log.Append(data); err != nil {
		s.writeMu.Unlock()
		return fmt.Errorf("meta apply: %w", err)
	}
	s.mu.Lock()
	s.applyOps(b.ops)
	s.mu.Unlock()
	s.appended += int64(len(data))
	s.maybeRequestCheckpoint()
	s.writeMu.Unlock()

	if d == Synced {
		if err := s.log.Sync(); err != nil {
			return fmt.Errorf("meta apply: sync: %w", err)
		}
	}
	return nil
}

// putBuilder returns a builder to the pool unless it grew large.
func (s *Store) putBuilder(b *record.Builder) {
	if b.Size() <= 64<<10 {
		s.builders.Put(b)
	}
}

// applyOps changes the map. Called with mu held (or, in Open, alone).
func (s *Store) applyOps(ops []op) {
	var doomed []string
	for _, o := range ops {
		switch o.kind {
		case opPut:
			s.tree.ReplaceOrInsert(entry{key: o.key, value: o.value})
		case opDelete:
			s.tree.Delete(entry{key: o.key})
		case opDeletePrefix:
			doomed = doomed[:0]
			s.tree.AscendGreaterOrEqual(entry{key: o.key}, func(e entry) bool {
				if !strings.HasPrefix(e.key, o.key) {
					return false
				}
				doomed = append(doomed, e.key)
				return true
			})
			for _, k := range doomed {
				s.tree.Delete(entry{key: k})
			}
		}
	}
}

// Sync forces every change applied so far to disk, sharing the fsync with
// concurrent callers.
func (s *Store) Sync() error {
	s.writeMu.Lock()
	closed := s.closed
	s.writeMu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("meta sync: %w", err)
	}
	return nil
}

// Recovery reports what Open loaded.
func (s *Store) Recovery() Recovery { return s.recovery }

// Close stops automatic checkpoints, waits for a running checkpoint, and
// closes the change log, which fsyncs it. Apply, Sync and Checkpoint then
// fail with ErrClosed; Get and Scan keep answering from memory.
func (s *Store) Close() error {
	s.writeMu.Lock()
	if s.closed {
		s.writeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.writeMu.Unlock()
	close(s.stop)
	<-s.stopped

	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if err := s.log.Close(); err != nil && !errors.Is(err, log.ErrClosed) {
		return fmt.Errorf("close meta change log: %w", err)
	}
	return nil
}
