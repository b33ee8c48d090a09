package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/google/btree"

	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

// Checkpoint layout (see the package doc).
const (
	checkpointMagic   = "FERRYMETA"
	checkpointVersion = 1
	ckptOffVersion    = 9
	ckptOffCovered    = 10
	ckptOffEntries    = 18
	ckptOffBodyLen    = 26
	ckptOffCRC        = 34
	ckptHeaderSize    = 38
	// ckptChunkBytes is about the largest batch in a checkpoint body.
	ckptChunkBytes = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendCheckpoint appends the checkpoint of the entries iterated by each
// (ascending by key) to buf. Batches close once they reach chunk bytes.
func appendCheckpoint(buf []byte, covered int64, chunk int, each func(func(entry) bool)) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, ckptHeaderSize)...)
	var bld record.Builder
	var count int64
	flush := func() {
		if bld.Len() == 0 {
			return
		}
		b := bld.Build()
		record.SetBaseOffset(b, count-int64(bld.Len()))
		buf = append(buf, b...)
		bld.Reset()
	}
	each(func(e entry) bool {
		k, v := []byte(e.key), e.value
		if k == nil {
			k = emptyBytes
		}
		if v == nil {
			v = emptyBytes
		}
		bld.Add(record.Record{Key: k, Value: v})
		count++
		if bld.Size() >= chunk {
			flush()
		}
		return true
	})
	flush()
	h := buf[start : start+ckptHeaderSize]
	copy(h, checkpointMagic)
	h[ckptOffVersion] = checkpointVersion
	binary.BigEndian.PutUint64(h[ckptOffCovered:], uint64(covered))
	binary.BigEndian.PutUint64(h[ckptOffEntries:], uint64(count))
	binary.BigEndian.PutUint64(h[ckptOffBodyLen:], uint64(len(buf)-start-ckptHeaderSize))
	binary.BigEndian.PutUint32(h[ckptOffCRC:], crc32.Checksum(h[:ckptOffCRC], castagnoli))
	return buf
}

