package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/meta"
	"github.com/ferrymq/ferry/storage/record"
)

// queueSub is an open queue subscription.
//
// Lock order: Broker.mu (shared) before queueSub.mu. Every call that reads
// the topic's logs holds both; waiting (for messages, for a deadline) is done
// with neither held. Dead letters are published with neither held.
type queueSub struct {
	b   *Broker
	t   *topic
	rec subRecord
	cfg SubscriptionConfig

	mu      sync.Mutex
	parts   []*qpart
	members map[*QueueMember]struct{}
	changed chan struct{} // closed when something may have become deliverable
	timer   clock.Timer
	timerAt time.Time
	// expiresFrom is at or before the earliest deadline in flight (zero:
	// nothing in flight): until then, expire need not look at each
	// delivery. Acks and extensions only move the true earliest later.
	expiresFrom time.Time
	rr          int
	near        nearBatch // readAt's, for one take
	closed      atomic.Bool
}

// Delivery is one message handed to a queue member.
type Delivery struct {
	// ID names this delivery in Ack, Nack and Extend.
	ID      string
	Message Message
	// Count is how often the message has been delivered, this time included.
	Count    int
	Deadline time.Time
}

// QueueMember is one consumer of a queue subscription. Its methods are safe
// for concurrent use.
type QueueMember struct {
	s        *queueSub
	inflight int
	closed   bool
}

// deadLetter is a message on its way to the dead-letter topic.
type deadLetter struct {
	partition int
	offset    int64
	count     int
	reason    string
}

func floorKey(topic, sub string, p int) string {
	return stateKey(topic, sub) + strconv.Itoa(p) + "/f"
}

func ackKey(topic, sub string, p int, o int64) string { return offsetStateKey(topic, sub, p, 'a', o) }

func skipKey(topic, sub string, p int, o int64) string { return offsetStateKey(topic, sub, p, 's', o) }

func cursorKey(topic, sub string, p int) string {
	return stateKey(topic, sub) + strconv.Itoa(p) + "/d"
}

func countKey(topic, sub string, p int, o int64) string { return offsetStateKey(topic, sub, p, 'c', o) }

// offsetStateKey builds "q/TOPIC/SUB/P/K/OFFSET" with the offset in 20
// digits, so keys sort by offset. It is on the path of every delivery and
// ack, hence no fmt.
func offsetStateKey(topic, sub string, p int, kind byte, o int64) string {
	b := make([]byte, 0, len(topic)+len(sub)+40)
	b = append(b, "q/"...)
	b = append(b, topic...)
	b = append(b, '/')
	b = append(b, sub...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, '/', kind, '/')
	var digits [20]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + o%10)
		o /= 10
	}
	b = append(b, digits[:]...)
	return string(b)
}

func newQueueSub(b *Broker, t *topic, rec subRecord, floors []int64) *queueSub {
	q := &queueSub{b: b, t: t, rec: rec, cfg: rec.Config, members: map[*QueueMember]struct{}{}}
	for p, f := range floors {
		q.parts = append(q.parts, newQPart(p, f))
	}
	return q
}

// loadQueueSub restores a queue subscription's state from the metadata store.
func loadQueueSub(b *Broker, t *topic, rec subRecord) (*queueSub, error) {
	floors := make([]int64, len(t.parts))
	for p := range t.parts {
		if v, ok := b.meta.Get(floorKey(rec.Topic, rec.Name, p)); ok {
			f, err := decodeOffset(v)
			if err != nil {
				return nil, err
			}
			floors[p] = f
		}
	}
	q := newQueueSub(b, t, rec, floors)
	for p, qp := range q.parts {
		if v, ok := b.meta.Get(cursorKey(rec.Topic, rec.Name, p)); ok {
			c, err := decodeOffset(v)
			if err != nil {
				return nil, err
			}
			qp.loadedCursor, qp.savedNext = c, c
		}
	}
	prefix := stateKey(rec.Topic, rec.Name)
	var bad error
	b.meta.Scan(prefix, func(key string, value []byte) bool {
		parts := strings.Split(strings.TrimPrefix(key, prefix), "/")
		if len(parts) != 3 {
			return true // the floor keys
		}
		p, err1 := strconv.Atoi(parts[0])
		o, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || p >= len(q.parts) {
			bad = fmt.Errorf("bad state key %q", key)
			return false
		}
		qp := q.parts[p]
		switch parts[1] {
		case "a":
			if o >= qp.floor {
				qp.acked[o] = struct{}{}
			}
		case "c":
			if len(value) == 4 {
				qp.counts[o] = int(int32(uint32(value[0])<<24 | uint32(value[1])<<16 | uint32(value[2])<<8 | uint32(value[3])))
			}
		case "s":
			qp.skipped[o] = true
		}
		return true
	})
	return q, bad
}

