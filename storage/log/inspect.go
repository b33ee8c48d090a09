package log

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

// InspectOptions say how deeply Inspect looks.
type InspectOptions struct {
	// Verify also decodes every record of each uncompressed batch (lengths,
	// count, dense offset deltas, timestamps). Without it Inspect still reads
	// every byte, checks every batch header and CRC and checks the index
	// files against the batches it finds.
	Verify bool
	// Batches lists every batch in the report.
	Batches bool
	// MaxRecordBytes, when positive, makes Verify report records larger than
	// this (the log's Options.MaxRecordBytes).
	MaxRecordBytes int
	// MaxBatchBytes is the largest batch whose records Verify decodes: a
	// batch is held in memory whole to be decoded. Larger batches still get
	// their CRC checked. Default 64 MiB.
	MaxBatchBytes int
}

// Severity says how bad a finding is.
type Severity string

// The severities of findings, worst first.
const (
	// SeverityDamage: data is lost or unreadable, or a file the log trusts
	// is wrong. log.Open does not fix it: an operator must act.
	SeverityDamage Severity = "damage"
	// SeverityRepairable: the next log.Open repairs it by itself without
	// losing a whole batch: a torn tail of the active segment, a missing or
	// malformed index of a sealed segment, leftover files.
	SeverityRepairable Severity = "repairable"
	// SeverityNotice: worth knowing, harmless.
	SeverityNotice Severity = "notice"
)

// FindingKind names what a finding is about. The names are stable: scripts
// match them.
type FindingKind string

// The kinds of findings.
const (
	FindingCRCMismatch    FindingKind = "crc-mismatch"      // a batch fails its CRC-32C
	FindingBadHeader      FindingKind = "bad-header"        // bytes where a batch should start are not a batch header
	FindingTornTail       FindingKind = "torn-tail"         // bytes after the last whole batch
	FindingOffsetGap      FindingKind = "offsets-not-dense" // a batch or segment does not start where the previous one ended
	FindingBadRecord      FindingKind = "bad-record"        // a record fails to decode (Verify)
	FindingLargeRecord    FindingKind = "large-record"      // a record exceeds MaxRecordBytes (Verify)
	FindingTimestamps     FindingKind = "timestamps"        // a header's max timestamp disagrees with its records (Verify)
	FindingEmptyBatch     FindingKind = "empty-batch"       // a batch holds no records
	FindingMissingIndex   FindingKind = "missing-index"     // a segment has no .index or .timeindex
	FindingBadIndex       FindingKind = "bad-index"         // an index file is malformed or disagrees with the batches
	FindingOrphanIndex    FindingKind = "orphan-index"      // an index file without its .log
	FindingEmptySegment   FindingKind = "empty-segment"     // a sealed segment with no batches
	FindingTempFile       FindingKind = "temp-file"         // a *.tmp file left by an interrupted write
	FindingStrayFile      FindingKind = "stray-file"        // a file that is no part of the log
	FindingReadError      FindingKind = "read-error"        // a file could not be read
	FindingNoSegments     FindingKind = "no-segments"       // the folder holds no segment
	FindingBadSegmentName FindingKind = "bad-segment-name"  // a name log.Open misreads as a segment
	FindingPreallocated   FindingKind = "preallocated"      // zeros written ahead after the active segment's last batch
)

// Finding is one problem (or notice) Inspect found.
type Finding struct {
	Severity Severity    `json:"severity"`
	Kind     FindingKind `json:"kind"`
	// File is the file's name inside the folder, empty for the folder itself.
	File string `json:"file,omitempty"`
	// Segment is the base offset of the segment concerned, -1 when none.
	Segment int64 `json:"segment"`
	// Position is the byte position in File, -1 when none.
	Position int64 `json:"position"`
	// Offset is the first offset concerned, -1 when none.
	Offset  int64  `json:"offset"`
	Message string `json:"message"`
}

// IndexState is what Inspect made of an index file.
type IndexState string

// The states of an index file.
const (
	IndexOK      IndexState = "ok"
	IndexMissing IndexState = "missing"
	IndexBad     IndexState = "bad"
)

// IndexInfo describes one index file of a segment.
type IndexInfo struct {
	State   IndexState `json:"state"`
	Entries int        `json:"entries"`
	Size    int64      `json:"size"`
}

