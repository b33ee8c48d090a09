package engine

import (
	"container/heap"
	"sync/atomic"
	"time"
)

// qpart is a queue subscription's state on one partition.
//
// Offsets below floor are acknowledged; acked holds those acknowledged above
// it. counts holds how often each unacknowledged offset was delivered. next
// is the next offset to read from the log: every offset below it was
// delivered at least once, except those in skipped (held back by DeliverAt
// or key ordering). On disk (see docs/engine.md) the dispatch cursor (next)
// and the skipped set say which offsets were delivered once, and only counts
// of 2 and more are stored one by one: a first delivery costs no write of
// its own. After a restart next starts again at floor, so everything not
// acknowledged is delivered again, its count continued.
type qpart struct {
	p        int
	floor    int64
	floorPub atomic.Int64 // floor, for work retention across subscriptions
	next     int64
	acked    map[int64]struct{}
	counts   map[int64]int
	skipped  map[int64]bool
	// newSkips and unskips are changes to skipped not yet on disk; savedNext
	// is the cursor on disk; below loadedCursor (the cursor at Open) an
	// offset with no count and not skipped was delivered once.
	newSkips, unskips       []int64
	savedNext, loadedCursor int64
	inflight                map[int64]*inflight
	ready                   readyHeap
	queued                  map[int64]bool // in ready
	// keys maps a key to the offset that holds it (in flight, or waiting to
	// be redelivered); blocked lists, in log order, offsets of a held key.
	keys    map[string]int64
	offKey  map[int64]string // the key each holding offset holds
	blocked map[string][]int64
	buf     []Message // messages read ahead from next
}

func newQPart(p int, floor int64) *qpart {
	qp := &qpart{
		p: p, floor: floor, next: floor,
		acked: map[int64]struct{}{}, counts: map[int64]int{}, inflight: map[int64]*inflight{}, skipped: map[int64]bool{},
		queued: map[int64]bool{}, keys: map[string]int64{}, offKey: map[int64]string{}, blocked: map[string][]int64{},
	}
	qp.floorPub.Store(floor)
	return qp
}

// inflight is one delivery waiting for its ack.
type inflight struct {
	offset   int64
	member   *QueueMember
	deadline time.Time
	count    int
	key      string
	keyed    bool
}

// readyItem is an offset to deliver again (after a nack, an expired deadline,
// a member leaving) or for the first time (a delayed message), from at on.
type readyItem struct {
	at     time.Time
	offset int64
}

type readyHeap []readyItem

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].offset < h[j].offset
}
func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(readyItem)) }
func (h *readyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// schedule puts offset in the ready heap from at on.
func (qp *qpart) schedule(offset int64, at time.Time) {
	if qp.queued[offset] {
		return
	}
	qp.queued[offset] = true
	heap.Push(&qp.ready, readyItem{at: at, offset: offset})
}

// popReady takes the first ready offset due by now.
func (qp *qpart) popReady(now time.Time) (int64, bool) {
	for qp.ready.Len() > 0 && !qp.ready[0].at.After(now) {
		it := heap.Pop(&qp.ready).(readyItem)
		delete(qp.queued, it.offset)
		if qp.inflight[it.offset] != nil {
			continue
		}
		if _, done := qp.acked[it.offset]; done || it.offset < qp.floor {
			qp.dropOffset(it.offset, now)
			continue
		}
		return it.offset, true
	}
	return 0, false
}

// keyFree reports whether a message with this key may be delivered now.
func (qp *qpart) keyFree(key string, offset int64) bool {
	holder, held := qp.keys[key]
	return !held || holder == offset
}

// skip records that the cursor passed offset without delivering it. An
// offset delivered before (now, or before a restart) is no skip: it keeps
// its count.
func (qp *qpart) skip(offset int64) {
	if qp.skipped[offset] || qp.counts[offset] > 0 {
		return
	}
	if offset < qp.loadedCursor {
		qp.counts[offset] = 1 // delivered once before the restart
		return
	}
	qp.skipped[offset] = true
	qp.newSkips = append(qp.newSkips, offset)
}

// hold records that offset holds key.
func (qp *qpart) hold(key string, offset int64) {
	qp.keys[key] = offset
	qp.offKey[offset] = key
}

// dropOffset forgets an offset that will never be delivered (settled, or
// deleted by retention): a key it held passes to the next offset waiting.
func (qp *qpart) dropOffset(offset int64, now time.Time) {
	if key, ok := qp.offKey[offset]; ok {
		qp.releaseKey(key, offset, now)
	}
}

// releaseKey frees a key held by offset and makes the next blocked offset of
// that key ready.
func (qp *qpart) releaseKey(key string, offset int64, now time.Time) {
	if holder, ok := qp.keys[key]; !ok || holder != offset {
		return
	}
	delete(qp.keys, key)
	delete(qp.offKey, offset)
	if list := qp.blocked[key]; len(list) > 0 {
		next := list[0]
		if len(list) == 1 {
			delete(qp.blocked, key)
		} else {
			qp.blocked[key] = list[1:]
		}
		qp.hold(key, next)
		qp.schedule(next, now)
	}
}

// ack marks offset acknowledged and advances the floor. It returns the
// offsets the floor passed (whose ack markers can go) and whether the floor
// moved.
func (qp *qpart) ack(offset int64) (passed []int64, moved bool) {
	delete(qp.counts, offset)
	if offset < qp.floor {
		return nil, false
	}
	qp.acked[offset] = struct{}{}
	for {
		if _, ok := qp.acked[qp.floor]; !ok {
			break
		}
		delete(qp.acked, qp.floor)
		passed = append(passed, qp.floor)
		qp.floor++
		moved = true
	}
	if moved {
		qp.floorPub.Store(qp.floor)
	}
	return passed, moved
}

// nextDeadline is the earliest deadline in flight or ready time ahead.
func (qp *qpart) nextDeadline(now time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, d := range qp.inflight {
		if !found || d.deadline.Before(best) {
			best, found = d.deadline, true
		}
	}
	if qp.ready.Len() > 0 && qp.ready[0].at.After(now) && (!found || qp.ready[0].at.Before(best)) {
		best, found = qp.ready[0].at, true
	}
	return best, found
}
