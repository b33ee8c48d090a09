package kafka

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups (key 16), versions 0-4 (v4 filters by state): the groups with
// members here, and every group with committed offsets (every stream
// subscription name, Ferry's own included: they are the same thing). A
// group known only by its offsets is Empty, with no protocol type, as
// Kafka lists a group of consumers that commit without joining; one whose
// subscription has native Ferry members is Stable.
func handleListGroups(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	stored, err := c.s.storedGroups()
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	live := c.s.groups.list()
	for _, g := range live {
		delete(stored, g.id)
	}
	for name, native := range stored {
		g := groupSummary{id: name, state: stateEmpty}
		if native > 0 {
			g.state = stateStable
		}
		live = append(live, g)
	}
	slices.SortFunc(live, func(a, b groupSummary) int { return strings.Compare(a.id, b.id) })
	for _, g := range live {
		if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(s string) bool { return strings.EqualFold(s, g.state.String()) }) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState = g.id, g.protocolType, g.state.String()
		resp.Groups = append(resp.Groups, lg)
	}
	return resp, nil
}

// groupSummary is a group as ListGroups and DescribeGroups show it.
type groupSummary struct {
	id           string
	state        groupState
	protocolType string
	protocol     string
	members      []memberSummary
}

type memberSummary struct {
	id, clientID, clientHost string
	metadata, assignment     []byte
}

// list summarises the groups here (without members).
func (c *coordinator) list() []groupSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]groupSummary, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, groupSummary{id: g.id, state: g.state, protocolType: g.protocolType, protocol: g.protocol})
	}
	return out
}
