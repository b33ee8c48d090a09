package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
)

// Published says where a published message is stored.
type Published struct {
	Partition int
	Offset    int64
	// Duplicate is true when the message's ID was published within the
	// topic's dedup window: Offset is the first copy's, nothing new was stored.
	Duplicate bool
}

// maxBatchBytes bounds one appended batch; larger publishes are split.
const maxBatchBytes = 4 << 20

// Publish stores messages in a topic and returns, in order, where each went,
// once they are durable under the topic's fsync policy. A message with a key
// goes to the partition Kafka's default partitioner picks; keyless messages
// of one call go together to one partition, the next partition for the next
// call. Order is kept per partition. If storing fails for some partition,
// Publish returns the error; the messages of other partitions may be stored.
func (b *Broker) Publish(ctx context.Context, topicName string, msgs ...Message) ([]Published, error) {
	return b.publish(ctx, topicName, -1, msgs)
}

// PublishTo is Publish to one chosen partition.
func (b *Broker) PublishTo(ctx context.Context, topicName string, partition int, msgs ...Message) ([]Published, error) {
	if partition < 0 {
		return nil, fmt.Errorf("%w: partition %d", ErrUnknownPartition, partition)
	}
	return b.publish(ctx, topicName, partition, msgs)
}

// pending is one message on its way to a partition.
type pending struct {
	index int
	msg   *Message
	claim *dedupEntry
}

func (b *Broker) publish(ctx context.Context, topicName string, partition int, msgs []Message) ([]Published, error) {
	start := time.Now() // wall time for the latency hooks: a test's clock stands still
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	n := len(t.parts)
	if partition >= n {
		return nil, fmt.Errorf("%w: topic %q has partitions 0..%d, not %d", ErrUnknownPartition, topicName, n-1, partition)
	}
	for i := range msgs {
		if err := t.validateMessage(&msgs[i]); err != nil {
			return nil, err
		}
	}
	now := b.opts.Clock.Now()
	out := make([]Published, len(msgs))
	byPart := make([][]pending, n)
	keyless := -1
	dedupOn := t.rec.Config.DedupWindow > 0
	firstOfID := map[string]int{} // id -> index of its first message in this call
	var repeats []int             // later messages of an id seen earlier in this call
	for i := range msgs {
		m := &msgs[i]
		p := partition
		if p < 0 {
			if m.Key != nil {
				p = KeyPartition(m.Key, n)
			} else {
				if keyless < 0 {
					keyless = int(t.spread.Add(1) % uint64(n))
				}
				p = keyless
			}
		}
		pd := pending{index: i, msg: m}
		if dedupOn && m.ID != "" {
			if _, seen := firstOfID[m.ID]; seen {
				repeats = append(repeats, i)
				continue
			}
			firstOfID[m.ID] = i
			e, dup := t.dedup.claim(m.ID, now)
			if dup {
				out[i] = Published{Partition: e.partition, Offset: e.offset, Duplicate: true}
				continue
			}
			pd.claim = e
		}
		byPart[p] = append(byPart[p], pd)
	}

	var wg sync.WaitGroup
	errs := make([]error, n)
	for p, list := range byPart {
		if len(list) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = b.appendPartition(t, p, list, out, now)
		}()
	}
	wg.Wait()
	for _, i := range repeats {
		first := out[firstOfID[msgs[i].ID]]
		out[i] = Published{Partition: first.Partition, Offset: first.Offset, Duplicate: true}
	}
	for _, q := range t.subs {
		q.notify()
	}
	for _, s := range t.streams {
		s.notify()
	}
	b.notifyEphemerals(topicName)
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	b.publishTook(topicName, start)
	return out, nil
}

// publishTook tells the latency hooks of a publish that started at start.
func (b *Broker) publishTook(topic string, start time.Time) {
	if len(b.hooks.latency) == 0 {
		return
	}
	took := time.Since(start)
	for _, h := range b.hooks.latency {
		h.OnPublishLatency(topic, took)
	}
}

// appendPartition stores the messages for one partition as one or more
// batches, fills their results and settles their dedup claims.
func (b *Broker) appendPartition(t *topic, p int, list []pending, out []Published, now time.Time) error {
	l := t.parts[p]
	for start := 0; start < len(list); {
		var bld record.Builder
		end := start
		for end < len(list) {
			m := list[end].msg
			if bld.Len() > 0 && bld.Size()+m.size()+recordOverhead > maxBatchBytes {
				break
			}
			bld.Add(m.toRecord(now))
			end++
		}
		batch := bld.Build()
		res, err := l.Append(batch)
		if err != nil {
			for _, pd := range list[start:] {
				if pd.claim != nil {
					t.dedup.finish(pd.claim, p, -1, now, false)
				}
				out[pd.index] = Published{Partition: p, Offset: -1}
			}
			return fmt.Errorf("publish to %s/%d: %w", t.rec.Name, p, b.publishErr(err))
		}
		for j, pd := range list[start:end] {
			off := res.BaseOffset + int64(j)
			out[pd.index] = Published{Partition: p, Offset: off}
			if pd.claim != nil {
				t.dedup.finish(pd.claim, p, off, now, true)
			}
		}
		for _, h := range b.hooks.publish {
			h.OnPublish(t.rec.Name, p, end-start, len(batch))
		}
		start = end
	}
	return nil
}