// BatchInfo describes one record batch.
type BatchInfo struct {
	Position       int64  `json:"position"`
	BaseOffset     int64  `json:"base_offset"`
	LastOffset     int64  `json:"last_offset"`
	Records        int32  `json:"records"`
	Size           int    `json:"size"`
	FirstTimestamp int64  `json:"first_timestamp"`
	MaxTimestamp   int64  `json:"max_timestamp"`
	Compression    string `json:"compression"`
	ProducerID     int64  `json:"producer_id"`
	ProducerEpoch  int16  `json:"producer_epoch"`
	LeaderEpoch    int32  `json:"leader_epoch"`
	CRCOK          bool   `json:"crc_ok"`
}

// SegmentInfo describes one segment. Offsets and timestamps are -1 when the
// segment has no readable batch (or no records).
type SegmentInfo struct {
	BaseOffset int64  `json:"base_offset"`
	File       string `json:"file"`
	// Size is the .log file's size in bytes.
	Size int64 `json:"size"`
	// Active marks the last segment, the one appends go to.
	Active         bool  `json:"active"`
	FirstOffset    int64 `json:"first_offset"`
	LastOffset     int64 `json:"last_offset"`
	Batches        int   `json:"batches"`
	Records        int64 `json:"records"`
	CorruptBatches int   `json:"corrupt_batches"` // whole batches that fail their CRC
	FirstTimestamp int64 `json:"first_timestamp"`
	MaxTimestamp   int64 `json:"max_timestamp"`
	// ScannedBytes is how far the scan got: the end of the last whole batch.
	ScannedBytes int64       `json:"scanned_bytes"`
	Index        IndexInfo   `json:"index"`
	TimeIndex    IndexInfo   `json:"time_index"`
	BatchList    []BatchInfo `json:"batch_list,omitempty"`
}

// InspectReport is what Inspect found in a log's folder.
type InspectReport struct {
	Dir      string        `json:"dir"`
	Verified bool          `json:"verified"`
	Segments []SegmentInfo `json:"segments"`
	Findings []Finding     `json:"findings"`
	// Totals over all segments.
	Batches int   `json:"batches"`
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// StartOffset is the first offset stored and EndOffset the one after the
	// last whole batch; both -1 when the log holds no batch.
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"`
}

// Problems counts the findings that are not notices.
func (r *InspectReport) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity != SeverityNotice {
			n++
		}
	}
	return n
}

// OK reports whether Inspect found no problem.
func (r *InspectReport) OK() bool { return r.Problems() == 0 }

// Inspect reads the partition log in dir and reports its segments, batches
// and everything wrong with them. It is strictly read-only: unlike Open, which
// cuts torn tails, rebuilds indexes and removes leftovers, it opens files
// for reading only, so it is safe on a damaged log, and safe (if not exact
// about the active segment's end) while a broker has the log open.
//
// It reads every segment file from start to end in 1 MiB chunks, checking
// each batch's header, CRC and offsets, and checks the index files against
// the batches found. Damage it finds is reported as findings, not as an
// error: the error is for a folder it cannot list, or ctx ending.
func Inspect(ctx context.Context, fsys vfs.FS, dir string, opts InspectOptions) (*InspectReport, error) {
	if fsys == nil {
		fsys = vfs.Default
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 64 << 20
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inspect log %s: %w", dir, err)
	}
	in := &inspector{
		ctx:  ctx,
		fs:   fsys,
		dir:  dir,
		opts: opts,
		rep: &InspectReport{Dir: dir, Verified: opts.Verify, Segments: []SegmentInfo{}, Findings: []Finding{},
			StartOffset: -1, EndOffset: -1},
	}
	bases := in.classify(entries)
	if len(bases) == 0 {
		in.add(Finding{Severity: SeverityNotice, Kind: FindingNoSegments, Segment: -1, Position: -1, Offset: -1,
			Message: "no segment files: opening the log starts an empty log at offset 0"})
	}
	prevNext := int64(-1) // offset after the previous segment's last batch; -1 when unknown
	for i, base := range bases {
		last := i == len(bases)-1
		nextBase := int64(-1)
		if !last {
			nextBase = bases[i+1]
		}
		if prevNext >= 0 && base != prevNext {
			in.segmentGap(base, prevNext)
		}
		si, next := in.segment(base, nextBase, last)
		if in.err != nil {
			return nil, fmt.Errorf("inspect log %s: %w", dir, in.err)
		}
		in.rep.Segments = append(in.rep.Segments, si)
		in.rep.Batches += si.Batches
		in.rep.Records += si.Records
		in.rep.Bytes += si.Size
		if si.FirstOffset >= 0 && in.rep.StartOffset < 0 {
			in.rep.StartOffset = si.FirstOffset
		}
		if si.LastOffset >= 0 {
			in.rep.EndOffset = si.LastOffset + 1
		}
		prevNext = next
	}
	return in.rep, nil
}

