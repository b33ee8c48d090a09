package engine

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// Header is one message header: a name and a bytes value.
type Header struct {
	Key   string
	Value []byte
}

// Message is one message. Publish reads Key, Value, Headers, Timestamp, ID
// and DeliverAt; the broker sets Topic, Partition and Offset on the messages
// it returns.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	// Timestamp is the message's time; Publish uses the current time when it
	// is zero. Stored with millisecond precision.
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
	// ID is an optional publish deduplication id: a message whose id was
	// published to the topic within its dedup window is acknowledged with
	// the first offset and not stored again.
	ID string
	// DeliverAt, when set, delays delivery to queue subscriptions until then.
	DeliverAt time.Time

	// stored is the message's share of the bytes of the record batch it
	// was read from (0 when not read from the log): what metrics count as
	// delivered bytes, as they count published bytes.
	stored int
}

// Header names Ferry reserves for its own message fields.
const (
	headerID        = "ferry-id"
	headerDeliverAt = "ferry-deliver-at"
)

// Bytes a record adds around its key, value and headers, and a batch around
// its records: generous bounds for the log's limits.
const (
	recordOverhead = 64
	batchOverhead  = record.HeaderSize + 64
)

// size is the message's size as max_message_bytes counts it.
func (m *Message) size() int {
	n := len(m.Key) + len(m.Value) + len(m.ID)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// toRecord converts a message for storage.
func (m *Message) toRecord(now time.Time) record.Record {
	ts := m.Timestamp
	if ts.IsZero() {
		ts = now
	}
	r := record.Record{Timestamp: ts.UnixMilli(), Key: m.Key, Value: m.Value}
	n := len(m.Headers)
	if m.ID != "" {
		n++
	}
	if !m.DeliverAt.IsZero() {
		n++
	}
	if n > 0 {
		r.Headers = make([]record.RecordHeader, 0, n)
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, record.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if m.ID != "" {
			r.Headers = append(r.Headers, record.RecordHeader{Key: headerID, Value: []byte(m.ID)})
		}
		if !m.DeliverAt.IsZero() {
			r.Headers = append(r.Headers, record.RecordHeader{Key: headerDeliverAt, Value: strconv.AppendInt(nil, m.DeliverAt.UnixMilli(), 10)})
		}
	}
	return r
}

// Record is the message as a stored record, at its offset: its reserved headers
// ("ferry-id", "ferry-deliver-at") among the record's headers, as
// messageFromRecord reads them back. For front doors that send messages as
// record batches.
func (m *Message) Record() record.Record {
	r := m.toRecord(m.Timestamp) // stored messages have their time
	r.Offset = m.Offset
	return r
}

// messageFromRecord converts a stored record back. Keys, values and header
// values alias the record's bytes: callers pass records decoded from a
// buffer of their own (each log read returns a fresh one), never reused.
func messageFromRecord(topic string, partition int, r record.Record) Message {
	m := Message{
		Topic:     topic,
		Partition: partition,
		Offset:    r.Offset,
		Timestamp: time.UnixMilli(r.Timestamp),
		Key:       r.Key,
		Value:     r.Value,
	}
	for _, h := range r.Headers {
		switch h.Key {
		case headerID:
			m.ID = string(h.Value)
		case headerDeliverAt:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				m.DeliverAt = time.UnixMilli(ms)
			}
		default:
			m.Headers = append(m.Headers, Header{Key: h.Key, Value: h.Value})
		}
	}
	return m
}

// validateMessage checks a message against its topic's limits.
func (t *topic) validateMessage(m *Message) error {
	if n := m.size(); n > t.rec.Config.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes to topic %q, limit %d", ErrMessageTooLarge, n, t.rec.Name, t.rec.Config.MaxMessageBytes)
	}
	for _, h := range m.Headers {
		if h.Key == headerID || h.Key == headerDeliverAt {
			return fmt.Errorf("%w: header %q is reserved; use the message's ID or DeliverAt", ErrInvalidMessage, h.Key)
		}
	}
	return nil
}
