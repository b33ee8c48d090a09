package client

import (
	"fmt"
	"strconv"
	"time"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/storage/record"
)

// The broker's record headers for Message.ID and Message.DeliverAt, as
// stored and as record batches carry them.
const (
	recordHeaderID        = "ferry-id"
	recordHeaderDeliverAt = "ferry-deliver-at"
)

// fromRecordBatches calls fn with each message rb delivers: the records of
// its stored batches with offsets in [from_offset, until_offset), which
// must all be there. Keys, values and header values alias rb's data.
func fromRecordBatches(rb *ferryv1.RecordBatches, fn func(Message) error) error {
	from, until := rb.GetFromOffset(), rb.GetUntilOffset()
	next := from
	err := record.Split(rb.GetData(), func(h record.Header, batch []byte) error {
		return record.Records(batch, record.Limits{}, func(r record.Record) error {
			if r.Offset < from || r.Offset >= until {
				return nil
			}
			if r.Offset != next {
				return fmt.Errorf("record offset %d, expected %d", r.Offset, next)
			}
			next++
			return fn(messageFromRecord(rb.GetTopic(), rb.GetPartition(), &r))
		})
	})
	if err == nil && next != until {
		err = fmt.Errorf("records %d..%d delivered, %d..%d announced", from, next, from, until)
	}
	if err != nil {
		return fmt.Errorf("ferry: record batches of %s/%d: %w", rb.GetTopic(), rb.GetPartition(), err)
	}
	return nil
}

func messageFromRecord(topic string, partition int32, r *record.Record) Message {
	m := Message{
		Topic:     topic,
		Partition: partition,
		Offset:    r.Offset,
		Timestamp: time.UnixMilli(r.Timestamp).UTC(),
		Key:       r.Key,
		Value:     r.Value,
	}
	for _, h := range r.Headers {
		switch h.Key {
		case recordHeaderID:
			m.ID = string(h.Value)
		case recordHeaderDeliverAt:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				m.DeliverAt = time.UnixMilli(ms).UTC()
			}
		default:
			m.Headers = append(m.Headers, Header{Key: h.Key, Value: h.Value})
		}
	}
	return m
}

// countRecords is how many records the batches deliver, or 0 when they
// announce a range too large to be real.
func countRecords(bs []*ferryv1.RecordBatches) int {
	n := int64(0)
	for _, rb := range bs {
		n += max(rb.GetUntilOffset()-rb.GetFromOffset(), 0)
	}
	if n > 1<<20 {
		return 0
	}
	return int(n)
}
