package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func sample() []Record {
	return []Record{
		{Timestamp: 1700000000000, Key: []byte("k1"), Value: []byte("hello"),
			Headers: []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "nullv", Value: nil}}},
		{Timestamp: 1699999999000, Key: nil, Value: []byte{}},
		{Timestamp: 1700000005000, Key: []byte{}, Value: nil},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	b := Encode(in...)
	SetBaseOffset(b, 42)
	SetLeaderEpoch(b, 7)
	h, err := Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 42 || h.LeaderEpoch != 7 || h.NumRecords != 3 || h.LastOffsetDelta != 2 {
		t.Fatalf("header %+v", h)
	}
	if h.FirstTimestamp != 1700000000000 || h.MaxTimestamp != 1700000005000 {
		t.Fatalf("timestamps %d %d", h.FirstTimestamp, h.MaxTimestamp)
	}
	if h.ProducerID != -1 || h.Compression() != CompressionNone {
		t.Fatalf("producer %d compression %v", h.ProducerID, h.Compression())
	}
	var out []Record
	if err := Records(b, Limits{}, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d records", len(out))
	}
	for i := range in {
		want := in[i]
		got := out[i]
		if got.Offset != 42+int64(i) || got.Timestamp != want.Timestamp {
			t.Errorf("record %d offset %d ts %d", i, got.Offset, got.Timestamp)
		}
		if (got.Key == nil) != (want.Key == nil) || !bytes.Equal(got.Key, want.Key) {
			t.Errorf("record %d key %q want %q", i, got.Key, want.Key)
		}
		if (got.Value == nil) != (want.Value == nil) || !bytes.Equal(got.Value, want.Value) {
			t.Errorf("record %d value %q want %q", i, got.Value, want.Value)
		}
		if len(got.Headers) != len(want.Headers) {
			t.Fatalf("record %d headers %v", i, got.Headers)
		}
		for j := range want.Headers {
			if got.Headers[j].Key != want.Headers[j].Key || !bytes.Equal(got.Headers[j].Value, want.Headers[j].Value) ||
				(got.Headers[j].Value == nil) != (want.Headers[j].Value == nil) {
				t.Errorf("record %d header %d = %+v", i, j, got.Headers[j])
			}
		}
	}
}

func TestProducerFields(t *testing.T) {
	var b Builder
	b.SetProducer(9, 2, 100)
	b.Add(Record{Value: []byte("x")})
	h, err := Verify(b.Build())
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != 9 || h.ProducerEpoch != 2 || h.BaseSequence != 100 {
		t.Fatalf("%+v", h)
	}
	b.Reset()
	b.Add(Record{Value: []byte("y")})
	if h, _ := Verify(b.Build()); h.ProducerID != -1 {
		t.Fatalf("reset kept producer %d", h.ProducerID)
	}
}

func TestBuilderSizeMatches(t *testing.T) {
	var b Builder
	for i := range 50 {
		b.Add(Record{Timestamp: int64(i * 1000), Value: bytes.Repeat([]byte("a"), i*37)})
		if b.Size() != len(b.Build()) {
			t.Fatalf("size %d, built %d", b.Size(), len(b.Build()))
		}
	}
}

func TestVerifyDetectsDamage(t *testing.T) {
	good := Encode(sample()...)
	cases := map[string]func([]byte) []byte{
		"flip value byte":  func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b },
		"flip attributes":  func(b []byte) []byte { b[offAttributes+1] ^= 1; return b },
		"bad magic":        func(b []byte) []byte { b[offMagic] = 1; return b },
		"truncated":        func(b []byte) []byte { return b[:len(b)-1] },
		"header only":      func(b []byte) []byte { return b[:HeaderSize-1] },
		"trailing garbage": func(b []byte) []byte { return append(b, 0) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			b := damage(bytes.Clone(good))
			_, err := Verify(b)
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrShort) {
				t.Fatalf("Verify = %v, want corrupt or short", err)
			}
		})
	}
	// Base offset and epoch are outside the CRC on purpose.
	b := bytes.Clone(good)
	SetBaseOffset(b, 1<<40)
	SetLeaderEpoch(b, 3)
	if _, err := Verify(b); err != nil {
		t.Fatal(err)
	}
}

