package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/storage/meta"
)

// DeliveryRef names a delivery by the parts of its ID
// ("PARTITION-OFFSET-COUNT"): a cheaper form than the ID string for callers
// that settle many deliveries at once.
type DeliveryRef struct {
	Partition int
	Offset    int64
	Count     int
}

// Ref is the delivery's ID in parts.
func (d *Delivery) Ref() DeliveryRef {
	return DeliveryRef{Partition: d.Message.Partition, Offset: d.Message.Offset, Count: d.Count}
}

// String is the delivery ID the reference stands for.
func (r DeliveryRef) String() string { return deliveryID(r.Partition, r.Offset, r.Count) }

// take finds the delivery id names among m's in-flight deliveries. Called
// with the locks held.
func (q *queueSub) take(m *QueueMember, id string) (*qpart, *inflight, error) {
	p, off, count, err := parseDeliveryID(id)
	if err != nil {
		return nil, nil, err
	}
	return q.takeRef(m, DeliveryRef{Partition: p, Offset: off, Count: count})
}

// takeRef finds the delivery r names among m's in-flight deliveries.
// Called with the locks held.
func (q *queueSub) takeRef(m *QueueMember, r DeliveryRef) (*qpart, *inflight, error) {
	if r.Partition < 0 || r.Partition >= len(q.parts) || r.Offset < 0 || r.Count <= 0 {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownDelivery, r.String())
	}
	qp := q.parts[r.Partition]
	in := qp.inflight[r.Offset]
	if in == nil || in.member != m || in.count != r.Count {
		return nil, nil, fmt.Errorf("%w: %q is not in flight for this member (acknowledged already, or its deadline passed)", ErrUnknownDelivery, r.String())
	}
	return qp, in, nil
}

