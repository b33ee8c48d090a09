package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// The coordinator key types of FindCoordinator.
const (
	coordinatorGroup       = 0
	coordinatorTransaction = 1
)

// FindCoordinator (key 10), versions 0-4 (v4 asks for several keys at
// once): this broker, node 0, coordinates every group. Transactions are
// not served, so a transactional id gets COORDINATOR_NOT_AVAILABLE with a
// message that says why.
func handleFindCoordinator(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key, co.NodeID = key, -1
		switch req.CoordinatorType {
		case coordinatorGroup:
			if err := engine.ValidateTopicName(key); err != nil {
				co.ErrorCode = kerr.InvalidGroupID.Code
				co.ErrorMessage = kmsg.StringPtr("a group id must be a valid Ferry subscription name (1 to 249 of A-Z a-z 0-9 . _ -): " + err.Error())
				break
			}
			co.NodeID, co.Host, co.Port = nodeID, c.s.advertised.host, c.s.advertised.port
		case coordinatorTransaction:
			co.ErrorCode = kerr.CoordinatorNotAvailable.Code
			co.ErrorMessage = kmsg.StringPtr("transactions are not served by Ferry")
		default:
			co.ErrorCode = kerr.InvalidRequest.Code
			co.ErrorMessage = kmsg.StringPtr("unknown coordinator type")
		}
		resp.Coordinators = append(resp.Coordinators, co)
	}
	if req.Version < 4 && len(resp.Coordinators) == 1 {
		co := resp.Coordinators[0]
		resp.Coordinators = nil
		resp.ErrorCode, resp.ErrorMessage = co.ErrorCode, co.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = co.NodeID, co.Host, co.Port
	}
	return resp, nil
}