// ensurePartitions adds state for partitions added to the topic since.
// Called with q.mu held.
func (q *queueSub) ensurePartitions() {
	for p := len(q.parts); p < len(q.t.parts); p++ {
		q.parts = append(q.parts, newQPart(p, 0))
	}
}

// JoinQueue adds a member to a queue subscription.
func (b *Broker) JoinQueue(topicName, sub string) (*QueueMember, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	q, err := b.queueSub(topicName, sub)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m := &QueueMember{s: q}
	q.members[m] = struct{}{}
	return m, nil
}

// wake tells waiting members that something may be deliverable. Called with
// q.mu held.
func (q *queueSub) wake() {
	if q.changed != nil {
		close(q.changed)
		q.changed = nil
	}
}

// notify is wake for callers without q.mu (publish).
func (q *queueSub) notify() {
	q.mu.Lock()
	q.wake()
	q.mu.Unlock()
}

// shutdown ends the subscription (it was deleted). Called with b.mu held.
func (q *queueSub) shutdown() {
	q.closed.Store(true)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.timer != nil {
		q.timer.Stop()
	}
	q.wake()
}

// lock takes the broker's lock (shared) and the subscription's.
func (m *QueueMember) lock() (unlock func(), err error) {
	q := m.s
	unlock, ok := q.lockOpen()
	if !ok {
		return nil, ErrMemberClosed
	}
	if m.closed {
		unlock()
		return nil, ErrMemberClosed
	}
	q.ensurePartitions()
	return unlock, nil
}

// Receive returns up to max deliveries, waiting until there is at least one
// or ctx ends. A member holds at most MaxInFlight unacknowledged deliveries;
// at that limit Receive waits for an ack.
func (m *QueueMember) Receive(ctx context.Context, max int) ([]Delivery, error) {
	ds, err := waitFor(ctx, func() ([]Delivery, <-chan struct{}, error) { return m.poll(max) })
	m.s.tellDeliveries(ds)
	return ds, err
}

// Poll is Receive without waiting: it returns what is deliverable now,
// possibly nothing.
func (m *QueueMember) Poll(max int) ([]Delivery, error) {
	out, _, err := m.poll(max)
	m.s.tellDeliveries(out)
	return out, err
}

// poll takes what is deliverable now and returns a channel closed when
// more may be.
func (m *QueueMember) poll(max int) ([]Delivery, <-chan struct{}, error) {
	if max < 1 {
		max = 1
	}
	q := m.s
	unlock, err := m.lock()
	if err != nil {
		return nil, nil, err
	}
	now := q.b.opts.Clock.Now()
	dead := q.expire(now)
	var out []Delivery
	if room := min(max, q.cfg.MaxInFlight-m.inflight); room > 0 {
		out, err = q.collect(m, room, now)
	}
	if q.changed == nil {
		q.changed = make(chan struct{})
	}
	ch := q.changed
	// The timer only has to fire by the new deliveries' deadline: a full
	// rescan of the deliveries in flight on every poll made polling cost
	// O(in flight). A timer that fires early (its delivery was acked) finds
	// nothing to expire and rescans then.
	if q.timer == nil {
		q.reschedule(now)
	} else if len(out) > 0 {
		first := out[0].Deadline
		for _, d := range out[1:] {
			if d.Deadline.Before(first) {
				first = d.Deadline
			}
		}
		q.scheduleBy(first, now)
	}
	unlock()
	q.sendDead(dead)
	return out, ch, err
}

