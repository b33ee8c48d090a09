package client

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestAckRequestFitsLimit: whatever deliveries an ack names (ids, refs of
// any partitions, offsets and counts a broker may send), each request
// ackRequest builds is at most the limit encoded, unless it holds a single
// delivery, and it holds exactly the deliveries it says it took, in order.
func TestAckRequestFitsLimit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	varied := func(max int64) int64 {
		// Small, medium and extreme values: varint lengths matter.
		switch rng.IntN(4) {
		case 0:
			return rng.Int64N(min(max, 128))
		case 1:
			return rng.Int64N(min(max, 1<<21))
		case 2:
			return max - rng.Int64N(min(max, 16))
		}
		return rng.Int64N(max)
	}
	for iter := range 300 {
		limit := 1024 + rng.IntN(4096)
		consumerID := strings.Repeat("c", 1+rng.IntN(40))
		items := make([]ackItem, 1+rng.IntN(3000))
		parts := 1 + rng.IntN(8)
		for i := range items {
			if rng.IntN(10) == 0 {
				items[i] = ackItem{id: strings.Repeat("7", 5+rng.IntN(60))}
				continue
			}
			items[i] = ackItem{ref: deliveryRef{
				partition: int32(varied(math.MaxInt32)) % int32(parts*parts*1000+1),
				offset:    varied(math.MaxInt64),
				count:     int32(1 + varied(math.MaxInt32-1)),
			}}
			if rng.IntN(2) == 0 {
				items[i].ref.partition = int32(rng.IntN(parts))
			}
			switch rng.IntN(20) {
			case 0:
				items[i].ref.partition = math.MaxInt32
			case 1:
				items[i].ref.partition = -1 - int32(rng.IntN(parts)) // a broken broker's
			}
		}
		for rest := items; len(rest) > 0; {
			req, n := ackRequest(consumerID, rest, limit)
			req.Grant = math.MaxInt32
			if n < 1 || n > len(rest) {
				t.Fatalf("iteration %d: took %d of %d", iter, n, len(rest))
			}
			if size := proto.Size(req); size > limit && n > 1 {
				t.Fatalf("iteration %d: %d deliveries in %d bytes, limit %d", iter, n, size, limit)
			}
			// Exactly rest[:n], ids and refs each in order.
			ids, refs := 0, map[int32]int{}
			for _, it := range rest[:n] {
				if it.ref.count == 0 {
					if req.DeliveryIds[ids] != it.id {
						t.Fatalf("iteration %d: id %d is %q, want %q", iter, ids, req.DeliveryIds[ids], it.id)
					}
					ids++
					continue
				}
				found := false
				for _, r := range req.Refs {
					if r.Partition == it.ref.partition {
						j := refs[r.Partition]
						if r.Offsets[j] != it.ref.offset || r.Counts[j] != it.ref.count {
							t.Fatalf("iteration %d: ref %d of partition %d is %d/%d, want %d/%d", iter, j, r.Partition, r.Offsets[j], r.Counts[j], it.ref.offset, it.ref.count)
						}
						refs[r.Partition]++
						found = true
						break
					}
				}
				if !found {
					t.Fatalf("iteration %d: no refs for partition %d", iter, it.ref.partition)
				}
			}
			total := len(req.DeliveryIds)
			for _, r := range req.Refs {
				if len(r.Offsets) != len(r.Counts) {
					t.Fatalf("iteration %d: %d offsets, %d counts", iter, len(r.Offsets), len(r.Counts))
				}
				total += len(r.Offsets)
			}
			if total != n {
				t.Fatalf("iteration %d: request holds %d deliveries, took %d", iter, total, n)
			}
			rest = rest[n:]
		}
	}
}
