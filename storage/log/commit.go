package log

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// requestSync asks the flusher for a round; appends that ask while a round
// is running share the next one.
func (l *Log) requestSync() {
	select {
	case l.syncReq <- struct{}{}:
	default:
	}
}

// flushLoop is the group-commit goroutine: one fsync covers every write that
// finished before it started.
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

// syncOnce writes pending batches and fsyncs the active segment up to what
// is written now.
func (l *Log) syncOnce() {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closed || l.failed != nil || l.durable >= l.next {
		l.mu.Unlock()
		return
	}
	seg := l.segments[len(l.segments)-1]
	if err := l.writePending(seg); err != nil {
		l.mu.Unlock()
		return
	}
	target, pos := l.next, seg.size
	l.mu.Unlock()

	err := seg.file.Sync()

	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		if l.segments[len(l.segments)-1] == seg {
			l.setDurable(target, pos)
		} else {
			l.setDurable(target, -1)
		}
		return
	}
	l.syncFailed(seg, err)
}

// writePending writes the batches collected under FsyncAlways to seg. On a
// failed or short write it cuts every unsynced append, as a failed fsync
// does. Called with mu held.
func (l *Log) writePending(seg *segment) error {
	if len(l.pending) == 0 {
		return nil
	}
	start, end := seg.size-int64(len(l.pending)), seg.size
	if end > seg.allocated {
		l.preallocate(seg, end)
	}
	n, err := seg.file.WriteAt(l.pending, start)
	seg.allocated = max(seg.allocated, start+int64(n))
	if err == nil && n != len(l.pending) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(l.pending))
	}
	l.pending = l.pending[:0]
	if err != nil {
		l.syncFailed(seg, err)
		if l.failed != nil {
			return l.failed
		}
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// preallocBytes is how far ahead of the data zeros are written.
const preallocBytes = 4 << 20

// preallocate writes zeros past the end of seg's data. An fsync that must
// also record a longer file costs a journal commit; on this kind of disk
// that doubles its time. With zeros written ahead, the fsync of each group
// commit only flushes data, and the length changes once per preallocBytes.
// A failure is not an error: the data write that follows reports it.
// Called with mu held.
func (l *Log) preallocate(seg *segment, end int64) {
	target := min(end+preallocBytes, max(end, l.opts.SegmentBytes))
	if l.zeros == nil {
		l.zeros = make([]byte, 1<<20)
	}
	for seg.allocated < target {
		chunk := l.zeros[:min(int64(len(l.zeros)), target-seg.allocated)]
		n, err := seg.file.WriteAt(chunk, seg.allocated)
		seg.allocated += int64(n)
		if err != nil {
			if seg.file.Truncate(seg.size-int64(len(l.pending))) == nil {
				seg.allocated = seg.size - int64(len(l.pending))
			}
			return
		}
	}
}

// syncFailed handles a failed fsync. After a failed fsync the kernel may have
// dropped the dirty pages, so nothing written since the last good sync can be
// trusted: under FsyncAlways (where no reader saw those bytes and no appender
// was answered) they are cut and their appenders get the error. Under the
// other modes readers may have seen them, so the log refuses further appends
// until reopened. Called with mu held.
func (l *Log) syncFailed(seg *segment, err error) {
	active := l.segments[len(l.segments)-1]
	if l.opts.Fsync.Mode != FsyncAlways || active != seg {
		l.failed = fmt.Errorf("fsync: %w", err)
		l.opts.Logger.Error("log failed", "dir", l.dir, "err", l.failed)
		l.broadcastDurable()
		return
	}
	cut := l.durable
	l.pending = l.pending[:0]
	seg.allocated = l.durablePos
	if terr := seg.file.Truncate(l.durablePos); terr != nil {
		l.failed = fmt.Errorf("fsync: %v; truncate: %w", err, terr)
	} else if serr := seg.file.Sync(); serr != nil {
		l.failed = fmt.Errorf("fsync: %v; fsync after truncate: %w", err, serr)
	}
	if l.failed != nil {
		l.opts.Logger.Error("log failed", "dir", l.dir, "err", l.failed)
		l.broadcastDurable()
		return
	}
	l.opts.Logger.Warn("write or fsync failed, unsynced appends cut", "dir", l.dir, "from_offset", cut, "err", err)
	seg.size, seg.next = l.durablePos, cut
	for len(seg.index) > 0 && int64(seg.index[len(seg.index)-1].pos) >= seg.size {
		seg.index = seg.index[:len(seg.index)-1]
	}
	for len(seg.times) > 0 && seg.base+int64(seg.times[len(seg.times)-1].rel) > cut {
		seg.times = seg.times[:len(seg.times)-1]
	}
	if n := len(seg.index); n > 0 {
		seg.lastIndexed = int64(seg.index[n-1].pos)
	} else {
		seg.lastIndexed = 0
	}
	// The cut batches' timestamps may have raised maxTS; keeping the higher
	// value only makes time searches look further, never miss.
	l.next = cut
	l.gen++
	l.truncs = append(l.truncs, truncation{gen: l.gen, point: cut, err: fmt.Errorf("%w: %w", ErrWrite, err)})
	if len(l.truncs) > 16 {
		l.truncs = l.truncs[len(l.truncs)-16:]
	}
	l.broadcastDurable()
}

// setDurable raises the durable offset. pos is the active segment's size at
// that offset, or -1 when unknown (the segment rolled meanwhile). Called with
// mu held.
func (l *Log) setDurable(off, pos int64) {
	if off <= l.durable {
		return
	}
	l.durable = off
	if pos >= 0 {
		l.durablePos = pos
	}
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

// waitDurable blocks until offsets below end are durable, or reports why
// they never will be. gen is the generation the append was written in.
func (l *Log) waitDurable(gen uint64, end int64) error {
	for {
		l.mu.RLock()
		for _, t := range l.truncs {
			if t.gen > gen && end > t.point {
				l.mu.RUnlock()
				return t.err
			}
		}
		if l.durable >= end {
			l.mu.RUnlock()
			return nil
		}
		if l.failed != nil {
			err := l.failed
			l.mu.RUnlock()
			return fmt.Errorf("%w: %w", ErrFailed, err)
		}
		ch := l.durableCh
		l.mu.RUnlock()
		<-ch
	}
}

// Sync forces everything appended so far to disk, whatever the fsync mode,
// sharing the fsync with concurrent appends.
func (l *Log) Sync() error {
	l.mu.RLock()
	end, gen, closed := l.next, l.gen, l.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	l.requestSync()
	return l.waitDurable(gen, end)
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
