package native

import (
	"context"
	"errors"
	"fmt"
	"time"

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
			fmt.Errorf("consumer %q is not a queue consumer", consumerID))
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

// dropShared forgets a subscription's shared member m (any member, when m
// is nil) and ends it. Comparing first keeps a call that saw an old member
// fail from dropping the new one another call has joined since.
func (s *Service) dropShared(topic, sub string, m *engine.QueueMember) {
	k := subKey{topic, sub}
	s.mu.Lock()
	cur := s.shared[k]
	if cur == nil || (m != nil && cur != m) {
		s.mu.Unlock()
		return
	}
	delete(s.shared, k)
	s.mu.Unlock()
	cur.Leave()
}

// dropTopicShared ends the shared members of a topic's subscriptions.
func (s *Service) dropTopicShared(topic string) {
	s.mu.Lock()
	var gone []*engine.QueueMember
	for k, m := range s.shared {
		if k.topic == topic {
			gone = append(gone, m)
			delete(s.shared, k)
		}
	}
	s.mu.Unlock()
	for _, m := range gone {
		m.Leave()
	}
}

// checkGrant validates a grant field before the call acts on anything, so
// that a call refused as invalid_argument has applied nothing.
func checkGrant(n int32) error {
	if n < 0 {
		return invalid("grant %d is negative", n)
	}
	return nil
}

// grant adds n credit to a consumer, when n > 0.
func (s *Service) grant(consumerID string, n int32) error {
	if n <= 0 || consumerID == "" {
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
	if err := checkGrant(m.Grant); err != nil {
		return nil, err
	}
	refs, err := deliveryRefs(m.Refs)
	if err != nil {
		return nil, err
	}
	q, err := h.s.queueMember(m.ConsumerId, m.Topic, m.Subscription)
	if err != nil {
		return nil, err
	}
	if len(m.DeliveryIds) > 0 || len(refs) == 0 {
		err = q.Ack(m.DeliveryIds...)
	}
	if len(refs) > 0 {
		err = errors.Join(err, q.AckRefs(refs...))
	}
	if gerr := h.s.grant(m.ConsumerId, m.Grant); gerr != nil && err == nil {
		err = gerr
	}
	if err != nil {
		return nil, h.s.memberError(m.ConsumerId, m.Topic, m.Subscription, q, err)
	}
	return connect.NewResponse(&ferryv1.AckResponse{}), nil
}

func (h consumers) Nack(ctx context.Context, req *connect.Request[ferryv1.NackRequest]) (*connect.Response[ferryv1.NackResponse], error) {
	m := req.Msg
	if err := checkGrant(m.Grant); err != nil {
		return nil, err
	}
	delay := fromDur(m.Delay)
	if delay < 0 {
		return nil, invalid("delay %v is negative", delay)
	}
	q, err := h.s.queueMember(m.ConsumerId, m.Topic, m.Subscription)
	if err != nil {
		return nil, err
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
		return nil, h.s.memberError(m.ConsumerId, m.Topic, m.Subscription, q, err)
	}
	return connect.NewResponse(&ferryv1.NackResponse{}), nil
}

func (h consumers) Extend(ctx context.Context, req *connect.Request[ferryv1.ExtendRequest]) (*connect.Response[ferryv1.ExtendResponse], error) {
	m := req.Msg
	by := fromDur(m.By)
	if by < 0 || by > maxExtend {
		return nil, invalid("by %v is out of range: 0 to %v", by, maxExtend)
	}
	q, err := h.s.queueMember(m.ConsumerId, m.Topic, m.Subscription)
	if err != nil {
		return nil, err
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
		return nil, h.s.memberError(m.ConsumerId, m.Topic, m.Subscription, q, err)
	}
	return connect.NewResponse(out), nil
}

func (h consumers) Commit(ctx context.Context, req *connect.Request[ferryv1.CommitRequest]) (*connect.Response[ferryv1.CommitResponse], error) {
	if err := checkGrant(req.Msg.Grant); err != nil {
		return nil, err
	}
	offsets := make(map[int]int64, len(req.Msg.Offsets))
	for p, off := range req.Msg.Offsets {
		if p < 0 || off < 0 {
			return nil, invalid("partition %d offset %d: neither may be negative", p, off)
		}
		offsets[int(p)] = off
	}
	c, err := h.s.consumer(req.Msg.ConsumerId)
	if err != nil {
		return nil, err
	}
	if c.stream == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("consumer %q is not a stream member", req.Msg.ConsumerId))
	}
	if len(offsets) > 0 {
		err = toConnect(c.stream.Commit(offsets))
	}
	// The grant stands unless the commit was refused as malformed (an
	// offset past the end): the rule of consume.proto.
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		h.s.grant(req.Msg.ConsumerId, req.Msg.Grant)
	}
	if err != nil {
		return nil, err
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
	ctx, cancel := s.untilDrain(ctx)
	defer cancel()
	wait := s.waitBound(fromDur(m.Wait))
	// A shared member that ended (its subscription was deleted, perhaps
	// created again since) is replaced once.
	for attempt := 0; ; attempt++ {
		q, err := s.sharedMember(m.Topic, m.Subscription)
		if err != nil {
			return nil, err
		}
		var ds []engine.Delivery
		if wait > 0 {
			wctx, wcancel := context.WithTimeout(ctx, wait)
			ds, err = q.Receive(wctx, n)
			wcancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = nil
			}
		} else {
			ds, err = q.Poll(n)
		}
		if errors.Is(err, engine.ErrMemberClosed) && attempt == 0 && !s.draining() {
			s.dropShared(m.Topic, m.Subscription, q)
			continue
		}
		if err != nil {
			return nil, s.memberError("", m.Topic, m.Subscription, q, err)
		}
		return connect.NewResponse(&ferryv1.ReceiveResponse{Deliveries: deliveriesToProto(ds)}), nil
	}
}

// maxExtend bounds Extend: a delivery held longer than this should be
// given back and taken again.
const maxExtend = 12 * time.Hour

// memberError converts an error of queue member q. During shutdown every
// failure is unavailable (members are ending). A shared member that ended
// is forgotten, so the next call joins afresh; its deliveries went back to
// the subscription with it.
func (s *Service) memberError(consumerID, topic, sub string, q *engine.QueueMember, err error) error {
	if s.draining() {
		return errShuttingDown
	}
	if errors.Is(err, engine.ErrMemberClosed) && consumerID == "" && topic != "" {
		s.dropShared(topic, sub, q)
		if _, derr := s.b.DescribeSubscription(topic, sub); derr != nil {
			return toConnect(derr)
		}
		return connect.NewError(connect.CodeNotFound,
			fmt.Errorf("these deliveries are no longer in flight: the subscription was deleted and created again, so they went back to it"))
	}
	return toConnect(err)
}
