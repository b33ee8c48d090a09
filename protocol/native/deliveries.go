package native

import (
	"math"
	"sync"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// deliveryEncoder turns a take of queue deliveries into DeliveryBatch
// columns: one record batch per run of one partition's deliveries, their
// counts packed beside it. Its record and batch buffers are reused
// through a pool, so a response costs no new buffer and idle consumers
// hold none (a message with headers, an id or DeliverAt still allocates
// its record's header slice).
type deliveryEncoder struct {
	b     record.Builder
	arena []byte
}

// deliveryEncoders pools deliveryEncoder; the Service owns one.
type deliveryEncoders struct{ pool sync.Pool }

// encode calls send with ds as DeliveryBatch columns. The batches alias
// the encoder's buffers, which go back to the pool when send returns: send
// must be done with them by then (a stream's Send encodes before it
// returns).
func (e *deliveryEncoders) encode(ds []engine.Delivery, send func([]*ferryv1.DeliveryBatch) error) error {
	enc, _ := e.pool.Get().(*deliveryEncoder)
	if enc == nil {
		enc = &deliveryEncoder{}
	}
	defer e.pool.Put(enc)
	enc.arena = enc.arena[:0]
	var out []*ferryv1.DeliveryBatch
	for i := 0; i < len(ds); {
		n := batchLen(ds[i:])
		first := &ds[i]
		b := &ferryv1.DeliveryBatch{Topic: first.Message.Topic, Partition: int32(first.Message.Partition),
			Deadline: ts(first.Deadline), Counts: make([]int32, n)}
		enc.b.Reset()
		for j := range n {
			d := &ds[i+j]
			enc.b.AddAt(d.Message.Record())
			b.Counts[j] = int32(d.Count)
		}
		b.Records = enc.finish()
		out = append(out, b)
		i += n
	}
	// Keep buffers of ordinary responses only; a rare huge one is let go.
	if cap(enc.arena) > 4*maxFrame {
		enc.arena = nil
	}
	if enc.b.Size() > maxFrame {
		enc.b = record.Builder{}
	}
	return send(out)
}

// finish appends the builder's batch to the arena and returns it. Should
// the arena grow, batches finished before keep the old array, which stays
// theirs.
func (enc *deliveryEncoder) finish() []byte {
	start := len(enc.arena)
	enc.arena = append(enc.arena, enc.b.Build()...)
	return enc.arena[start:len(enc.arena):len(enc.arena)]
}

// batchLen is how many deliveries at the head of ds (at least one) go in
// one batch: a run of one partition's, with one deadline, at offsets that
// ascend within the int32 deltas a batch has. Sizing each batch by exactly
// that keeps a take that breaks into many batches (redeliveries and
// delayed messages come in the order they fell due, not by offset) linear.
func batchLen(ds []engine.Delivery) int {
	first := &ds[0]
	n := 1
	for n < len(ds) {
		m := &ds[n].Message
		if m.Partition != first.Message.Partition || m.Offset <= ds[n-1].Message.Offset ||
			m.Offset-first.Message.Offset > math.MaxInt32 || !ds[n].Deadline.Equal(first.Deadline) {
			break
		}
		n++
	}
	return n
}

// deliveryRefs converts an Ack's refs, or says which one is malformed
// (columns of different lengths: InvalidArgument, nothing acknowledged).
// Refs that name no delivery in flight are the engine's to report.
func deliveryRefs(in []*ferryv1.DeliveryRefs) ([]engine.DeliveryRef, error) {
	n := 0
	for i, r := range in {
		if len(r.Offsets) != len(r.Counts) {
			return nil, invalid("refs[%d] has %d offsets and %d counts; they go in pairs", i, len(r.Offsets), len(r.Counts))
		}
		n += len(r.Offsets)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]engine.DeliveryRef, 0, n)
	for _, r := range in {
		for j, o := range r.Offsets {
			out = append(out, engine.DeliveryRef{Partition: int(r.Partition), Offset: o, Count: int(r.Counts[j])})
		}
	}
	return out, nil
}
