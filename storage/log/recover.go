package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recover opens the segments in l.dir, checks the active one batch by batch
// and cuts a torn or corrupt tail, and rebuilds damaged indexes.
func (l *Log) recover() error {
	l.recovery = Recovery{CutSegment: -1, CutAtOffset: -1}
	rep := &l.recovery
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	var bases []int64
	logs := map[int64]bool{}
	var indexFiles []string
	for _, e := range entries {
		name := e.Name()
		if _, _, ok := ParseSegmentName(strings.TrimSuffix(name, ".tmp")); ok && strings.HasSuffix(name, ".tmp") && !e.IsDir() {
			// An index rewrite that did not finish.
			l.removeOrphan(name)
			continue
		}
		base, suffix, ok := ParseSegmentName(name)
		if !ok {
			continue
		}
		switch suffix {
		case logSuffix:
			bases = append(bases, base)
			logs[base] = true
		case indexSuffix, timeIndexSuffix:
			indexFiles = append(indexFiles, name)
		}
	}
	for _, name := range indexFiles {
		if base, _, _ := ParseSegmentName(name); !logs[base] {
			l.removeOrphan(name)
		}
	}
	slices.Sort(bases)
	rep.Segments = len(bases)
	// An empty last segment after others is a roll that did not finish (or
	// one that nothing was appended to yet). It holds nothing: remove it, so
	// the segment before, whose tail may be torn, is checked as the active one.
	for len(bases) > 1 {
		last := filepath.Join(l.dir, SegmentName(bases[len(bases)-1])+logSuffix)
		fi, err := l.fs.Stat(last)
		if err != nil || fi.Size() != 0 {
			break
		}
		if err := l.fs.Remove(last); err != nil {
			return fmt.Errorf("open log %s: remove empty segment: %w", l.dir, err)
		}
		l.recovery.RemovedOrphans = append(l.recovery.RemovedOrphans, filepath.Base(last))
		bases = bases[:len(bases)-1]
	}
	if len(bases) == 0 {
		seg, err := createSegment(l.fs, l.dir, 0, l.opts.Now())
		if err != nil {
			return fmt.Errorf("open log %s: %w", l.dir, err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			seg.close()
			return fmt.Errorf("open log %s: %w", l.dir, err)
		}
		l.segments = []*segment{seg}
		return nil
	}
	for i, base := range bases[:len(bases)-1] {
		seg, err := openSegmentFile(l.fs, l.dir, base)
		if err != nil {
			return fmt.Errorf("open segment %d: %w", base, err)
		}
		if seg.size == 0 {
			// A sealed segment is never empty; this one is the leftover of an
			// interrupted roll.
			seg.remove(l.fs)
			continue
		}
		l.segments = append(l.segments, seg)
		if err := l.loadSealed(seg, bases[i+1]); err != nil {
			return err
		}
	}
	tail, err := openSegmentFile(l.fs, l.dir, bases[len(bases)-1])
	if err != nil {
		return fmt.Errorf("open segment %d: %w", bases[len(bases)-1], err)
	}
	l.segments = append(l.segments, tail)
	if err := l.recoverTail(tail); err != nil {
		return err
	}
	l.next, l.durable, l.durablePos, l.visible = tail.next, tail.next, tail.size, tail.next
	return nil
}

// loadSealed loads a sealed segment's indexes, rebuilding them by a full
// scan when they are missing or damaged.
func (l *Log) loadSealed(seg *segment, next int64) error {
	err := seg.loadIndexes(l.fs, next)
	if err == nil {
		return nil
	}
	l.opts.Logger.Warn("rebuilding segment indexes", "dir", l.dir, "segment", seg.base, "reason", err)
	res := seg.scan(l.opts.IndexIntervalBytes)
	if res.err != nil || seg.next != next {
		l.recovery.DamagedSegments = append(l.recovery.DamagedSegments, seg.base)
		l.opts.Logger.Error("sealed segment damaged: offsets past its last good batch are unreadable",
			"dir", l.dir, "segment", seg.base, "good_until_offset", seg.next, "next_segment", next, "err", res.err)
	}
	if err := seg.writeIndexes(l.fs); err != nil {
		return fmt.Errorf("rewrite indexes of segment %d: %w", seg.base, err)
	}
	l.recovery.RebuiltIndexes = append(l.recovery.RebuiltIndexes, seg.base)
	return nil
}

// recoverTail checks the active segment batch by batch and cuts what follows
// the last good batch.
func (l *Log) recoverTail(seg *segment) error {
	fileSize := seg.size
	res := seg.scan(l.opts.IndexIntervalBytes)
	if res.err == nil && res.size == fileSize {
		return nil
	}
	if res.err == nil {
		// Only zeros written ahead follow the data.
		l.opts.Logger.Debug("trimmed preallocated space", "dir", l.dir, "segment", seg.base, "bytes", res.zeroTail)
		if err := seg.file.Truncate(res.size); err != nil {
			return fmt.Errorf("trim segment %d: %w", seg.base, err)
		}
		seg.allocated = res.size
		return seg.file.Sync()
	}
	reason := "trailing bytes"
	if res.err != nil {
		reason = res.err.Error()
	}
	rep := &l.recovery
	rep.CutSegment, rep.CutAtOffset, rep.CutBytes, rep.CutReason = seg.base, seg.next, fileSize-res.size, reason
	l.opts.Logger.Warn("cut torn or corrupt tail",
		"dir", l.dir, "segment", seg.base, "position", res.size, "from_offset", seg.next,
		"bytes", fileSize-res.size, "reason", reason)
	if err := seg.file.Truncate(res.size); err != nil {
		return fmt.Errorf("cut tail of segment %d: %w", seg.base, err)
	}
	seg.allocated = res.size
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("cut tail of segment %d: %w", seg.base, err)
	}
	return nil
}

func (l *Log) removeOrphan(name string) {
	if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.opts.Logger.Warn("cannot remove orphan file", "dir", l.dir, "file", name, "err", err)
		return
	}
	l.recovery.RemovedOrphans = append(l.recovery.RemovedOrphans, name)
}
