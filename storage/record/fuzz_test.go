package record

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the batch and record decoders. They must
// never panic, and whatever they accept must re-encode to a batch that decodes
// to the same records.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(sample()...))
	f.Add(Encode(Record{Value: []byte("x")}))
	f.Add(Encode())
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	big := Encode(Record{Key: []byte("key"), Value: bytes.Repeat([]byte{0xff}, 300),
		Headers: []RecordHeader{{Key: "a", Value: []byte("b")}}})
	f.Add(big)
	f.Add(append(bytes.Clone(big), Encode(Record{Value: []byte("second")})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Split(data, func(h Header, batch []byte) error {
			var got []Record
			err := Records(batch, Limits{MaxRecordBytes: 1 << 20}, func(r Record) error {
				got = append(got, r)
				return nil
			})
			if err != nil || h.Control() {
				return nil
			}
			// Re-encode what decoded and compare.
			var b Builder
			for _, r := range got {
				b.Add(r)
			}
			again := b.Build()
			SetBaseOffset(again, h.BaseOffset)
			var back []Record
			if err := Records(again, Limits{}, func(r Record) error { back = append(back, r); return nil }); err != nil {
				t.Fatalf("re-encoded batch does not decode: %v", err)
			}
			if len(back) != len(got) {
				t.Fatalf("re-encoded %d records, decoded %d", len(got), len(back))
			}
			for i := range got {
				if !bytes.Equal(back[i].Key, got[i].Key) || !bytes.Equal(back[i].Value, got[i].Value) ||
					back[i].Timestamp != got[i].Timestamp || len(back[i].Headers) != len(got[i].Headers) {
					t.Fatalf("record %d changed: %+v vs %+v", i, got[i], back[i])
				}
			}
			return nil
		})
	})
}

// FuzzCheckDense: CheckDense never panics and agrees with Records on which
// batches are valid and dense.
func FuzzCheckDense(f *testing.F) {
	f.Add(Encode(sample()...))
	f.Add(Encode(Record{Value: []byte("x")}))
	f.Add(Encode(Record{Key: []byte("k"), Value: bytes.Repeat([]byte{1}, 200),
		Headers: []RecordHeader{{Key: "a", Value: nil}, {Key: "", Value: []byte{}}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkErr := CheckDense(data, Limits{})
		i := int64(0)
		h, herr := ParseHeader(data)
		recErr := Records(data, Limits{}, func(r Record) error {
			if r.Offset != h.BaseOffset+i {
				return ErrCorrupt
			}
			i++
			return nil
		})
		if herr == nil && recErr == nil && (i != int64(h.NumRecords) || (h.NumRecords > 0 && h.LastOffsetDelta != h.NumRecords-1)) {
			recErr = ErrCorrupt // valid, but not dense
		}
		if (checkErr == nil) != (recErr == nil) {
			t.Fatalf("CheckDense says %v, Records says %v", checkErr, recErr)
		}
	})
}
