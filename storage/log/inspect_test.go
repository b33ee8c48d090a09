package log_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
	"github.com/ferrymq/ferry/storage/vfs"
)

// inspectBaseTime is the timestamp of the first record the fixtures append.
const inspectBaseTime = 1_700_000_000_000

// inspectFixture is a closed log of several small segments.
type inspectFixture struct {
	dir     string
	batches int
	records int64
}

// newInspectFixture writes n batches of one to three records into a log
// with 4 KiB segments and an index entry about every 512 bytes, and closes
// it.
func newInspectFixture(t *testing.T, n int) inspectFixture {
	t.Helper()
	fx := inspectFixture{dir: t.TempDir()}
	l, err := log.Open(fx.dir, log.Options{
		Fsync:              log.Fsync{Mode: log.FsyncNever},
		SegmentBytes:       4096,
		IndexIntervalBytes: 512,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b record.Builder
	for i := range n {
		b.Reset()
		for j := range i%3 + 1 {
			b.Add(record.Record{
				Timestamp: inspectBaseTime + int64(i)*1000 + int64(j),
				Key:       fmt.Appendf(nil, "key-%d", i),
				Value:     bytes.Repeat([]byte{byte('a' + j)}, 40),
				Headers:   []record.RecordHeader{{Key: "h", Value: []byte("v")}},
			})
		}
		if _, err := l.Append(b.Build()); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		fx.batches++
		fx.records += int64(i%3 + 1)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// copy copies the fixture's folder, so that a test may damage it.
func (fx inspectFixture) copy(t *testing.T) inspectFixture {
	t.Helper()
	c := fx
	c.dir = t.TempDir()
	if err := os.CopyFS(c.dir, os.DirFS(fx.dir)); err != nil {
		t.Fatal(err)
	}
	return c
}

// segmentFiles lists the fixture's .log files, oldest first.
func (fx inspectFixture) segmentFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fx.dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 4 {
		t.Fatalf("fixture has %d segments, want at least 4", len(names))
	}
	return names
}

// readOnlyFS fails the test on any call that could change the file system.
type readOnlyFS struct {
	vfs.FS
	t *testing.T
}

var errWriteAttempt = errors.New("inspect tried to change the file system")

func (f readOnlyFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		f.t.Errorf("OpenFile(%s, %#x): not read-only", name, flag)
		return nil, errWriteAttempt
	}
	return f.FS.OpenFile(name, flag, perm)
}

func (f readOnlyFS) Remove(name string) error {
	f.t.Errorf("Remove(%s)", name)
	return errWriteAttempt
}

func (f readOnlyFS) RemoveAll(name string) error {
	f.t.Errorf("RemoveAll(%s)", name)
	return errWriteAttempt
}

func (f readOnlyFS) Rename(oldname, newname string) error {
	f.t.Errorf("Rename(%s, %s)", oldname, newname)
	return errWriteAttempt
}

func (f readOnlyFS) MkdirAll(dir string, _ os.FileMode) error {
	f.t.Errorf("MkdirAll(%s)", dir)
	return errWriteAttempt
}

func (f readOnlyFS) SyncDir(dir string) error {
	f.t.Errorf("SyncDir(%s)", dir)
	return errWriteAttempt
}

// snapshotDir maps each file in dir to its size and hash.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			snap[e.Name()] = "folder"
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		snap[e.Name()] = fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b))
	}
	return snap
}

// inspectReadOnly runs Inspect through readOnlyFS and checks that no file
// in dir changed.
func inspectReadOnly(t *testing.T, dir string, opts log.InspectOptions) *log.InspectReport {
	t.Helper()
	before := snapshotDir(t, dir)
	rep, err := log.Inspect(t.Context(), readOnlyFS{FS: vfs.Default, t: t}, dir, opts)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	after := snapshotDir(t, dir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("Inspect changed the folder:\nbefore %v\nafter  %v", before, after)
	}
	return rep
}

func findingsText(rep *log.InspectReport) string {
	var sb strings.Builder
	for _, f := range rep.Findings {
		fmt.Fprintf(&sb, "\n  %s %s %s @%d offset %d: %s", f.Severity, f.Kind, f.File, f.Position, f.Offset, f.Message)
	}
	return sb.String()
}

