package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// CreatePartitions (key 37), versions 0-3: raises a topic's partition
// count to the count asked (never lowers it); an assignment may only name
// this broker. Keys hash over the new count from then on, as in Kafka.
// With validate_only everything is checked and nothing added.
func handleCreatePartitions(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	named := map[string]int{}
	for _, rt := range req.Topics {
		named[rt.Topic]++
	}
	for _, rt := range req.Topics {
		t := kmsg.NewCreatePartitionsResponseTopic()
		t.Topic = rt.Topic
		var code int16
		var err error
		if named[rt.Topic] > 1 {
			code, err = kerr.InvalidRequest.Code, fmt.Errorf("topic %q is named more than once in the request", rt.Topic)
		} else {
			code, err = addPartitions(c, rt, req.ValidateOnly)
		}
		if err != nil {
			t.ErrorCode, t.ErrorMessage = code, kmsg.StringPtr(err.Error())
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// addPartitions serves one topic of a CreatePartitions request.
func addPartitions(c *conn, rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, error) {
	ti, err := c.s.b.DescribeTopic(rt.Topic)
	if err != nil {
		return errorCode(err), err
	}
	have, want := len(ti.Partitions), int(rt.Count)
	if want <= have {
		return kerr.InvalidPartitions.Code, fmt.Errorf("topic %q has %d partitions; the count asked (%d) must be more", rt.Topic, have, want)
	}
	if rt.Assignment != nil {
		if len(rt.Assignment) != want-have {
			return kerr.InvalidReplicaAssignment.Code, fmt.Errorf("%d assignments for %d new partitions", len(rt.Assignment), want-have)
		}
		for _, a := range rt.Assignment {
			if len(a.Replicas) != 1 || a.Replicas[0] != nodeID {
				return kerr.InvalidReplicaAssignment.Code, fmt.Errorf("replicas %v; Ferry's only broker is %d", a.Replicas, nodeID)
			}
		}
	}
	if err := (engine.TopicConfig{Partitions: want}).Validate(); err != nil {
		return kerr.InvalidPartitions.Code, err
	}
	if validateOnly {
		return 0, nil
	}
	if _, err := c.s.b.AddPartitions(c.ctx, rt.Topic, want); err != nil {
		if errors.Is(err, engine.ErrInvalidConfig) {
			// Another client added partitions meanwhile.
			return kerr.InvalidPartitions.Code, err
		}
		return errorCode(err), err
	}
	c.s.log.Info("kafka: partitions added", "topic", rt.Topic, "partitions", want, "client_id", c.clientID)
	return 0, nil
}