func TestRecordsLimits(t *testing.T) {
	b := Encode(Record{Value: make([]byte, 1000)})
	err := Records(b, Limits{MaxRecordBytes: 100}, func(Record) error { return nil })
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if err := Records(b, Limits{MaxRecordBytes: 2000}, func(Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestRecordsCompressed(t *testing.T) {
	b := Encode(Record{Value: []byte("x")})
	b[offAttributes+1] = byte(CompressionZstd)
	if err := Records(b, Limits{}, func(Record) error { return nil }); !errors.Is(err, ErrCompressed) {
		t.Fatalf("err = %v", err)
	}
}

func TestSplit(t *testing.T) {
	var buf []byte
	for i := range 5 {
		b := Encode(Record{Value: fmt.Appendf(nil, "v%d", i)}, Record{Value: []byte("w")})
		SetBaseOffset(b, int64(i*2))
		buf = append(buf, b...)
	}
	var offs []int64
	if err := Split(buf, func(h Header, _ []byte) error { offs = append(offs, h.BaseOffset); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(offs) != "[0 2 4 6 8]" {
		t.Fatalf("offsets %v", offs)
	}
	if err := Split(buf[:len(buf)-4], func(Header, []byte) error { return nil }); !errors.Is(err, ErrShort) {
		t.Fatalf("torn tail: %v", err)
	}
}

func TestCheckDense(t *testing.T) {
	b := Encode(sample()...)
	if err := CheckDense(b, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := CheckDense(b, Limits{MaxRecordBytes: 10}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit: %v", err)
	}
	// Record 1's offset delta (after its length, attributes and timestamp
	// delta) rewritten from 1 to 2: valid bytes, not dense.
	var bl Builder
	bl.Add(Record{Timestamp: 5, Value: []byte("a")})
	bl.Add(Record{Timestamp: 5, Value: []byte("b")})
	nd := bl.Build()
	first := 1 + int(nd[HeaderSize]>>1) // length varint + body of record 0
	nd[HeaderSize+first+3] = 4          // zigzag(2)
	binary.BigEndian.PutUint32(nd[offCRC:], Checksum(nd))
	if err := CheckDense(nd, Limits{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("non-dense batch: %v", err)
	}
}

// TestUvarintZigzagMatchesVarint: the fast paths (one and two bytes) agree
// with encoding/binary for every length up to 3 bytes, and on truncated
// and overlong input.
func TestUvarintZigzagMatchesVarint(t *testing.T) {
	check := func(b []byte) {
		t.Helper()
		v, n := uvarintZigzag(b)
		wv, wn := binary.Varint(b)
		if v != wv || n != wn {
			t.Fatalf("% x: got %d (%d bytes), binary.Varint %d (%d bytes)", b, v, n, wv, wn)
		}
	}
	for x := int64(-1 << 21); x < 1<<21; x += 7 {
		b := binary.AppendVarint(nil, x)
		check(b)
		check(append(b, 0x01, 0x80))
		check(b[:len(b)-1])
	}
	check(nil)
	check([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
}

// TestBuilderAddAt: records added at their own offsets keep them, gaps
// included (the batch's base is the first offset and its last offset the
// last record's); the batch verifies, and CheckDense, the log's rule,
// refuses it. Reset starts the next batch at its own base.
func TestBuilderAddAt(t *testing.T) {
	var b Builder
	offsets := []int64{1000, 1001, 1005, 1100, 70000}
	for i, o := range offsets {
		b.AddAt(Record{Offset: o, Timestamp: int64(2000 - i), Value: fmt.Appendf(nil, "v%d", o)})
	}
	batch := b.Build()
	h, err := Verify(batch)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1000 || h.LastOffset() != 70000 || h.NumRecords != int32(len(offsets)) {
		t.Fatalf("header: base %d, last %d, %d records", h.BaseOffset, h.LastOffset(), h.NumRecords)
	}
	var got []int64
	err = Records(batch, Limits{}, func(r Record) error {
		if string(r.Value) != fmt.Sprint("v", r.Offset) || r.Timestamp != int64(2000-len(got)) {
			return fmt.Errorf("record at %d: %q, time %d", r.Offset, r.Value, r.Timestamp)
		}
		got = append(got, r.Offset)
		return nil
	})
	if err != nil || !slices.Equal(got, offsets) {
		t.Fatalf("offsets %v, want %v: %v", got, offsets, err)
	}
	if err := CheckDense(batch, Limits{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("CheckDense of a batch with gaps = %v", err)
	}
	b.Reset()
	b.AddAt(Record{Offset: 7, Value: []byte("x")})
	h, err = Verify(b.Build())
	if err != nil || h.BaseOffset != 7 || h.LastOffset() != 7 {
		t.Fatalf("after Reset: base %d, last %d: %v", h.BaseOffset, h.LastOffset(), err)
	}
}
