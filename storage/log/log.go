package log

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

// Log is one partition's append-only log. It is safe for concurrent use:
// many appenders, many readers.
//
// Lock order: syncMu before mu. mu guards the segment list, every position
// and the pending buffer. syncMu is held for a whole flush round (write and
// fsync, done without mu so appends go on), by a roll and by retention: so
// only one goroutine at a time writes or fsyncs a segment, and a file is
// never closed under an fsync.
type Log struct {
	dir  string
	fs   vfs.FS
	opts Options

	syncMu sync.Mutex

	mu       sync.RWMutex
	segments []*segment // sorted by base offset; the last is active
	next     int64      // next offset to assign
	durable  int64      // offsets below this are on disk
	// durablePos is the active segment's size at the durable offset.
	durablePos int64
	// pending holds batches appended under FsyncAlways that the flusher has
	// not taken yet; the active segment's size counts them. spare is the
	// buffer the flusher gives back, to swap in next time.
	pending, spare []byte
	// collecting is the round that appends copied into pending wait for;
	// inflight is the round the flusher is writing and syncing.
	collecting, inflight *round
	// zeros is written ahead of the data under FsyncAlways (see preallocate).
	zeros   []byte
	visible int64 // offsets below this are served to readers
	floor   int64 // everything below may be deleted (SetDeleteFloor)
	// cuts counts failed writes or fsyncs after which unsynced appends were
	// cut; Sync compares it to learn that its appends may be gone.
	cuts   uint64
	failed error
	closed bool
	// durableCh is closed when durable advances or a sync fails.
	durableCh chan struct{}
	// changedCh is closed when visible advances; nil until someone waits.
	changedCh chan struct{}

	syncReq  chan struct{}
	stop     chan struct{}
	stopped  chan struct{}
	recovery Recovery
}

// Recovery reports what Open found and repaired.
type Recovery struct {
	Segments        int    // segments found
	CutSegment      int64  // base offset of the segment cut, -1 when nothing was cut
	CutAtOffset     int64  // first offset cut
	CutBytes        int64  // bytes removed
	CutReason       string // why: the decoding error
	RebuiltIndexes  []int64
	RemovedOrphans  []string
	DamagedSegments []int64 // sealed segments whose scan stopped early
}

// Open opens the log in dir, creating it when missing, and recovers it.
func Open(dir string, opts Options) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("log options: %w", err)
	}
	l := &Log{
		dir:        dir,
		fs:         opts.FS,
		opts:       opts,
		durableCh:  make(chan struct{}),
		collecting: newRound(),
		syncReq:    make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if err := l.recover(); err != nil {
		for _, s := range l.segments {
			s.close()
		}
		return nil, err
	}
	go l.flushLoop()
	return l, nil
}

// Dir is the log's folder.
func (l *Log) Dir() string { return l.dir }

// Recovery reports what Open found and repaired.
func (l *Log) Recovery() Recovery { return l.recovery }

// StartOffset is the first offset still stored.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segments[0].base
}

// EndOffset is the offset the next append will get (the high watermark under
// FsyncAlways is VisibleOffset).
func (l *Log) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next
}

// VisibleOffset is the high watermark: readers see offsets below it. Under
// FsyncAlways it is the durable end.
func (l *Log) VisibleOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.visible
}

// Size is the total size of the log's segment files in bytes.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segments {
		n += s.size
	}
	return n
}

// SegmentCount is the number of segments.
func (l *Log) SegmentCount() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segments)
}

// AppendResult says where an appended batch landed.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
}

// Append stores one record batch (a whole magic-2 batch, as built by
// record.Builder or received from a Kafka producer) and returns its offsets.
// It rewrites the batch's base offset in place. Under FsyncAlways it returns
// only once the batch is on disk.
func (l *Log) Append(batch []byte) (AppendResult, error) {
	res, wait, err := l.AppendAsync(batch)
	if err != nil {
		return res, err
	}
	if err := wait(); err != nil {
		return AppendResult{}, err
	}
	return res, nil
}

// AppendAsync is Append in two steps: it places the batch (its offsets are
// final, and a later append lands after it) and returns at once; wait
// returns once the batch is durable under the fsync policy (at once unless
// FsyncAlways), with the error that kept it from being so. A caller that
// has several batches to store, in order, places them all and then waits:
// one fsync then covers them all. The log has written or copied the batch
// when AppendAsync returns: the caller may reuse its memory.
func (l *Log) AppendAsync(batch []byte) (res AppendResult, wait func() error, err error) {
	h, err := l.validate(batch)
	if err != nil {
		return AppendResult{}, nil, err
	}
	size, offsets := int64(len(batch)), int64(h.LastOffsetDelta)+1
	l.mu.Lock()
	if err := l.writable(); err != nil {
		l.mu.Unlock()
		return AppendResult{}, nil, err
	}
	if l.needsRoll(size, offsets) {
		// A roll writes and fsyncs the active segment: it takes syncMu
		// first so that no flush round runs beside it.
		l.mu.Unlock()
		l.syncMu.Lock()
		l.mu.Lock()
		err := l.writable()
		if err == nil && l.needsRoll(size, offsets) {
			err = l.roll()
		}
		l.syncMu.Unlock()
		if err != nil {
			l.mu.Unlock()
			return AppendResult{}, nil, err
		}
	}
	base := l.next
	record.SetBaseOffset(batch, base)
	seg := l.segments[len(l.segments)-1]
	pos := seg.size
	if l.opts.Fsync.Mode == FsyncAlways {
		// The flusher writes what collects here with one write, then one
		// fsync: concurrent appends share both.
		l.pending = append(l.pending, batch...)
	} else if n, err := seg.file.WriteAt(batch, pos); err != nil || n != len(batch) {
		if err == nil {
			err = fmt.Errorf("short write: %d of %d bytes", n, len(batch))
		}
		l.undoWrite(seg, pos, err)
		l.mu.Unlock()
		return AppendResult{}, nil, fmt.Errorf("%w: %w", ErrWrite, err)
	}
	h.BaseOffset = base
	seg.noteBatch(&h, pos, l.opts.IndexIntervalBytes)
	l.next = h.NextOffset()
	res = AppendResult{BaseOffset: base, LastOffset: h.LastOffset()}
	if l.opts.Fsync.Mode != FsyncAlways {
		seg.allocated = max(seg.allocated, seg.size)
		l.advanceVisible(l.next)
		l.mu.Unlock()
		return res, func() error { return nil }, nil
	}
	r := l.collecting
	l.mu.Unlock()
	l.requestSync()
	return res, func() error {
		<-r.done
		return r.err
	}, nil
}

