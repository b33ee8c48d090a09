package kafka

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/ferrymq/ferry/internal/clock"
)

// Idempotent producers (KIP-98): InitProducerId hands out a producer id;
// the producer numbers its records per partition (a batch carries the
// sequence of its first record), and the broker keeps, per producer id
// and partition, the sequence ranges and offsets of the last
// dedupWindow batches it stored. A retried batch that matches one of them
// is answered with its first offset and not stored again; a batch that
// does not follow the last one is refused with OUT_OF_ORDER_SEQUENCE_NUMBER.
//
// This state is in memory only. A broker restart forgets it, so a producer
// that retries across a restart a batch stored before it may store a
// duplicate: its producer id is unknown to the new process (ids carry the
// start time, so they are not handed out again), it gets
// UNKNOWN_PRODUCER_ID, takes a new id and sends the batch again. The same
// holds for a producer forgotten for being idle past Options.ProducerIdleTimeout
// or evicted, least recently used first, past Options.MaxProducers. And a
// produce that fails after its records may have reached the log (its
// timeout ends while it waits for the fsync) leaves no trace here, so its
// retry is stored again.
//
// Locks: producerTable.mu and producer.mu are held only briefly and never
// together; a sequences.mu is held across the store of a batch, with
// neither of them held.

// dedupWindow is how many batches per producer and partition are
// remembered for retries: Kafka's, the most a producer keeps in flight
// (max.in.flight.requests.per.connection 5).
const dedupWindow = 5

// producerTable holds every producer id handed out and still remembered.
type producerTable struct {
	clock clock.Clock
	idle  time.Duration
	max   int

	mu        sync.Mutex
	next      int64
	byID      map[int64]*producer
	lru       list.List // of *producer, the most recently used first
	lastSweep time.Time
}

// producer is one producer id's state.
type producer struct {
	id       int64
	elem     *list.Element
	lastUsed time.Time // under producerTable.mu

	mu         sync.Mutex
	partitions map[topicPartition]*sequences
}

type topicPartition struct {
	topic     string // its name and Ferry id: a topic deleted and created again starts afresh
	partition int32
}

// sequences is one producer's state on one partition: its epoch and its
// last batches, the newest at batches[n-1]. Its mutex is held from the
// sequence check to the record of the stored batch, so two produces of one
// producer to one partition cannot both pass the check.
type sequences struct {
	mu      sync.Mutex
	epoch   int16 // -1 until the first batch
	batches []storedBatch
}

// storedBatch is a batch stored for an idempotent producer.
type storedBatch struct {
	firstSeq, lastSeq int32
	offset            int64        // of its first record
	durable           func() error // waits until it is on disk (nil: it is)
}

func newProducerTable(c clock.Clock, idle time.Duration, maxProducers int) *producerTable {
	// Ids start at the start time in milliseconds times 2^20, so a process
	// started later does not hand out the ids of an earlier one (unless the
	// earlier one handed out over a million ids per millisecond it ran).
	start := max(c.Now().UnixMilli(), 0) << 20
	return &producerTable{clock: c, idle: idle, max: maxProducers, next: start, byID: map[int64]*producer{}}
}

// newID hands out a producer id, forgetting producers idle too long and,
// past the cap, the least recently used.
func (t *producerTable) newID() (int64, error) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == math.MaxInt64 {
		return 0, fmt.Errorf("producer ids exhausted")
	}
	t.sweep(now)
	for len(t.byID) >= t.max {
		t.forget(t.lru.Back().Value.(*producer))
	}
	p := &producer{id: t.next, lastUsed: now, partitions: map[topicPartition]*sequences{}}
	t.next++
	p.elem = t.lru.PushFront(p)
	t.byID[p.id] = p
	return p.id, nil
}

// sweep forgets the producers idle past the timeout, at most once a minute
// (or once per tenth of the timeout, if shorter).
func (t *producerTable) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < min(time.Minute, t.idle/10) {
		return
	}
	t.lastSweep = now
	for e := t.lru.Back(); e != nil; {
		p := e.Value.(*producer)
		if now.Sub(p.lastUsed) < t.idle {
			break
		}
		e = e.Prev()
		t.forget(p)
	}
}

func (t *producerTable) forget(p *producer) {
	t.lru.Remove(p.elem)
	delete(t.byID, p.id)
}

