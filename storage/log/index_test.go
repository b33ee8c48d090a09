package log

import (
	"bytes"
	"testing"
)

func TestIndexLookup(t *testing.T) {
	es := []offsetEntry{{rel: 10, pos: 100}, {rel: 20, pos: 200}, {rel: 35, pos: 300}}
	for _, c := range []struct {
		rel  uint32
		want int64
	}{{0, 0}, {9, 0}, {10, 100}, {19, 100}, {20, 200}, {34, 200}, {35, 300}, {1000, 300}} {
		if got, _ := lookupOffset(es, c.rel); got != c.want {
			t.Errorf("lookupOffset(%d) = %d, want %d", c.rel, got, c.want)
		}
	}
	ts := []timeEntry{{ts: 100, rel: 5}, {ts: 200, rel: 9}, {ts: 300, rel: 12}}
	for _, c := range []struct {
		ts   int64
		want uint32
	}{{50, 0}, {100, 0}, {101, 5}, {200, 5}, {250, 9}, {301, 12}} {
		if got := lookupTime(ts, c.ts); got != c.want {
			t.Errorf("lookupTime(%d) = %d, want %d", c.ts, got, c.want)
		}
	}
}

func TestIndexDecodeRejects(t *testing.T) {
	good := encodeOffsetIndex([]offsetEntry{{1, 10}, {2, 20}})
	if _, err := decodeOffsetIndex(good, 100, 10); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		b      []byte
		size   int64
		maxRel uint64
	}{
		"ragged":          {good[:7], 100, 10},
		"past file":       {good, 20, 10},
		"past offsets":    {good, 100, 2},
		"not increasing":  {encodeOffsetIndex([]offsetEntry{{2, 10}, {2, 20}}), 100, 10},
		"position repeat": {encodeOffsetIndex([]offsetEntry{{1, 10}, {2, 10}}), 100, 10},
	} {
		if _, err := decodeOffsetIndex(c.b, c.size, c.maxRel); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := decodeTimeIndex(encodeTimeIndex([]timeEntry{{5, 1}, {5, 2}}), 10); err == nil {
		t.Error("time index with a repeated timestamp accepted")
	}
	if _, err := decodeTimeIndex(encodeTimeIndex([]timeEntry{{5, 11}}), 10); err == nil {
		t.Error("time index past the segment accepted")
	}
}

// FuzzIndexDecode: the index decoders never panic, and what they accept
// keeps their invariants and re-encodes to the same bytes.
func FuzzIndexDecode(f *testing.F) {
	f.Add(encodeOffsetIndex([]offsetEntry{{1, 10}, {2, 20}, {40, 4000}}), int64(8192), uint64(100))
	f.Add(encodeTimeIndex([]timeEntry{{1000, 0}, {2000, 5}}), int64(8192), uint64(100))
	f.Add([]byte{}, int64(0), uint64(0))
	f.Add(bytes.Repeat([]byte{0xff}, 24), int64(1<<40), uint64(1<<40))
	f.Fuzz(func(t *testing.T, b []byte, size int64, maxRel uint64) {
		if es, err := decodeOffsetIndex(b, size, maxRel); err == nil {
			for i, e := range es {
				if int64(e.pos) >= size || uint64(e.rel) >= maxRel || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
					t.Fatalf("accepted bad entry %d: %+v", i, e)
				}
			}
			if !bytes.Equal(encodeOffsetIndex(es), b) {
				t.Fatal("offset index does not re-encode to its input")
			}
		}
		if es, err := decodeTimeIndex(b, maxRel); err == nil {
			for i, e := range es {
				if uint64(e.rel) > maxRel || (i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel)) {
					t.Fatalf("accepted bad time entry %d: %+v", i, e)
				}
			}
			if !bytes.Equal(encodeTimeIndex(es), b) {
				t.Fatal("time index does not re-encode to its input")
			}
		}
	})
}