// decodeCheckpoint checks a whole checkpoint and calls fn for each entry in
// key order. Keys and values alias data. It returns the covered offset and
// the entry count.
func decodeCheckpoint(data []byte, fn func(key, value []byte) error) (covered, entries int64, err error) {
	if len(data) < ckptHeaderSize {
		return 0, 0, fmt.Errorf("%w: checkpoint of %d bytes is shorter than its %d-byte header", ErrCorrupt, len(data), ckptHeaderSize)
	}
	h := data[:ckptHeaderSize]
	if string(h[:len(checkpointMagic)]) != checkpointMagic {
		return 0, 0, fmt.Errorf("%w: checkpoint magic %q, want %q", ErrCorrupt, h[:len(checkpointMagic)], checkpointMagic)
	}
	if got, want := crc32.Checksum(h[:ckptOffCRC], castagnoli), binary.BigEndian.Uint32(h[ckptOffCRC:]); got != want {
		return 0, 0, fmt.Errorf("%w: checkpoint header crc %08x, header says %08x", ErrCorrupt, got, want)
	}
	if v := h[ckptOffVersion]; v != checkpointVersion {
		return 0, 0, fmt.Errorf("%w: checkpoint version %d, this build reads %d", ErrCorrupt, v, checkpointVersion)
	}
	covered = int64(binary.BigEndian.Uint64(h[ckptOffCovered:]))
	entries = int64(binary.BigEndian.Uint64(h[ckptOffEntries:]))
	bodyLen := binary.BigEndian.Uint64(h[ckptOffBodyLen:])
	if covered < 0 || entries < 0 {
		return 0, 0, fmt.Errorf("%w: checkpoint covers offset %d with %d entries", ErrCorrupt, covered, entries)
	}
	body := data[ckptHeaderSize:]
	if bodyLen != uint64(len(body)) {
		return 0, 0, fmt.Errorf("%w: checkpoint body is %d bytes, header says %d", ErrCorrupt, len(body), bodyLen)
	}
	var n int64
	var prev []byte
	err = record.Split(body, func(bh record.Header, batch []byte) error {
		// Base offset and leader epoch are outside the batch CRC: pin them.
		if bh.BaseOffset != n || bh.LeaderEpoch != 0 {
			return fmt.Errorf("batch of entry %d says entry %d, epoch %d", n, bh.BaseOffset, bh.LeaderEpoch)
		}
		return record.Records(batch, record.Limits{}, func(r record.Record) error {
			if r.Offset != n {
				return fmt.Errorf("entry %d has number %d", n, r.Offset)
			}
			if r.Key == nil || r.Value == nil || len(r.Headers) != 0 {
				return fmt.Errorf("entry %d: null key or value, or headers", n)
			}
			if n > 0 && string(r.Key) <= string(prev) {
				return fmt.Errorf("entry %d: key %q not after %q", n, r.Key, prev)
			}
			prev = r.Key
			n++
			return fn(r.Key, r.Value)
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%w: checkpoint body: %w", ErrCorrupt, err)
	}
	if n != entries {
		return 0, 0, fmt.Errorf("%w: checkpoint holds %d entries, header says %d", ErrCorrupt, n, entries)
	}
	return covered, entries, nil
}

// ascend adapts a tree's iteration to appendCheckpoint.
func ascend(t *btree.BTreeG[entry]) func(func(entry) bool) {
	return func(fn func(entry) bool) { t.Ascend(fn) }
}

func (s *Store) checkpointPath() string { return filepath.Join(s.dir, checkpointFile) }

// loadCheckpoint fills the empty map from the checkpoint on disk, if any.
func (s *Store) loadCheckpoint() (covered int64, n int, err error) {
	path := s.checkpointPath()
	// A leftover of a checkpoint interrupted before its rename.
	if err := s.opts.FS.Remove(path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.opts.Logger.Warn("meta: cannot remove unfinished checkpoint", "path", path+".tmp", "err", err)
	}
	data, err := vfs.ReadFile(s.opts.FS, path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read meta checkpoint: %w", err)
	}
	covered, entries, err := decodeCheckpoint(data, func(k, v []byte) error {
		// Copy: entries must not pin the file's buffer.
		val := make([]byte, len(v))
		copy(val, v)
		s.tree.ReplaceOrInsert(entry{key: string(k), value: val})
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("load meta checkpoint %s (written atomically, so this is damage; "+
			"move it away only if losing metadata is acceptable): %w", path, err)
	}
	return covered, int(entries), nil
}

// Checkpoint writes the whole state to disk and then deletes the change-log
// segments it covers. Apply goes on meanwhile: the state is captured in O(1)
// and then encoded and written by the calling goroutine. One checkpoint runs
// at a time. If it fails, the previous checkpoint and the change log still
// hold everything.
func (s *Store) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	return s.checkpoint()
}

// checkpoint does the work of Checkpoint. Called with ckptMu held.
func (s *Store) checkpoint() error {
	s.writeMu.Lock()
	if s.closed {
		s.writeMu.Unlock()
		return ErrClosed
	}
	covered := s.log.EndOffset()
	mark := s.appended
	s.mu.Lock()
	snap := s.tree.Clone()
	s.mu.Unlock()
	s.writeMu.Unlock()

	if covered == s.covered {
		return nil // nothing new since the checkpoint on disk
	}
	// The checkpoint claims every change below covered; they must be on disk
	// before it, or a power cut could leave the change log shorter than the
	// checkpoint says and new changes would reuse skipped offsets.
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("meta checkpoint: sync change log: %w", err)
	}
	data := appendCheckpoint(nil, covered, ckptChunkBytes, ascend(snap))
	if err := vfs.WriteFileAtomic(s.opts.FS, s.checkpointPath(), data); err != nil {
		return fmt.Errorf("meta checkpoint: write: %w", err)
	}
	s.covered = covered
	s.writeMu.Lock()
	s.ckptMark = mark
	s.writeMu.Unlock()

	s.log.SetDeleteFloor(covered)
	res, err := s.log.EnforceRetention()
	s.opts.Logger.Debug("meta checkpoint written", "dir", s.dir, "covered_offset", covered,
		"entries", snap.Len(), "bytes", len(data), "change_log_segments_deleted", res.Segments)
	if err != nil {
		return fmt.Errorf("meta checkpoint written, deleting old changes failed: %w", err)
	}
	return nil
}

// maybeRequestCheckpoint wakes the checkpoint loop once enough change log
// has accumulated. Called with writeMu held.
func (s *Store) maybeRequestCheckpoint() {
	if s.opts.CheckpointBytes < 0 {
		return
	}
	if s.appended-max(s.ckptMark, s.retryMark) < s.opts.CheckpointBytes {
		return
	}
	select {
	case s.ckptReq <- struct{}{}:
	default:
	}
}

// checkpointLoop runs automatic checkpoints.
func (s *Store) checkpointLoop() {
	defer close(s.stopped)
	for {
		select {
		case <-s.stop:
			return
		case <-s.ckptReq:
		}
		s.ckptMu.Lock()
		// A request may be stale: a checkpoint may have run since.
		s.writeMu.Lock()
		due := !s.closed && s.appended-max(s.ckptMark, s.retryMark) >= s.opts.CheckpointBytes
		s.writeMu.Unlock()
		if !due {
			s.ckptMu.Unlock()
			continue
		}
		err := s.checkpoint()
		if err != nil && !errors.Is(err, ErrClosed) {
			s.opts.Logger.Error("meta automatic checkpoint failed", "dir", s.dir, "err", err)
			s.writeMu.Lock()
			s.retryMark = s.appended
			s.writeMu.Unlock()
		}
		s.ckptMu.Unlock()
		if s.onAutoCheckpoint != nil {
			s.onAutoCheckpoint(err)
		}
	}
}
