package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup (key 13), versions 0-5 (v3+ a batch of members): the members
// leave at once and the others rebalance without waiting for their
// sessions to run out. A member named only by instance id (static
// membership, not implemented) is unknown.
func handleLeaveGroup(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Version < 3 {
		resp.ErrorCode = c.s.groups.leave(req.Group, req.MemberID)
		return resp, nil
	}
	for _, rm := range req.Members {
		m := kmsg.NewLeaveGroupResponseMember()
		m.MemberID, m.InstanceID = rm.MemberID, rm.InstanceID
		if rm.MemberID == "" {
			m.ErrorCode = kerr.UnknownMemberID.Code
		} else {
			m.ErrorCode = c.s.groups.leave(req.Group, rm.MemberID)
		}
		resp.Members = append(resp.Members, m)
	}
	return resp, nil
}
