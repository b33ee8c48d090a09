package native

import (
	"context"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
)

// topics serves ferry.v1.TopicService.
type topics struct{ s *Service }

func (h topics) CreateTopic(ctx context.Context, req *connect.Request[ferryv1.CreateTopicRequest]) (*connect.Response[ferryv1.CreateTopicResponse], error) {
	info, err := h.s.b.CreateTopic(ctx, req.Msg.Name, topicConfigFromProto(req.Msg.Config))
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.CreateTopicResponse{Topic: topicToProto(info)}), nil
}

func (h topics) ListTopics(ctx context.Context, req *connect.Request[ferryv1.ListTopicsRequest]) (*connect.Response[ferryv1.ListTopicsResponse], error) {
	infos, err := h.s.b.ListTopics()
	if err != nil {
		return nil, toConnect(err)
	}
	out := &ferryv1.ListTopicsResponse{Topics: make([]*ferryv1.Topic, len(infos))}
	for i, t := range infos {
		out.Topics[i] = topicToProto(t)
	}
	return connect.NewResponse(out), nil
}

func (h topics) DescribeTopic(ctx context.Context, req *connect.Request[ferryv1.DescribeTopicRequest]) (*connect.Response[ferryv1.DescribeTopicResponse], error) {
	info, err := h.s.b.DescribeTopic(req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.DescribeTopicResponse{Topic: topicToProto(info)}), nil
}

func (h topics) AlterTopic(ctx context.Context, req *connect.Request[ferryv1.AlterTopicRequest]) (*connect.Response[ferryv1.AlterTopicResponse], error) {
	m := req.Msg
	var ch engine.TopicChange
	if m.Retention != nil {
		r := retentionFromProto(m.Retention)
		ch.Retention = &r
	}
	ch.Fsync = m.Fsync
	if m.MaxMessageBytes != nil {
		n := int(*m.MaxMessageBytes)
		ch.MaxMessageBytes = &n
	}
	if m.DedupWindow != nil {
		d := m.DedupWindow.AsDuration()
		ch.DedupWindow = &d
	}
	info, err := h.s.b.AlterTopic(ctx, m.Name, ch)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.AlterTopicResponse{Topic: topicToProto(info)}), nil
}

func (h topics) AddPartitions(ctx context.Context, req *connect.Request[ferryv1.AddPartitionsRequest]) (*connect.Response[ferryv1.AddPartitionsResponse], error) {
	info, err := h.s.b.AddPartitions(ctx, req.Msg.Name, int(req.Msg.Partitions))
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.AddPartitionsResponse{Topic: topicToProto(info)}), nil
}

func (h topics) DeleteTopic(ctx context.Context, req *connect.Request[ferryv1.DeleteTopicRequest]) (*connect.Response[ferryv1.DeleteTopicResponse], error) {
	if err := h.s.b.DeleteTopic(ctx, req.Msg.Name); err != nil {
		return nil, toConnect(err)
	}
	h.s.dropTopicShared(req.Msg.Name)
	return connect.NewResponse(&ferryv1.DeleteTopicResponse{}), nil
}

// subscriptions serves ferry.v1.SubscriptionService.
type subscriptions struct{ s *Service }

func (h subscriptions) CreateSubscription(ctx context.Context, req *connect.Request[ferryv1.CreateSubscriptionRequest]) (*connect.Response[ferryv1.CreateSubscriptionResponse], error) {
	cfg, err := subscriptionConfigFromProto(req.Msg.Config)
	if err != nil {
		return nil, err
	}
	info, err := h.s.b.CreateSubscription(ctx, req.Msg.Topic, req.Msg.Name, cfg)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.CreateSubscriptionResponse{Subscription: subscriptionToProto(info)}), nil
}

func (h subscriptions) ListSubscriptions(ctx context.Context, req *connect.Request[ferryv1.ListSubscriptionsRequest]) (*connect.Response[ferryv1.ListSubscriptionsResponse], error) {
	infos, err := h.s.b.ListSubscriptions(req.Msg.Topic)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &ferryv1.ListSubscriptionsResponse{Subscriptions: make([]*ferryv1.Subscription, len(infos))}
	for i, info := range infos {
		out.Subscriptions[i] = subscriptionToProto(info)
	}
	return connect.NewResponse(out), nil
}

func (h subscriptions) DescribeSubscription(ctx context.Context, req *connect.Request[ferryv1.DescribeSubscriptionRequest]) (*connect.Response[ferryv1.DescribeSubscriptionResponse], error) {
	info, err := h.s.b.DescribeSubscription(req.Msg.Topic, req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.DescribeSubscriptionResponse{Subscription: subscriptionToProto(info)}), nil
}

func (h subscriptions) DeleteSubscription(ctx context.Context, req *connect.Request[ferryv1.DeleteSubscriptionRequest]) (*connect.Response[ferryv1.DeleteSubscriptionResponse], error) {
	if err := h.s.b.DeleteSubscription(ctx, req.Msg.Topic, req.Msg.Name); err != nil {
		return nil, toConnect(err)
	}
	h.s.dropShared(req.Msg.Topic, req.Msg.Name, nil)
	return connect.NewResponse(&ferryv1.DeleteSubscriptionResponse{}), nil
}

func (h subscriptions) SeekSubscription(ctx context.Context, req *connect.Request[ferryv1.SeekSubscriptionRequest]) (*connect.Response[ferryv1.SeekSubscriptionResponse], error) {
	m := req.Msg
	var to engine.SeekTarget
	switch t := m.Target.(type) {
	case *ferryv1.SeekSubscriptionRequest_Earliest:
		to.Earliest = t.Earliest
	case *ferryv1.SeekSubscriptionRequest_Latest:
		to.Latest = t.Latest
	case *ferryv1.SeekSubscriptionRequest_Offset:
		to.Offset = t.Offset
		if t.Offset < 0 {
			return nil, invalid("offset %d is negative", t.Offset)
		}
	case *ferryv1.SeekSubscriptionRequest_Time:
		to.Time = fromTS(t.Time)
	default:
		return nil, invalid("a seek target is required: earliest, latest, offset or time")
	}
	p := -1
	if m.Partition != nil {
		p = int(*m.Partition)
		if p < 0 {
			return nil, invalid("partition %d is negative", p)
		}
	}
	if err := h.s.b.SeekStream(ctx, m.Topic, m.Name, p, to); err != nil {
		return nil, toConnect(err)
	}
	info, err := h.s.b.DescribeSubscription(m.Topic, m.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.SeekSubscriptionResponse{Subscription: subscriptionToProto(info)}), nil
}

func (h subscriptions) PurgeSubscription(ctx context.Context, req *connect.Request[ferryv1.PurgeSubscriptionRequest]) (*connect.Response[ferryv1.PurgeSubscriptionResponse], error) {
	n, err := h.s.b.PurgeSubscription(ctx, req.Msg.Topic, req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	info, err := h.s.b.DescribeSubscription(req.Msg.Topic, req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.PurgeSubscriptionResponse{Purged: n, Subscription: subscriptionToProto(info)}), nil
}