// validate checks a batch before it is stored.
func (l *Log) validate(batch []byte) (record.Header, error) {
	if len(batch) > l.opts.MaxBatchBytes {
		return record.Header{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBatchTooLarge, len(batch), l.opts.MaxBatchBytes)
	}
	h, err := record.Verify(batch)
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if h.NumRecords == 0 {
		return h, fmt.Errorf("%w: no records", ErrInvalidBatch)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: %d records spanning %d offsets", ErrInvalidBatch, h.NumRecords, h.LastOffsetDelta+1)
	}
	if h.Compression() != record.CompressionNone {
		return h, nil // records are checked by whoever compressed them
	}
	err = record.CheckDense(batch, record.Limits{MaxRecordBytes: l.opts.MaxRecordBytes})
	if errors.Is(err, record.ErrTooLarge) {
		return h, fmt.Errorf("%w: %w", ErrBatchTooLarge, err)
	}
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	return h, nil
}

func (l *Log) writable() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, l.failed)
	}
	return nil
}

// undoWrite cuts a failed write off the active segment. Called with mu held.
func (l *Log) undoWrite(seg *segment, pos int64, cause error) {
	if err := seg.file.Truncate(pos); err != nil {
		l.failed = fmt.Errorf("truncate after %v: %w", cause, err)
		l.opts.Logger.Error("log failed", "dir", l.dir, "err", l.failed)
		return
	}
	seg.allocated = pos
	l.opts.Logger.Warn("append failed, undone", "dir", l.dir, "err", cause)
}

// needsRoll reports whether the active segment must roll before taking a
// batch of size bytes and offsets offsets: it is full, its relative offsets
// would not fit the indexes' 32 bits, or it is old. Called with mu held.
func (l *Log) needsRoll(size, offsets int64) bool {
	seg := l.segments[len(l.segments)-1]
	if seg.size == 0 {
		return false
	}
	return seg.size+size > l.opts.SegmentBytes ||
		l.next+offsets-seg.base > math.MaxUint32 ||
		l.opts.Now().Sub(seg.created) >= l.opts.SegmentAge
}

// roll seals the active segment (writes what is pending, fsyncs it and
// writes its indexes) and creates the next one. Called with syncMu and mu
// held. Sealing here keeps the flusher's job to the active segment alone.
func (l *Log) roll() error {
	seg := l.segments[len(l.segments)-1]
	if err := l.sealActive(seg); err != nil {
		return err
	}
	if err := seg.writeIndexes(l.fs); err != nil {
		return fmt.Errorf("%w: write indexes of segment %d: %w", ErrWrite, seg.base, err)
	}
	ns, err := createSegment(l.fs, l.dir, l.next, l.opts.Now())
	if err != nil {
		return fmt.Errorf("%w: create segment %d: %w", ErrWrite, l.next, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		if rerr := ns.remove(l.fs); rerr != nil {
			// An empty segment file left behind would make every later roll
			// fail; Open removes it.
			l.failed = fmt.Errorf("remove segment %d after %v: %w", ns.base, err, rerr)
		}
		return fmt.Errorf("%w: sync dir: %w", ErrWrite, err)
	}
	l.segments = append(l.segments, ns)
	l.durablePos = 0
	return nil
}

// sealActive writes what is pending to seg, cuts the zeros written ahead and
// fsyncs it, completing the collecting round. Called with syncMu and mu held
// (no flush round runs).
func (l *Log) sealActive(seg *segment) error {
	if len(l.pending) > 0 {
		start := seg.size - int64(len(l.pending))
		if err := l.writeData(seg, l.pending, start, false); err != nil {
			return l.syncFailed(seg, err)
		}
		l.pending = l.pending[:0]
	}
	if err := seg.trimAllocation(); err != nil {
		return l.syncFailed(seg, err)
	}
	if err := l.fsync(seg); err != nil {
		return l.syncFailed(seg, err)
	}
	l.setDurable(l.next, seg.size)
	l.finishCollecting(nil)
	return nil
}

// Close syncs and closes the log. Appends and reads after Close fail with
// ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.stopped

	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	active := l.segments[len(l.segments)-1]
	if l.failed == nil {
		if err := l.sealActive(active); err != nil {
			errs = append(errs, err)
		} else if err := active.writeIndexes(l.fs); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, fmt.Errorf("%w: %w", ErrFailed, l.failed))
		l.finishCollecting(errs[0])
	}
	for _, s := range l.segments {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.broadcastDurable()
	if l.changedCh != nil {
		close(l.changedCh)
		l.changedCh = nil
	}
	return errors.Join(errs...)
}
