package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ferrymq/ferry/storage/meta"
)

// SubscriptionKind says how a subscription's members share its messages.
type SubscriptionKind string

// The durable subscription kinds.
const (
	// KindQueue: any message to any member, one at a time, acknowledged one
	// by one (a RabbitMQ or SQS queue).
	KindQueue SubscriptionKind = "queue"
	// KindStream: partitions split among members, committed offsets (a Kafka
	// consumer group).
	KindStream SubscriptionKind = "stream"
)

// StartPosition is where a new subscription starts.
type StartPosition string

// Start positions.
const (
	// StartLatest: messages published after the subscription was created.
	StartLatest StartPosition = "latest"
	// StartEarliest: every message still stored.
	StartEarliest StartPosition = "earliest"
)

// Defaults of a new subscription.
const (
	DefaultAckDeadline = 30 * time.Second
	DefaultMaxInFlight = 1000
)

// SubscriptionConfig is a subscription's settings.
type SubscriptionConfig struct {
	Kind    SubscriptionKind `json:"kind"`
	StartAt StartPosition    `json:"start_at,omitempty"`
	// AckDeadline (queue) is how long a delivery may stay unacknowledged
	// before it is delivered again. DefaultAckDeadline when 0.
	AckDeadline time.Duration `json:"ack_deadline,omitempty"`
	// MaxDeliveries (queue): a message delivered this many times whose last
	// delivery fails too (nack, expired deadline, member gone) moves to
	// DeadLetterTopic. Deliveries repeated after a restart count, as SQS's
	// maxReceiveCount. 0 means no limit.
	MaxDeliveries int `json:"max_deliveries,omitempty"`
	// DeadLetterTopic (queue) receives dead letters; created on demand.
	// "TOPIC.SUBSCRIPTION.dlq" when empty.
	DeadLetterTopic string `json:"dead_letter_topic,omitempty"`
	// MaxInFlight (queue) is how many unacknowledged deliveries one member
	// may hold. DefaultMaxInFlight when 0.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// KeyOrdering (queue): at most one message per key is in flight, so
	// messages of a key are processed in order.
	KeyOrdering bool `json:"key_ordering,omitempty"`
}

func (c SubscriptionConfig) withDefaults(topic, name string) (SubscriptionConfig, error) {
	switch c.Kind {
	case KindQueue, KindStream:
	case "":
		return c, fmt.Errorf("%w: subscription kind is required (queue or stream)", ErrInvalidConfig)
	default:
		return c, fmt.Errorf("%w: subscription kind %q, want queue or stream", ErrInvalidConfig, c.Kind)
	}
	switch c.StartAt {
	case "":
		c.StartAt = StartLatest
	case StartLatest, StartEarliest:
	default:
		return c, fmt.Errorf("%w: start position %q, want latest or earliest", ErrInvalidConfig, c.StartAt)
	}
	if c.Kind != KindQueue {
		return c, nil
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = DefaultAckDeadline
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckDeadline < time.Millisecond || c.MaxInFlight < 1 || c.MaxDeliveries < 0 {
		return c, fmt.Errorf("%w: ack deadline %v, max in flight %d, max deliveries %d", ErrInvalidConfig, c.AckDeadline, c.MaxInFlight, c.MaxDeliveries)
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = topic + "." + name + ".dlq"
		if len(c.DeadLetterTopic) > MaxNameLength {
			c.DeadLetterTopic = c.DeadLetterTopic[:MaxNameLength]
		}
	}
	if err := ValidateTopicName(c.DeadLetterTopic); err != nil {
		return c, err
	}
	if c.DeadLetterTopic == topic {
		return c, fmt.Errorf("%w: a subscription cannot dead-letter into its own topic", ErrInvalidConfig)
	}
	return c, nil
}

// subRecord is a subscription's catalogue entry (key "s/TOPIC/NAME").
type subRecord struct {
	Topic   string             `json:"topic"`
	Name    string             `json:"name"`
	Created time.Time          `json:"created"`
	Config  SubscriptionConfig `json:"config"`
}

func subKey(topic, name string) string   { return "s/" + topic + "/" + name }
func subPrefix(topic string) string      { return "s/" + topic + "/" }
func stateKey(topic, name string) string { return "q/" + topic + "/" + name + "/" }
func statePrefix(topic string) string    { return "q/" + topic + "/" }

func encodeOffset(o int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(o)) }

