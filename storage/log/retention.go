package log

import (
	"fmt"
	"time"
)

// SetDeleteFloor tells the log that every offset below offset may be deleted
// (a work queue whose subscriptions all acknowledged them). The floor only
// rises; EnforceRetention deletes the whole segments below it.
func (l *Log) SetDeleteFloor(offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset > l.floor {
		l.floor = offset
	}
}

// RetentionResult says what EnforceRetention removed.
type RetentionResult struct {
	Segments int   // segments deleted
	Bytes    int64 // bytes freed
	Start    int64 // first offset kept
}

// EnforceRetention deletes the oldest whole segments that the retention
// policy or the delete floor allows. The active segment is rolled first when
// all of it may go. Readers of deleted offsets get ErrOffsetOutOfRange.
func (l *Log) EnforceRetention() (RetentionResult, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return RetentionResult{}, err
	}
	now := l.opts.Now()
	var res RetentionResult
	var total int64
	for _, s := range l.segments {
		total += s.size
	}
	for len(l.segments) > 0 {
		seg := l.segments[0]
		active := len(l.segments) == 1
		if !l.expired(seg, active, total, now) {
			break
		}
		if active {
			if seg.size == 0 {
				break
			}
			if err := l.roll(); err != nil {
				return res, err
			}
		}
		if err := seg.remove(l.fs); err != nil {
			return res, fmt.Errorf("delete segment %d: %w", seg.base, err)
		}
		l.segments = l.segments[1:]
		res.Segments++
		res.Bytes += seg.size
		total -= seg.size
	}
	if res.Segments > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return res, fmt.Errorf("sync dir after retention: %w", err)
		}
		l.opts.Logger.Info("retention deleted segments", "dir", l.dir, "segments", res.Segments, "bytes", res.Bytes)
	}
	res.Start = l.segments[0].base
	return res, nil
}

// expired reports whether retention lets seg go. The size rule never takes
// the active segment: that would leave the log empty to get under a limit.
func (l *Log) expired(seg *segment, active bool, total int64, now time.Time) bool {
	if seg.next > seg.base && seg.next <= l.floor {
		return true
	}
	r := l.opts.Retention
	if r.MaxAge > 0 && seg.size > 0 {
		// Records without a timestamp (Kafka's -1) age from the segment's
		// creation instead of from 1970.
		newest := seg.created
		if seg.maxTS >= 0 {
			newest = time.UnixMilli(seg.maxTS)
		}
		if now.Sub(newest) > r.MaxAge {
			return true
		}
	}
	return !active && r.MaxBytes > 0 && total-seg.size >= r.MaxBytes
}
