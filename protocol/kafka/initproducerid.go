package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId (key 22), versions 0-4, for idempotent producers only:
// every call hands out a new producer id, epoch 0, as Kafka does for a
// request without a transactional id (the producer id and epoch that
// versions 3+ may carry are not needed to fence anything then). A request
// with a transactional id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
// transactions are not served. See producers.go for what the broker keeps
// of a producer, and for how long.
func handleInitProducerID(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		c.s.log.Info("kafka: transactional producer refused: transactions are not supported",
			"transactional_id", *req.TransactionalID, "client_id", c.clientID)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	id, err := c.s.producers.newID()
	if err != nil {
		c.s.log.Warn("kafka: no producer id", "err", err)
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
