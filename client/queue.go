package client

import (
	"context"
	"errors"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// settleTimeout bounds each ack or nack SubscribeQueue sends after a
// handler returned, even when the handler's context has ended.
const settleTimeout = 10 * time.Second

// Delivery is one message handed to a queue consumer. Settle it with Ack
// (done), Nack (give it back) or keep it with Extend; one left alone past
// its Deadline is delivered again, to this or another consumer.
type Delivery struct {
	Message Message
	// ID names the delivery in Ack, Nack and Extend.
	ID string
	// Count is how often the message has been delivered, this time
	// included: more than 1 means earlier deliveries failed.
	Count int32
	// Deadline is when the delivery goes to another consumer unless
	// acknowledged or extended.
	Deadline time.Time

	c       *Client
	att     *attachment
	settled atomic.Bool
}

// Ack acknowledges the delivery: it is never delivered again. NotFound
// when it is no longer in flight for this consumer (acked already, its
// deadline passed, or the consumer's stream was reattached since it was
// received): it will be, or was, delivered again.
func (d *Delivery) Ack(ctx context.Context) error {
	d.settled.Store(true)
	return d.c.ack(ctx, d.att, []string{d.ID})
}

// Nack gives the delivery back, to be delivered again after delay (at
// once when 0), or to move to the dead-letter topic once it failed the
// subscription's max_deliveries.
func (d *Delivery) Nack(ctx context.Context, delay time.Duration) error {
	d.settled.Store(true)
	grant := d.att.credit.take()
	_, err := call(d.c, ctx, d.c.consume.Nack, &ferryv1.NackRequest{
		ConsumerId: d.att.id, DeliveryIds: []string{d.ID}, Delay: durationOrNil(delay), Grant: grant})
	d.c.settled(d.att, grant, err)
	return err
}

// Extend moves the delivery's deadline to by from now (the subscription's
// ack deadline when 0) and returns the new deadline.
func (d *Delivery) Extend(ctx context.Context, by time.Duration) (time.Time, error) {
	resp, err := call(d.c, ctx, d.c.consume.Extend, &ferryv1.ExtendRequest{
		ConsumerId: d.att.id, DeliveryIds: []string{d.ID}, By: durationOrNil(by)})
	if err != nil {
		return time.Time{}, err
	}
	if len(resp.Deadlines) != 1 {
		return time.Time{}, connect.NewError(connect.CodeInternal, errors.New("broker answered no deadline"))
	}
	return resp.Deadlines[0].AsTime(), nil
}

func (c *Client) ack(ctx context.Context, att *attachment, ids []string) error {
	grant := att.credit.take()
	_, err := call(c, ctx, c.consume.Ack, &ferryv1.AckRequest{ConsumerId: att.id, DeliveryIds: ids, Grant: grant})
	c.settled(att, grant, err)
	return err
}

// settled keeps the credit an Ack, Nack or Commit carried when the broker
// did not apply it: the call did not reach it, or was refused as a whole.
func (c *Client) settled(att *attachment, grant int32, err error) {
	if err == nil {
		return
	}
	switch connect.CodeOf(err) {
	case connect.CodeNotFound, connect.CodeFailedPrecondition:
		// The broker applied the grant though the settlement failed (an
		// unknown delivery, a partition not owned); see consume.proto.
	default:
		att.credit.giveBack(grant)
	}
}

// QueueConsumer is a consumer attached to a queue subscription
// (ConsumeQueue). Its methods are safe for concurrent use: several
// goroutines may call Next and settle deliveries.
type QueueConsumer struct {
	c     *Client
	core  *core[*Delivery]
	topic string
	sub   string
	once  sync.Once
	acks  acker // SubscribeQueue's
}

// ConsumeQueue attaches a consumer to the queue subscription sub of topic
// and returns once the broker accepted it (retrying while the broker is
// unreachable, until ctx ends; ctx does not bound the consumer's life).
// Take deliveries with Next; Close it when done.
//
// When its stream fails with a retryable error (the broker restarts, the
// network drops) the consumer reattaches with backoff. Deliveries received
// on the failed stream and not yet taken are dropped, and those taken but
// not settled can no longer be acked (NotFound): the broker delivers them
// all again. A non-retryable error (NotFound topic or subscription,
// FailedPrecondition when the subscription is deleted, PermissionDenied)
// ends the consumer: Next returns it.
func (c *Client) ConsumeQueue(ctx context.Context, topic, sub string, opts ...SubscribeOption) (*QueueConsumer, error) {
	sc, err := c.subscribeConfig(opts)
	if err != nil {
		return nil, err
	}
	q := &QueueConsumer{c: c, topic: topic, sub: sub}
	q.acks.c = c
	q.core, err = startCore(ctx, c, "queue "+topic+"/"+sub, sc.credit, false, q.dial)
	if err != nil {
		return nil, err
	}
	if err := c.addConsumer(q); err != nil {
		q.core.close()
		return nil, err
	}
	return q, nil
}

func (q *QueueConsumer) dial(ctx context.Context, s *session[*Delivery]) (func() error, error) {
	stream, err := q.c.consume.ConsumeQueue(ctx, connect.NewRequest(&ferryv1.ConsumeQueueRequest{
		Topic: q.topic, Subscription: q.sub, Credit: int32(cap(s.items))}))
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
		resp := first
		for {
			for _, d := range resp.GetDeliveries() {
				if err := push(ctx, s, q.newDelivery(s.attachment, d)); err != nil {
					return err
				}
			}
			if !stream.Receive() {
				return stream.Err()
			}
			resp = stream.Msg()
		}
	}, nil
}

