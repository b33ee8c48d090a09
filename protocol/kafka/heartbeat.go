package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat (key 12), versions 0-4: keeps a member's session alive.
// REBALANCE_IN_PROGRESS tells it to join again; UNKNOWN_MEMBER_ID that it
// is out of the group (its session expired, or it left); ILLEGAL_GENERATION
// that it missed a rebalance.
func handleHeartbeat(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = c.s.groups.heartbeat(req.Group, req.MemberID, req.Generation)
	return resp, nil
}