func TestInspectHealthyLog(t *testing.T) {
	t.Parallel()
	fx := newInspectFixture(t, 200)
	for _, opts := range []log.InspectOptions{{}, {Verify: true, Batches: true, MaxRecordBytes: 1024}} {
		rep := inspectReadOnly(t, fx.dir, opts)
		if !rep.OK() || len(rep.Findings) != 0 {
			t.Errorf("%+v: healthy log has findings:%s", opts, findingsText(rep))
		}
		if rep.Batches != fx.batches || rep.Records != fx.records {
			t.Errorf("%+v: %d batches, %d records; want %d, %d", opts, rep.Batches, rep.Records, fx.batches, fx.records)
		}
		if rep.StartOffset != 0 || rep.EndOffset != fx.records {
			t.Errorf("%+v: offsets %d..%d, want 0..%d", opts, rep.StartOffset, rep.EndOffset, fx.records)
		}
		if n := len(fx.segmentFiles(t)); len(rep.Segments) != n {
			t.Fatalf("%+v: %d segments, want %d", opts, len(rep.Segments), n)
		}
		var bytes int64
		next := int64(0)
		for i, s := range rep.Segments {
			bytes += s.Size
			if s.BaseOffset != next || s.FirstOffset != next {
				t.Errorf("segment %d starts at %d (first offset %d), want %d", i, s.BaseOffset, s.FirstOffset, next)
			}
			next = s.LastOffset + 1
			if s.Active != (i == len(rep.Segments)-1) {
				t.Errorf("segment %d: active = %v", i, s.Active)
			}
			if s.Index.State != log.IndexOK || s.TimeIndex.State != log.IndexOK || s.TimeIndex.Entries == 0 {
				t.Errorf("segment %d: index %+v, time index %+v", i, s.Index, s.TimeIndex)
			}
			if i < len(rep.Segments)-1 && s.Index.Entries == 0 {
				t.Errorf("segment %d: no offset index entries; the fixture should make some", i)
			}
			if s.ScannedBytes != s.Size || s.CorruptBatches != 0 {
				t.Errorf("segment %d: scanned %d of %d bytes, %d corrupt batches", i, s.ScannedBytes, s.Size, s.CorruptBatches)
			}
			if s.FirstTimestamp < inspectBaseTime || s.MaxTimestamp < s.FirstTimestamp {
				t.Errorf("segment %d: timestamps %d..%d", i, s.FirstTimestamp, s.MaxTimestamp)
			}
			if opts.Batches {
				if len(s.BatchList) != s.Batches {
					t.Errorf("segment %d: %d batches listed, %d counted", i, len(s.BatchList), s.Batches)
				}
				pos := int64(0)
				for _, b := range s.BatchList {
					if b.Position != pos || !b.CRCOK || b.Compression != "none" || b.ProducerID != -1 {
						t.Errorf("segment %d: batch %+v, want it at %d with a good CRC", i, b, pos)
					}
					pos += int64(b.Size)
				}
			} else if s.BatchList != nil {
				t.Errorf("segment %d: batches listed without Batches", i)
			}
		}
		if rep.Bytes != bytes {
			t.Errorf("report says %d bytes, segments add up to %d", rep.Bytes, bytes)
		}
	}
}

