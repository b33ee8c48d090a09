package client

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Message is one message, as published and as received.
//
// To publish, set Value and optionally Key (picks the partition with
// Kafka's murmur2 partitioner), Headers, Timestamp (the broker's clock when
// zero), ID (deduplication: a message whose ID was published to the topic
// within its dedup window is stored once) and DeliverAt (queue
// subscriptions receive it from then on). Topic, Partition and Offset are
// ignored by publishing; the broker sets them on the messages consumers
// and readers receive.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
	ID        string
	DeliverAt time.Time
}

// Header is one message header. The names ferry-id and ferry-deliver-at
// are the broker's (Message.ID and Message.DeliverAt); a publish that sets
// them as headers is refused.
type Header struct {
	Key   string
	Value []byte
}

// Headers the broker sets on each message it moves to a dead-letter topic:
// where the message was, which subscription gave up on it, why, and after
// how many deliveries. Read them with Message.Header.
const (
	HeaderDeadTopic        = "ferry-dead-topic"
	HeaderDeadPartition    = "ferry-dead-partition"
	HeaderDeadOffset       = "ferry-dead-offset"
	HeaderDeadSubscription = "ferry-dead-subscription"
	HeaderDeadReason       = "ferry-dead-reason"
	HeaderDeadDeliveries   = "ferry-dead-deliveries"
)

// Header returns the value of the first header named key, and whether
// there is one.
func (m *Message) Header(key string) ([]byte, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// Published says where a published message is stored.
type Published struct {
	Partition int32
	Offset    int64
	// Duplicate is true when the message's ID was already published within
	// the topic's dedup window: Offset is the first copy's and nothing new
	// was stored.
	Duplicate bool
}

// size is what the outstanding and batch limits count: key, value,
// headers and id, as the broker's max_message_bytes does.
func (m *Message) size() int {
	n := len(m.Key) + len(m.Value) + len(m.ID)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func toPublishMessage(m *Message) *ferryv1.PublishMessage {
	pm := &ferryv1.PublishMessage{Key: m.Key, Value: m.Value, Id: m.ID}
	if len(m.Headers) > 0 {
		pm.Headers = make([]*ferryv1.Header, len(m.Headers))
		for i, h := range m.Headers {
			pm.Headers[i] = &ferryv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	if !m.Timestamp.IsZero() {
		pm.Timestamp = timestamppb.New(m.Timestamp)
	}
	if !m.DeliverAt.IsZero() {
		pm.DeliverAt = timestamppb.New(m.DeliverAt)
	}
	return pm
}

func fromProtoMessage(pm *ferryv1.Message) Message {
	m := Message{
		Topic:     pm.GetTopic(),
		Partition: pm.GetPartition(),
		Offset:    pm.GetOffset(),
		Key:       pm.GetKey(),
		Value:     pm.GetValue(),
		ID:        pm.GetId(),
	}
	if pm.Timestamp != nil {
		m.Timestamp = pm.Timestamp.AsTime()
	}
	if pm.DeliverAt != nil {
		m.DeliverAt = pm.DeliverAt.AsTime()
	}
	if len(pm.Headers) > 0 {
		m.Headers = make([]Header, len(pm.Headers))
		for i, h := range pm.Headers {
			m.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	return m
}

func fromProtoPublished(p *ferryv1.Published) Published {
	return Published{Partition: p.GetPartition(), Offset: p.GetOffset(), Duplicate: p.GetDuplicate()}
}

// Position is a place in a partition: where Read starts and where
// SeekSubscription moves a subscription. The zero Position is offset 0.
type Position struct {
	kind   positionKind
	offset int64
	time   time.Time
}

type positionKind uint8

const (
	posOffset positionKind = iota
	posEarliest
	posLatest
	posTime
)

// Earliest is the first message still stored.
func Earliest() Position { return Position{kind: posEarliest} }

// Latest is the next message to be published.
func Latest() Position { return Position{kind: posLatest} }

// AtOffset is the message at that offset.
func AtOffset(offset int64) Position { return Position{kind: posOffset, offset: offset} }

// AtTime is the first message whose timestamp is at or after t.
func AtTime(t time.Time) Position { return Position{kind: posTime, time: t} }

// String describes the position: "earliest", "latest", "offset 42" or
// "time 2025-01-02T03:04:05Z".
func (p Position) String() string {
	switch p.kind {
	case posEarliest:
		return "earliest"
	case posLatest:
		return "latest"
	case posTime:
		return "time " + p.time.Format(time.RFC3339Nano)
	default:
		return fmt.Sprintf("offset %d", p.offset)
	}
}