// inspector holds the state of one Inspect call.
type inspector struct {
	ctx  context.Context
	err  error // ctx's error once it ended: the inspection stops
	fs   vfs.FS
	dir  string
	opts InspectOptions
	rep  *InspectReport
}

func (in *inspector) add(f Finding) { in.rep.Findings = append(in.rep.Findings, f) }

// classify sorts the folder's entries: segment .log files (returned, sorted
// by base offset) and findings for everything else that log.Open would act
// on or ignore.
func (in *inspector) classify(entries []os.DirEntry) []int64 {
	logs := map[int64]bool{}
	var indexes []string
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		file := Finding{File: name, Segment: -1, Position: -1, Offset: -1}
		if strings.HasSuffix(name, ".tmp") {
			file.Severity, file.Kind = SeverityRepairable, FindingTempFile
			file.Message = "left by an interrupted index write; removed when the log is next opened"
			in.add(file)
			continue
		}
		base, suffix, ok := ParseSegmentName(name)
		canonical := ok && name[:len(name)-len(suffix)] == SegmentName(base)
		switch {
		case ok && suffix == logSuffix && (!canonical || e.IsDir()):
			// log.Open lists it as segment base and fails to open it.
			file.Severity, file.Kind, file.Segment = SeverityDamage, FindingBadSegmentName, base
			file.Message = fmt.Sprintf("opening the log fails on it (it is taken for segment %d): move it out of the folder", base)
			in.add(file)
		case canonical && suffix == logSuffix:
			bases = append(bases, base)
			logs[base] = true
		case canonical && !e.IsDir() && (suffix == indexSuffix || suffix == timeIndexSuffix):
			indexes = append(indexes, name)
		default:
			file.Severity, file.Kind = SeverityNotice, FindingStrayFile
			file.Message = "not part of the log; opening the log ignores it"
			in.add(file)
		}
	}
	for _, name := range indexes {
		base, _, _ := ParseSegmentName(name)
		if !logs[base] {
			in.add(Finding{Severity: SeverityRepairable, Kind: FindingOrphanIndex, File: name, Segment: base, Position: -1, Offset: -1,
				Message: "index without its .log (left by an interrupted segment deletion); removed when the log is next opened"})
		}
	}
	slices.Sort(bases)
	return bases
}

// segmentGap reports a segment that does not start where the previous one
// ended.
func (in *inspector) segmentGap(base, prevNext int64) {
	f := Finding{Severity: SeverityDamage, Kind: FindingOffsetGap, File: SegmentName(base) + logSuffix, Segment: base, Position: -1}
	if base > prevNext {
		f.Offset = prevNext
		f.Message = fmt.Sprintf("offsets %d..%d are missing: the previous segment ends at %d, this one starts at %d",
			prevNext, base-1, prevNext-1, base)
	} else {
		f.Offset = base
		f.Message = fmt.Sprintf("segment starts at offset %d but the previous one runs to %d: offsets %d..%d are stored twice",
			base, prevNext-1, base, prevNext-1)
	}
	in.add(f)
}

// segmentScan is the state of one segment's scan.
type segmentScan struct {
	in       *inspector
	si       *SegmentInfo
	file     vfs.File
	size     int64
	base     int64
	last     bool
	nextBase int64 // base of the following segment, -1 for the last one

	buf    []byte // a window on the file, starting at bufPos
	bufPos int64

	next     int64 // base offset the next batch should have
	maxTS    int64 // largest timestamp so far, noTimestamp when none
	stopped  bool  // the scan ended early at damage it cannot step over
	cutNoted bool  // for the active segment: where log.Open cuts was said

	offsetEntries []offsetEntry // the index files' entries, when their shape is good
	timeEntries   []timeEntry
	oi, ti        int // next entries to check against the batches
	// indexBad is the first disagreement of the offset index with the
	// batches; lastEntryBad says whether its last entry disagrees too, which
	// log.Open notices.
	indexBad     *Finding
	lastEntryBad bool
	timesBad     *Finding // the first disagreement of the time index
}

