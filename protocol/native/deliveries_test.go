package native

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// TestDeliveryEncoder: whatever a take holds (partitions interleaved,
// redeliveries at lower offsets after new messages, gaps past the int32
// deltas of a batch, deadlines that differ), the batches give back every
// delivery in order, each record at its message's offset with its fields,
// count and deadline; encodings one after another through the pool do not
// disturb each other.
func TestDeliveryEncoder(t *testing.T) {
	var encs deliveryEncoders
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Unix(1_700_000_000, 0)
	for iter := range 300 {
		n := 1 + rng.IntN(300)
		ds := make([]engine.Delivery, n)
		off := map[int]int64{}
		deadline := base.Add(time.Duration(iter) * time.Second)
		for i := range ds {
			p := rng.IntN(3)
			if i > 0 && rng.IntN(4) != 0 {
				p = ds[i-1].Message.Partition
			}
			switch rng.IntN(12) {
			case 0:
				off[p] -= int64(rng.IntN(50)) // a redelivery, lower
			case 1:
				off[p] += math.MaxInt32 - 5 + int64(rng.IntN(10))
			case 2:
				deadline = deadline.Add(time.Millisecond)
			default:
				off[p] += 1 + int64(rng.IntN(3))
			}
			o := max(off[p], 0)
			m := engine.Message{Topic: "t", Partition: p, Offset: o, Timestamp: time.UnixMilli(base.UnixMilli() - int64(rng.IntN(100000))),
				Value: fmt.Appendf(nil, "v%d-%d", iter, i)}
			if rng.IntN(2) == 0 {
				m.Key = fmt.Appendf(nil, "k%d", i)
			}
			if rng.IntN(3) == 0 {
				m.ID = fmt.Sprint("id", i)
				m.Headers = []engine.Header{{Key: "h", Value: []byte{byte(i)}}}
			}
			ds[i] = engine.Delivery{Message: m, Count: 1 + rng.IntN(5), Deadline: deadline}
		}
		var got []engine.Delivery
		err := encs.encode(ds, func(bs []*ferryv1.DeliveryBatch) error {
			for _, b := range bs {
				i := 0
				err := record.Split(b.Records, func(_ record.Header, batch []byte) error {
					return record.Records(batch, record.Limits{}, func(r record.Record) error {
						if i >= len(b.Counts) {
							return fmt.Errorf("more records than counts")
						}
						m := engine.Message{Topic: b.Topic, Partition: int(b.Partition), Offset: r.Offset, Timestamp: time.UnixMilli(r.Timestamp),
							Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
						for _, h := range r.Headers {
							if h.Key == "ferry-id" {
								m.ID = string(h.Value)
							} else {
								m.Headers = append(m.Headers, engine.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
							}
						}
						got = append(got, engine.Delivery{Message: m, Count: int(b.Counts[i]), Deadline: b.Deadline.AsTime()})
						i++
						return nil
					})
				})
				if err != nil || i != len(b.Counts) {
					return fmt.Errorf("%d records for %d counts: %v", i, len(b.Counts), err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		if len(got) != len(ds) {
			t.Fatalf("iteration %d: %d deliveries back of %d", iter, len(got), len(ds))
		}
		for i := range ds {
			w, g := &ds[i], &got[i]
			if w.Message.Partition != g.Message.Partition || w.Message.Offset != g.Message.Offset || w.Count != g.Count ||
				!w.Deadline.Equal(g.Deadline) || !w.Message.Timestamp.Equal(g.Message.Timestamp) ||
				!bytes.Equal(w.Message.Key, g.Message.Key) || (w.Message.Key == nil) != (g.Message.Key == nil) ||
				!bytes.Equal(w.Message.Value, g.Message.Value) || w.Message.ID != g.Message.ID || len(w.Message.Headers) != len(g.Message.Headers) {
				t.Fatalf("iteration %d, delivery %d: %+v, sent %+v", iter, i, g, w)
			}
		}
	}
}

// TestDeliveryEncoderManyBatches: a take whose offsets descend (delayed
// messages and redeliveries come in the order they fell due) is a batch
// per delivery; each is sized by what it holds, not by the rest of its
// partition's run, which made such a take of 2000 allocate 8 MB of counts.
func TestDeliveryEncoderManyBatches(t *testing.T) {
	deadline := time.Unix(1_700_000_000, 0)
	ds := make([]engine.Delivery, maxBatch)
	for i := range ds {
		ds[i] = engine.Delivery{Message: engine.Message{Topic: "t", Offset: int64(len(ds) - i), Timestamp: deadline, Value: []byte("v")},
			Count: 1, Deadline: deadline}
	}
	var encs deliveryEncoders
	batches := 0
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := encs.encode(ds, func(bs []*ferryv1.DeliveryBatch) error { batches = len(bs); return nil })
	runtime.ReadMemStats(&after)
	if err != nil || batches != len(ds) {
		t.Fatalf("%d batches: %v", batches, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 3<<20 {
		t.Fatalf("%d deliveries in as many batches allocated %d KB", len(ds), n>>10)
	}
}
