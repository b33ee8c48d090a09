package native

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
)

// ts converts a time to a protobuf timestamp; nil for the zero time.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// fromTS converts a protobuf timestamp; the zero time for nil.
func fromTS(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func dur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func fromDur(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func topicToProto(t engine.TopicInfo) *ferryv1.Topic {
	out := &ferryv1.Topic{
		Name:    t.Name,
		Id:      t.ID,
		Created: ts(t.Created),
		Config: &ferryv1.TopicConfig{
			Partitions: int32(t.Config.Partitions),
			Retention: &ferryv1.Retention{
				MaxAge:   dur(t.Config.Retention.MaxAge),
				MaxBytes: t.Config.Retention.MaxBytes,
				Work:     t.Config.Retention.Work,
			},
			Fsync:           t.Config.Fsync,
			MaxMessageBytes: int32(t.Config.MaxMessageBytes),
			DedupWindow:     durationpb.New(t.Config.DedupWindow),
			SegmentBytes:    t.Config.SegmentBytes,
		},
		Partitions: make([]*ferryv1.PartitionInfo, len(t.Partitions)),
	}
	for i, p := range t.Partitions {
		out.Partitions[i] = &ferryv1.PartitionInfo{
			Partition:   int32(p.Partition),
			StartOffset: p.StartOffset,
			EndOffset:   p.EndOffset,
			Bytes:       p.Bytes,
			Segments:    int32(p.Segments),
		}
	}
	return out
}

func retentionFromProto(r *ferryv1.Retention) engine.Retention {
	if r == nil {
		return engine.Retention{}
	}
	return engine.Retention{MaxAge: fromDur(r.MaxAge), MaxBytes: r.MaxBytes, Work: r.Work}
}

func topicConfigFromProto(c *ferryv1.TopicConfig) engine.TopicConfig {
	if c == nil {
		return engine.TopicConfig{}
	}
	return engine.TopicConfig{
		Partitions:      int(c.Partitions),
		Retention:       retentionFromProto(c.Retention),
		Fsync:           c.Fsync,
		MaxMessageBytes: int(c.MaxMessageBytes),
		DedupWindow:     fromDur(c.DedupWindow),
		SegmentBytes:    c.SegmentBytes,
	}
}

var kindToProto = map[engine.SubscriptionKind]ferryv1.SubscriptionKind{
	engine.KindQueue:  ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE,
	engine.KindStream: ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM,
}

var startToProto = map[engine.StartPosition]ferryv1.StartPosition{
	engine.StartLatest:   ferryv1.StartPosition_START_POSITION_LATEST,
	engine.StartEarliest: ferryv1.StartPosition_START_POSITION_EARLIEST,
}

func subscriptionToProto(s engine.SubscriptionInfo) *ferryv1.Subscription {
	c := s.Config
	out := &ferryv1.Subscription{
		Topic:   s.Topic,
		Name:    s.Name,
		Created: ts(s.Created),
		Config: &ferryv1.SubscriptionConfig{
			Kind:            kindToProto[c.Kind],
			StartAt:         startToProto[c.StartAt],
			AckDeadline:     dur(c.AckDeadline),
			MaxDeliveries:   int32(c.MaxDeliveries),
			DeadLetterTopic: c.DeadLetterTopic,
			MaxInFlight:     int32(c.MaxInFlight),
			KeyOrdering:     c.KeyOrdering,
		},
		Members:    int32(s.Members),
		Generation: s.Generation,
		Partitions: make([]*ferryv1.SubscriptionPartition, len(s.Partitions)),
	}
	for i, p := range s.Partitions {
		out.Partitions[i] = &ferryv1.SubscriptionPartition{
			Partition: int32(p.Partition),
			AckFloor:  p.AckFloor,
			Committed: p.Committed,
			Backlog:   p.Backlog,
			InFlight:  int32(p.InFlight),
			Owner:     p.Owner,
			EndOffset: p.EndOffset,
		}
	}
	return out
}

func subscriptionConfigFromProto(c *ferryv1.SubscriptionConfig) (engine.SubscriptionConfig, error) {
	if c == nil {
		return engine.SubscriptionConfig{}, invalid("config.kind is required: SUBSCRIPTION_KIND_QUEUE or SUBSCRIPTION_KIND_STREAM")
	}
	out := engine.SubscriptionConfig{
		AckDeadline:     fromDur(c.AckDeadline),
		MaxDeliveries:   int(c.MaxDeliveries),
		DeadLetterTopic: c.DeadLetterTopic,
		MaxInFlight:     int(c.MaxInFlight),
		KeyOrdering:     c.KeyOrdering,
	}
	switch c.Kind {
	case ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE:
		out.Kind = engine.KindQueue
	case ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM:
		out.Kind = engine.KindStream
	default:
		return out, invalid("config.kind is required: SUBSCRIPTION_KIND_QUEUE or SUBSCRIPTION_KIND_STREAM")
	}
	switch c.StartAt {
	case ferryv1.StartPosition_START_POSITION_UNSPECIFIED, ferryv1.StartPosition_START_POSITION_LATEST:
		out.StartAt = engine.StartLatest
	case ferryv1.StartPosition_START_POSITION_EARLIEST:
		out.StartAt = engine.StartEarliest
	default:
		return out, invalid("config.start_at %d is not a start position", c.StartAt)
	}
	return out, nil
}

func messageToProto(m *engine.Message) *ferryv1.Message {
	out := &ferryv1.Message{
		Topic:     m.Topic,
		Partition: int32(m.Partition),
		Offset:    m.Offset,
		Timestamp: ts(m.Timestamp),
		Key:       m.Key,
		Value:     m.Value,
		Id:        m.ID,
		DeliverAt: ts(m.DeliverAt),
	}
	if len(m.Headers) > 0 {
		out.Headers = make([]*ferryv1.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = &ferryv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

func messagesToProto(ms []engine.Message) []*ferryv1.Message {
	out := make([]*ferryv1.Message, len(ms))
	for i := range ms {
		out[i] = messageToProto(&ms[i])
	}
	return out
}

func deliveriesToProto(ds []engine.Delivery) []*ferryv1.Delivery {
	out := make([]*ferryv1.Delivery, len(ds))
	for i := range ds {
		out[i] = &ferryv1.Delivery{
			Id:       ds[i].ID,
			Message:  messageToProto(&ds[i].Message),
			Count:    int32(ds[i].Count),
			Deadline: ts(ds[i].Deadline),
		}
	}
	return out
}

// publishMessages converts the messages of a publish request.
func publishMessages(in []*ferryv1.PublishMessage) []engine.Message {
	out := make([]engine.Message, len(in))
	for i, m := range in {
		v := m.Value
		if len(v) == 0 && m.Text != "" {
			v = []byte(m.Text)
		}
		key := m.Key
		if len(key) == 0 {
			key = nil // no key: the engine tells keys from no key by nil
		}
		out[i] = engine.Message{
			Key:       key,
			Value:     v,
			Timestamp: fromTS(m.Timestamp),
			ID:        m.Id,
			DeliverAt: fromTS(m.DeliverAt),
		}
		if len(m.Headers) > 0 {
			hs := make([]engine.Header, len(m.Headers))
			for j, h := range m.Headers {
				hs[j] = engine.Header{Key: h.Key, Value: h.Value}
			}
			out[i].Headers = hs
		}
	}
	return out
}

func publishedToProto(ps []engine.Published) []*ferryv1.Published {
	out := make([]*ferryv1.Published, len(ps))
	for i, p := range ps {
		out[i] = &ferryv1.Published{Partition: int32(p.Partition), Offset: p.Offset, Duplicate: p.Duplicate}
	}
	return out
}

// splitBatches converts a take of stored batches for a response: as they
// are, except those that would send far more than they deliver, which go
// decoded (see engine.Batches.Wasteful). Each partition has one item per
// take, so its order holds whichever way it goes.
func splitBatches(bs []engine.Batches) ([]*ferryv1.RecordBatches, []*ferryv1.Message, error) {
	var raw []*ferryv1.RecordBatches
	var msgs []*ferryv1.Message
	for i := range bs {
		if !bs[i].Wasteful() {
			raw = append(raw, batchesToProto(bs[i:i+1])...)
			continue
		}
		ms, err := bs[i].Messages()
		if err != nil {
			return nil, nil, err
		}
		msgs = append(msgs, messagesToProto(ms)...)
	}
	return raw, msgs, nil
}

func batchesToProto(bs []engine.Batches) []*ferryv1.RecordBatches {
	out := make([]*ferryv1.RecordBatches, len(bs))
	for i, b := range bs {
		out[i] = &ferryv1.RecordBatches{Topic: b.Topic, Partition: int32(b.Partition),
			FromOffset: b.From, UntilOffset: b.Until, Data: b.Data}
	}
	return out
}
