package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// DeleteGroups (key 42), versions 0-2: deletes groups that have no
// members (NON_EMPTY_GROUP otherwise), with their committed offsets: the
// group's stream subscriptions on every topic. A stream subscription with
// native Ferry members counts as members.
func handleDeleteGroups(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		if engine.ValidateTopicName(id) != nil {
			dg.ErrorCode = kerr.InvalidGroupID.Code
		} else {
			dg.ErrorCode = c.s.groups.delete(id, func(known bool) int16 { return c.deleteGroupOffsets(id, known) })
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp, nil
}

// deleteGroupOffsets deletes a group's subscriptions. known says whether
// the coordinator has the group (so it exists without any offsets).
func (c *conn) deleteGroupOffsets(group string, known bool) int16 {
	sis, err := c.s.groupSubscriptions(group)
	if err != nil {
		return errorCode(err)
	}
	if len(sis) == 0 && !known {
		return kerr.GroupIDNotFound.Code
	}
	for _, si := range sis {
		if si.Members > 0 {
			return kerr.NonEmptyGroup.Code
		}
	}
	for _, si := range sis {
		err := c.s.b.DeleteSubscription(c.ctx, si.Topic, group)
		if err != nil && !errors.Is(err, engine.ErrUnknownSubscription) && !errors.Is(err, engine.ErrUnknownTopic) {
			return errorCode(err)
		}
	}
	c.s.log.Info("kafka: consumer group deleted", "group", group, "subscriptions", len(sis), "client_id", c.clientID)
	return 0
}

// delete removes an empty group, calling removeOffsets (with whether the
// group is held here) without the lock, since deleting subscriptions
// fsyncs. The group is marked Dead first, so that meanwhile no member
// joins and no commit writes (both are told to retry), and removeOffsets
// waits for the commits already creating subscriptions, so it deletes
// what they made.
func (c *coordinator) delete(id string, removeOffsets func(known bool) int16) int16 {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return kerr.CoordinatorNotAvailable.Code
	}
	g := c.groups[id]
	known := g != nil
	switch {
	case g != nil && g.state == stateDead:
		c.mu.Unlock()
		return kerr.GroupIDNotFound.Code // another DeleteGroups has it
	case g != nil && len(g.members) > 0:
		c.mu.Unlock()
		return kerr.NonEmptyGroup.Code
	case g == nil:
		g = c.newGroup(id)
	}
	g.state = stateDead
	g.arm(time.Time{})
	for g.committing > 0 {
		c.committed.Wait()
	}
	c.mu.Unlock()

	code := removeOffsets(known)

	c.mu.Lock()
	defer c.mu.Unlock()
	if code != 0 && !c.closed {
		g.state = stateEmpty // not deleted: as it was (its pending ids, if any)
		c.settle(g, c.clock.Now())
		return code
	}
	if c.groups[id] == g {
		delete(c.groups, id)
	}
	return code
}