// TestInspectAgreesWithOpen checks that what Inspect reports of a log is what
// log.Open then finds.
func TestInspectAgreesWithOpen(t *testing.T) {
	t.Parallel()
	fx := newInspectFixture(t, 120)
	rep := inspectReadOnly(t, fx.dir, log.InspectOptions{})
	l, err := log.Open(fx.dir, log.Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.StartOffset() != rep.StartOffset || l.EndOffset() != rep.EndOffset || l.SegmentCount() != len(rep.Segments) || l.Size() != rep.Bytes {
		t.Errorf("Open: offsets %d..%d, %d segments, %d bytes; Inspect: %d..%d, %d segments, %d bytes",
			l.StartOffset(), l.EndOffset(), l.SegmentCount(), l.Size(), rep.StartOffset, rep.EndOffset, len(rep.Segments), rep.Bytes)
	}
}

// want describes a finding a test expects.
type want struct {
	kind     log.FindingKind
	severity log.Severity
	file     string // a suffix of the finding's file
	text     string // in the message
}

func hasFinding(rep *log.InspectReport, w want) bool {
	for _, f := range rep.Findings {
		if f.Kind == w.kind && f.Severity == w.severity && strings.HasSuffix(f.File, w.file) && strings.Contains(f.Message, w.text) {
			return true
		}
	}
	return false
}

// segmentBase returns the base offset of a segment file as a name prefix.
func segmentPrefix(path string) string { return strings.TrimSuffix(filepath.Base(path), ".log") }

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[pos] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncateBy(t *testing.T, path string, n int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestInspectFindsDamage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// damage breaks the fixture; segs are its .log files, oldest first.
		damage func(t *testing.T, dir string, segs []string) []want
	}{
		{"byte flipped in a middle segment", func(t *testing.T, dir string, segs []string) []want {
			mid := segs[len(segs)/2]
			flipByte(t, mid, 100) // inside the first batch's records
			return []want{{log.FindingCRCMismatch, log.SeverityDamage, filepath.Base(mid), "fails its CRC; reads of these offsets fail"}}
		}},
		{"byte flipped in the active segment", func(t *testing.T, dir string, segs []string) []want {
			flipByte(t, segs[len(segs)-1], 100)
			return []want{{log.FindingCRCMismatch, log.SeverityDamage, filepath.Base(segs[len(segs)-1]), "opening the log cuts the active segment here"}}
		}},
		{"torn tail", func(t *testing.T, dir string, segs []string) []want {
			truncateBy(t, segs[len(segs)-1], 7)
			return []want{{log.FindingTornTail, log.SeverityRepairable, filepath.Base(segs[len(segs)-1]), "opening the log cuts the active segment here"}}
		}},
		{"zero-filled tail (space written ahead)", func(t *testing.T, dir string, segs []string) []want {
			appendBytes(t, segs[len(segs)-1], make([]byte, 4096))
			return []want{{log.FindingPreallocated, log.SeverityNotice, filepath.Base(segs[len(segs)-1]), "4096 zero bytes written ahead"}}
		}},
		{"garbage after the last batch", func(t *testing.T, dir string, segs []string) []want {
			appendBytes(t, segs[len(segs)-1], bytes.Repeat([]byte{0x5a}, 100))
			return []want{{log.FindingBadHeader, log.SeverityDamage, filepath.Base(segs[len(segs)-1]), "dropping its last 100 bytes"}}
		}},
		{"sealed segment cut short", func(t *testing.T, dir string, segs []string) []want {
			truncateBy(t, segs[1], 30)
			return []want{{log.FindingTornTail, log.SeverityDamage, filepath.Base(segs[1]), "reads of offset"}}
		}},
		{"segment missing", func(t *testing.T, dir string, segs []string) []want {
			p := segmentPrefix(segs[2])
			for _, suffix := range []string{".log", ".index", ".timeindex"} {
				if err := os.Remove(filepath.Join(dir, p+suffix)); err != nil {
					t.Fatal(err)
				}
			}
			return []want{{log.FindingOffsetGap, log.SeverityDamage, filepath.Base(segs[3]), "are missing"}}
		}},
		{"index entry points inside a batch", func(t *testing.T, dir string, segs []string) []want {
			idx := strings.TrimSuffix(segs[1], ".log") + ".index"
			flipByte(t, idx, 7) // the position of the first of several entries
			return []want{{log.FindingBadIndex, log.SeverityDamage, filepath.Base(idx), "opening the log trusts this file"}}
		}},
		{"last index entry wrong", func(t *testing.T, dir string, segs []string) []want {
			idx := strings.TrimSuffix(segs[1], ".log") + ".index"
			b, err := os.ReadFile(idx)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-5]++ // the last entry's offset: opening the log checks it
			if err := os.WriteFile(idx, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return []want{{log.FindingBadIndex, log.SeverityRepairable, filepath.Base(idx), "where the batch has offset"}}
		}},
		{"index of odd length", func(t *testing.T, dir string, segs []string) []want {
			idx := strings.TrimSuffix(segs[1], ".log") + ".index"
			truncateBy(t, idx, 3)
			return []want{{log.FindingBadIndex, log.SeverityRepairable, filepath.Base(idx), "not a multiple of 8"}}
		}},
		{"time index deleted", func(t *testing.T, dir string, segs []string) []want {
			ti := strings.TrimSuffix(segs[0], ".log") + ".timeindex"
			if err := os.Remove(ti); err != nil {
				t.Fatal(err)
			}
			return []want{{log.FindingMissingIndex, log.SeverityRepairable, filepath.Base(ti), "rebuilt by scanning"}}
		}},
		{"time index too low", func(t *testing.T, dir string, segs []string) []want {
			ti := strings.TrimSuffix(segs[0], ".log") + ".timeindex"
			b, err := os.ReadFile(ti)
			if err != nil {
				t.Fatal(err)
			}
			b = b[:len(b)-12] // drop the final entry: the segment's largest timestamp
			if err := os.WriteFile(ti, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return []want{{log.FindingBadIndex, log.SeverityDamage, filepath.Base(ti), "but a batch has"}}
		}},
		{"orphan index", func(t *testing.T, dir string, segs []string) []want {
			if err := os.WriteFile(filepath.Join(dir, log.SegmentName(999999)+".index"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return []want{{log.FindingOrphanIndex, log.SeverityRepairable, log.SegmentName(999999) + ".index", "removed when the log is next opened"}}
		}},
		{"leftover temp file", func(t *testing.T, dir string, segs []string) []want {
			name := segmentPrefix(segs[0]) + ".index.tmp"
			if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []want{{log.FindingTempFile, log.SeverityRepairable, name, "removed when the log is next opened"}}
		}},
	}
	pristine := newInspectFixture(t, 200)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := pristine.copy(t)
			wants := tt.damage(t, fx.dir, fx.segmentFiles(t))
			for _, opts := range []log.InspectOptions{{}, {Verify: true, Batches: true}} {
				rep := inspectReadOnly(t, fx.dir, opts)
				for _, w := range wants {
					if !hasFinding(rep, w) {
						t.Errorf("%+v: no finding %+v in:%s", opts, w, findingsText(rep))
					}
				}
				damaged := false
				for _, w := range wants {
					damaged = damaged || w.severity != log.SeverityNotice
				}
				if damaged == rep.OK() {
					t.Errorf("%+v: report says OK=%v for findings %+v", opts, rep.OK(), wants)
				}
			}
		})
	}
}

