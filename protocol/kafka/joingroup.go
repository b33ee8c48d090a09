package kafka

import (
	"bytes"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// JoinGroup (key 11), versions 0-8: a member joins (or joins again) and
// waits until the rebalance completes; the leader gets every member's
// metadata to compute the assignment. From v4 a member without an id gets
// MEMBER_ID_REQUIRED with its id and joins again with it (KIP-394).
//
// Static membership (group.instance.id, v5+) is not implemented: a join
// with an instance id is refused with INVALID_REQUEST, so the client's
// configuration error shows at once rather than as surprising rebalances.
func handleJoinGroup(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID, resp.Generation = req.MemberID, -1
	resp.Protocol = kmsg.StringPtr("")
	if engine.ValidateTopicName(req.Group) != nil {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if req.InstanceID != nil {
		c.s.log.Info("kafka: static group membership (group.instance.id) is not supported", "group", req.Group, "client_id", c.clientID)
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	jr := joinRequest{group: req.Group, memberID: req.MemberID, clientID: c.clientID, host: c.host(),
		protocolType: req.ProtocolType, requireKnownID: req.Version >= 4,
		session:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		rebalance: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond}
	if req.Version == 0 {
		jr.rebalance = jr.session // v0 has no rebalance timeout: Kafka used the session's
	}
	for _, p := range req.Protocols {
		jr.protocols = append(jr.protocols, protocol{name: p.Name, metadata: bytes.Clone(p.Metadata)}) // p.Metadata is the connection's request buffer
	}
	res, wait := c.s.groups.join(jr)
	if wait != nil {
		select {
		case res = <-wait:
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
	}
	resp.ErrorCode, resp.Generation, resp.MemberID, resp.LeaderID = res.err, res.generation, res.memberID, res.leader
	resp.Protocol = kmsg.StringPtr(res.protocol)
	if res.err == 0 {
		resp.ProtocolType = kmsg.StringPtr(res.protocolType)
	}
	for _, m := range res.members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID, rm.ProtocolMetadata = m.id, m.metadata
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}

// host is the client's address as Kafka shows it in DescribeGroups.
func (c *conn) host() string {
	addr := c.nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	return "/" + addr
}