// drop forgets the producer with id, if known: after a batch of its was
// placed but never became durable, its sequences no longer say what is
// stored, so its next request gets UNKNOWN_PRODUCER_ID and the client
// starts again with a new id.
func (t *producerTable) drop(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.byID[id]; p != nil {
		t.forget(p)
	}
}

// lookup returns the producer with id, nil when it is unknown or idle past
// the timeout, and marks it used.
func (t *producerTable) lookup(id int64) *producer {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byID[id]
	if p == nil {
		return nil
	}
	if now.Sub(p.lastUsed) >= t.idle {
		t.forget(p)
		return nil
	}
	p.lastUsed = now
	t.lru.MoveToFront(p.elem)
	return p
}

// len is how many producers are remembered.
func (t *producerTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// partition returns the producer's state on one partition, locked; the
// caller unlocks it once the batch is stored or refused.
func (p *producer) partition(topic string, partition int32) *sequences {
	p.mu.Lock()
	tp := topicPartition{topic, partition}
	s := p.partitions[tp]
	if s == nil {
		s = &sequences{epoch: -1}
		p.partitions[tp] = s
	}
	p.mu.Unlock()
	s.mu.Lock()
	return s
}

// batchSeq is what an idempotent batch says of itself.
type batchSeq struct {
	epoch    int16
	firstSeq int32
	count    int32
}

func (b batchSeq) lastSeq() int32 { return addSeq(b.firstSeq, b.count-1) }

// addSeq adds to a sequence number, which wraps from MaxInt32 to 0.
func addSeq(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// seqError is a sequence check that failed: the Kafka error and why.
type seqError struct {
	code int16
	msg  string
}

func (e *seqError) Error() string { return e.msg }

// check decides what to do with the batches of one produce, in order, on
// a locked partition state: it returns the offset of a duplicate (dup true:
// store nothing, answer that offset) or nil to store them, or why not. It
// does not change the state; record does once they are stored.
func (s *sequences) check(pid int64, bs []batchSeq) (offset int64, durable func() error, dup bool, err error) {
	for _, b := range bs {
		if b.epoch == s.epoch {
			for _, old := range s.batches {
				if old.firstSeq == b.firstSeq && old.lastSeq == b.lastSeq() {
					return old.offset, old.durable, true, nil
				}
			}
		}
	}
	epoch, last, have := s.epoch, int32(0), len(s.batches) > 0
	if have {
		last = s.batches[len(s.batches)-1].lastSeq
	}
	for _, b := range bs {
		switch {
		case b.firstSeq < 0:
			return 0, nil, false, &seqError{kerr.InvalidRecord.Code, fmt.Sprintf("producer %d: batch without a sequence number", pid)}
		case b.epoch < epoch:
			return 0, nil, false, &seqError{kerr.InvalidProducerEpoch.Code, fmt.Sprintf("producer %d: epoch %d is older than the partition's %d", pid, b.epoch, epoch)}
		case b.epoch > epoch || !have:
			// A new epoch (the producer bumped it, KIP-360) or a first
			// batch on this partition starts at sequence 0.
			if b.firstSeq != 0 {
				return 0, nil, false, &seqError{kerr.OutOfOrderSequenceNumber.Code, fmt.Sprintf("producer %d epoch %d: first batch on this partition has sequence %d, expected 0", pid, b.epoch, b.firstSeq)}
			}
		case b.firstSeq != addSeq(last, 1):
			return 0, nil, false, &seqError{kerr.OutOfOrderSequenceNumber.Code, fmt.Sprintf("producer %d epoch %d: sequence %d, expected %d", pid, b.epoch, b.firstSeq, addSeq(last, 1))}
		}
		epoch, last, have = b.epoch, b.lastSeq(), true
	}
	return 0, nil, false, nil
}

// record notes batches stored at offsets (each batch's first offset).
func (s *sequences) record(bs []batchSeq, offsets []int64, durable []func() error) {
	for i, b := range bs {
		if b.epoch != s.epoch {
			s.epoch, s.batches = b.epoch, s.batches[:0]
		}
		if len(s.batches) == dedupWindow {
			copy(s.batches, s.batches[1:])
			s.batches = s.batches[:dedupWindow-1]
		}
		sb := storedBatch{firstSeq: b.firstSeq, lastSeq: b.lastSeq(), offset: offsets[i]}
		if durable != nil {
			sb.durable = durable[i]
		}
		s.batches = append(s.batches, sb)
	}
}
