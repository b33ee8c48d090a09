package client

import (
	"testing"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/storage/record"
)

// FuzzFromRecordBatches: whatever bytes and range a broker sends as record
// batches, decoding returns messages or an error, never panics, and never
// delivers a record outside the range or out of order.
func FuzzFromRecordBatches(f *testing.F) {
	b := record.Builder{}
	b.Add(record.Record{Key: []byte("k"), Value: []byte("v1")})
	b.Add(record.Record{Value: []byte("v2"), Headers: []record.RecordHeader{{Key: "ferry-id", Value: []byte("x")}}})
	b.Add(record.Record{Value: []byte("v3"), Headers: []record.RecordHeader{{Key: "ferry-deliver-at", Value: []byte("1700000000000")}}})
	batch := b.Build()
	record.SetBaseOffset(batch, 10)
	f.Add(batch, int64(10), int64(13))
	f.Add(batch, int64(11), int64(12))
	f.Add(batch, int64(12), int64(14))
	f.Add(append(batch[:len(batch):len(batch)], batch...), int64(10), int64(13))
	f.Add(batch[:40], int64(0), int64(1))
	f.Fuzz(func(t *testing.T, data []byte, from, until int64) {
		rb := &ferryv1.RecordBatches{Topic: "t", Partition: 1, FromOffset: from, UntilOffset: until, Data: data}
		var got []Message
		err := decodeRecordBatches(rb, func() *Message {
			got = append(got, Message{})
			return &got[len(got)-1]
		})
		for i, m := range got {
			if m.Offset != from+int64(i) || m.Offset >= until {
				t.Fatalf("offset %d delivered at %d, expected %d below %d", m.Offset, i, from+int64(i), until)
			}
		}
		if err == nil && until > from && int64(len(got)) != until-from {
			t.Fatalf("no error, but delivered %d of [%d,%d)", len(got), from, until)
		}
	})
}