func decodeOffset(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("stored offset of %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// SubscriptionInfo describes a subscription.
type SubscriptionInfo struct {
	Topic   string             `json:"topic"`
	Name    string             `json:"name"`
	Created time.Time          `json:"created"`
	Config  SubscriptionConfig `json:"config"`
	Members int                `json:"members"`
	// Generation (stream) counts the group's rebalances.
	Generation int64                   `json:"generation,omitempty"`
	Partitions []SubscriptionPartition `json:"partitions"`
}

// SubscriptionPartition is a subscription's state on one partition.
type SubscriptionPartition struct {
	Partition int `json:"partition"`
	// AckFloor (queue): every offset below it is acknowledged.
	AckFloor int64 `json:"ack_floor,omitempty"`
	// Committed (stream): the committed offset, where consumption resumes.
	Committed int64 `json:"committed,omitempty"`
	// Backlog is the messages not yet consumed: for a queue, stored and not
	// acknowledged; for a stream, the lag after the committed offset.
	Backlog  int64 `json:"backlog"`
	InFlight int   `json:"in_flight,omitempty"`
	// Owner (stream) is the member that owns the partition now.
	Owner string `json:"owner,omitempty"`
	// EndOffset is the partition's high watermark.
	EndOffset int64 `json:"end_offset"`
}

// CreateSubscription creates a durable subscription on a topic.
func (b *Broker) CreateSubscription(ctx context.Context, topicName, name string, cfg SubscriptionConfig) (SubscriptionInfo, error) {
	if err := ValidateTopicName(name); err != nil {
		return SubscriptionInfo{}, fmt.Errorf("subscription name: %w", err)
	}
	cfg, err := cfg.withDefaults(topicName, name)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(topicName)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	if err := b.checkFolder(); err != nil {
		return SubscriptionInfo{}, err
	}
	if t.hasSub(name) {
		return SubscriptionInfo{}, fmt.Errorf("%w: subscription %q on %q", ErrSubscriptionExists, name, topicName)
	}
	rec := subRecord{Topic: topicName, Name: name, Created: b.opts.Clock.Now().UTC(), Config: cfg}
	enc, _ := json.Marshal(rec)
	var mb meta.Batch
	mb.Put(subKey(topicName, name), enc)
	floors := make([]int64, len(t.parts))
	for p, l := range t.parts {
		if cfg.StartAt == StartLatest {
			floors[p] = l.VisibleOffset()
		} else {
			floors[p] = l.StartOffset()
		}
		if cfg.Kind == KindQueue {
			mb.Put(floorKey(topicName, name, p), encodeOffset(floors[p]))
		} else {
			mb.Put(offsetKey(topicName, name, p), encodeOffset(floors[p]))
		}
	}
	if err := b.apply(&mb, meta.Synced); err != nil {
		return SubscriptionInfo{}, fmt.Errorf("create subscription: %w", mapStorageErr(err))
	}
	if cfg.Kind == KindStream {
		s := newStreamSub(b, t, rec, floors, 0)
		t.streams[name] = s
		return s.info(), nil
	}
	q := newQueueSub(b, t, rec, floors)
	t.subs[name] = q
	return q.info(), nil
}

// DeleteSubscription deletes a subscription and its state. Its members'
// calls fail from then on.
func (b *Broker) DeleteSubscription(ctx context.Context, topicName, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	if err := b.checkFolder(); err != nil {
		return err
	}
	if !t.hasSub(name) {
		return fmt.Errorf("%w %q on topic %q", ErrUnknownSubscription, name, topicName)
	}
	var mb meta.Batch
	mb.Delete(subKey(topicName, name))
	mb.DeletePrefix(stateKey(topicName, name))
	if err := b.apply(&mb, meta.Synced); err != nil {
		return fmt.Errorf("delete subscription: %w", mapStorageErr(err))
	}
	if q, ok := t.subs[name]; ok {
		q.shutdown()
	}
	if s, ok := t.streams[name]; ok {
		s.shutdown()
	}
	delete(t.subs, name)
	delete(t.streams, name)
	for p := range t.parts {
		t.setWorkFloor(p)
	}
	return nil
}

// DescribeSubscription returns a subscription's settings and state.
func (b *Broker) DescribeSubscription(topicName, name string) (SubscriptionInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(topicName)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	if s, ok := t.streams[name]; ok {
		return s.info(), nil
	}
	q, err := b.queueSub(topicName, name)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	return q.info(), nil
}

// ListSubscriptions describes a topic's subscriptions, sorted by name.
func (b *Broker) ListSubscriptions(topicName string) ([]SubscriptionInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(t.subs)+len(t.streams))
	for n := range t.subs {
		names = append(names, n)
	}
	for n := range t.streams {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]SubscriptionInfo, 0, len(names))
	for _, n := range names {
		if s, ok := t.streams[n]; ok {
			out = append(out, s.info())
		} else {
			out = append(out, t.subs[n].info())
		}
	}
	return out, nil
}

// queueSub returns a queue subscription. Called with b.mu held.
func (b *Broker) queueSub(topicName, name string) (*queueSub, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	q, ok := t.subs[name]
	if !ok {
		if _, isStream := t.streams[name]; isStream {
			return nil, fmt.Errorf("%w: %q on %q is a stream subscription", ErrInvalidConfig, name, topicName)
		}
		return nil, fmt.Errorf("%w %q on topic %q", ErrUnknownSubscription, name, topicName)
	}
	return q, nil
}

// loadSubscriptions opens a topic's subscriptions from the catalogue.
func (b *Broker) loadSubscriptions(t *topic) error {
	recs, err := scanCatalogue[subRecord](b.meta, subPrefix(t.rec.Name))
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Config.Kind == KindStream {
			s, err := loadStreamSub(b, t, r)
			if err != nil {
				return fmt.Errorf("subscription %s on %s: %w", r.Name, r.Topic, err)
			}
			t.streams[r.Name] = s
			continue
		}
		q, err := loadQueueSub(b, t, r)
		if err != nil {
			return fmt.Errorf("subscription %s on %s: %w", r.Name, r.Topic, err)
		}
		t.subs[r.Name] = q
	}
	return nil
}

func (t *topic) hasSub(name string) bool {
	_, q := t.subs[name]
	_, s := t.streams[name]
	return q || s
}