// collect takes up to room deliveries for m and records their delivery
// counts before handing them out. Called with the locks held.
func (q *queueSub) collect(m *QueueMember, room int, now time.Time) ([]Delivery, error) {
	out := make([]Delivery, 0, q.available(room, now))
	defer q.forget()
	var mb meta.Batch
	n := len(q.parts)
	for tries := 0; len(out) < room && tries < n; {
		qp := q.parts[q.rr%n]
		d, ok, err := q.nextFor(qp, m, now)
		if err != nil {
			if len(out) == 0 {
				return nil, err
			}
			q.b.opts.Logger.Warn("queue delivery stopped early", "topic", q.rec.Topic, "subscription", q.rec.Name, "err", err)
			break
		}
		if !ok {
			q.rr++
			tries++
			continue
		}
		if d.Count >= 2 {
			c := uint32(d.Count)
			mb.Put(countKey(q.rec.Topic, q.rec.Name, qp.p, d.Message.Offset), []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, nil
	}
	// The cursor and the skipped set go to disk with the deliveries: a first
	// delivery is recorded by the cursor passing it.
	for _, qp := range q.parts {
		for _, o := range qp.newSkips {
			mb.Put(skipKey(q.rec.Topic, q.rec.Name, qp.p, o), nil)
		}
		for _, o := range qp.unskips {
			mb.Delete(skipKey(q.rec.Topic, q.rec.Name, qp.p, o))
		}
		if qp.next > qp.savedNext {
			mb.Put(cursorKey(q.rec.Topic, q.rec.Name, qp.p), encodeOffset(qp.next))
		}
	}
	if err := q.b.apply(&mb, meta.Written); err != nil {
		// Not recorded: take them back; they are delivered later.
		for _, d := range out {
			qp := q.parts[d.Message.Partition]
			o := d.Message.Offset
			in := qp.inflight[o]
			delete(qp.inflight, o)
			m.inflight--
			qp.counts[o] = in.count - 1
			if slices.Contains(qp.unskips, o) || o >= qp.savedNext {
				qp.skipped[o] = true // not delivered after all
				qp.newSkips = append(qp.newSkips, o)
			}
			qp.schedule(o, now)
		}
		for _, qp := range q.parts {
			qp.unskips = qp.unskips[:0]
		}
		return nil, fmt.Errorf("record deliveries: %w", mapStorageErr(err))
	}
	for _, qp := range q.parts {
		qp.newSkips, qp.unskips = qp.newSkips[:0], qp.unskips[:0]
		qp.savedNext = max(qp.savedNext, qp.next)
	}
	if len(q.b.hooks.deliver) > 0 {
		again, bytes := 0, 0
		for i := range out {
			if out[i].Count > 1 {
				again++
			}
			bytes += out[i].Message.stored
		}
		for _, h := range q.b.hooks.deliver {
			h.OnDeliver(q.rec.Topic, q.rec.Name, len(out), again, bytes)
		}
	}
	return out, nil
}

// nextFor finds the next message of partition qp that m may receive now:
// first redeliveries that are due, then new messages from the log.
func (q *queueSub) nextFor(qp *qpart, m *QueueMember, now time.Time) (Delivery, bool, error) {
	for {
		off, ok := qp.popReady(now)
		if !ok {
			break
		}
		msg, err := q.readAt(qp.p, off)
		if err != nil {
			if errors.Is(err, ErrOffsetOutOfRange) {
				qp.dropOffset(off, now) // deleted by retention meanwhile
				continue
			}
			qp.schedule(off, now.Add(time.Second))
			return Delivery{}, false, err
		}
		if q.cfg.KeyOrdering && msg.Key != nil && !qp.keyFree(string(msg.Key), off) {
			qp.blocked[string(msg.Key)] = insertSorted(qp.blocked[string(msg.Key)], off)
			continue
		}
		return q.deliver(qp, msg, m, now), true, nil
	}
	for {
		if len(qp.buf) == 0 {
			if err := q.readAhead(qp); err != nil || len(qp.buf) == 0 {
				return Delivery{}, false, err
			}
		}
		msg := qp.buf[0]
		qp.buf = qp.buf[1:]
		qp.next = msg.Offset + 1
		if _, done := qp.acked[msg.Offset]; done || msg.Offset < qp.floor {
			continue
		}
		if msg.DeliverAt.After(now) {
			qp.skip(msg.Offset)
			qp.schedule(msg.Offset, msg.DeliverAt)
			continue
		}
		if q.cfg.KeyOrdering && msg.Key != nil && !qp.keyFree(string(msg.Key), msg.Offset) {
			qp.skip(msg.Offset)
			qp.blocked[string(msg.Key)] = insertSorted(qp.blocked[string(msg.Key)], msg.Offset)
			continue
		}
		return q.deliver(qp, msg, m, now), true, nil
	}
}

// available is about how many deliveries a take of up to room finds: what
// waits for redelivery and what is stored from the cursor on (what is read
// ahead is part of that: next moves only as it is taken). It
// sizes the take's slice, which would otherwise grow, copying deliveries,
// many times in a take of thousands. What waits for later (delayed
// messages, nacks with a delay) is not counted while the earliest of it
// is not due: a take finds none of it, and every poll with nothing due
// would otherwise allocate for it. Called with the locks held.
func (q *queueSub) available(room int, now time.Time) int {
	n := 0
	for _, qp := range q.parts {
		if qp.ready.Len() > 0 && !qp.ready[0].at.After(now) {
			n += qp.ready.Len()
		}
		if v := q.t.parts[qp.p].VisibleOffset() - qp.next; v > 0 {
			n += int(min(v, int64(room)))
		}
		if n >= room {
			return room
		}
	}
	return max(n, 1)
}

// deliver hands msg to m.
func (q *queueSub) deliver(qp *qpart, msg Message, m *QueueMember, now time.Time) Delivery {
	o := msg.Offset
	base := qp.counts[o]
	if base == 0 && o < qp.loadedCursor && !qp.skipped[o] {
		base = 1 // delivered once before the restart
	}
	if qp.skipped[o] {
		delete(qp.skipped, o)
		qp.unskips = append(qp.unskips, o)
	}
	count := base + 1
	qp.counts[o] = count
	in := &inflight{offset: msg.Offset, member: m, deadline: now.Add(q.cfg.AckDeadline), count: count}
	if q.cfg.KeyOrdering && msg.Key != nil {
		in.key, in.keyed = string(msg.Key), true
		qp.hold(in.key, msg.Offset)
	}
	qp.inflight[msg.Offset] = in
	if q.expiresFrom.IsZero() || in.deadline.Before(q.expiresFrom) {
		q.expiresFrom = in.deadline
	}
	m.inflight++
	return Delivery{ID: deliveryID(qp.p, msg.Offset, count), Message: msg, Count: count, Deadline: in.deadline}
}

// deliveryID is "PARTITION-OFFSET-COUNT", built with one allocation: it is
// made for every delivery.
func deliveryID(p int, offset int64, count int) string {
	var b [64]byte
	s := strconv.AppendInt(b[:0], int64(p), 10)
	s = append(s, '-')
	s = strconv.AppendInt(s, offset, 10)
	s = append(s, '-')
	s = strconv.AppendInt(s, int64(count), 10)
	return string(s)
}

func parseDeliveryID(id string) (p int, offset int64, count int, err error) {
	ps, rest, ok1 := strings.Cut(id, "-")
	os, cs, ok2 := strings.Cut(rest, "-")
	if ok1 && ok2 {
		p, err = strconv.Atoi(ps)
		if err == nil {
			offset, err = strconv.ParseInt(os, 10, 64)
		}
		if err == nil {
			count, err = strconv.Atoi(cs)
		}
		if err == nil && p >= 0 && offset >= 0 && count > 0 {
			return p, offset, count, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("%w: malformed delivery id %q", ErrUnknownDelivery, id)
}

func insertSorted(list []int64, o int64) []int64 {
	i := len(list)
	for i > 0 && list[i-1] > o {
		i--
	}
	if i > 0 && list[i-1] == o {
		return list
	}
	list = append(list, 0)
	copy(list[i+1:], list[i:])
	list[i] = o
	return list
}

// readAhead reads the next messages of a partition from the log.
func (q *queueSub) readAhead(qp *qpart) error {
	l := q.t.parts[qp.p]
	if qp.next >= l.VisibleOffset() {
		return nil
	}
	if start := l.StartOffset(); qp.next < start || qp.floor < start {
		// Retention deleted messages this subscription had not finished:
		// they are gone, so they count as settled, or the floor would wait
		// for them forever.
		qp.next = max(qp.next, start)
		if err := q.skipTo(qp, start); err != nil {
			return err
		}
	}
	res, err := l.Read(qp.next, 256<<10)
	if err != nil {
		return fmt.Errorf("read %s/%d at %d: %w", q.rec.Topic, qp.p, qp.next, err)
	}
	qp.buf = make([]Message, 0, countRecords(res.Data))
	return record.Split(res.Data, func(h record.Header, batch []byte) error {
		share := len(batch) / max(int(h.NumRecords), 1)
		return record.Records(batch, record.Limits{}, func(r record.Record) error {
			if r.Offset >= qp.next {
				m := messageFromRecord(q.rec.Topic, qp.p, r)
				m.stored = share
				qp.buf = append(qp.buf, m)
			}
			return nil
		})
	})
}

// skipTo moves partition qp's floor up to start, forgetting what was
// acknowledged or counted below it. Called with the locks held.
func (q *queueSub) skipTo(qp *qpart, start int64) error {
	if qp.floor >= start {
		return nil
	}
	var mb meta.Batch
	for o := range qp.acked {
		if o < start {
			delete(qp.acked, o)
			mb.Delete(ackKey(q.rec.Topic, q.rec.Name, qp.p, o))
		}
	}
	for o := range qp.counts {
		if o < start && qp.inflight[o] == nil {
			delete(qp.counts, o)
			mb.Delete(countKey(q.rec.Topic, q.rec.Name, qp.p, o))
		}
	}
	for o := range qp.offKey {
		if o < start && qp.inflight[o] == nil {
			qp.dropOffset(o, q.b.opts.Clock.Now())
		}
	}
	for o := range qp.skipped {
		if o < start {
			delete(qp.skipped, o)
			mb.Delete(skipKey(q.rec.Topic, q.rec.Name, qp.p, o))
		}
	}
	q.b.opts.Logger.Warn("retention deleted messages a queue subscription had not acknowledged",
		"topic", q.rec.Topic, "subscription", q.rec.Name, "partition", qp.p, "from", qp.floor, "to", start)
	qp.floor = start
	qp.floorPub.Store(start)
	mb.Put(floorKey(q.rec.Topic, q.rec.Name, qp.p), encodeOffset(start))
	if err := q.b.apply(&mb, meta.Written); err != nil {
		return fmt.Errorf("record skipped messages: %w", mapStorageErr(err))
	}
	return nil
}

// readAt reads the message at one offset. It keeps the messages of the
// stored batch it read until forget: redeliveries and due delayed messages
// come in offset order, often many of one batch, which would otherwise be
// read and decoded whole once per message (330 µs per redelivery of a
// batch of 2,000). Called with the locks held.
func (q *queueSub) readAt(p int, offset int64) (Message, error) {
	if c := &q.near; c.msgs != nil && c.p == p && offset >= c.msgs[0].Offset {
		if i := offset - c.msgs[0].Offset; i < int64(len(c.msgs)) && c.msgs[i].Offset == offset {
			return c.msgs[i], nil
		}
	}
	l := q.t.parts[p]
	res, err := l.Read(offset, 1)
	if errors.Is(err, log.ErrOffsetOutOfRange) {
		return Message{}, fmt.Errorf("%w: %s/%d offset %d: %w", ErrOffsetOutOfRange, q.rec.Topic, p, offset, err)
	}
	if err != nil {
		return Message{}, fmt.Errorf("read %s/%d offset %d: %w", q.rec.Topic, p, offset, err)
	}
	msgs := q.near.msgs[:0]
	err = record.Split(res.Data, func(h record.Header, batch []byte) error {
		share := len(batch) / max(int(h.NumRecords), 1)
		return record.Records(batch, record.Limits{}, func(r record.Record) error {
			if r.Offset >= offset {
				m := messageFromRecord(q.rec.Topic, p, r)
				m.stored = share
				msgs = append(msgs, m)
			}
			return nil
		})
	})
	if err != nil {
		q.forget()
		return Message{}, err
	}
	if len(msgs) == 0 || msgs[0].Offset != offset {
		q.forget()
		return Message{}, fmt.Errorf("%w: %s/%d offset %d", ErrOffsetOutOfRange, q.rec.Topic, p, offset)
	}
	q.near = nearBatch{p: p, msgs: msgs}
	return msgs[0], nil
}

// nearBatch is what readAt read last: messages of one partition from the
// offset it was asked for to the end of that stored batch, dense.
type nearBatch struct {
	p    int
	msgs []Message
}

// forget drops what readAt keeps. A take calls it when it ends, so that
// nothing read is served after retention may have deleted it, and no
// memory is held between takes.
func (q *queueSub) forget() { q.near = nearBatch{} }
