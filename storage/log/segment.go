package log

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	noTimestamp     = math.MinInt64
)

// SegmentName is the file name of the segment starting at base, without suffix.
func SegmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// ParseSegmentName reads the base offset from a segment file name such as
// 00000000000000000042.log. ok is false for any other name.
func ParseSegmentName(name string) (base int64, suffix string, ok bool) {
	i := strings.IndexByte(name, '.')
	if i != 20 {
		return 0, "", false
	}
	base, err := strconv.ParseInt(name[:i], 10, 64)
	if err != nil || base < 0 || SegmentName(base) != name[:i] {
		return 0, "", false
	}
	return base, name[i:], true
}

// segment is one .log file and its indexes. Fields change only under the
// log's write lock; readers hold its read lock.
type segment struct {
	base int64
	path string // without suffix
	file vfs.File
	size int64 // bytes of whole, checked batches
	// allocated is the file's length: at least size, more when zeros were
	// written ahead so that fsyncs need not change the file's length.
	allocated int64
	next      int64 // offset after the last batch
	maxTS     int64 // largest record timestamp, noTimestamp when empty
	created   time.Time

	index []offsetEntry
	times []timeEntry
	// lastIndexed is the file size when the last index entry was added.
	lastIndexed int64
}

func (s *segment) logPath() string       { return s.path + logSuffix }
func (s *segment) indexPath() string     { return s.path + indexSuffix }
func (s *segment) timeIndexPath() string { return s.path + timeIndexSuffix }