// segment inspects one segment and returns what it found and the offset
// after its last whole batch (-1 when that is unknown because the scan
// stopped at damage).
func (in *inspector) segment(base, nextBase int64, last bool) (SegmentInfo, int64) {
	name := SegmentName(base)
	si := SegmentInfo{
		BaseOffset: base, File: name + logSuffix, Active: last,
		FirstOffset: -1, LastOffset: -1, FirstTimestamp: -1, MaxTimestamp: -1,
	}
	s := &segmentScan{in: in, si: &si, base: base, last: last, nextBase: nextBase, next: base, maxTS: noTimestamp}
	f, err := in.fs.OpenFile(filepath.Join(in.dir, si.File), os.O_RDONLY, 0)
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			si.Size = fi.Size()
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		in.add(Finding{Severity: SeverityDamage, Kind: FindingReadError, File: si.File, Segment: base, Position: -1, Offset: base,
			Message: err.Error()})
		si.Index.State, si.TimeIndex.State = IndexMissing, IndexMissing
		return si, -1
	}
	defer f.Close()
	s.file, s.size = f, si.Size
	s.loadIndexes()
	if si.Size == 0 && !last {
		in.add(Finding{Severity: SeverityRepairable, Kind: FindingEmptySegment, File: si.File, Segment: base, Position: 0, Offset: base,
			Message: "sealed segment is empty (left by an interrupted roll); removed when the log is next opened"})
	}
	s.scan()
	s.finishIndexes()
	if s.stopped {
		return si, -1
	}
	return si, s.next
}

// damage reports damage in the segment's .log at pos. Open's scan of the
// active segment stops at the first such place and cuts the rest: the first
// finding there says so.
func (s *segmentScan) damage(kind FindingKind, pos, offset int64, msg string) {
	sev := SeverityDamage
	if s.last && !s.cutNoted {
		s.cutNoted = true
		msg += fmt.Sprintf("; opening the log cuts the active segment here, dropping its last %d bytes (offsets from %d on)", s.size-pos, s.next)
	}
	if s.last && kind == FindingTornTail {
		sev = SeverityRepairable
	}
	s.in.add(Finding{Severity: sev, Kind: kind, File: s.si.File, Segment: s.base, Position: pos, Offset: offset, Message: msg})
}

// scan walks the segment batch by batch.
func (s *segmentScan) scan() {
	var pos int64
	defer func() { s.si.ScannedBytes = pos }()
	for pos < s.size {
		left := s.size - pos
		if left < record.HeaderSize {
			if s.preallocated(pos, left) {
				return
			}
			s.tornTail(pos, fmt.Sprintf("%d bytes after the last whole batch, too few for a batch header", left))
			return
		}
		hb, err := s.read(pos, record.HeaderSize)
		if err != nil {
			s.readError(pos, err)
			return
		}
		h, err := record.ParseHeader(hb)
		if err != nil {
			if s.preallocated(pos, left) {
				return
			}
			s.damage(FindingBadHeader, pos, s.next, fmt.Sprintf("no batch header where one should start (%v); the %d bytes from here are not read", err, left))
			s.stopped = true
			return
		}
		if int64(h.Size()) > left {
			s.tornTail(pos, fmt.Sprintf("batch of %d bytes at offset %d runs past the end of the file (%d bytes left)", h.Size(), h.BaseOffset, left))
			return
		}
		if !s.batch(pos, h) {
			return
		}
		pos += int64(h.Size())
	}
}

// preallocated reports the zeros that fsync=always writes ahead of the data
// in the active segment; a log that was not closed keeps them until the next
// open trims them.
func (s *segmentScan) preallocated(pos, left int64) bool {
	if !s.last || !s.zeroFrom(pos) {
		return false
	}
	s.in.add(Finding{Severity: SeverityNotice, Kind: FindingPreallocated, File: s.si.File, Segment: s.base, Position: pos, Offset: s.next,
		Message: fmt.Sprintf("%d zero bytes written ahead after the last batch; the next open trims them", left)})
	return true
}

