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
// from the earliest offset) by the group's first commit on that topic,
// and by nothing else: a fetch of offsets leaves nothing behind.
//
// OffsetFetch answers -1 ("never committed": the client applies its
// auto.offset.reset) only on a topic where the group has no subscription;
// otherwise it answers the subscription's position as it is, as Kafka
// answers a committed offset. A position that retention has overtaken is
// answered too: the client's fetch there gets OFFSET_OUT_OF_RANGE and it
// resets by its policy, as in Kafka. A partition of that topic the group
// never committed reads as where its subscription started (the earliest
// offset), so a client whose policy is "latest" re-delivers those records
// rather than skipping them. (Telling a position from "never committed"
// by comparing it with the partition's start, as Ferry once did, answered
// -1 for real commits: a commit of 0 on an empty partition, a caught-up
// commit whose records work retention then deleted.)

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
// it has committed on, in topic order.
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
