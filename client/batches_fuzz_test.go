package client

import (
	"runtime"
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

// FuzzDeliveryBatch: whatever records and counts a broker sends as queue
// deliveries, decoding returns deliveries or an error, never panics; with
// no error there is one delivery per count, each with its record's offset,
// the batch's partition and an ID that names them.
func FuzzDeliveryBatch(f *testing.F) {
	b := record.Builder{}
	b.AddAt(record.Record{Offset: 10, Key: []byte("k"), Value: []byte("v1")})
	b.AddAt(record.Record{Offset: 12, Value: []byte("v2"), Headers: []record.RecordHeader{{Key: "ferry-id", Value: []byte("x")}}})
	b.AddAt(record.Record{Offset: 40, Value: []byte("v3")})
	batch := b.Build()
	f.Add(batch, []byte{1, 2, 1})
	f.Add(batch, []byte{1, 2})
	f.Add(batch, []byte{1, 0, 1})
	f.Add(batch[:50], []byte{1})
	f.Add(append(batch[:len(batch):len(batch)], batch...), []byte{1, 1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte, counts []byte) {
		db := &ferryv1.DeliveryBatch{Topic: "t", Partition: 3, Records: data}
		for _, c := range counts {
			db.Counts = append(db.Counts, int32(int8(c)))
		}
		q := &QueueConsumer{}
		var ds []Delivery
		err := q.decodeBatch(&ds, nil, db)
		if err != nil {
			return
		}
		if len(ds) != len(db.Counts) {
			t.Fatalf("%d deliveries for %d counts", len(ds), len(db.Counts))
		}
		for i := range ds {
			d := &ds[i]
			want := deliveryRef{partition: 3, offset: d.Message.Offset, count: db.Counts[i]}
			if d.Message.Partition != 3 || d.Count != db.Counts[i] || d.ref != want || d.ID != want.id() {
				t.Fatalf("delivery %d: %+v, ID %q", i, d.ref, d.ID)
			}
		}
	})
}

// TestDeliveryBatchCountsBounded: a broken broker's response announcing
// a million deliveries in its counts (a byte each) with no records behind
// them is refused without the client allocating a Delivery for each first:
// what a response is sized by is bounded by the consumer's credit.
func TestDeliveryBatchCountsBounded(t *testing.T) {
	counts := make([]int32, 1<<20)
	for i := range counts {
		counts[i] = 1
	}
	resp := &ferryv1.ConsumeQueueResponse{Batches: []*ferryv1.DeliveryBatch{{Topic: "t", Counts: counts}}}
	q := &QueueConsumer{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ds, err := q.decodeResponse(resp, nil, 100)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("%d deliveries decoded from counts without records", len(ds))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Fatalf("refusing %d counts without records allocated %d MiB", len(counts), n>>20)
	}
}