func TestInspectNotices(t *testing.T) {
	t.Parallel()
	fx := newInspectFixture(t, 100)
	if err := os.WriteFile(filepath.Join(fx.dir, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(fx.dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	segs := fx.segmentFiles(t)
	active := strings.TrimSuffix(segs[len(segs)-1], ".log")
	// The active segment's indexes are written at close: after a crash they
	// are missing, which is no problem.
	for _, suffix := range []string{".index", ".timeindex"} {
		if err := os.Remove(active + suffix); err != nil {
			t.Fatal(err)
		}
	}
	rep := inspectReadOnly(t, fx.dir, log.InspectOptions{Verify: true})
	if !rep.OK() {
		t.Errorf("notices count as problems:%s", findingsText(rep))
	}
	for _, w := range []want{
		{log.FindingStrayFile, log.SeverityNotice, "notes.txt", "opening the log ignores it"},
		{log.FindingStrayFile, log.SeverityNotice, "old", ""},
		{log.FindingMissingIndex, log.SeverityNotice, filepath.Base(active) + ".index", "after a crash"},
		{log.FindingMissingIndex, log.SeverityNotice, filepath.Base(active) + ".timeindex", "after a crash"},
	} {
		if !hasFinding(rep, w) {
			t.Errorf("no finding %+v in:%s", w, findingsText(rep))
		}
	}
}

// TestInspectPredictsOpenCut checks that the torn tail Inspect reports is
// the one log.Open then cuts, and that Open, unlike Inspect, changes files.
func TestInspectPredictsOpenCut(t *testing.T) {
	t.Parallel()
	fx := newInspectFixture(t, 100)
	segs := fx.segmentFiles(t)
	truncateBy(t, segs[len(segs)-1], 10)
	rep := inspectReadOnly(t, fx.dir, log.InspectOptions{})
	var torn *log.Finding
	for i, f := range rep.Findings {
		if f.Kind == log.FindingTornTail {
			torn = &rep.Findings[i]
		}
	}
	if torn == nil {
		t.Fatalf("no torn tail in:%s", findingsText(rep))
	}
	active := rep.Segments[len(rep.Segments)-1]
	l, err := log.Open(fx.dir, log.Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := l.Recovery()
	if rec.CutSegment != active.BaseOffset || rec.CutAtOffset != torn.Offset || rec.CutBytes != active.Size-torn.Position {
		t.Errorf("Open cut segment %d at offset %d, %d bytes; Inspect predicted segment %d at offset %d, %d bytes",
			rec.CutSegment, rec.CutAtOffset, rec.CutBytes, active.BaseOffset, torn.Offset, active.Size-torn.Position)
	}
	if !strings.Contains(torn.Message, fmt.Sprintf("dropping its last %d bytes", rec.CutBytes)) {
		t.Errorf("message %q does not name the %d bytes Open cut", torn.Message, rec.CutBytes)
	}
	if l.EndOffset() != rep.EndOffset {
		t.Errorf("Open ends at %d, Inspect at %d", l.EndOffset(), rep.EndOffset)
	}
}

// writeSegment writes batches back to back as segment base of a new log
// folder, setting their base offsets from base on.
func writeSegment(t *testing.T, dir string, base int64, batches ...[]byte) {
	t.Helper()
	var buf []byte
	next := base
	for _, b := range batches {
		h, err := record.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		record.SetBaseOffset(b, next)
		next += int64(h.LastOffsetDelta) + 1
		buf = append(buf, b...)
	}
	if err := os.WriteFile(filepath.Join(dir, log.SegmentName(base)+".log"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInspectVerifyDecodesRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := record.Encode(record.Record{Timestamp: inspectBaseTime, Value: []byte("good")})
	// A batch whose record lies about its value's length, with a CRC that
	// covers the lie: only decoding finds it.
	bad := record.Encode(record.Record{Timestamp: inspectBaseTime, Value: []byte("bad!")})
	i := bytes.Index(bad, []byte("bad!"))
	bad[i-1] = 2 * 9 // zigzag varint 9: longer than the record
	binaryPutCRC(bad)
	// A batch whose header's max timestamp is below its records'.
	late := record.Encode(record.Record{Timestamp: inspectBaseTime + 5, Value: []byte("late")})
	late[35+7]-- // low byte of maxTimestamp
	binaryPutCRC(late)
	writeSegment(t, dir, 0, good, bad, late, bytes.Clone(good))

	quick := inspectReadOnly(t, dir, log.InspectOptions{})
	if !quick.OK() {
		t.Errorf("without Verify, records are not decoded, yet:%s", findingsText(quick))
	}
	rep := inspectReadOnly(t, dir, log.InspectOptions{Verify: true, MaxRecordBytes: 5})
	for _, w := range []want{
		{log.FindingBadRecord, log.SeverityDamage, "0.log", "do not decode"},
		{log.FindingTimestamps, log.SeverityNotice, "0.log", "largest timestamp"},
		{log.FindingLargeRecord, log.SeverityNotice, "0.log", "limit 5"},
	} {
		if !hasFinding(rep, w) {
			t.Errorf("no finding %+v in:%s", w, findingsText(rep))
		}
	}
	if rep.Batches != 4 || rep.Records != 4 || rep.EndOffset != 4 {
		t.Errorf("%d batches, %d records, end %d; want 4, 4, 4", rep.Batches, rep.Records, rep.EndOffset)
	}
}

// binaryPutCRC recomputes a batch's CRC after a test changed it.
func binaryPutCRC(b []byte) {
	crc := record.Checksum(b)
	b[17], b[18], b[19], b[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
}

func TestInspectOffsetsNotDense(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one := func() []byte { return record.Encode(record.Record{Timestamp: inspectBaseTime, Value: []byte("x")}) }
	writeSegment(t, dir, 0, one(), one())
	// The second segment skips offset 2, and its second batch repeats offset 3.
	b3, b3again := one(), one()
	writeSegment(t, dir, 3, b3)
	p := filepath.Join(dir, log.SegmentName(3)+".log")
	record.SetBaseOffset(b3again, 3)
	appendBytes(t, p, b3again)
	rep := inspectReadOnly(t, dir, log.InspectOptions{})
	for _, w := range []want{
		{log.FindingOffsetGap, log.SeverityDamage, log.SegmentName(3) + ".log", "offsets 2..2 are missing"},
		{log.FindingOffsetGap, log.SeverityDamage, log.SegmentName(3) + ".log", "batch has offset 3, want 4"},
		// No indexes at all: written by the log, not by this test.
		{log.FindingMissingIndex, log.SeverityRepairable, log.SegmentName(0) + ".index", ""},
	} {
		if !hasFinding(rep, w) {
			t.Errorf("no finding %+v in:%s", w, findingsText(rep))
		}
	}
}

// TestInspectLargeBatch covers batches larger than the 1 MiB read chunk:
// their CRC is streamed, and Verify reads them whole.
func TestInspectLargeBatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := log.Open(dir, log.Options{Fsync: log.Fsync{Mode: log.FsyncNever}, MaxBatchBytes: 8 << 20, MaxRecordBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	small := func() []byte { return record.Encode(record.Record{Timestamp: inspectBaseTime, Value: []byte("small")}) }
	big := record.Encode(
		record.Record{Timestamp: inspectBaseTime, Value: bytes.Repeat([]byte("x"), 1<<20)},
		record.Record{Timestamp: inspectBaseTime + 1, Value: bytes.Repeat([]byte("y"), 1<<20)},
	)
	for _, b := range [][]byte{small(), big, small()} {
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []log.InspectOptions{{}, {Verify: true}, {Verify: true, MaxBatchBytes: 1 << 20}} {
		rep := inspectReadOnly(t, dir, opts)
		if !rep.OK() || rep.Records != 4 || rep.Batches != 3 {
			t.Errorf("%+v: %d batches, %d records, findings:%s", opts, rep.Batches, rep.Records, findingsText(rep))
		}
		skipped := hasFinding(rep, want{log.FindingBadRecord, log.SeverityNotice, "0.log", "records not decoded"})
		if skipped != (opts.MaxBatchBytes == 1<<20) {
			t.Errorf("%+v: notice of records not decoded = %v:%s", opts, skipped, findingsText(rep))
		}
	}
	flipByte(t, filepath.Join(dir, log.SegmentName(0)+".log"), int64(len(small()))+(3<<19))
	for _, opts := range []log.InspectOptions{{}, {Verify: true}} {
		rep := inspectReadOnly(t, dir, opts)
		if !hasFinding(rep, want{log.FindingCRCMismatch, log.SeverityDamage, "0.log", "offsets 1..2"}) {
			t.Errorf("%+v: no CRC mismatch in:%s", opts, findingsText(rep))
		}
		if rep.Batches != 3 {
			t.Errorf("%+v: scan did not step over the bad batch: %d batches", opts, rep.Batches)
		}
	}
}

func TestInspectMissingFolder(t *testing.T) {
	t.Parallel()
	_, err := log.Inspect(t.Context(), vfs.Default, filepath.Join(t.TempDir(), "nope"), log.InspectOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Inspect of a missing folder: %v, want ErrNotExist", err)
	}
	rep, err := log.Inspect(t.Context(), nil, t.TempDir(), log.InspectOptions{})
	if err != nil || !rep.OK() || len(rep.Segments) != 0 || !hasFinding(rep, want{log.FindingNoSegments, log.SeverityNotice, "", "empty log"}) {
		t.Errorf("Inspect of an empty folder: %v, %+v", err, rep)
	}
}

func TestInspectStopsWithContext(t *testing.T) {
	t.Parallel()
	fx := newInspectFixture(t, 30)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := log.Inspect(ctx, vfs.Default, fx.dir, log.InspectOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Inspect with a canceled context: %v, want context.Canceled", err)
	}
}

func ExampleInspect() {
	dir, err := os.MkdirTemp("", "ferry-inspect-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	l, err := log.Open(dir, log.Options{})
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"hello", "world"} {
		if _, err := l.Append(record.Encode(record.Record{Timestamp: 1_700_000_000_000, Value: []byte(v)})); err != nil {
			panic(err)
		}
	}
	if err := l.Close(); err != nil {
		panic(err)
	}

	rep, err := log.Inspect(context.Background(), vfs.Default, dir, log.InspectOptions{Verify: true})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d segment, %d batches, %d records, offsets %d..%d, OK: %v\n",
		len(rep.Segments), rep.Batches, rep.Records, rep.StartOffset, rep.EndOffset-1, rep.OK())
	// Output: 1 segment, 2 batches, 2 records, offsets 0..1, OK: true
}
