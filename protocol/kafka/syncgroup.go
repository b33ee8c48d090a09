package kafka

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup (key 14), versions 0-5: the leader hands in the assignment,
// and every member gets its own part. A follower that syncs before the
// leader waits for it; a sync during a rebalance gets
// REBALANCE_IN_PROGRESS, and the member joins again.
func handleSyncGroup(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	assignments := make(map[string][]byte, len(req.GroupAssignment))
	for _, a := range req.GroupAssignment {
		assignments[a.MemberID] = bytes.Clone(a.MemberAssignment) // the request buffer is reused
	}
	res, wait := c.s.groups.sync(req.Group, req.MemberID, req.Generation, req.ProtocolType, req.Protocol, assignments)
	if wait != nil {
		select {
		case res = <-wait:
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
	}
	resp.ErrorCode, resp.MemberAssignment = res.err, res.assignment
	if res.err == 0 {
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(res.protocolType), kmsg.StringPtr(res.protocol)
	}
	return resp, nil
}
