package client

import (
	"context"
	"hash/maphash"
	"iter"
	"sync"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// EphemeralConsumer is an ephemeral subscription (ConsumeEphemeral): every
// message published from its start on to a topic its pattern matches,
// with no state kept by the broker. Next and Messages are for one
// goroutine at a time.
type EphemeralConsumer struct {
	c       *Client
	core    *core[Message]
	pattern string
	buffer  int64
	once    sync.Once
}

// ConsumeEphemeral starts an ephemeral subscription on pattern: a topic
// name, or a wildcard pattern where "*" matches one level of the dotted
// name ("orders.*") and ">" any number of levels at the end ("orders.>").
// It returns once the broker accepted it (retrying while the broker is
// unreachable, until ctx ends; ctx does not bound the subscription's
// life). Close it when done.
//
// When its stream fails with a retryable error the subscription starts
// again with backoff, from "now": messages published while it was
// detached are missed, which is what ephemeral means. A subscriber that
// falls further behind than its buffer (WithBuffer) is cut off by the
// broker with ResourceExhausted, which ends it, as does any other
// non-retryable error.
func (c *Client) ConsumeEphemeral(ctx context.Context, pattern string, opts ...SubscribeOption) (*EphemeralConsumer, error) {
	cfg, err := c.subscribeConfig(opts)
	if err != nil {
		return nil, err
	}
	return c.consumeEphemeral(ctx, pattern, cfg)
}

func (c *Client) consumeEphemeral(ctx context.Context, pattern string, cfg subscribeConfig) (*EphemeralConsumer, error) {
	var err error
	e := &EphemeralConsumer{c: c, pattern: pattern, buffer: cfg.buffer}
	e.core, err = startCore(ctx, c, "ephemeral "+pattern, cfg.credit, true, e.dial)
	if err != nil {
		return nil, err
	}
	if err := c.addConsumer(e); err != nil {
		e.core.close()
		return nil, err
	}
	return e, nil
}

func (e *EphemeralConsumer) dial(ctx context.Context, s *session[Message]) (func() error, error) {
	stream, err := e.c.consume.Subscribe(ctx, connect.NewRequest(&ferryv1.SubscribeRequest{
		Pattern: e.pattern, Credit: int32(cap(s.items)), Buffer: e.buffer, RecordBatches: true}))
	if err != nil {
		return nil, err
	}
	first, err := firstResponse(stream)
	if err != nil {
		return nil, err
	}
	s.id = first.GetConsumerId()
	return func() error {
		defer stream.Close()
		return receiveAhead(stream, first, s.cancel, func(resp *ferryv1.SubscribeResponse) error {
			msgs := make([]Message, 0, len(resp.GetMessages())+countRecords(resp.GetBatches()))
			for _, m := range resp.GetMessages() {
				msgs = append(msgs, fromProtoMessage(m))
			}
			for _, rb := range resp.GetBatches() {
				err := decodeRecordBatches(rb, func() *Message {
					msgs = append(msgs, Message{})
					return &msgs[len(msgs)-1]
				})
				if err != nil {
					return err
				}
			}
			return push(ctx, s, msgs)
		})
	}, nil
}

// Next waits for the next message, until ctx ends or the subscription ends
// (ErrClosed after Close, or the error that ended it).
func (e *EphemeralConsumer) Next(ctx context.Context) (*Message, error) {
	m, s, err := e.core.next(ctx)
	if err != nil {
		return nil, err
	}
	s.credit.consumed(1)
	return m, nil
}

// Messages iterates over the messages as Next returns them. The iteration
// ends after yielding the error that stops it (ctx's, ErrClosed, or the
// subscription's).
func (e *EphemeralConsumer) Messages(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			m, err := e.Next(ctx)
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// Close ends the subscription. Next then returns ErrClosed.
func (e *EphemeralConsumer) Close() error {
	e.once.Do(func() {
		e.core.close()
		e.c.removeConsumer(e)
	})
	return nil
}

// SubscribeEphemeral runs handler on every message of an ephemeral
// subscription on pattern (see ConsumeEphemeral) until ctx ends (it then
// returns nil), the Client is closed (ErrClosed), the subscription fails
// for good, or the handler returns an error (returned). Messages of one
// topic partition are handled in order, one at a time; WithConcurrency
// handles different partitions in parallel.
func (c *Client) SubscribeEphemeral(ctx context.Context, pattern string, handler func(context.Context, *Message) error, opts ...SubscribeOption) error {
	cfg, err := c.subscribeConfig(opts)
	if err != nil {
		return err
	}
	e, err := c.consumeEphemeral(ctx, pattern, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer e.Close()
	seed := maphash.MakeSeed()
	return inOrder(ctx, cfg.concurrency, e.Next,
		func(m *Message) uint64 { return maphash.String(seed, m.Topic) + uint64(m.Partition) },
		handler)
}