// tornTail reports bytes at the end that hold no whole batch.
func (s *segmentScan) tornTail(pos int64, msg string) {
	s.stopped = !s.last
	if !s.last {
		msg += fmt.Sprintf("; the sealed segment should run to offset %d: reads of offset %d fail", s.nextBase-1, s.next)
	}
	s.damage(FindingTornTail, pos, s.next, msg)
}

func (s *segmentScan) readError(pos int64, err error) {
	s.stopped = true
	if s.in.err != nil {
		return
	}
	s.in.add(Finding{Severity: SeverityDamage, Kind: FindingReadError, File: s.si.File, Segment: s.base, Position: pos, Offset: s.next,
		Message: fmt.Sprintf("read at %d: %v", pos, err)})
}

// batch checks the whole batch at pos and records it. It returns false when
// the scan must stop.
func (s *segmentScan) batch(pos int64, h record.Header) bool {
	s.checkIndexes(pos, h.BaseOffset)
	crcOK, body, err := s.checksum(pos, h)
	if err != nil {
		s.readError(pos, err)
		return false
	}
	si := s.si
	if si.Batches == 0 {
		si.FirstOffset = h.BaseOffset
		if h.NumRecords > 0 {
			si.FirstTimestamp = h.FirstTimestamp
		}
	}
	si.Batches++
	si.Records += int64(h.NumRecords)
	si.LastOffset = h.LastOffset()
	if h.NumRecords > 0 && h.MaxTimestamp > s.maxTS {
		s.maxTS = h.MaxTimestamp
		si.MaxTimestamp = h.MaxTimestamp
	}
	if s.in.opts.Batches {
		si.BatchList = append(si.BatchList, BatchInfo{
			Position: pos, BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), Records: h.NumRecords, Size: h.Size(),
			FirstTimestamp: h.FirstTimestamp, MaxTimestamp: h.MaxTimestamp, Compression: h.Compression().String(),
			ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, LeaderEpoch: h.LeaderEpoch, CRCOK: crcOK,
		})
	}

	switch {
	case h.BaseOffset != s.next && si.Batches == 1:
		s.damage(FindingOffsetGap, pos, h.BaseOffset, fmt.Sprintf("first batch has offset %d but the segment is named for %d", h.BaseOffset, s.next))
	case h.BaseOffset != s.next:
		s.damage(FindingOffsetGap, pos, h.BaseOffset, fmt.Sprintf("batch has offset %d, want %d (the previous batch's next offset)", h.BaseOffset, s.next))
	}
	if h.NumRecords > 0 && h.LastOffsetDelta != h.NumRecords-1 {
		s.damage(FindingOffsetGap, pos, h.BaseOffset, fmt.Sprintf("batch holds %d records but spans %d offsets", h.NumRecords, int64(h.LastOffsetDelta)+1))
	}
	if h.NumRecords == 0 {
		s.in.add(Finding{Severity: SeverityNotice, Kind: FindingEmptyBatch, File: si.File, Segment: s.base, Position: pos, Offset: h.BaseOffset,
			Message: "batch holds no records"})
	}
	if !crcOK {
		si.CorruptBatches++
		msg := fmt.Sprintf("batch of offsets %d..%d fails its CRC", h.BaseOffset, h.LastOffset())
		if !s.last {
			msg += "; reads of these offsets fail"
		}
		s.damage(FindingCRCMismatch, pos, h.BaseOffset, msg)
	} else if s.in.opts.Verify && body != nil {
		s.verifyRecords(pos, h, body)
	}
	s.next = h.NextOffset()
	return true
}

