package log

import (
	"encoding/binary"
	"fmt"
	"sort"
)

const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// offsetEntry maps a batch's base offset (relative to the segment) to its
// byte position in the segment file.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry says every record before rel has a timestamp at or below ts.
type timeEntry struct {
	ts  int64
	rel uint32
}

func encodeOffsetIndex(es []offsetEntry) []byte {
	b := make([]byte, 0, len(es)*offsetEntrySize)
	for _, e := range es {
		b = binary.BigEndian.AppendUint32(b, e.rel)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return b
}

func encodeTimeIndex(es []timeEntry) []byte {
	b := make([]byte, 0, len(es)*timeEntrySize)
	for _, e := range es {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
		b = binary.BigEndian.AppendUint32(b, e.rel)
	}
	return b
}

// decodeOffsetIndex parses and checks an offset index of a segment whose
// file is size bytes long and whose offsets lie below maxRel. Entries must
// strictly increase in both offset and position.
func decodeOffsetIndex(b []byte, size int64, maxRel uint64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("offset index of %d bytes is not a multiple of %d", len(b), offsetEntrySize)
	}
	es := make([]offsetEntry, len(b)/offsetEntrySize)
	for i := range es {
		e := offsetEntry{
			rel: binary.BigEndian.Uint32(b[i*offsetEntrySize:]),
			pos: binary.BigEndian.Uint32(b[i*offsetEntrySize+4:]),
		}
		if int64(e.pos) >= size || uint64(e.rel) >= maxRel {
			return nil, fmt.Errorf("offset index entry %d (%d at %d) outside the segment", i, e.rel, e.pos)
		}
		if i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos) {
			return nil, fmt.Errorf("offset index entry %d does not increase", i)
		}
		es[i] = e
	}
	return es, nil
}

// decodeTimeIndex parses and checks a time index: timestamps strictly
// increase, offsets never decrease and stay at or below maxRel.
func decodeTimeIndex(b []byte, maxRel uint64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("time index of %d bytes is not a multiple of %d", len(b), timeEntrySize)
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i*timeEntrySize:])),
			rel: binary.BigEndian.Uint32(b[i*timeEntrySize+8:]),
		}
		if uint64(e.rel) > maxRel {
			return nil, fmt.Errorf("time index entry %d offset %d outside the segment", i, e.rel)
		}
		if i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel) {
			return nil, fmt.Errorf("time index entry %d does not increase", i)
		}
		es[i] = e
	}
	return es, nil
}

// lookupOffset returns the position and relative offset of the last indexed
// batch whose base offset is at or below rel (0, 0 when none is).
func lookupOffset(es []offsetEntry, rel uint32) (pos int64, at uint32) {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel > rel })
	if i == 0 {
		return 0, 0
	}
	return int64(es[i-1].pos), es[i-1].rel
}

// lookupTime returns the relative offset before which every record is older
// than ts, from the last entry with a timestamp below ts.
func lookupTime(es []timeEntry, ts int64) uint32 {
	i := sort.Search(len(es), func(i int) bool { return es[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return es[i-1].rel
}
