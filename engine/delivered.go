package engine

import (
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// KindEphemeral names ephemeral subscriptions in the events of hooks
// (FetchHook, DeliveryLatencyHook). No stored subscription has this kind:
// CreateSubscription refuses it.
const KindEphemeral SubscriptionKind = "ephemeral"

// Ages are the ages of messages delivered together: how long before their
// delivery each was published, by its timestamp. A DeliveryLatencyHook is
// given one per take (per partition of a take, for stream and ephemeral
// subscriptions) and reads it with Each during the call only.
//
// Timestamps are the messages' own: set by the broker at publish time
// unless the publisher set them, and then by the publisher's clock. They
// have a millisecond's precision.
type Ages struct {
	at         time.Time
	deliveries []Delivery // a queue's take
	data       []byte     // stored batches, of which [from, until) were taken
	from       int64
	until      int64
}

// Count is how many messages the ages are of.
func (a *Ages) Count() int {
	if a.deliveries != nil {
		return len(a.deliveries)
	}
	return int(a.until - a.from)
}

// Each calls fn with the ages of the messages, n messages of one age at a
// time, so that a take of messages published together costs one call. A
// negative age (a publisher's clock ahead of the broker's) is told as 0.
//
// A queue's deliveries are told each by its own timestamp. The messages of
// stream and ephemeral subscriptions are told by the first timestamp of
// the stored batch that holds them, read from the batch's header, since
// their records are handed on undecoded: exact for a batch published in
// one call that set no timestamps (they all get the broker's time), and
// for a batch built by a publisher (a Kafka producer's) the age of its
// oldest message, usually, within the batch's time span (linger).
func (a *Ages) Each(fn func(age time.Duration, n int)) {
	if a.deliveries != nil {
		var last int64
		n := 0
		for i := range a.deliveries {
			ms := a.deliveries[i].Message.Timestamp.UnixMilli()
			if n > 0 && ms != last {
				fn(a.age(last), n)
				n = 0
			}
			last = ms
			n++
		}
		if n > 0 {
			fn(a.age(last), n)
		}
		return
	}
	eachBatch(a.data, a.from, a.until, func(h record.Header, taken int64) {
		fn(a.age(h.FirstTimestamp), int(taken))
	})
}

func (a *Ages) age(ms int64) time.Duration {
	return max(a.at.Sub(time.UnixMilli(ms)), 0)
}

// eachBatch calls fn with the header of every stored batch in data that
// holds records of [from, until), and how many of them it holds. It reads
// the headers only. The header goes by value: its address handed to fn
// would move it to the heap, an allocation per batch of every take.
func eachBatch(data []byte, from, until int64, fn func(h record.Header, taken int64)) {
	for len(data) > 0 {
		h, err := record.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			return // read whole from the log: not met
		}
		data = data[h.Size():]
		if taken := min(until, h.NextOffset()) - max(from, h.BaseOffset); taken > 0 {
			fn(h, taken)
		}
		if h.NextOffset() >= until {
			return
		}
	}
}

// storedShare is the bytes that the records [from, until) take in the
// stored batches of data: each batch's size, headers included, shared out
// evenly among its records. Exact for batches taken whole, as
// ferry_published_bytes_total counts them.
func storedShare(data []byte, from, until int64) int {
	total := int64(0)
	eachBatch(data, from, until, func(h record.Header, taken int64) {
		records := h.NextOffset() - h.BaseOffset
		total += int64(h.Size()) * taken / records
	})
	return int(total)
}

// takeTeller tells the hooks of the takes of one poll of a stream member or
// an ephemeral subscription, one partition at a time. It reads the clock
// once, at the first take.
type takeTeller struct {
	b  *Broker
	at time.Time
}

// tell tells the hooks that records [from, until) of a partition, stored
// in data (whole batches from the one holding from), went to a consumer.
// Called with the subscription's locks held, as hooks are quick.
func (t *takeTeller) tell(topic, sub string, kind SubscriptionKind, data []byte, from, until int64) {
	hs := &t.b.hooks
	if until <= from || len(hs.fetch) == 0 && len(hs.deliveryLatency) == 0 {
		return
	}
	if t.at.IsZero() {
		t.at = t.b.opts.Clock.Now()
	}
	if len(hs.fetch) > 0 {
		bytes := storedShare(data, from, until)
		for _, h := range hs.fetch {
			h.OnFetch(topic, sub, kind, int(until-from), bytes)
		}
	}
	for _, h := range hs.deliveryLatency {
		h.OnDeliveryLatency(topic, kind, Ages{at: t.at, data: data, from: from, until: until})
	}
}

// tellDeliveries tells the latency hooks of a queue member's take.
func (q *queueSub) tellDeliveries(ds []Delivery) {
	if len(ds) == 0 || len(q.b.hooks.deliveryLatency) == 0 {
		return
	}
	ages := Ages{at: q.b.opts.Clock.Now(), deliveries: ds}
	for _, h := range q.b.hooks.deliveryLatency {
		h.OnDeliveryLatency(q.rec.Topic, KindQueue, ages)
	}
}