// checksum checks the CRC of the batch at pos. It also returns the whole
// batch when Verify needs its records (uncompressed, within MaxBatchBytes).
func (s *segmentScan) checksum(pos int64, h record.Header) (ok bool, batch []byte, err error) {
	size := h.Size()
	wantBody := s.in.opts.Verify && h.Compression() == record.CompressionNone
	switch {
	case size <= inspectChunk:
		b, err := s.read(pos, size)
		if err != nil {
			return false, nil, err
		}
		ok = record.Checksum(b) == h.CRC
		if !wantBody {
			b = nil
		}
		return ok, b, nil
	case wantBody && size <= s.in.opts.MaxBatchBytes:
		b := make([]byte, size)
		if err := readAt(s.file, b, pos); err != nil {
			return false, nil, err
		}
		return record.Checksum(b) == h.CRC, b, nil
	}
	// Too large to hold: stream the CRC over the window.
	if wantBody {
		s.in.add(Finding{Severity: SeverityNotice, Kind: FindingBadRecord, File: s.si.File, Segment: s.base, Position: pos, Offset: h.BaseOffset,
			Message: fmt.Sprintf("records not decoded: the batch of %d bytes is larger than the %d bytes Verify holds in memory", size, s.in.opts.MaxBatchBytes)})
	}
	var crc uint32
	for p, end := pos+record.CRCStart, pos+int64(size); p < end; {
		n := int(min(inspectChunk, end-p))
		b, err := s.read(p, n)
		if err != nil {
			return false, nil, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		p += int64(n)
	}
	return crc == h.CRC, nil, nil
}

// verifyRecords decodes the records of a whole, CRC-checked batch.
func (s *segmentScan) verifyRecords(pos int64, h record.Header, batch []byte) {
	bad := func(kind FindingKind, sev Severity, msg string) {
		s.in.add(Finding{Severity: sev, Kind: kind, File: s.si.File, Segment: s.base, Position: pos, Offset: h.BaseOffset, Message: msg})
	}
	var i int64
	maxTS := int64(noTimestamp)
	err := record.Records(batch, record.Limits{}, func(r record.Record) error {
		if r.Offset != h.BaseOffset+i {
			return fmt.Errorf("record %d has offset delta %d, want %d", i, r.Offset-h.BaseOffset, i)
		}
		maxTS = max(maxTS, r.Timestamp)
		i++
		return nil
	})
	if err != nil {
		bad(FindingBadRecord, SeverityDamage, fmt.Sprintf("records of the batch of offsets %d..%d do not decode (its CRC is good, so it was stored so): %v",
			h.BaseOffset, h.LastOffset(), err))
		return
	}
	if lim := s.in.opts.MaxRecordBytes; lim > 0 {
		if err := record.Records(batch, record.Limits{MaxRecordBytes: lim}, func(record.Record) error { return nil }); errors.Is(err, record.ErrTooLarge) {
			bad(FindingLargeRecord, SeverityNotice, err.Error())
		}
	}
	if !h.LogAppendTime() && h.NumRecords > 0 && maxTS != h.MaxTimestamp {
		bad(FindingTimestamps, SeverityNotice, fmt.Sprintf("header says the largest timestamp is %d, the records' largest is %d: time lookups trust the header",
			h.MaxTimestamp, maxTS))
	}
}

// zeroFrom reports whether every byte from pos to the end is zero: what a
// file system leaves after a crash that extended the file but lost the data.
func (s *segmentScan) zeroFrom(pos int64) bool {
	for pos < s.size {
		n := int(min(inspectChunk, s.size-pos))
		b, err := s.read(pos, n)
		if err != nil {
			return false
		}
		for _, c := range b {
			if c != 0 {
				return false
			}
		}
		pos += int64(n)
	}
	return true
}

// Reading the .log file.

const inspectChunk = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// read returns the n bytes (n <= inspectChunk) at pos from the window,
// refilling it with the chunk that starts at pos when they are not all there.
// The bytes are valid until the next read.
func (s *segmentScan) read(pos int64, n int) ([]byte, error) {
	if pos >= s.bufPos && pos+int64(n) <= s.bufPos+int64(len(s.buf)) {
		off := pos - s.bufPos
		return s.buf[off : off+int64(n)], nil
	}
	if err := s.in.ctx.Err(); err != nil {
		s.in.err = err
		return nil, err
	}
	want := min(inspectChunk, s.size-pos)
	if want < int64(n) {
		return nil, fmt.Errorf("%d bytes at %d: %w", n, pos, io.ErrUnexpectedEOF)
	}
	if cap(s.buf) < inspectChunk {
		s.buf = make([]byte, inspectChunk)
	}
	s.buf = s.buf[:want]
	if err := readAt(s.file, s.buf, pos); err != nil {
		s.buf = s.buf[:0]
		return nil, err
	}
	s.bufPos = pos
	return s.buf[:n], nil
}

// readAt fills b from pos. The file may have shrunk since it was measured:
// a short read is an error.
func readAt(f vfs.File, b []byte, pos int64) error {
	n, err := f.ReadAt(b, pos)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Index files.

// loadIndexes reads the segment's index files and checks their shape with
// the bounds log.Open uses for a sealed segment. The entries are then
// checked against the batches as the scan meets them.
func (s *segmentScan) loadIndexes() {
	maxRel := uint64(1) << 32 // the active segment's indexes are not loaded by Open: check shape only
	if !s.last {
		maxRel = uint64(s.nextBase - s.base)
	}
	if b := s.readIndex(indexSuffix, &s.si.Index, offsetEntrySize); b != nil {
		es, err := decodeOffsetIndex(b, s.size, maxRel)
		if err != nil {
			s.badIndex(indexSuffix, &s.si.Index, err.Error(), true)
		} else {
			s.offsetEntries = es
			s.si.Index.Entries = len(es)
		}
	}
	if b := s.readIndex(timeIndexSuffix, &s.si.TimeIndex, timeEntrySize); b != nil {
		es, err := decodeTimeIndex(b, maxRel)
		switch {
		case err != nil:
			s.badIndex(timeIndexSuffix, &s.si.TimeIndex, err.Error(), true)
		case len(es) == 0 && s.size > 0:
			s.badIndex(timeIndexSuffix, &s.si.TimeIndex, "time index is empty", true)
		default:
			s.timeEntries = es
			s.si.TimeIndex.Entries = len(es)
		}
	}
}

// readIndex reads one index file, or returns nil after setting info and
// reporting why it cannot. A valid index has at most one entry per batch
// (plus a final time entry), which bounds what is worth reading.
func (s *segmentScan) readIndex(suffix string, info *IndexInfo, entrySize int64) []byte {
	name := SegmentName(s.base) + suffix
	path := filepath.Join(s.in.dir, name)
	fi, err := s.in.fs.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		info.State = IndexMissing
		s.missingIndex(name)
		return nil
	}
	if err != nil {
		s.badIndex(suffix, info, err.Error(), true)
		return nil
	}
	info.Size = fi.Size()
	if limit := (s.size/record.HeaderSize + 1) * entrySize; fi.Size() > limit {
		s.badIndex(suffix, info, fmt.Sprintf("%d bytes, more than a segment of %d bytes can need", fi.Size(), s.size), true)
		return nil
	}
	b, err := vfs.ReadFile(s.in.fs, path)
	if err != nil {
		s.badIndex(suffix, info, err.Error(), true)
		return nil
	}
	info.State = IndexOK
	return b
}

// badIndex marks an index bad and reports it. openNotices says whether
// log.Open's own checks of a sealed segment catch the problem (and rebuild
// the index), or trust the file.
func (s *segmentScan) badIndex(suffix string, info *IndexInfo, why string, openNotices bool) {
	info.State = IndexBad
	name := SegmentName(s.base) + suffix
	kind := FindingBadIndex
	switch {
	case s.last:
		s.in.add(Finding{Severity: SeverityNotice, Kind: kind, File: name, Segment: s.base, Position: -1, Offset: -1,
			Message: why + "; the active segment's indexes are rebuilt from its batches when the log is next opened"})
	case openNotices:
		s.in.add(Finding{Severity: SeverityRepairable, Kind: kind, File: name, Segment: s.base, Position: -1, Offset: -1,
			Message: why + "; rebuilt by scanning the segment when the log is next opened"})
	default:
		s.in.add(Finding{Severity: SeverityDamage, Kind: kind, File: name, Segment: s.base, Position: -1, Offset: -1,
			Message: why + fmt.Sprintf("; opening the log trusts this file: stop the broker and remove %s%s and %s%s to have them rebuilt",
				SegmentName(s.base), indexSuffix, SegmentName(s.base), timeIndexSuffix)})
	}
}

// missingIndex reports a missing index file.
func (s *segmentScan) missingIndex(name string) {
	f := Finding{Severity: SeverityRepairable, Kind: FindingMissingIndex, File: name, Segment: s.base, Position: -1, Offset: -1,
		Message: "missing; rebuilt by scanning the segment when the log is next opened"}
	if s.last {
		f.Severity = SeverityNotice
		f.Message = "missing; normal for the active segment after a crash: its indexes are written when it rolls or the log closes"
	}
	if s.size == 0 {
		return // an empty segment needs no index
	}
	s.in.add(f)
}

// checkIndexes checks the index entries at or before the batch that starts
// at pos with offset base. Index entries name batch starts: an entry that
// the scan stepped over points inside a batch.
func (s *segmentScan) checkIndexes(pos, base int64) {
	for ; s.oi < len(s.offsetEntries) && int64(s.offsetEntries[s.oi].pos) <= pos; s.oi++ {
		e := s.offsetEntries[s.oi]
		var bad *Finding
		switch {
		case int64(e.pos) < pos:
			bad = &Finding{Position: int64(e.pos), Offset: s.base + int64(e.rel),
				Message: fmt.Sprintf("entry %d points at position %d, inside a batch", s.oi, e.pos)}
		case s.base+int64(e.rel) != base:
			bad = &Finding{Position: pos, Offset: s.base + int64(e.rel),
				Message: fmt.Sprintf("entry %d says offset %d is at position %d, where the batch has offset %d", s.oi, s.base+int64(e.rel), pos, base)}
		}
		s.indexEntryBad(bad)
	}
	s.checkTimes(base)
}

func (s *segmentScan) indexEntryBad(bad *Finding) {
	if bad == nil {
		return
	}
	if s.indexBad == nil {
		s.indexBad = bad
	}
	if s.oi == len(s.offsetEntries)-1 {
		s.lastEntryBad = true
	}
}

// checkTimes checks the time entries up to offset: each says no record
// before its offset has a larger timestamp. Called at each batch start and
// at the end of the scan.
func (s *segmentScan) checkTimes(offset int64) {
	for ; s.timesBad == nil && s.ti < len(s.timeEntries) && s.base+int64(s.timeEntries[s.ti].rel) <= offset; s.ti++ {
		e := s.timeEntries[s.ti]
		abs := s.base + int64(e.rel)
		switch {
		case abs < offset:
			s.timesBad = &Finding{Offset: abs,
				Message: fmt.Sprintf("entry %d names offset %d, where no batch starts", s.ti, abs)}
		case s.maxTS != noTimestamp && s.maxTS > e.ts:
			s.timesBad = &Finding{Offset: abs,
				Message: fmt.Sprintf("entry %d says no record before offset %d is newer than timestamp %d, but one has %d", s.ti, abs, e.ts, s.maxTS)}
		}
	}
}

// finishIndexes reports what the scan found wrong with the indexes. Entries
// past a scan that stopped at damage cannot be checked.
func (s *segmentScan) finishIndexes() {
	if !s.stopped {
		for ; s.oi < len(s.offsetEntries); s.oi++ {
			e := s.offsetEntries[s.oi]
			s.indexEntryBad(&Finding{Position: int64(e.pos), Offset: s.base + int64(e.rel),
				Message: fmt.Sprintf("entry %d points at position %d, past the last whole batch", s.oi, e.pos)})
		}
		s.checkTimes(s.next)
		if s.timesBad == nil && s.ti < len(s.timeEntries) {
			e := s.timeEntries[s.ti]
			s.timesBad = &Finding{Offset: s.base + int64(e.rel),
				Message: fmt.Sprintf("entry %d names offset %d, past the segment's end at %d", s.ti, s.base+int64(e.rel), s.next)}
		}
		// log.Open takes the last entry's timestamp for the segment's
		// largest: lower, and time lookups skip newer records. (Higher is
		// legitimate: a failed fsync cuts batches but keeps their timestamps.)
		if n := len(s.timeEntries); s.timesBad == nil && n > 0 && s.maxTS != noTimestamp && s.timeEntries[n-1].ts < s.maxTS {
			s.timesBad = &Finding{Offset: -1,
				Message: fmt.Sprintf("says the largest timestamp is %d, but a batch has %d", s.timeEntries[n-1].ts, s.maxTS)}
		}
	}
	if f := s.indexBad; f != nil {
		// Of the entries, log.Open checks only the last.
		s.badIndex(indexSuffix, &s.si.Index, f.Message, s.lastEntryBad)
		s.lastFinding().Position, s.lastFinding().Offset = f.Position, f.Offset
	}
	if f := s.timesBad; f != nil {
		s.badIndex(timeIndexSuffix, &s.si.TimeIndex, f.Message, false)
		s.lastFinding().Offset = f.Offset
	}
}

func (s *segmentScan) lastFinding() *Finding { return &s.in.rep.Findings[len(s.in.rep.Findings)-1] }
