package log

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ferrymq/ferry/storage/record"
)

// ReadResult is what Read returns.
type ReadResult struct {
	// Data holds whole batches, each checked against its CRC. The first may
	// start before the offset asked for: skip records below it.
	Data []byte
	// NextOffset is the offset to read next (after the last batch in Data).
	NextOffset int64
	// HighWatermark is the visible end when the read was served.
	HighWatermark int64
	// StartOffset is the first stored offset when the read was served.
	StartOffset int64
}

// Read returns whole batches starting with the one that holds offset, up to
// maxBytes in total but always at least one batch when there is one. At the
// visible end it returns no data (use Wait to long-poll).
func (l *Log) Read(offset int64, maxBytes int) (ReadResult, error) {
	return l.ReadInto(nil, offset, maxBytes)
}

// ReadInto is Read into dst's spare capacity when the read fits there:
// Data is then dst[len(dst):len(dst)+len(Data)], and any of the spare
// capacity may have been written (the read may bring more than it keeps).
// Otherwise Data is new memory, as with Read. A caller that reads again and again lends the same
// memory each time and spares the allocation and the garbage collector.
func (l *Log) ReadInto(dst []byte, offset int64, maxBytes int) (ReadResult, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ReadResult{}, ErrClosed
	}
	res := ReadResult{NextOffset: offset, HighWatermark: l.visible, StartOffset: l.segments[0].base}
	if offset < res.StartOffset || offset > l.visible {
		return res, fmt.Errorf("%w: %d not in %d..%d", ErrOffsetOutOfRange, offset, res.StartOffset, l.visible)
	}
	if offset == l.visible {
		return res, nil
	}
	for i := l.segmentFor(offset); i < len(l.segments); i++ {
		seg := l.segments[i]
		lim := l.readLimit(seg)
		pos, h, err := l.findBatch(seg, offset, lim)
		if err != nil {
			return res, err
		}
		if pos < 0 {
			if i+1 < len(l.segments) && offset >= seg.next && offset < l.segments[i+1].base {
				// A sealed segment whose scan stopped early at open: these
				// offsets are lost to damage. Say so rather than skip them.
				return res, fmt.Errorf("%w: segment %d is damaged: offsets %d..%d unreadable",
					ErrCorrupt, seg.base, seg.next, l.segments[i+1].base-1)
			}
			continue
		}
		data, next, err := readBatches(dst[len(dst):], seg, pos, lim, h, maxBytes)
		if err != nil {
			return res, err
		}
		res.Data, res.NextOffset = data, next
		return res, nil
	}
	return res, nil
}

// segmentFor returns the index of the segment that holds offset.
func (l *Log) segmentFor(offset int64) int {
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].base > offset })
	return max(i-1, 0)
}

// readLimit is the end of the readable bytes of seg: under FsyncAlways the
// active segment is readable only up to its durable size.
func (l *Log) readLimit(seg *segment) int64 {
	if seg == l.segments[len(l.segments)-1] && l.opts.Fsync.Mode == FsyncAlways {
		return l.durablePos
	}
	return seg.size
}

// findBatch returns the position and header of the batch in seg that holds
// offset, or -1 when seg has no such batch below lim.
func (l *Log) findBatch(seg *segment, offset, lim int64) (int64, record.Header, error) {
	pos := l.indexedPos(seg, uint32(max(offset-seg.base, 0)))
	for pos < lim {
		h, err := seg.readHeader(pos)
		if err != nil {
			return -1, h, fmt.Errorf("%w: segment %d at %d: %w", ErrCorrupt, seg.base, pos, err)
		}
		if h.NextOffset() > offset {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
	return -1, record.Header{}, nil
}

// indexedPos returns where to start scanning seg for relative offset rel:
// the position of the last indexed batch at or below it. An index entry that
// does not point at its batch is damage in the index, not the data: the scan
// then starts at the beginning of the segment.
func (l *Log) indexedPos(seg *segment, rel uint32) int64 {
	pos, at := lookupOffset(seg.index, rel)
	if pos == 0 {
		return 0
	}
	if h, err := seg.readHeader(pos); err != nil || h.BaseOffset != seg.base+int64(at) {
		l.opts.Logger.Warn("offset index entry does not match its batch; scanning", "dir", l.dir, "segment", seg.base, "position", pos)
		return 0
	}
	return pos
}

// readBatches reads whole batches from pos, up to maxBytes (but the first
// whole), stopping before lim or the first batch that fails its CRC. It
// reads into buf's capacity when that is enough.
func readBatches(buf []byte, seg *segment, pos, lim int64, first record.Header, maxBytes int) ([]byte, int64, error) {
	n := min(int64(max(maxBytes, first.Size())), lim-pos)
	if n < int64(first.Size()) {
		return nil, 0, fmt.Errorf("%w: segment %d: batch at %d runs past the end", ErrCorrupt, seg.base, pos)
	}
	if int64(cap(buf)) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := seg.file.ReadAt(buf, pos); err != nil {
		return nil, 0, fmt.Errorf("read segment %d at %d: %w", seg.base, pos, err)
	}
	var used int
	next := first.BaseOffset
	err := record.Split(buf, func(h record.Header, b []byte) error {
		used += len(b)
		next = h.NextOffset()
		return nil
	})
	if used == 0 {
		return nil, 0, fmt.Errorf("%w: segment %d at %d: %w", ErrCorrupt, seg.base, pos, err)
	}
	// A later batch that failed its check is left out; the next read
	// starts there and reports it.
	return buf[:used:used], next, nil
}

// OffsetForTime returns the first offset whose record has a timestamp at or
// after ts (milliseconds). ok is false when no visible record is that new.
func (l *Log) OffsetForTime(ts int64) (offset int64, ok bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, false, ErrClosed
	}
	for _, seg := range l.segments {
		if seg.maxTS == noTimestamp || seg.maxTS < ts {
			continue
		}
		lim := l.readLimit(seg)
		startRel := lookupTime(seg.times, ts)
		pos := l.indexedPos(seg, startRel)
		for pos < lim {
			h, err := seg.readHeader(pos)
			if err != nil {
				return 0, false, fmt.Errorf("%w: segment %d at %d: %w", ErrCorrupt, seg.base, pos, err)
			}
			if h.MaxTimestamp >= ts {
				if off, found, err := firstAtOrAfter(seg, pos, h, ts); err != nil || found {
					return off, found, err
				}
			}
			pos += int64(h.Size())
		}
	}
	return l.visible, false, nil
}

// firstAtOrAfter finds the first record of the batch at pos with a timestamp
// at or after ts. A compressed batch answers with its base offset.
func firstAtOrAfter(seg *segment, pos int64, h record.Header, ts int64) (int64, bool, error) {
	if h.Compression() != record.CompressionNone {
		return h.BaseOffset, true, nil
	}
	buf := make([]byte, h.Size())
	if _, err := seg.file.ReadAt(buf, pos); err != nil {
		return 0, false, fmt.Errorf("read segment %d at %d: %w", seg.base, pos, err)
	}
	if _, err := record.Verify(buf); err != nil {
		return 0, false, fmt.Errorf("%w: segment %d at %d: %w", ErrCorrupt, seg.base, pos, err)
	}
	found := int64(-1)
	errStop := errors.New("stop")
	err := record.Records(buf, record.Limits{}, func(r record.Record) error {
		if r.Timestamp >= ts {
			found = r.Offset
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, false, fmt.Errorf("%w: segment %d at %d: %w", ErrCorrupt, seg.base, pos, err)
	}
	return found, found >= 0, nil
}
