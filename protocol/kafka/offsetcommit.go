package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// OffsetCommit (key 8), versions 0-8: a group's offsets (the next offset
// to read), written into its stream subscription on each topic (see
// offsets.go) in one write per topic, before the answer. A member commits
// in its generation; generation -1 without a member (and every v0 commit)
// is a consumer that assigns itself partitions, allowed while the group
// has no members, as in Kafka. The group's subscription on a topic is made
// by its first commit there (and only by a commit). The commit metadata string and leader
// epoch are not stored.
func handleOffsetCommit(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetCommitResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetCommitResponseTopicPartition()
			p.Partition = rp.Partition
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	all := func(code int16) (kmsg.Response, error) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
		return resp, nil
	}
	if engine.ValidateTopicName(req.Group) != nil {
		return all(kerr.InvalidGroupID.Code)
	}
	gen := req.Generation
	if req.Version == 0 {
		gen = -1
	}
	// Each topic's offsets are checked against the topic first, without
	// the coordinator's lock; the subscriptions missing are made between
	// the coordinator's checks (commit), and only the writes run under it.
	offsets := make([]map[int]int64, len(req.Topics))
	var missing []int
	for i, rt := range req.Topics {
		var create bool
		offsets[i], create = c.checkCommit(req.Group, rt, resp.Topics[i].Partitions)
		if create {
			missing = append(missing, i)
		}
	}
	var create func() int16
	if len(missing) > 0 {
		create = func() int16 {
			for _, i := range missing {
				if _, err := c.s.groupSubscription(c.ctx, req.Topics[i].Topic, req.Group, true); err != nil {
					failPartitions(resp.Topics[i].Partitions, errorCode(err))
					offsets[i] = nil
				}
			}
			return 0
		}
	}
	code := c.s.groups.commit(req.Group, req.MemberID, gen, create, func() int16 {
		for i, rt := range req.Topics {
			if len(offsets[i]) == 0 {
				continue
			}
			if err := c.s.b.CommitStream(c.ctx, rt.Topic, req.Group, offsets[i]); err != nil {
				failPartitions(resp.Topics[i].Partitions, errorCode(err))
			}
		}
		return 0
	})
	if code != 0 {
		return all(code)
	}
	return resp, nil
}

// checkCommit checks one topic's offsets, setting the error of each
// partition refused, and returns those to write and whether the group's
// subscription on the topic must be made first.
func (c *conn) checkCommit(group string, rt kmsg.OffsetCommitRequestTopic, out []kmsg.OffsetCommitResponseTopicPartition) (map[int]int64, bool) {
	ti, err := c.s.b.DescribeTopic(rt.Topic)
	if err != nil {
		failPartitions(out, errorCode(err))
		return nil, false
	}
	offsets := map[int]int64{}
	for i, rp := range rt.Partitions {
		switch p := int(rp.Partition); {
		case p < 0 || p >= len(ti.Partitions):
			out[i].ErrorCode = kerr.UnknownTopicOrPartition.Code
		case rp.Offset < 0 || rp.Offset > ti.Partitions[p].EndOffset:
			// Kafka stores any offset; Ferry's subscriptions hold positions
			// that exist, so a commit past the end is refused alone.
			out[i].ErrorCode = kerr.OffsetOutOfRange.Code
		default:
			offsets[p] = rp.Offset
		}
	}
	if len(offsets) == 0 {
		return nil, false
	}
	_, err = c.s.groupSubscription(c.ctx, rt.Topic, group, false)
	switch {
	case errors.Is(err, engine.ErrUnknownSubscription):
		return offsets, true
	case err != nil:
		failPartitions(out, errorCode(err))
		return nil, false
	}
	return offsets, false
}

// failPartitions sets code on every partition not failed already.
func failPartitions(out []kmsg.OffsetCommitResponseTopicPartition, code int16) {
	for i := range out {
		if out[i].ErrorCode == 0 {
			out[i].ErrorCode = code
		}
	}
}
