package log

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// round is one group commit: the appends whose batches one flush writes and
// one fsync covers wait on done, then read err.
type round struct {
	done chan struct{}
	err  error
}

func newRound() *round { return &round{done: make(chan struct{})} }

func (r *round) finish(err error) {
	r.err = err
	close(r.done)
}

// finishCollecting completes the round that pending appends wait for and
// starts a new one. Called with mu held.
func (l *Log) finishCollecting(err error) {
	r := l.collecting
	l.collecting = newRound()
	r.finish(err)
}

// requestSync asks the flusher for a round; appends that ask while a round
// is running share the next one.
func (l *Log) requestSync() {
	select {
	case l.syncReq <- struct{}{}:
	default:
	}
}

// flushLoop is the group-commit goroutine: one write and one fsync cover
// every append that arrived before the round started.
func (l *Log) flushLoop() {
	defer close(l.stopped)
	var tick <-chan time.Time
	if l.opts.Fsync.Mode == FsyncInterval {
		t := time.NewTicker(l.opts.Fsync.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.stop:
			return
		case <-l.syncReq:
		case <-tick:
		}
		// Let appenders that the last round woke, and that are about to
		// append again, do so before this round takes what is pending: on
		// few cores one yield lets many more share the coming fsync.
		runtime.Gosched()
		l.syncOnce()
	}
}

// syncOnce is one round: it takes what is pending, writes it and fsyncs the
// active segment, all without mu, so appends go on meanwhile. No roll runs
// during the round (syncMu), so the active segment stays the same.
func (l *Log) syncOnce() {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closed || l.failed != nil || l.durable >= l.next {
		l.mu.Unlock()
		return
	}
	seg := l.segments[len(l.segments)-1]
	data := l.pending
	start := seg.size - int64(len(data))
	l.pending, l.spare = l.spare[:0], nil
	r := l.collecting
	l.collecting, l.inflight = newRound(), r
	target, pos := l.next, seg.size
	l.mu.Unlock()

	var err error
	if len(data) > 0 {
		err = l.writeData(seg, data, start, true)
	}
	if err == nil {
		err = l.fsync(seg)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.spare = data[:0]
	if err != nil {
		l.syncFailed(seg, err)
		return
	}
	l.inflight = nil
	l.setDurable(target, pos)
	r.finish(nil)
}

// writeData writes data at start in seg, first writing zeros ahead when
// prealloc is set. Called by the one goroutine that holds syncMu.
func (l *Log) writeData(seg *segment, data []byte, start int64, prealloc bool) error {
	end := start + int64(len(data))
	if prealloc && end > seg.allocated {
		l.preallocate(seg, start, end)
	}
	n, err := seg.file.WriteAt(data, start)
	seg.allocated = max(seg.allocated, start+int64(n))
	if err == nil && n != len(data) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(data))
	}
	return err
}

// preallocBytes is how far ahead of the data zeros are written.
const preallocBytes = 4 << 20

// preallocate writes zeros past the end of seg's data. An fsync that must
// also record a longer file costs a journal commit; on this kind of disk
// that doubles its time. With zeros written ahead, the fsync of each group
// commit only flushes data, and the length changes once per preallocBytes.
// A failure is not an error: the data write that follows reports it.
func (l *Log) preallocate(seg *segment, start, end int64) {
	target := min(end+preallocBytes, max(end, l.opts.SegmentBytes))
	if l.zeros == nil {
		l.zeros = make([]byte, 1<<20)
	}
	for seg.allocated < target {
		chunk := l.zeros[:min(int64(len(l.zeros)), target-seg.allocated)]
		n, err := seg.file.WriteAt(chunk, seg.allocated)
		seg.allocated += int64(n)
		if err != nil {
			if seg.file.Truncate(start) == nil {
				seg.allocated = start
			}
			return
		}
	}
}

