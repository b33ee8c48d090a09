package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The bits of the cluster operations a client may do, for
// include_cluster_authorized_operations: Ferry has no ACLs, so every
// client may do all of them.
var clusterOperations = func() int32 {
	var bits int32
	for _, op := range []kmsg.ACLOperation{
		kmsg.ACLOperationAlter, kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationClusterAction,
		kmsg.ACLOperationCreate, kmsg.ACLOperationDescribe, kmsg.ACLOperationDescribeConfigs,
		kmsg.ACLOperationIdempotentWrite,
	} {
		bits |= 1 << op
	}
	return bits
}()

// DescribeCluster (key 60), versions 0-1: the cluster id and this broker,
// which is also the controller. Controllers (endpoint type 2, for KRaft
// clients) are not described.
func handleDescribeCluster(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = clusterID
	resp.EndpointType = 1
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.EndpointType = req.EndpointType
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("Ferry describes brokers only (endpoint type 1)")
		return resp, nil
	}
	resp.ControllerID = nodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = nodeID, c.s.advertised.host, c.s.advertised.port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = clusterOperations
	}
	return resp, nil
}
