package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics (key 20), versions 0-5: deletes each topic named, with its
// data and its subscriptions (a Kafka group's committed offsets on it go
// too). Version 6 names topics by id and is not served.
func handleDeleteTopics(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	named := map[string]int{}
	for _, name := range req.TopicNames {
		named[name]++
	}
	for _, name := range req.TopicNames {
		t := kmsg.NewDeleteTopicsResponseTopic()
		t.Topic = kmsg.StringPtr(name)
		var err error
		if named[name] > 1 {
			t.ErrorCode = kerr.InvalidRequest.Code
			err = fmt.Errorf("topic %q is named more than once in the request", name)
		} else if err = c.s.b.DeleteTopic(c.ctx, name); err != nil {
			t.ErrorCode = errorCode(err)
		}
		if err != nil {
			t.ErrorMessage = kmsg.StringPtr(err.Error())
		} else {
			c.s.log.Info("kafka: topic deleted", "topic", name, "client_id", c.clientID)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}