// createSegment makes the three files of a new, empty segment.
func createSegment(fs vfs.FS, dir string, base int64, now time.Time) (*segment, error) {
	s := &segment{base: base, path: filepath.Join(dir, SegmentName(base)), next: base, maxTS: noTimestamp, created: now}
	f, err := fs.OpenFile(s.logPath(), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	s.file = f
	return s, nil
}

// openSegmentFile opens an existing segment's log file for appending and reading.
func openSegmentFile(fs vfs.FS, dir string, base int64) (*segment, error) {
	s := &segment{base: base, path: filepath.Join(dir, SegmentName(base)), next: base, maxTS: noTimestamp}
	f, err := fs.OpenFile(s.logPath(), os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s.file, s.size, s.allocated, s.created = f, fi.Size(), fi.Size(), fi.ModTime()
	return s, nil
}

// noteBatch updates the in-memory indexes for a batch just placed at pos.
func (s *segment) noteBatch(h *record.Header, pos int64, interval int64) {
	if pos > 0 && pos-s.lastIndexed >= interval {
		rel := uint32(h.BaseOffset - s.base)
		s.index = append(s.index, offsetEntry{rel: rel, pos: uint32(pos)})
		if s.maxTS != noTimestamp && (len(s.times) == 0 || s.maxTS > s.times[len(s.times)-1].ts) {
			s.times = append(s.times, timeEntry{ts: s.maxTS, rel: rel})
		}
		s.lastIndexed = pos
	}
	if h.MaxTimestamp > s.maxTS && h.NumRecords > 0 {
		s.maxTS = h.MaxTimestamp
	}
	s.next = h.NextOffset()
	s.size = pos + int64(h.Size())
}

// cutTo drops everything from position size (offset next) on from the
// in-memory state, after the file was truncated there.
func (s *segment) cutTo(size, next int64) {
	s.size, s.next = size, next
	for len(s.index) > 0 && int64(s.index[len(s.index)-1].pos) >= size {
		s.index = s.index[:len(s.index)-1]
	}
	for len(s.times) > 0 && s.base+int64(s.times[len(s.times)-1].rel) > next {
		s.times = s.times[:len(s.times)-1]
	}
	s.lastIndexed = 0
	if n := len(s.index); n > 0 {
		s.lastIndexed = int64(s.index[n-1].pos)
	}
}

// sealTimes adds the final time-index entry: the segment's largest timestamp.
func (s *segment) sealTimes() {
	if s.maxTS == noTimestamp {
		return
	}
	rel := uint32(s.next - s.base)
	if n := len(s.times); n > 0 && s.times[n-1].ts >= s.maxTS {
		return
	}
	s.times = append(s.times, timeEntry{ts: s.maxTS, rel: rel})
}

// writeIndexes writes both index files (atomically replacing old ones).
func (s *segment) writeIndexes(fs vfs.FS) error {
	s.sealTimes()
	if err := vfs.WriteFileAtomic(fs, s.indexPath(), encodeOffsetIndex(s.index)); err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fs, s.timeIndexPath(), encodeTimeIndex(s.times))
}

// loadIndexes reads and checks a sealed segment's index files. next is the
// base offset of the following segment.
func (s *segment) loadIndexes(fs vfs.FS, next int64) error {
	maxRel := uint64(next - s.base)
	ib, err := vfs.ReadFile(fs, s.indexPath())
	if err != nil {
		return err
	}
	idx, err := decodeOffsetIndex(ib, s.size, maxRel)
	if err != nil {
		return err
	}
	tb, err := vfs.ReadFile(fs, s.timeIndexPath())
	if err != nil {
		return err
	}
	times, err := decodeTimeIndex(tb, maxRel)
	if err != nil {
		return err
	}
	if len(times) == 0 && s.size > 0 {
		return errors.New("time index is empty")
	}
	// From the last indexed batch (or the start), the batch headers must
	// chain to the end of the file and to the next segment's base offset,
	// and none may be newer than the time index says.
	var pos, off int64 = 0, s.base
	if n := len(idx); n > 0 {
		pos, off = int64(idx[n-1].pos), s.base+int64(idx[n-1].rel)
	}
	var tsMax int64 = noTimestamp
	if len(times) > 0 {
		tsMax = times[len(times)-1].ts
	}
	for pos < s.size {
		h, err := s.readHeader(pos)
		if err != nil {
			return fmt.Errorf("batch at %d: %w", pos, err)
		}
		if h.BaseOffset != off {
			return fmt.Errorf("batch at %d has offset %d, want %d", pos, h.BaseOffset, off)
		}
		if h.NumRecords > 0 && h.MaxTimestamp > tsMax {
			return fmt.Errorf("batch at %d has timestamp %d, time index ends at %d", pos, h.MaxTimestamp, tsMax)
		}
		pos, off = pos+int64(h.Size()), h.NextOffset()
	}
	if pos != s.size || off != next {
		return fmt.Errorf("batches end at %d (offset %d), file at %d (next segment %d)", pos, off, s.size, next)
	}
	s.index, s.times, s.next = idx, times, next
	if len(times) > 0 {
		s.maxTS = times[len(times)-1].ts
	}
	return nil
}

// readHeader reads the batch header at pos.
func (s *segment) readHeader(pos int64) (record.Header, error) {
	var buf [record.HeaderSize]byte
	if pos+record.HeaderSize > s.size {
		return record.Header{}, fmt.Errorf("%w: header at %d beyond %d", record.ErrShort, pos, s.size)
	}
	if _, err := s.file.ReadAt(buf[:], pos); err != nil {
		return record.Header{}, err
	}
	return record.ParseHeader(buf[:])
}

// scanResult is what scan found.
type scanResult struct {
	size  int64 // bytes of good batches from the start
	err   error // why scanning stopped early, nil at a clean end
	count int   // good batches
	// zeroTail is how many zero bytes followed the last batch: space
	// written ahead, cut without complaint.
	zeroTail int64
}

// scan reads the whole segment batch by batch from position 0, checking
// lengths, CRCs and dense offsets, and rebuilds the in-memory indexes. It
// stops at the first bad batch and reports where.
func (s *segment) scan(interval int64) scanResult {
	s.index, s.times, s.lastIndexed, s.maxTS, s.next = nil, nil, 0, noTimestamp, s.base
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk)
	fileSize := s.size
	var pos int64
	var res scanResult
	for pos < fileSize {
		want := min(int64(cap(buf)), fileSize-pos)
		buf = buf[:want]
		n, err := s.file.ReadAt(buf, pos)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == want) {
			res.err = fmt.Errorf("read at %d: %w", pos, err)
			break
		}
		h, err := record.ParseHeader(buf)
		if err != nil {
			res.err = err
			break
		}
		if int64(h.Size()) > fileSize-pos {
			res.err = fmt.Errorf("%w: batch of %d bytes at %d, file ends at %d", record.ErrShort, h.Size(), pos, fileSize)
			break
		}
		if h.Size() > len(buf) {
			buf = make([]byte, h.Size())
			if _, err := s.file.ReadAt(buf, pos); err != nil {
				res.err = fmt.Errorf("read at %d: %w", pos, err)
				break
			}
		}
		err = record.Split(buf, func(h record.Header, b []byte) error {
			if h.BaseOffset != s.next {
				return fmt.Errorf("%w: batch at %d has offset %d, want %d", record.ErrCorrupt, pos, h.BaseOffset, s.next)
			}
			if h.LastOffsetDelta != h.NumRecords-1 && h.NumRecords > 0 {
				return fmt.Errorf("%w: batch at %d holds %d records but spans %d offsets", record.ErrCorrupt, pos, h.NumRecords, h.LastOffsetDelta+1)
			}
			s.noteBatch(&h, pos, interval)
			pos += int64(len(b))
			res.count++
			return nil
		})
		if err != nil && !errors.Is(err, record.ErrShort) {
			res.err = err
			break
		}
		buf = buf[:0]
		if cap(buf) < chunk {
			buf = make([]byte, 0, chunk)
		}
	}
	if res.err != nil {
		// Zeros after the last batch are space written ahead (preallocate),
		// not damage.
		if zero, err := s.allZero(pos, fileSize); err == nil && zero {
			res.err = nil
			res.zeroTail = fileSize - pos
		}
	}
	res.size = pos
	s.size = pos
	return res
}

// allZero reports whether the bytes in [from, to) are all zero.
func (s *segment) allZero(from, to int64) (bool, error) {
	buf := make([]byte, min(to-from, 1<<20))
	for from < to {
		n := min(int64(len(buf)), to-from)
		if _, err := s.file.ReadAt(buf[:n], from); err != nil {
			return false, err
		}
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		from += n
	}
	return true, nil
}

// trimAllocation cuts zeros written ahead, so the file ends with its data.
func (s *segment) trimAllocation() error {
	if s.allocated <= s.size {
		return nil
	}
	if err := s.file.Truncate(s.size); err != nil {
		return err
	}
	s.allocated = s.size
	return nil
}

func (s *segment) close() error { return s.file.Close() }

// remove deletes the segment's files, the log first, so a crash in between
// leaves only orphan indexes, which Open removes. The file is closed only
// once its name is gone, so a failed removal leaves the segment usable.
func (s *segment) remove(fs vfs.FS) error {
	if err := fs.Remove(s.logPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.file.Close()
	for _, p := range []string{s.indexPath(), s.timeIndexPath()} {
		if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