// syncFailed handles a failed write or fsync of the active segment and
// returns the error its appenders get. After a failed fsync the kernel may
// have dropped the dirty pages, so nothing written since the last good sync
// can be trusted: under FsyncAlways (where no reader saw those bytes and no
// appender was answered) they are cut and every waiting appender gets the
// error. Under the other modes readers may have seen them, so the log
// refuses further appends until reopened. Called with mu held, and syncMu.
func (l *Log) syncFailed(seg *segment, err error) error {
	cut := l.durable
	if l.opts.Fsync.Mode != FsyncAlways {
		l.failed = fmt.Errorf("fsync: %w", err)
	} else {
		l.pending = l.pending[:0]
		seg.allocated = l.durablePos
		if terr := seg.file.Truncate(l.durablePos); terr != nil {
			l.failed = fmt.Errorf("%v; truncate: %w", err, terr)
		} else if serr := l.fsync(seg); serr != nil {
			l.failed = fmt.Errorf("%v; fsync after truncate: %w", err, serr)
		}
	}
	var werr error
	if l.failed != nil {
		l.opts.Logger.Error("log failed", "dir", l.dir, "err", l.failed)
		werr = fmt.Errorf("%w: %w", ErrFailed, l.failed)
	} else {
		l.opts.Logger.Warn("write or fsync failed, unsynced appends cut", "dir", l.dir, "from_offset", cut, "err", err)
		werr = fmt.Errorf("%w: %w", ErrWrite, err)
		seg.cutTo(l.durablePos, cut)
		// The cut batches' timestamps may have raised maxTS; keeping the
		// higher value only makes time searches look further, never miss.
		l.next = cut
	}
	l.cuts++
	if l.inflight != nil {
		l.inflight.finish(werr)
		l.inflight = nil
	}
	l.finishCollecting(werr)
	l.broadcastDurable()
	return werr
}

// setDurable raises the durable offset. pos is the active segment's size at
// that offset. Called with mu held.
func (l *Log) setDurable(off, pos int64) {
	if off <= l.durable {
		return
	}
	l.durable, l.durablePos = off, pos
	if l.opts.Fsync.Mode == FsyncAlways {
		l.advanceVisible(off)
	}
	l.broadcastDurable()
}

func (l *Log) broadcastDurable() {
	close(l.durableCh)
	l.durableCh = make(chan struct{})
}

// advanceVisible raises the high watermark and wakes waiting readers. Called
// with mu held.
func (l *Log) advanceVisible(off int64) {
	if off <= l.visible {
		return
	}
	l.visible = off
	if l.changedCh != nil {
		close(l.changedCh)
		l.changedCh = nil
	}
}

// Sync forces everything appended so far to disk, whatever the fsync mode,
// sharing the fsync with concurrent appends. It fails if a write or fsync
// failed meanwhile (some of those appends may have been cut).
func (l *Log) Sync() error {
	l.mu.RLock()
	end, cuts, closed := l.next, l.cuts, l.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	l.requestSync()
	for {
		l.mu.RLock()
		switch {
		case l.failed != nil:
			err := l.failed
			l.mu.RUnlock()
			return fmt.Errorf("%w: %w", ErrFailed, err)
		case l.cuts != cuts:
			l.mu.RUnlock()
			return fmt.Errorf("%w: a write or fsync failed and unsynced appends were cut", ErrWrite)
		case l.durable >= end:
			l.mu.RUnlock()
			return nil
		}
		ch := l.durableCh
		l.mu.RUnlock()
		<-ch
	}
}

// Changed returns a channel closed when the visible end next moves (or the
// log closes). Check VisibleOffset after taking it, not before, so a move in
// between is not missed.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if l.changedCh == nil {
		l.changedCh = make(chan struct{})
	}
	return l.changedCh
}

// Wait blocks until the visible end is beyond offset (a record at offset can
// be read), the context ends, or the log closes. It is the long poll.
func (l *Log) Wait(ctx context.Context, offset int64) error {
	for {
		ch := l.Changed()
		l.mu.RLock()
		visible, closed := l.visible, l.closed
		l.mu.RUnlock()
		if visible > offset {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fsync syncs seg's appended data and tells Options.OnFsync. Wall time,
// not Options.Now: it measures the disk, and a test's clock stands still.
func (l *Log) fsync(seg *segment) error {
	if l.opts.OnFsync == nil {
		return seg.file.Sync()
	}
	start := time.Now()
	err := seg.file.Sync()
	l.opts.OnFsync(time.Since(start), err)
	return err
}