// firstResponse reads a consume stream's first response, which names the
// consumer.
func firstResponse[T any, PT interface {
	*T
	GetConsumerId() string
}](stream *connect.ServerStreamForClient[T]) (PT, error) {
	if !stream.Receive() {
		err := stream.Err()
		stream.Close()
		if err == nil {
			err = connect.NewError(connect.CodeUnavailable, errors.New("stream ended before its first response"))
		}
		return nil, err
	}
	msg := PT(stream.Msg())
	if msg.GetConsumerId() == "" {
		stream.Close()
		return nil, connect.NewError(connect.CodeInternal, errors.New("first response names no consumer"))
	}
	return msg, nil
}

func (q *QueueConsumer) newDelivery(att *attachment, d *ferryv1.Delivery) *Delivery {
	out := &Delivery{ID: d.GetId(), Count: d.GetCount(), c: q.c, att: att}
	if d.Message != nil {
		out.Message = fromProtoMessage(d.Message)
	}
	if d.Deadline != nil {
		out.Deadline = d.Deadline.AsTime()
	}
	return out
}

// Next waits for the next delivery, until ctx ends or the consumer ends
// (ErrClosed after Close, or the error that ended it).
func (q *QueueConsumer) Next(ctx context.Context) (*Delivery, error) {
	d, s, err := q.core.next(ctx)
	if err != nil {
		return nil, err
	}
	s.credit.consumed(1)
	return d, nil
}

// Deliveries iterates over the deliveries as Next returns them (settling
// them is still the loop's job). The iteration ends after yielding the
// error that stops it (ctx's, ErrClosed, or the consumer's).
func (q *QueueConsumer) Deliveries(ctx context.Context) iter.Seq2[*Delivery, error] {
	return func(yield func(*Delivery, error) bool) {
		for {
			d, err := q.Next(ctx)
			if !yield(d, err) || err != nil {
				return
			}
		}
	}
}

// Ack acknowledges several deliveries of this consumer with one call per
// stream they came from.
func (q *QueueConsumer) Ack(ctx context.Context, ds ...*Delivery) error {
	var errs []error
	for len(ds) > 0 {
		att := ds[0].att
		var ids []string
		rest := ds[:0:0]
		for _, d := range ds {
			if d.att == att {
				d.settled.Store(true)
				ids = append(ids, d.ID)
			} else {
				rest = append(rest, d)
			}
		}
		if err := q.c.ack(ctx, att, ids); err != nil {
			errs = append(errs, err)
		}
		ds = rest
	}
	return errors.Join(errs...)
}

// Close detaches the consumer; the broker delivers again what it did not
// acknowledge. Next then returns ErrClosed.
func (q *QueueConsumer) Close() error {
	q.once.Do(func() {
		q.acks.wait()
		q.core.close()
		q.c.removeConsumer(q)
	})
	return nil
}

// SubscribeQueue consumes the queue subscription sub of topic with
// handler, on WithConcurrency goroutines (default 1), until ctx ends
// (it then returns nil), the Client is closed (ErrClosed) or the consumer
// fails for good (that error). A delivery is acked when the handler
// returns nil and nacked (WithNackDelay) when it returns an error, unless
// the handler settled it itself. Acks are sent in the background, many
// deliveries per call under load; SubscribeQueue returns once they are
// sent. See ConsumeQueue for reconnection.
func (c *Client) SubscribeQueue(ctx context.Context, topic, sub string, handler func(context.Context, *Delivery) error, opts ...SubscribeOption) error {
	sc, err := c.subscribeConfig(opts)
	if err != nil {
		return err
	}
	q, err := c.ConsumeQueue(ctx, topic, sub, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer q.Close()
	acks := &q.acks
	err = runWorkers(sc.concurrency, func() error {
		for {
			d, err := q.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			herr := handler(ctx, d)
			if d.settled.Load() {
				continue
			}
			if herr == nil {
				acks.add(d)
				continue
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
			err = d.Nack(sctx, sc.nackDelay)
			cancel()
			if err != nil {
				c.log.Debug("ferry client: nack failed", "topic", topic, "subscription", sub,
					"delivery", d.ID, "handler_err", herr, "err", err)
			}
		}
	})
	acks.wait()
	return err
}

// acker acknowledges the deliveries SubscribeQueue's handlers finished,
// in batches: one Ack call at a time per consumer, carrying every delivery
// finished while the previous call was under way. The first ack of a quiet
// spell goes at once; under load a call acknowledges many deliveries.
type acker struct {
	c       *Client
	mu      sync.Mutex
	pending map[*attachment][]string
	idle    chan struct{} // nil while idle; closed when the sender stops
}

func (a *acker) add(d *Delivery) {
	d.settled.Store(true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[*attachment][]string{}
	}
	a.pending[d.att] = append(a.pending[d.att], d.ID)
	if a.idle == nil {
		a.idle = make(chan struct{})
		go a.run(a.idle)
	}
}

func (a *acker) run(idle chan struct{}) {
	defer close(idle)
	for {
		a.mu.Lock()
		batch := a.pending
		a.pending = nil
		if len(batch) == 0 {
			a.idle = nil
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		for att, ids := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
			if err := a.c.ack(ctx, att, ids); err != nil {
				a.c.log.Debug("ferry client: ack failed", "deliveries", len(ids), "err", err)
			}
			cancel()
		}
	}
}

// wait returns once every delivery added so far is acknowledged (or
// failed to be).
func (a *acker) wait() {
	a.mu.Lock()
	idle := a.idle
	a.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// runWorkers runs n copies of work and returns the first error.
func runWorkers(n int, work func() error) error {
	errs := make(chan error, n)
	for range n {
		go func() { errs <- work() }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
