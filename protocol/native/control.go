package native

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
)

// queueMember finds the queue member that acknowledgements name: a
// ConsumeQueue consumer by id, or the shared member of Receive.
func (s *Service) queueMember(consumerID, topic, sub string) (*engine.QueueMember, error) {
	if consumerID == "" {
		if topic == "" || sub == "" {
			return nil, invalid("name a consumer_id, or a topic and subscription for deliveries from Receive")
		}
		return s.sharedMember(topic, sub)
	}
	c, err := s.consumer(consumerID)
	if err != nil {
		return nil, err
	}
	if c.queue == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			errorf("consumer %q is not a queue consumer", consumerID))
	}
	return c.queue, nil
}

// sharedMember returns the queue member that serves Receive on a
// subscription, joining one when there is none (or the last one ended).
func (s *Service) sharedMember(topic, sub string) (*engine.QueueMember, error) {
	if s.draining() {
		return nil, errShuttingDown
	}
	k := subKey{topic, sub}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.shared[k]; m != nil {
		return m, nil
	}
	m, err := s.b.JoinQueue(topic, sub)
	if err != nil {
		return nil, toConnect(err)
	}
	s.shared[k] = m
	return m, nil
}

// dropShared forgets a subscription's shared member once it has ended.
func (s *Service) dropShared(topic, sub string) {
	s.mu.Lock()
	m := s.shared[subKey{topic, sub}]
	delete(s.shared, subKey{topic, sub})
	s.mu.Unlock()
	if m != nil {
		m.Leave()
	}
}

// grant adds n credit to a consumer, when n > 0.
func (s *Service) grant(consumerID string, n int32) error {
	if n < 0 {
		return invalid("grant %d is negative", n)
	}
	if n == 0 || consumerID == "" {
		return nil
	}
	c, err := s.consumer(consumerID)
	if err != nil {
		return err
	}
	c.credit.add(int(n))
	return nil
}

func (h consumers) Grant(ctx context.Context, req *connect.Request[ferryv1.GrantRequest]) (*connect.Response[ferryv1.GrantResponse], error) {
	if req.Msg.Credit < 1 {
		return nil, invalid("credit %d is not positive", req.Msg.Credit)
	}
	c, err := h.s.consumer(req.Msg.ConsumerId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.GrantResponse{Credit: int32(c.credit.add(int(req.Msg.Credit)))}), nil
}

func (h consumers) Ack(ctx context.Context, req *connect.Request[ferryv1.AckRequest]) (*connect.Response[ferryv1.AckResponse], error) {
	m := req.Msg
	q, err := h.s.queueMember(m.ConsumerId, m.Topic, m.Subscription)
	if err != nil {
		return nil, err
	}
	err = q.Ack(m.DeliveryIds...)
	if gerr := h.s.grant(m.ConsumerId, m.Grant); gerr != nil && err == nil {
		err = gerr
	}
	if err != nil {
		return nil, h.s.memberError(m.Topic, m.Subscription, err)
	}
	return connect.NewResponse(&ferryv1.AckResponse{}), nil
}

func (h consumers) Nack(ctx context.Context, req *connect.Request[ferryv1.NackRequest]) (*connect.Response[ferryv1.NackResponse], error) {
	m := req.Msg
	q, err := h.s.queueMember(m.ConsumerId, m.Topic, m.Subscription)
	if err != nil {
		return nil, err
	}
	delay := fromDur(m.Delay)
	if delay < 0 {
		return nil, invalid("delay %v is negative", delay)
	}
	var errs []error
	for _, id := range m.DeliveryIds {
		if err := q.Nack(id, delay); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.s.grant(m.ConsumerId, m.Grant); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, h.s.memberError(m.Topic, m.Subscription, err)
	}
	return connect.NewResponse(&ferryv1.NackResponse{}), nil
}

func (h consumers) Extend(ctx context.Context, req *connect.Request[ferryv1.ExtendRequest]) (*connect.Response[ferryv1.ExtendResponse], error) {
	m := req.Msg
	q, err := h.s.queueMember(m.ConsumerId, m.Topic, m.Subscription)
	if err != nil {
		return nil, err
	}
	by := fromDur(m.By)
	if by < 0 {
		return nil, invalid("by %v is negative", by)
	}
	out := &ferryv1.ExtendResponse{Deadlines: make([]*timestamppb.Timestamp, len(m.DeliveryIds))}
	var errs []error
	for i, id := range m.DeliveryIds {
		d, err := q.Extend(id, by)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Deadlines[i] = ts(d)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, h.s.memberError(m.Topic, m.Subscription, err)
	}
	return connect.NewResponse(out), nil
}

func (h consumers) Commit(ctx context.Context, req *connect.Request[ferryv1.CommitRequest]) (*connect.Response[ferryv1.CommitResponse], error) {
	c, err := h.s.consumer(req.Msg.ConsumerId)
	if err != nil {
		return nil, err
	}
	if c.stream == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			errorf("consumer %q is not a stream member", req.Msg.ConsumerId))
	}
	offsets := make(map[int]int64, len(req.Msg.Offsets))
	for p, off := range req.Msg.Offsets {
		if p < 0 || off < 0 {
			return nil, invalid("partition %d offset %d: neither may be negative", p, off)
		}
		offsets[int(p)] = off
	}
	// The grant stands even when the commit fails, as Ack's does: the
	// client paid its credit back with this call either way.
	if err := h.s.grant(req.Msg.ConsumerId, req.Msg.Grant); err != nil {
		return nil, err
	}
	if len(offsets) > 0 {
		if err := c.stream.Commit(offsets); err != nil {
			return nil, toConnect(err)
		}
	}
	return connect.NewResponse(&ferryv1.CommitResponse{}), nil
}

func (h consumers) Receive(ctx context.Context, req *connect.Request[ferryv1.ReceiveRequest]) (*connect.Response[ferryv1.ReceiveResponse], error) {
	s := h.s
	m := req.Msg
	n := int(m.MaxMessages)
	if n < 0 || n > s.opts.MaxCredit {
		return nil, invalid("max_messages %d is out of range: 0 to %d", n, s.opts.MaxCredit)
	}
	n = max(n, 1)
	q, err := s.sharedMember(m.Topic, m.Subscription)
	if err != nil {
		return nil, err
	}
	wait := s.waitBound(fromDur(m.Wait))
	var ds []engine.Delivery
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		ds, err = q.Receive(wctx, n)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = nil
		}
	} else {
		ds, err = q.Poll(n)
	}
	if err != nil {
		return nil, s.memberError(m.Topic, m.Subscription, err)
	}
	return connect.NewResponse(&ferryv1.ReceiveResponse{Deliveries: deliveriesToProto(ds)}), nil
}

// memberError converts an error of a queue member; a shared member that has
// ended (its subscription deleted) is forgotten, so the next call joins
// afresh or reports the subscription unknown.
func (s *Service) memberError(topic, sub string, err error) error {
	if errors.Is(err, engine.ErrMemberClosed) && topic != "" {
		s.dropShared(topic, sub)
		if _, derr := s.b.DescribeSubscription(topic, sub); derr != nil {
			return toConnect(derr)
		}
	}
	return toConnect(err)
}
