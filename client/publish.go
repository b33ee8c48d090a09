package client

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Publish stores msgs in topic, as one request, and returns where each
// went, in order, once they are durable under the topic's fsync policy.
// Keys pick partitions; keyless messages of one call go together to one
// partition, the next call's to the next. Errors: NotFound for an unknown
// topic, InvalidArgument for a message over the topic's limit, and
// InvalidArgument from the client itself, before sending anything, when
// the request would be larger than WithMaxRequestBytes (the broker would
// refuse it: publish fewer messages per call). Publish does not retry:
// give messages an ID to retry safely.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...Message) ([]Published, error) {
	return c.publish(ctx, topic, nil, msgs)
}

// PublishTo is Publish into one partition.
func (c *Client) PublishTo(ctx context.Context, topic string, partition int32, msgs ...Message) ([]Published, error) {
	return c.publish(ctx, topic, &partition, msgs)
}

func (c *Client) publish(ctx context.Context, topic string, partition *int32, msgs []Message) ([]Published, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	req := &ferryv1.PublishRequest{Topic: topic, Partition: partition, Messages: make([]*ferryv1.PublishMessage, len(msgs))}
	for i := range msgs {
		req.Messages[i] = toPublishMessage(&msgs[i])
	}
	if n := proto.Size(req); n > c.cfg.maxRequest {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
			"ferry client: publish request of %d messages is %d bytes encoded, over the limit of %d bytes for one request "+
				"(WithMaxRequestBytes, which must not exceed the broker's max_request_bytes); publish fewer or smaller messages per call",
			len(msgs), n, c.cfg.maxRequest))
	}
	resp, err := call(c, ctx, c.pub.Publish, req)
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != len(msgs) {
		return nil, connect.NewError(connect.CodeInternal,
			fmt.Errorf("broker answered %d results for %d messages", len(resp.Results), len(msgs)))
	}
	out := make([]Published, len(msgs))
	for i, r := range resp.Results {
		out[i] = fromProtoPublished(r)
	}
	return out, nil
}
