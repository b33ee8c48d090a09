package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// countErrors reports each non-zero error code resp carries to
// Options.OnRequestError, by its Kafka name: the top-level code and those
// of each topic, partition, group, member or resource the response lists.
// So a produce that fails on three partitions counts three. Only the
// codes a response carries count: a connection closed for a bad frame has
// none.
//
// The walk is a type switch over the responses served, not reflection, so
// it costs a loop over the response's partitions; it runs only when the
// callback is set.
func (s *Server) countErrors(resp kmsg.Response) {
	if s.opts.OnRequestError == nil || resp == nil {
		return
	}
	errorCodes(resp, func(code int16) {
		if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
			s.opts.OnRequestError(e.Message)
		}
	})
}

// errorCodes calls each with every error code in resp, zeros included; it
// returns false for a response it does not know (a test checks every
// served API is known).
func errorCodes(resp kmsg.Response, each func(int16)) bool {
	switch r := resp.(type) {
	case *kmsg.ApiVersionsResponse:
		each(r.ErrorCode)
	case *kmsg.MetadataResponse:
		each(r.ErrorCode)
		for _, t := range r.Topics {
			each(t.ErrorCode)
			for _, p := range t.Partitions {
				each(p.ErrorCode)
			}
		}
	case *kmsg.ProduceResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				each(p.ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		each(r.ErrorCode)
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				each(p.ErrorCode)
			}
		}
	case *kmsg.ListOffsetsResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				each(p.ErrorCode)
			}
		}
	case *kmsg.InitProducerIDResponse:
		each(r.ErrorCode)
	case *kmsg.FindCoordinatorResponse:
		each(r.ErrorCode)
		for _, c := range r.Coordinators {
			each(c.ErrorCode)
		}
	case *kmsg.JoinGroupResponse:
		each(r.ErrorCode)
	case *kmsg.SyncGroupResponse:
		each(r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		each(r.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		each(r.ErrorCode)
		for _, m := range r.Members {
			each(m.ErrorCode)
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				each(p.ErrorCode)
			}
		}
	case *kmsg.OffsetFetchResponse:
		each(r.ErrorCode)
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				each(p.ErrorCode)
			}
		}
		for _, g := range r.Groups {
			each(g.ErrorCode)
			for _, t := range g.Topics {
				for _, p := range t.Partitions {
					each(p.ErrorCode)
				}
			}
		}
	case *kmsg.ListGroupsResponse:
		each(r.ErrorCode)
	case *kmsg.DescribeGroupsResponse:
		for _, g := range r.Groups {
			each(g.ErrorCode)
		}
	case *kmsg.DeleteGroupsResponse:
		for _, g := range r.Groups {
			each(g.ErrorCode)
		}
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			each(t.ErrorCode)
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			each(t.ErrorCode)
		}
	case *kmsg.DescribeConfigsResponse:
		for _, res := range r.Resources {
			each(res.ErrorCode)
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			each(t.ErrorCode)
		}
	case *kmsg.DescribeClusterResponse:
		each(r.ErrorCode)
	default:
		return false
	}
	return true
}
