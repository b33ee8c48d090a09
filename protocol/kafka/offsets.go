package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferrymq/ferry/engine"
)

// A Kafka group's committed offsets are Ferry stream subscriptions: group
// "g" reading topic "t" commits into subscription "g" on topic "t", so
// `ferry sub describe t g` shows the same positions, and its backlog is
// the group's lag on that topic. The subscription is created (a stream,
// from the earliest offset) on the group's first commit or offset fetch
// on that topic.
//
// Kafka tells "never committed" (OffsetFetch answers -1 and the client
// applies its auto.offset.reset) from a committed offset; a subscription
// always has one, from its start position. So a committed offset at or
// below the partition's first stored offset is answered as -1: a new
// subscription from the earliest offset is there until the group commits
// past it, and a commit that retention has overtaken is one Kafka too would
// reset (OFFSET_OUT_OF_RANGE on fetch). Only an explicit commit of exactly
// the first stored offset reads back as -1; a client resetting to the
// earliest offset (franz-go's default) lands on the same record anyway.
// This keeps the rule in the stored data alone: it survives restarts, and a
// subscription made with `ferry sub create` reads back its real position.

// errNotStream: a queue subscription on the topic has the group's name,
// so the group's offsets have nowhere to go.
var errNotStream = errors.New("a queue subscription has the group's name")

// groupSubscription returns the group's stream subscription on a topic,
// creating it when create is set.
func (s *Server) groupSubscription(ctx context.Context, topic, group string, create bool) (engine.SubscriptionInfo, error) {
	si, err := s.b.DescribeSubscription(topic, group)
	if errors.Is(err, engine.ErrUnknownSubscription) && create {
		si, err = s.b.CreateSubscription(ctx, topic, group, engine.SubscriptionConfig{Kind: engine.KindStream, StartAt: engine.StartEarliest})
		if errors.Is(err, engine.ErrSubscriptionExists) {
			si, err = s.b.DescribeSubscription(topic, group) // another request made it meanwhile
		} else if err == nil {
			s.log.Info("kafka: stream subscription created for a consumer group", "topic", topic, "group", group)
		}
	}
	if err == nil && si.Config.Kind != engine.KindStream {
		err = fmt.Errorf("%w: %q on topic %q", errNotStream, group, topic)
	}
	return si, err
}

// groupSubscriptions lists the group's stream subscriptions, one per topic
// it has committed on (or fetched offsets for), in topic order.
func (s *Server) groupSubscriptions(group string) ([]engine.SubscriptionInfo, error) {
	tis, err := s.b.ListTopics()
	if err != nil {
		return nil, err
	}
	var out []engine.SubscriptionInfo
	for _, ti := range tis {
		si, err := s.b.DescribeSubscription(ti.Name, group)
		switch {
		case errors.Is(err, engine.ErrUnknownSubscription), errors.Is(err, engine.ErrUnknownTopic):
			continue // none, or the topic was deleted meanwhile
		case err != nil:
			return nil, err
		case si.Config.Kind == engine.KindStream:
			out = append(out, si)
		}
	}
	return out, nil
}

// storedGroups lists every stream subscription name (the groups that have
// offsets) with how many native (non-Kafka) members it has.
func (s *Server) storedGroups() (map[string]int, error) {
	tis, err := s.b.ListTopics()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, ti := range tis {
		sis, err := s.b.ListSubscriptions(ti.Name)
		if errors.Is(err, engine.ErrUnknownTopic) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, si := range sis {
			if si.Config.Kind == engine.KindStream {
				out[si.Name] += si.Members
			}
		}
	}
	return out, nil
}

// fetchedOffset is what OffsetFetch answers for a partition: its committed
// offset, or -1 when it was never committed (see above).
func fetchedOffset(sp engine.SubscriptionPartition, ti engine.TopicInfo) int64 {
	if sp.Partition >= len(ti.Partitions) || sp.Committed <= ti.Partitions[sp.Partition].StartOffset {
		return -1
	}
	return sp.Committed
}