// Ack acknowledges deliveries: their messages are done and never delivered
// again. The acks are written before Ack returns. Unknown ids are reported
// in the error; the others are acknowledged all the same.
func (m *QueueMember) Ack(ids ...string) error {
	refs := make([]DeliveryRef, 0, len(ids))
	var errs []error
	for _, id := range ids {
		p, off, count, err := parseDeliveryID(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		refs = append(refs, DeliveryRef{Partition: p, Offset: off, Count: count})
	}
	if err := m.AckRefs(refs...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// AckRefs is Ack for deliveries named by reference.
func (m *QueueMember) AckRefs(refs ...DeliveryRef) error {
	q := m.s
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	now := q.b.opts.Clock.Now()
	var errs []error
	offs := make([]settled, 0, len(refs))
	for _, r := range refs {
		qp, in, err := q.takeRef(m, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		delete(qp.inflight, in.offset)
		m.inflight--
		if in.keyed {
			qp.releaseKey(in.key, in.offset, now)
		}
		offs = append(offs, settled{qp, in.offset})
	}
	if len(offs) > 0 {
		if err := q.settle(offs); err != nil {
			errs = append(errs, err)
		} else {
			for _, h := range q.b.hooks.ack {
				h.OnAck(q.rec.Topic, q.rec.Name, len(offs))
			}
		}
		q.wake()
	}
	return errors.Join(errs...)
}

type settled struct {
	qp     *qpart
	offset int64
}

// settle marks offsets done (acknowledged or dead-lettered) and writes that
// down. Called with the locks held.
func (q *queueSub) settle(list []settled) error {
	var mb meta.Batch
	moved := map[*qpart]bool{}
	for _, s := range list {
		if s.qp.counts[s.offset] >= 2 {
			mb.Delete(countKey(q.rec.Topic, q.rec.Name, s.qp.p, s.offset))
		}
		passed, mv := s.qp.ack(s.offset)
		if s.offset >= s.qp.floor {
			mb.Put(ackKey(q.rec.Topic, q.rec.Name, s.qp.p, s.offset), nil)
		}
		for _, o := range passed {
			if o != s.offset {
				mb.Delete(ackKey(q.rec.Topic, q.rec.Name, s.qp.p, o))
			}
		}
		if mv {
			moved[s.qp] = true
		}
	}
	for qp := range moved {
		mb.Put(floorKey(q.rec.Topic, q.rec.Name, qp.p), encodeOffset(qp.floor))
	}
	if err := q.b.apply(&mb, meta.Written); err != nil {
		return fmt.Errorf("record acks: %w", mapStorageErr(err))
	}
	if q.t.rec.Config.Retention.Work {
		for qp := range moved {
			q.t.setWorkFloor(qp.p)
		}
	}
	return nil
}

// Nack gives a delivery back: it is delivered again after delay (at once
// when 0), or moves to the dead-letter topic when it has failed
// MaxDeliveries times.
func (m *QueueMember) Nack(id string, delay time.Duration) error {
	q := m.s
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	qp, in, err := q.take(m, id)
	if err != nil {
		unlock()
		return err
	}
	now := q.b.opts.Clock.Now()
	delete(qp.inflight, in.offset)
	m.inflight--
	dead := q.failed(qp, in, now.Add(max(delay, 0)), "nacked")
	for _, h := range q.b.hooks.ack {
		h.OnNack(q.rec.Topic, q.rec.Name, 1)
	}
	q.wake()
	if delay > 0 {
		// Only the delay can bring the timer forward: the delivery leaving
		// the in-flight set makes no deadline earlier, so there is no need
		// for reschedule's scan of every delivery in flight (a nack per
		// message with thousands in flight made nacking quadratic).
		q.scheduleBy(now.Add(delay), now)
	}
	unlock()
	q.sendDead(dead)
	return nil
}

// Extend moves a delivery's deadline to now+by (the subscription's ack
// deadline when by is 0): the member is still working on it.
func (m *QueueMember) Extend(id string, by time.Duration) (time.Time, error) {
	q := m.s
	unlock, err := m.lock()
	if err != nil {
		return time.Time{}, err
	}
	defer unlock()
	_, in, err := q.take(m, id)
	if err != nil {
		return time.Time{}, err
	}
	if by <= 0 {
		by = q.cfg.AckDeadline
	}
	now := q.b.opts.Clock.Now()
	in.deadline = now.Add(by)
	if q.expiresFrom.IsZero() || in.deadline.Before(q.expiresFrom) {
		q.expiresFrom = in.deadline // extended by less than was left
	}
	q.reschedule(now)
	return in.deadline, nil
}

// Leave ends the member: its in-flight deliveries are delivered again (a
// failed delivery each).
func (m *QueueMember) Leave() error {
	q := m.s
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	now := q.b.opts.Clock.Now()
	var dead []deadLetter
	for _, qp := range q.parts {
		for off, in := range qp.inflight {
			if in.member == m {
				delete(qp.inflight, off)
				dead = append(dead, q.failed(qp, in, now, "member left")...)
			}
		}
	}
	m.inflight = 0
	m.closed = true
	delete(q.members, m)
	q.wake()
	q.reschedule(now)
	unlock()
	q.sendDead(dead)
	return nil
}

// failed handles a delivery that did not succeed: it is scheduled again at
// `at`, or dead-lettered once it failed MaxDeliveries times. Called with the
// locks held, the delivery already out of inflight.
func (q *queueSub) failed(qp *qpart, in *inflight, at time.Time, reason string) []deadLetter {
	if q.cfg.MaxDeliveries > 0 && in.count >= q.cfg.MaxDeliveries {
		if in.keyed {
			qp.releaseKey(in.key, in.offset, at)
		}
		// Held back from delivery until the dead-letter publish settles it.
		qp.counts[in.offset] = in.count
		qp.queued[in.offset] = true
		return []deadLetter{{partition: qp.p, offset: in.offset, count: in.count, reason: reason}}
	}
	qp.schedule(in.offset, at)
	return nil
}

// expire fails every delivery whose deadline has passed. Called with the
// locks held.
func (q *queueSub) expire(now time.Time) []deadLetter {
	var dead []deadLetter
	if !q.expiresFrom.IsZero() && !now.Before(q.expiresFrom) {
		var next time.Time
		for _, qp := range q.parts {
			for off, in := range qp.inflight {
				if !in.deadline.After(now) {
					delete(qp.inflight, off)
					in.member.inflight--
					dead = append(dead, q.failed(qp, in, now, "ack deadline expired")...)
				} else if next.IsZero() || in.deadline.Before(next) {
					next = in.deadline
				}
			}
		}
		q.expiresFrom = next
	}
	if len(dead) > 0 || q.dueReady(now) {
		q.wake()
	}
	return dead
}

func (q *queueSub) dueReady(now time.Time) bool {
	for _, qp := range q.parts {
		if qp.ready.Len() > 0 && !qp.ready[0].at.After(now) {
			return true
		}
	}
	return false
}

// reschedule sets the timer for the next deadline or delayed message.
// Called with q.mu held.
func (q *queueSub) reschedule(now time.Time) {
	var next time.Time
	found := false
	for _, qp := range q.parts {
		if t, ok := qp.nextDeadline(now); ok && (!found || t.Before(next)) {
			next, found = t, true
		}
	}
	// This full scan also keeps expire's bound honest: were it ever later
	// than a deadline, the timer would fire for nothing again and again.
	if found && (q.expiresFrom.IsZero() || next.Before(q.expiresFrom)) {
		q.expiresFrom = next
	}
	if !found || (q.timer != nil && !q.timerAt.After(next) && q.timerAt.After(now)) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerAt = next
	q.timer = q.b.opts.Clock.AfterFunc(max(next.Sub(now), 0), q.onTimer)
}

// scheduleBy makes the timer fire by t at the latest. Called with the
// locks held.
func (q *queueSub) scheduleBy(t, now time.Time) {
	if q.timer != nil && !q.timerAt.After(t) && q.timerAt.After(now) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerAt = t
	q.timer = q.b.opts.Clock.AfterFunc(max(t.Sub(now), 0), q.onTimer)
}

func (q *queueSub) onTimer() {
	unlock, ok := q.lockOpen()
	if !ok {
		return
	}
	now := q.b.opts.Clock.Now()
	q.timer = nil
	dead := q.expire(now)
	q.wake()
	q.reschedule(now)
	unlock()
	q.sendDead(dead)
}

// Dead-letter headers, set on each message moved to a dead-letter topic.
const (
	HeaderDeadTopic        = "ferry-dead-topic"
	HeaderDeadPartition    = "ferry-dead-partition"
	HeaderDeadOffset       = "ferry-dead-offset"
	HeaderDeadSubscription = "ferry-dead-subscription"
	HeaderDeadReason       = "ferry-dead-reason"
	HeaderDeadDeliveries   = "ferry-dead-deliveries"
)

// sendDead publishes dead letters to the dead-letter topic (created on
// demand, with room for the source's largest message and the headers), then
// settles them. Called with no lock held. A message whose publish fails for
// a passing reason is delivered again later; one the dead-letter topic can
// never take is logged and settled.
func (q *queueSub) sendDead(dead []deadLetter) {
	if len(dead) == 0 {
		return
	}
	ctx := context.Background()
	dlq := q.cfg.DeadLetterTopic
	cfg := TopicConfig{MaxMessageBytes: q.t.rec.Config.MaxMessageBytes + deadLetterOverhead}
	if _, err := q.b.CreateTopic(ctx, dlq, cfg); err != nil && !errors.Is(err, ErrTopicExists) {
		q.b.opts.Logger.Error("cannot create dead-letter topic", "topic", dlq, "err", err)
		q.undead(dead)
		return
	}
	var done, retry []deadLetter
	moved := 0 // of done: stored in the dead-letter topic (not gone, not refused)
	for _, d := range dead {
		msg, ok, err := q.deadMessage(d)
		switch {
		case err != nil:
			retry = append(retry, d)
			continue
		case !ok:
			done = append(done, d) // gone by retention, or the subscription was deleted
			continue
		}
		_, err = q.b.Publish(ctx, dlq, msg)
		if errors.Is(err, ErrMessageTooLarge) && q.growDeadLetterTopic(ctx, dlq, cfg.MaxMessageBytes) {
			_, err = q.b.Publish(ctx, dlq, msg)
		}
		if err != nil {
			if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrUnknownTopic) {
				q.b.opts.Logger.Error("dead letter refused by its topic; dropped", "topic", q.rec.Topic, "partition", d.partition, "offset", d.offset, "dead_letter_topic", dlq, "err", err)
				done = append(done, d)
				continue
			}
			q.b.opts.Logger.Error("cannot publish dead letter", "topic", dlq, "err", err)
			retry = append(retry, d)
			continue
		}
		done = append(done, d)
		moved++
	}
	q.undead(retry)
	q.settleDead(done, moved)
}

// growDeadLetterTopic raises the dead-letter topic's max_message_bytes to
// need when it is lower (a topic made by hand with the default limit has
// no room for the largest messages of its queue plus the dead-letter
// headers): a dead letter is not dropped for want of a setting. It reports
// whether the limit was raised.
func (q *queueSub) growDeadLetterTopic(ctx context.Context, dlq string, need int) bool {
	info, err := q.b.DescribeTopic(dlq)
	if err != nil || info.Config.MaxMessageBytes >= need {
		return false
	}
	if _, err := q.b.AlterTopic(ctx, dlq, TopicChange{MaxMessageBytes: &need}); err != nil {
		q.b.opts.Logger.Error("cannot raise the dead-letter topic's message limit", "topic", dlq, "to", need, "err", err)
		return false
	}
	q.b.opts.Logger.Warn("raised the dead-letter topic's message limit to take its queue's largest messages",
		"topic", dlq, "from", info.Config.MaxMessageBytes, "to", need, "queue", q.rec.Topic+"/"+q.rec.Name)
	return true
}

// deadLetterOverhead is room for the dead-letter headers and id.
const deadLetterOverhead = 4096

// deadMessage builds the dead-letter copy of d. ok is false when there is
// nothing to move (deleted by retention; subscription deleted).
func (q *queueSub) deadMessage(d deadLetter) (Message, bool, error) {
	unlock, open := q.lockOpen()
	if !open {
		return Message{}, false, nil
	}
	defer unlock()
	msg, err := q.readAt(d.partition, d.offset)
	q.forget()
	if errors.Is(err, ErrOffsetOutOfRange) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, err
	}
	out := Message{
		Key: msg.Key, Value: msg.Value, Timestamp: msg.Timestamp,
		// The id makes a retried move store the dead letter once; the
		// subscription's creation time keeps a recreated subscription's
		// dead letters apart.
		ID: fmt.Sprintf("%s/%s/%d/%d/%d", q.rec.Topic, q.rec.Name, q.rec.Created.UnixNano(), d.partition, d.offset),
	}
	out.Headers = append(append([]Header(nil), msg.Headers...),
		Header{Key: HeaderDeadTopic, Value: []byte(q.rec.Topic)},
		Header{Key: HeaderDeadPartition, Value: []byte(strconv.Itoa(d.partition))},
		Header{Key: HeaderDeadOffset, Value: []byte(strconv.FormatInt(d.offset, 10))},
		Header{Key: HeaderDeadSubscription, Value: []byte(q.rec.Name)},
		Header{Key: HeaderDeadReason, Value: []byte(d.reason)},
		Header{Key: HeaderDeadDeliveries, Value: []byte(strconv.Itoa(d.count))},
	)
	return out, true, nil
}

// lockOpen takes the broker's lock (shared) and the subscription's, unless
// the subscription or the broker is closed: then it takes neither.
func (q *queueSub) lockOpen() (unlock func(), ok bool) {
	q.b.mu.RLock()
	q.mu.Lock()
	if q.closed.Load() || q.b.closed {
		q.mu.Unlock()
		q.b.mu.RUnlock()
		return nil, false
	}
	return func() { q.mu.Unlock(); q.b.mu.RUnlock() }, true
}

// settleDead marks dead letters done; moved of them were stored in the
// dead-letter topic, which the hooks are told once that is written down.
// When the write fails they are not counted: not written down as done,
// they are dead-lettered again after a restart (stored once, by their
// id) and counted then.
func (q *queueSub) settleDead(dead []deadLetter, moved int) {
	if len(dead) == 0 {
		return
	}
	unlock, ok := q.lockOpen()
	if !ok {
		return // deleted meanwhile: its state is gone and must stay gone
	}
	defer unlock()
	var list []settled
	for _, d := range dead {
		qp := q.parts[d.partition]
		delete(qp.queued, d.offset)
		list = append(list, settled{qp, d.offset})
	}
	if err := q.settle(list); err != nil {
		q.b.opts.Logger.Error("cannot record dead letters as done", "err", err)
		return
	}
	if moved == 0 {
		return
	}
	for _, h := range q.b.hooks.deadLetter {
		h.OnDeadLetter(q.rec.Topic, q.rec.Name, moved)
	}
}

// undead returns dead letters whose move failed to delivery.
func (q *queueSub) undead(dead []deadLetter) {
	if len(dead) == 0 {
		return
	}
	unlock, ok := q.lockOpen()
	if !ok {
		return
	}
	defer unlock()
	now := q.b.opts.Clock.Now()
	for _, d := range dead {
		qp := q.parts[d.partition]
		delete(qp.queued, d.offset)
		qp.schedule(d.offset, now.Add(time.Second))
	}
	q.reschedule(now)
}

// info describes the subscription. Called with b.mu held.
func (q *queueSub) info() SubscriptionInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ensurePartitions()
	si := SubscriptionInfo{Topic: q.rec.Topic, Name: q.rec.Name, Created: q.rec.Created, Config: q.cfg, Members: len(q.members)}
	for p, qp := range q.parts {
		end := q.t.parts[p].VisibleOffset()
		backlog := end - qp.floor - int64(len(qp.acked))
		si.Partitions = append(si.Partitions, SubscriptionPartition{
			Partition: p, AckFloor: qp.floor, Backlog: max(backlog, 0), InFlight: len(qp.inflight), EndOffset: end,
		})
	}
	return si
}

// setWorkFloor lets partition p's log drop what every subscription has
// acknowledged or committed (work retention). Called with b.mu held.
func (t *topic) setWorkFloor(p int) {
	if len(t.subs)+len(t.streams) == 0 {
		return
	}
	floor := int64(-1)
	for _, q := range t.subs {
		if p >= len(q.parts) {
			return
		}
		if f := q.parts[p].floorPub.Load(); floor < 0 || f < floor {
			floor = f
		}
	}
	for _, s := range t.streams {
		if p >= len(s.committed) {
			return
		}
		if f := s.committed[p].Load(); floor < 0 || f < floor {
			floor = f
		}
	}
	t.parts[p].SetDeleteFloor(floor)
}
