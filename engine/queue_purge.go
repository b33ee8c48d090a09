package engine

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/storage/meta"
)

// PurgeSubscription drops a durable subscription's backlog, as SQS's
// PurgeQueue does, and returns how many messages it dropped. The topic's
// messages stay: other subscriptions and readers still see them.
//
// For a queue subscription, every message stored in its partitions when
// the purge takes effect (up to each partition's end offset then) is
// settled, whatever its state: ready, delayed (DeliverAt), waiting to be
// delivered again after a nack or an expired deadline, held back by key
// ordering, or in flight. Deliveries in flight can no longer be
// acknowledged, nacked or extended (ErrUnknownDelivery, as after their
// deadline), are never delivered again and no longer count against their
// members' MaxInFlight. Messages published afterwards are delivered as
// usual. The count is the backlog the purge cleared, exactly as
// DescribeSubscription counted it at that moment (so it includes messages
// retention deleted before the subscription passed them, and a message
// whose move to the dead-letter topic was under way: that move goes on,
// but is not tried again should it fail, and on a work topic retention may
// delete the message before it is read for the move). Dead letters
// already moved stay in the dead-letter topic.
//
// For a stream subscription it is SeekStream to the latest offset on every
// partition; the count is the lag it skipped.
//
// The purge is written and synced to the metadata store before it returns:
// it survives a crash or a power cut.
func (b *Broker) PurgeSubscription(ctx context.Context, topicName, sub string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(topicName)
	if err != nil {
		return 0, err
	}
	if err := b.checkFolder(); err != nil {
		return 0, err
	}
	var n int64
	var kind SubscriptionKind
	if s, ok := t.streams[sub]; ok {
		kind = KindStream
		n, err = s.purge()
	} else if q, ok := t.subs[sub]; ok {
		kind = KindQueue
		n, err = q.purge()
	} else {
		return 0, fmt.Errorf("%w %q on topic %q", ErrUnknownSubscription, sub, topicName)
	}
	if err != nil {
		return 0, err
	}
	for _, h := range b.hooks.purge {
		h.OnPurge(topicName, sub, kind, n)
	}
	return n, nil
}

// purge settles everything stored in the subscription's partitions now.
// Called with b.mu held (shared).
func (q *queueSub) purge() (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ensurePartitions()
	floors := make([]int64, len(q.parts))
	var n int64
	var mb meta.Batch
	for p, qp := range q.parts {
		// Everything this partition's state knows of (in flight, acked,
		// counted, skipped, read ahead) lies below the end: it was read.
		end := q.t.parts[p].VisibleOffset()
		floors[p] = max(qp.floor, end)
		if end > qp.floor {
			n += max(end-qp.floor-int64(len(qp.acked)), 0)
		}
		prefix := stateKey(q.rec.Topic, q.rec.Name) + strconv.Itoa(p) + "/"
		for _, kind := range []string{"a/", "c/", "s/"} {
			mb.DeletePrefix(prefix + kind)
		}
		mb.Put(floorKey(q.rec.Topic, q.rec.Name, p), encodeOffset(floors[p]))
		if floors[p] > qp.savedNext {
			mb.Put(cursorKey(q.rec.Topic, q.rec.Name, p), encodeOffset(floors[p]))
		}
	}
	// Synced, as an administrative change: a power cut must not bring the
	// purged messages back.
	if err := q.b.apply(&mb, meta.Synced); err != nil {
		return 0, fmt.Errorf("purge: %w", mapStorageErr(err))
	}
	now := q.b.opts.Clock.Now()
	for p, qp := range q.parts {
		qp.purgeTo(floors[p], now)
	}
	if q.t.rec.Config.Retention.Work {
		for p := range q.parts {
			q.t.setWorkFloor(p)
		}
	}
	q.reschedule(now)
	q.wake() // members waiting at MaxInFlight have room again
	return n, nil
}

// purgeTo forgets everything below floor and moves the floor there: in
// flight (its members get the room back), acknowledged, counted, skipped,
// waiting to be delivered again, holding or waiting for a key, read ahead.
// The metadata store has been told already. Called with q.mu held.
func (qp *qpart) purgeTo(floor int64, now time.Time) {
	for o, in := range qp.inflight {
		if o < floor {
			delete(qp.inflight, o)
			in.member.inflight--
		}
	}
	for o := range qp.acked {
		if o < floor {
			delete(qp.acked, o)
		}
	}
	for o := range qp.counts {
		if o < floor {
			delete(qp.counts, o)
		}
	}
	for o := range qp.skipped {
		if o < floor {
			delete(qp.skipped, o)
		}
	}
	below := func(o int64) bool { return o < floor }
	qp.newSkips = slices.DeleteFunc(qp.newSkips, below)
	qp.unskips = slices.DeleteFunc(qp.unskips, below)
	qp.ready = slices.DeleteFunc(qp.ready, func(it readyItem) bool { return it.offset < floor })
	heap.Init(&qp.ready)
	for o := range qp.queued {
		if o < floor {
			delete(qp.queued, o)
		}
	}
	for key, o := range qp.keys {
		if o < floor {
			delete(qp.keys, key)
		}
	}
	for o := range qp.offKey {
		if o < floor {
			delete(qp.offKey, o)
		}
	}
	for key, list := range qp.blocked {
		list = slices.DeleteFunc(list, below)
		if len(list) == 0 {
			delete(qp.blocked, key)
			continue
		}
		qp.blocked[key] = list
		if _, held := qp.keys[key]; !held {
			// Its holder was purged: the next offset of the key takes it.
			qp.hold(key, list[0])
			qp.schedule(list[0], now)
			if len(list) == 1 {
				delete(qp.blocked, key)
			} else {
				qp.blocked[key] = list[1:]
			}
		}
	}
	qp.buf = slices.DeleteFunc(qp.buf, func(m Message) bool { return m.Offset < floor })
	qp.next = max(qp.next, floor)
	qp.savedNext = max(qp.savedNext, floor)
	qp.floor = floor
	qp.floorPub.Store(floor)
}

// purge moves every partition's committed offset to its end. Called with
// b.mu held (shared).
func (s *streamSub) purge() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncPartitions()
	ends := make(map[int]int64, len(s.t.parts))
	var n int64
	var mb meta.Batch
	for p, l := range s.t.parts {
		end := l.VisibleOffset()
		c := s.committed[p].Load()
		n += max(end-c, 0)
		ends[p] = max(end, c)
		mb.Put(offsetKey(s.rec.Topic, s.rec.Name, p), encodeOffset(ends[p]))
	}
	if err := s.b.apply(&mb, meta.Synced); err != nil {
		return 0, fmt.Errorf("purge: %w", mapStorageErr(err))
	}
	for p, o := range ends {
		s.committed[p].Store(o)
		for _, m := range s.members {
			if pos, ok := m.position[p]; ok && pos < o {
				m.position[p] = o
			}
		}
		if s.t.rec.Config.Retention.Work {
			s.t.setWorkFloor(p)
		}
	}
	return n, nil
}
