package log

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ferrymq/ferry/storage/record"
	"pgregory.net/rapid"
)

// modelRecord is what the model remembers of a record.
type modelRecord struct {
	ts    int64
	value []byte
}

// TestLogModel drives a log with random appends, reads, time searches,
// retention, syncs and reopens, and checks every answer against a plain
// slice of records.
func TestLogModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		opts := Options{
			Fsync:              Fsync{Mode: FsyncNever},
			SegmentBytes:       rapid.Int64Range(1024, 8192).Draw(rt, "segmentBytes"),
			IndexIntervalBytes: rapid.Int64Range(1, 2048).Draw(rt, "indexInterval"),
		}
		l, err := Open(dir, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { l.Close() }()
		var model []modelRecord
		start := int64(0) // first offset still in the log
		end := func() int64 { return start + int64(len(model)) }

		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				n := rapid.IntRange(1, 20).Draw(rt, "records")
				var b record.Builder
				var added []modelRecord
				for i := range n {
					r := modelRecord{
						ts:    rapid.Int64Range(1000, 1100).Draw(rt, "ts"),
						value: fmt.Appendf(nil, "%d-%d", end(), i),
					}
					b.Add(record.Record{Timestamp: r.ts, Value: r.value})
					added = append(added, r)
				}
				res, err := l.Append(b.Build())
				if err != nil {
					rt.Fatal(err)
				}
				if res.BaseOffset != end() || res.LastOffset != end()+int64(n-1) {
					rt.Fatalf("append at %d..%d, model end %d", res.BaseOffset, res.LastOffset, end())
				}
				model = append(model, added...)
			},
			"read": func(rt *rapid.T) {
				off := rapid.Int64Range(start, end()).Draw(rt, "offset")
				max := rapid.IntRange(1, 4096).Draw(rt, "maxBytes")
				res, err := l.Read(off, max)
				if err != nil {
					rt.Fatalf("read %d: %v", off, err)
				}
				if off == end() {
					if len(res.Data) != 0 {
						rt.Fatal("data past the end")
					}
					return
				}
				next := off
				err = record.Split(res.Data, func(h record.Header, b []byte) error {
					return record.Records(b, record.Limits{}, func(r record.Record) error {
						if r.Offset < off {
							return nil
						}
						if r.Offset != next {
							return fmt.Errorf("offset %d, want %d", r.Offset, next)
						}
						m := model[r.Offset-start]
						if r.Timestamp != m.ts || !bytes.Equal(r.Value, m.value) {
							return fmt.Errorf("record %d differs from the model", r.Offset)
						}
						next++
						return nil
					})
				})
				if err != nil {
					rt.Fatal(err)
				}
				if next == off || next != res.NextOffset {
					rt.Fatalf("read %d: records up to %d, next offset %d", off, next, res.NextOffset)
				}
			},
			"offsetForTime": func(rt *rapid.T) {
				ts := rapid.Int64Range(990, 1110).Draw(rt, "ts")
				got, ok, err := l.OffsetForTime(ts)
				if err != nil {
					rt.Fatal(err)
				}
				want := int64(-1)
				for i, r := range model {
					if r.ts >= ts {
						want = start + int64(i)
						break
					}
				}
				if (want >= 0) != ok || (ok && got != want) {
					rt.Fatalf("OffsetForTime(%d) = %d,%v; model says %d", ts, got, ok, want)
				}
			},
			"retention": func(rt *rapid.T) {
				floor := rapid.Int64Range(start, end()).Draw(rt, "floor")
				l.SetDeleteFloor(floor)
				if _, err := l.EnforceRetention(); err != nil {
					rt.Fatal(err)
				}
				s := l.StartOffset()
				if s < start || s > max(floor, start) {
					rt.Fatalf("start %d after floor %d (was %d)", s, floor, start)
				}
				model = model[s-start:]
				start = s
			},
			"sync": func(rt *rapid.T) {
				if err := l.Sync(); err != nil {
					rt.Fatal(err)
				}
			},
			"reopen": func(rt *rapid.T) {
				if err := l.Close(); err != nil {
					rt.Fatal(err)
				}
				if l, err = Open(dir, opts); err != nil {
					rt.Fatal(err)
				}
				if rep := l.Recovery(); rep.CutBytes != 0 || len(rep.RebuiltIndexes) != 0 {
					rt.Fatalf("clean reopen repaired something: %+v", rep)
				}
				if l.StartOffset() != start || l.EndOffset() != end() {
					rt.Fatalf("reopened %d..%d, model %d..%d", l.StartOffset(), l.EndOffset(), start, end())
				}
			},
		})
	})
}
