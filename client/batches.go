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

// decodeRecordBatches decodes the messages rb delivers: the records of its
// stored batches with offsets in [from_offset, until_offset), which must all
// be there. Each goes into the zero Message that slot returns (slot appends
// one to the caller's slice), so nothing is copied twice. Keys, values and
// header values alias rb's data.
func decodeRecordBatches(rb *ferryv1.RecordBatches, slot func() *Message) error {
	from, until := rb.GetFromOffset(), rb.GetUntilOffset()
	topic, partition := rb.GetTopic(), rb.GetPartition()
	next := from
	var r record.Record
	err := record.Split(rb.GetData(), func(h record.Header, batch []byte) error {
		rd, err := record.NewReader(batch, record.Limits{})
		if err != nil {
			return err
		}
		for rd.Next(&r) {
			if r.Offset < from || r.Offset >= until {
				continue
			}
			if r.Offset != next {
				return fmt.Errorf("record offset %d, expected %d", r.Offset, next)
			}
			next++
			fillMessage(slot(), topic, partition, &r)
		}
		return rd.Err()
	})
	if err == nil && next != until {
		err = fmt.Errorf("records %d..%d delivered, %d..%d announced", from, next, from, until)
	}
	if err != nil {
		return fmt.Errorf("ferry: record batches of %s/%d: %w", topic, partition, err)
	}
	return nil
}

// fillMessage sets the zero message m from the record r.
func fillMessage(m *Message, topic string, partition int32, r *record.Record) {
	m.Topic = topic
	m.Partition = partition
	m.Offset = r.Offset
	m.Timestamp = time.UnixMilli(r.Timestamp).UTC()
	m.Key = r.Key
	m.Value = r.Value
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
