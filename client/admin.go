package client

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Administration takes Go values (TopicConfig, SubscriptionConfig,
// time.Duration) and returns the broker's descriptions as the API's
// messages (ferryv1.Topic, ferryv1.Subscription), which carry every field
// the broker reports (partition offsets, backlog, owners).

// TopicConfig is a new topic's settings. Zero values take the broker's
// defaults.
type TopicConfig struct {
	// Partitions is the number of partitions; 1 when 0.
	Partitions int32
	// Retention says when stored messages are deleted; kept forever when
	// zero.
	Retention Retention
	// Fsync is "always", "never" or "interval:DURATION"; the broker's
	// default when empty.
	Fsync string
	// MaxMessageBytes is the largest message (key, value, headers); 1 MiB
	// when 0.
	MaxMessageBytes int32
	// DedupWindow is how long publish ids are remembered: 2 minutes when 0,
	// off when negative.
	DedupWindow time.Duration
	// SegmentBytes is the size at which partition logs roll.
	SegmentBytes int64
}

// Retention says when a topic's messages are deleted.
type Retention struct {
	// MaxAge deletes messages older than this, whole segments at a time.
	MaxAge time.Duration
	// MaxBytes deletes a partition's oldest messages past this size.
	MaxBytes int64
	// Work deletes messages once every subscription has acknowledged them
	// (a work queue).
	Work bool
}

// TopicChanges lists the settings AlterTopic changes: nil fields stay as
// they are.
type TopicChanges struct {
	Retention       *Retention
	Fsync           *string
	MaxMessageBytes *int32
	DedupWindow     *time.Duration
}

// SubscriptionKind says how a subscription's consumers share its messages.
type SubscriptionKind int32

const (
	// KindQueue: any message to any consumer, acknowledged one by one
	// (ConsumeQueue, SubscribeQueue).
	KindQueue SubscriptionKind = SubscriptionKind(ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE)
	// KindStream: partitions split among the group's members, committed
	// offsets (ConsumeStream, SubscribeStream).
	KindStream SubscriptionKind = SubscriptionKind(ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM)
)

// StartPosition is where a new subscription starts.
type StartPosition int32

const (
	// StartLatest: messages published after the subscription was created
	// (the default).
	StartLatest StartPosition = 0
	// StartEarliest: every message still stored.
	StartEarliest StartPosition = StartPosition(ferryv1.StartPosition_START_POSITION_EARLIEST)
)

// SubscriptionConfig is a new subscription's settings. Zero values take
// the broker's defaults; the queue settings are ignored by streams.
type SubscriptionConfig struct {
	Kind    SubscriptionKind
	StartAt StartPosition
	// AckDeadline (queue): how long a delivery may stay unacknowledged
	// before it is delivered again; 30s when 0.
	AckDeadline time.Duration
	// MaxDeliveries (queue): a message that fails this many deliveries
	// moves to the dead-letter topic; 0 is no limit.
	MaxDeliveries int32
	// DeadLetterTopic (queue): where dead letters go; "TOPIC.SUB.dlq" when
	// empty.
	DeadLetterTopic string
	// MaxInFlight (queue): unacknowledged deliveries one consumer may hold;
	// 1000 when 0.
	MaxInFlight int32
	// KeyOrdering (queue): at most one message per key in flight.
	KeyOrdering bool
}

// AllPartitions makes SeekSubscription move every partition.
const AllPartitions int32 = -1

func durationOrNil(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func (r Retention) proto() *ferryv1.Retention {
	return &ferryv1.Retention{MaxAge: durationOrNil(r.MaxAge), MaxBytes: r.MaxBytes, Work: r.Work}
}

func (tc TopicConfig) proto() *ferryv1.TopicConfig {
	return &ferryv1.TopicConfig{
		Partitions:      tc.Partitions,
		Retention:       tc.Retention.proto(),
		Fsync:           tc.Fsync,
		MaxMessageBytes: tc.MaxMessageBytes,
		DedupWindow:     durationOrNil(tc.DedupWindow),
		SegmentBytes:    tc.SegmentBytes,
	}
}

func (sc SubscriptionConfig) proto() *ferryv1.SubscriptionConfig {
	return &ferryv1.SubscriptionConfig{
		Kind:            ferryv1.SubscriptionKind(sc.Kind),
		StartAt:         ferryv1.StartPosition(sc.StartAt),
		AckDeadline:     durationOrNil(sc.AckDeadline),
		MaxDeliveries:   sc.MaxDeliveries,
		DeadLetterTopic: sc.DeadLetterTopic,
		MaxInFlight:     sc.MaxInFlight,
		KeyOrdering:     sc.KeyOrdering,
	}
}

// call runs a unary call unless the client is closed. Calls made while
// Close runs still go through: the last commits of stream consumers, the
// acks of handlers finishing their work.
func call[Req, Res any](c *Client, ctx context.Context, f func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	resp, err := f(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// CreateTopic creates a topic. AlreadyExists when the name is taken,
// InvalidArgument for a bad name or setting.
func (c *Client) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (*ferryv1.Topic, error) {
	resp, err := call(c, ctx, c.topics.CreateTopic, &ferryv1.CreateTopicRequest{Name: name, Config: cfg.proto()})
	return resp.GetTopic(), err
}

// ListTopics describes every topic, sorted by name.
func (c *Client) ListTopics(ctx context.Context) ([]*ferryv1.Topic, error) {
	resp, err := call(c, ctx, c.topics.ListTopics, &ferryv1.ListTopicsRequest{})
	return resp.GetTopics(), err
}

// DescribeTopic returns a topic's settings and partitions (start and end
// offsets, bytes). NotFound when there is no such topic.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*ferryv1.Topic, error) {
	resp, err := call(c, ctx, c.topics.DescribeTopic, &ferryv1.DescribeTopicRequest{Name: name})
	return resp.GetTopic(), err
}

// AlterTopic changes the settings named in changes.
func (c *Client) AlterTopic(ctx context.Context, name string, changes TopicChanges) (*ferryv1.Topic, error) {
	req := &ferryv1.AlterTopicRequest{Name: name, Fsync: changes.Fsync, MaxMessageBytes: changes.MaxMessageBytes}
	if changes.Retention != nil {
		req.Retention = changes.Retention.proto()
	}
	if changes.DedupWindow != nil {
		req.DedupWindow = durationpb.New(*changes.DedupWindow)
	}
	resp, err := call(c, ctx, c.topics.AlterTopic, req)
	return resp.GetTopic(), err
}

// AddPartitions raises a topic's partition count to total (the new count,
// not the number added). Keys hash over the new count from then on.
func (c *Client) AddPartitions(ctx context.Context, name string, total int32) (*ferryv1.Topic, error) {
	resp, err := call(c, ctx, c.topics.AddPartitions, &ferryv1.AddPartitionsRequest{Name: name, Partitions: total})
	return resp.GetTopic(), err
}

// DeleteTopic deletes a topic, its subscriptions and its data.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	_, err := call(c, ctx, c.topics.DeleteTopic, &ferryv1.DeleteTopicRequest{Name: name})
	return err
}

// CreateSubscription creates a durable subscription on a topic.
func (c *Client) CreateSubscription(ctx context.Context, topic, name string, cfg SubscriptionConfig) (*ferryv1.Subscription, error) {
	resp, err := call(c, ctx, c.subs.CreateSubscription,
		&ferryv1.CreateSubscriptionRequest{Topic: topic, Name: name, Config: cfg.proto()})
	return resp.GetSubscription(), err
}

// ListSubscriptions describes a topic's subscriptions, sorted by name.
func (c *Client) ListSubscriptions(ctx context.Context, topic string) ([]*ferryv1.Subscription, error) {
	resp, err := call(c, ctx, c.subs.ListSubscriptions, &ferryv1.ListSubscriptionsRequest{Topic: topic})
	return resp.GetSubscriptions(), err
}

// DescribeSubscription returns a subscription's settings and its state on
// every partition (backlog, in flight, committed offset, owner).
func (c *Client) DescribeSubscription(ctx context.Context, topic, name string) (*ferryv1.Subscription, error) {
	resp, err := call(c, ctx, c.subs.DescribeSubscription,
		&ferryv1.DescribeSubscriptionRequest{Topic: topic, Name: name})
	return resp.GetSubscription(), err
}

// DeleteSubscription deletes a subscription and its state; its consumers
// end (with FailedPrecondition or NotFound, as the broker reports it).
func (c *Client) DeleteSubscription(ctx context.Context, topic, name string) error {
	_, err := call(c, ctx, c.subs.DeleteSubscription, &ferryv1.DeleteSubscriptionRequest{Topic: topic, Name: name})
	return err
}

// SeekSubscription moves a stream subscription's committed offset on one
// partition (AllPartitions: every partition) to a position; members
// holding those partitions continue from there.
func (c *Client) SeekSubscription(ctx context.Context, topic, name string, partition int32, to Position) (*ferryv1.Subscription, error) {
	req := &ferryv1.SeekSubscriptionRequest{Topic: topic, Name: name}
	if partition != AllPartitions {
		req.Partition = &partition
	}
	switch to.kind {
	case posEarliest:
		req.Target = &ferryv1.SeekSubscriptionRequest_Earliest{Earliest: true}
	case posLatest:
		req.Target = &ferryv1.SeekSubscriptionRequest_Latest{Latest: true}
	case posTime:
		req.Target = &ferryv1.SeekSubscriptionRequest_Time{Time: timestamppb.New(to.time)}
	default:
		req.Target = &ferryv1.SeekSubscriptionRequest_Offset{Offset: to.offset}
	}
	resp, err := call(c, ctx, c.subs.SeekSubscription, req)
	return resp.GetSubscription(), err
}

// PurgeSubscription drops a subscription's backlog, as SQS's PurgeQueue
// does, and returns how many messages it dropped; the topic keeps them for
// other subscriptions and readers. A queue subscription settles every
// message stored when the call is made, in flight included: acks, nacks
// and extensions of those deliveries fail with NotFound, and a consumer
// may still be handed one that was on its way. Messages published
// afterwards are delivered as usual. A stream subscription's committed
// offsets move to the end of every partition. NotFound when there is no
// such topic or subscription.
func (c *Client) PurgeSubscription(ctx context.Context, topic, name string) (int64, error) {
	resp, err := call(c, ctx, c.subs.PurgeSubscription, &ferryv1.PurgeSubscriptionRequest{Topic: topic, Name: name})
	return resp.GetPurged(), err
}
