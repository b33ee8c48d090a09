package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// OffsetFetch (key 9), versions 0-8 (v8 a batch of groups): a group's
// committed offsets, read from its stream subscriptions (see offsets.go):
// -1 on a topic the group has no subscription on, else the subscription's
// position as it is. No topics (v2+) means every topic
// the group has committed on. Ferry has no transactions, so there are no
// unstable offsets to wait for (require_stable is met at once); metadata
// is not stored and comes back empty.
func handleOffsetFetch(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		var topics []kmsg.OffsetFetchRequestGroupTopic
		for _, rt := range req.Topics {
			topics = append(topics, kmsg.OffsetFetchRequestGroupTopic{Topic: rt.Topic, Partitions: rt.Partitions})
		}
		g := c.fetchGroup(req.Group, topics, req.Topics == nil)
		resp.ErrorCode = g.ErrorCode
		for _, gt := range g.Topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = gt.Topic
			for _, gp := range gt.Partitions {
				p := kmsg.NewOffsetFetchResponseTopicPartition()
				p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata, gp.ErrorCode
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		if req.Version < 2 && g.ErrorCode != 0 {
			// No top-level error before v2: it goes on every partition.
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					resp.Topics[i].Partitions[j].ErrorCode = g.ErrorCode
				}
			}
		}
		return resp, nil
	}
	for _, rg := range req.Groups {
		resp.Groups = append(resp.Groups, c.fetchGroup(rg.Group, rg.Topics, rg.Topics == nil))
	}
	return resp, nil
}

// fetchGroup answers one group's offsets.
func (c *conn) fetchGroup(group string, topics []kmsg.OffsetFetchRequestGroupTopic, every bool) kmsg.OffsetFetchResponseGroup {
	g := kmsg.NewOffsetFetchResponseGroup()
	g.Group = group
	if engine.ValidateTopicName(group) != nil {
		g.ErrorCode = kerr.InvalidGroupID.Code
		return g
	}
	if every {
		sis, err := c.s.groupSubscriptions(group)
		if err != nil {
			g.ErrorCode = errorCode(err)
			return g
		}
		for _, si := range sis {
			t := kmsg.NewOffsetFetchResponseGroupTopic()
			t.Topic = si.Topic
			for _, sp := range si.Partitions {
				t.Partitions = append(t.Partitions, fetchedPartition(int32(sp.Partition), sp.Committed, 0))
			}
			g.Topics = append(g.Topics, t)
		}
		return g
	}
	for _, rt := range topics {
		t := kmsg.NewOffsetFetchResponseGroupTopic()
		t.Topic = rt.Topic
		// Never made here: a fetch (a one-off consumer, an admin tool)
		// leaves nothing behind, and cannot bring back a group that a
		// DeleteGroups is deleting.
		si, err := c.s.groupSubscription(c.ctx, rt.Topic, group, false)
		for _, p := range rt.Partitions {
			switch {
			case errors.Is(err, engine.ErrUnknownTopic), errors.Is(err, engine.ErrUnknownSubscription):
				// Kafka answers -1 for a topic it has no offsets for, known
				// or not, and no error.
				t.Partitions = append(t.Partitions, fetchedPartition(p, -1, 0))
			case err != nil:
				t.Partitions = append(t.Partitions, fetchedPartition(p, -1, errorCode(err)))
			case p < 0 || int(p) >= len(si.Partitions):
				t.Partitions = append(t.Partitions, fetchedPartition(p, -1, kerr.UnknownTopicOrPartition.Code))
			default:
				t.Partitions = append(t.Partitions, fetchedPartition(p, si.Partitions[p].Committed, 0))
			}
		}
		g.Topics = append(g.Topics, t)
	}
	return g
}

func fetchedPartition(p int32, offset int64, code int16) kmsg.OffsetFetchResponseGroupTopicPartition {
	fp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
	fp.Partition, fp.Offset, fp.LeaderEpoch, fp.ErrorCode = p, offset, -1, code
	fp.Metadata = kmsg.StringPtr("")
	return fp
}