func (b *Broker) publishErr(err error) error {
	switch {
	case errors.Is(err, log.ErrBatchTooLarge):
		return fmt.Errorf("%w: %w", ErrMessageTooLarge, err)
	case errors.Is(err, log.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return mapStorageErr(err)
}

// PublishBatch stores a record batch as its producer built it (a Kafka
// client's): magic 2, uncompressed, with a good CRC and dense offset
// deltas from 0; the log checks all of that and each record's size, and
// sets the base offset. It returns the offset of the batch's first record,
// once durable under the topic's fsync policy. Storing the producer's
// bytes costs no decoding and encoding per message, which is most of the
// cost of Publish for small messages. The records keep the producer's
// timestamps.
//
// Records carrying the reserved header ferry-id go through Publish, as
// messages with that id (so publish deduplication applies); then the
// first record's offset is returned, and a duplicate's is its first
// copy's. ferry-deliver-at is stored as it is, which is what Publish
// stores for DeliverAt.
func (b *Broker) PublishBatch(ctx context.Context, topicName string, partition int, batch []byte) (int64, error) {
	off, wait, err := b.PublishBatchAsync(ctx, topicName, partition, batch)
	if err != nil {
		return 0, err
	}
	return off, wait()
}

// PublishBatchAsync is PublishBatch in two steps: it places the batch in
// its partition (the offset it returns is final, and a batch placed later
// lands after it) and returns at once; wait returns once the batch is
// durable, with the error that kept it from being so. A front door that
// pipelines a client's requests places each in the order received and
// answers each after its wait, so one fsync covers several requests. The
// batch's memory may be reused once PublishBatchAsync returns. A batch
// that goes through Publish (ferry-id) is stored before it returns.
func (b *Broker) PublishBatchAsync(ctx context.Context, topicName string, partition int, batch []byte) (int64, func() error, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	h, err := record.ParseHeader(batch)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if h.Compression() != record.CompressionNone {
		return 0, nil, fmt.Errorf("%w: batch is compressed (%s); inflate it first", ErrInvalidMessage, h.Compression())
	}
	if withID, err := hasHeader(batch, headerID); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	} else if withID {
		off, err := b.publishBatchAsMessages(ctx, topicName, partition, batch)
		return off, func() error { return nil }, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(topicName)
	if err != nil {
		return 0, nil, err
	}
	if partition < 0 || partition >= len(t.parts) {
		return 0, nil, fmt.Errorf("%w: topic %q has partitions 0..%d, not %d", ErrUnknownPartition, topicName, len(t.parts)-1, partition)
	}
	res, wait, err := t.parts[partition].AppendAsync(batch)
	if err != nil {
		if errors.Is(err, log.ErrInvalidBatch) {
			return 0, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
		return 0, nil, fmt.Errorf("publish to %s/%d: %w", topicName, partition, b.publishErr(err))
	}
	return res.BaseOffset, func() error {
		if err := wait(); err != nil {
			return fmt.Errorf("publish to %s/%d: %w", topicName, partition, b.publishErr(err))
		}
		for _, hk := range b.hooks.publish {
			hk.OnPublish(topicName, partition, int(h.NumRecords), len(batch))
		}
		b.publishTook(topicName, start)
		b.mu.RLock()
		for _, q := range t.subs {
			q.notify()
		}
		for _, s := range t.streams {
			s.notify()
		}
		b.mu.RUnlock()
		b.notifyEphemerals(topicName)
		return nil
	}, nil
}

// hasHeader reports whether a record of an uncompressed batch has a header
// of that name. A batch without the name's bytes anywhere has none, which
// a byte search finds far faster than decoding the records (decoding cost
// a tenth of the broker's CPU in the Kafka produce benchmark).
func hasHeader(batch []byte, name string) (bool, error) {
	if !bytes.Contains(batch[record.HeaderSize:], []byte(name)) {
		return false, nil
	}
	rd, err := record.NewReader(batch, record.Limits{})
	if err != nil {
		return false, err
	}
	var r record.Record
	for rd.Next(&r) {
		for _, h := range r.Headers {
			if h.Key == name {
				return true, nil
			}
		}
	}
	return false, rd.Err()
}

// publishBatchAsMessages is PublishBatch through Publish: the records as
// messages, their ferry-id headers as ids.
func (b *Broker) publishBatchAsMessages(ctx context.Context, topicName string, partition int, batch []byte) (int64, error) {
	rd, err := record.NewReader(batch, record.Limits{})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	var msgs []Message
	var r record.Record
	for rd.Next(&r) {
		m := messageFromRecord(topicName, partition, r)
		m.Topic, m.Partition, m.Offset = "", 0, 0
		msgs = append(msgs, m)
	}
	if err := rd.Err(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	pub, err := b.PublishTo(ctx, topicName, partition, msgs...)
	if err != nil {
		return 0, err
	}
	return pub[0].Offset, nil
}
