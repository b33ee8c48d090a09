package kafka

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// DescribeGroups (key 15), versions 0-5: each group's state, protocol and
// members; a Stable group's protocol, and its members' metadata and
// assignment, as in Kafka (none of these in other states). A group unknown here, with no offsets either,
// is Dead. Authorized operations are not computed (there is no ACL).
func handleDescribeGroups(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	var stored map[string]int
	for _, id := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		dg.AuthorizedOperations = math.MinInt32 // not requested, or not computed
		if engine.ValidateTopicName(id) != nil {
			dg.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		g, ok := c.s.groups.describe(id)
		if !ok {
			if stored == nil {
				var err error
				if stored, err = c.s.storedGroups(); err != nil {
					dg.ErrorCode = errorCode(err)
					resp.Groups = append(resp.Groups, dg)
					continue
				}
			}
			g = groupSummary{id: id, state: stateDead}
			if native, has := stored[id]; has && native > 0 {
				g.state = stateStable
			} else if has {
				g.state = stateEmpty
			}
		}
		dg.State, dg.ProtocolType, dg.Protocol = g.state.String(), g.protocolType, g.protocol
		for _, m := range g.members {
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
			dm.ProtocolMetadata, dm.MemberAssignment = m.metadata, m.assignment
			dg.Members = append(dg.Members, dm)
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp, nil
}

// describe summarises one group here, with its members in join order.
func (c *coordinator) describe(id string) (groupSummary, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[id]
	if g == nil {
		return groupSummary{}, false
	}
	out := groupSummary{id: g.id, state: g.state, protocolType: g.protocolType}
	if g.state == stateStable {
		out.protocol = g.protocol // Kafka names it only then
	}
	for _, m := range g.sorted() {
		ms := memberSummary{id: m.id, clientID: m.clientID, clientHost: m.clientHost}
		if g.state == stateStable {
			ms.assignment = m.assignment
			for _, p := range m.protocols {
				if p.name == g.protocol {
					ms.metadata = p.metadata
				}
			}
		}
		out.members = append(out.members, ms)
	}
	return out, true
}
