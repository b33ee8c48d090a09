package native

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
)

// consumers serves ferry.v1.ConsumeService.
type consumers struct{ s *Service }

// maxBatch bounds the messages taken from the engine at once; maxFrame
// bounds the message bytes of one stream response, which splits a large
// take. Large responses matter: a response costs about as much as dozens
// of small messages (replay over loopback went from 370k to 550k msgs/s
// when maxBatch went from 500 to 2000).
const (
	maxBatch = 2000
	maxFrame = 1 << 20
)

// frames splits n items, of which measure gives the bytes and the messages
// they hold, into runs of at most maxFrame bytes (at least one item each),
// calling send for each with the messages it holds. Each item is measured
// once.
func frames(n int, measure func(int) (bytes, msgs int), send func(lo, hi, msgs int) error) error {
	if n == 0 {
		return nil
	}
	nb, nm := measure(0)
	for lo := 0; lo < n; {
		hi, bytes, msgs := lo+1, nb, nm
		for hi < n {
			nb, nm = measure(hi)
			if bytes+nb > maxFrame {
				break
			}
			bytes, msgs = bytes+nb, msgs+nm
			hi++
		}
		if err := send(lo, hi, msgs); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// measureMessage is a message's bytes and count, for pump.
func measureMessage(m *engine.Message) (bytes, msgs int) {
	n := len(m.Key) + len(m.Value) + len(m.ID) + 64
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n, 1
}

// measureBatches is stored batches' bytes and the records they deliver.
func measureBatches(b *engine.Batches) (bytes, msgs int) {
	return len(b.Data) + len(b.Topic) + 32, b.Count()
}

// consumer is one open consume stream, named in the unary calls by id.
type consumer struct {
	id     string
	queue  *engine.QueueMember  // ConsumeQueue
	stream *engine.StreamMember // ConsumeStream
	credit *credit
}

func (s *Service) register(c *consumer) {
	c.id = newID()
	s.mu.Lock()
	s.consumers[c.id] = c
	s.mu.Unlock()
}

func (s *Service) unregister(c *consumer) {
	s.mu.Lock()
	delete(s.consumers, c.id)
	s.mu.Unlock()
}

func (s *Service) consumer(id string) (*consumer, error) {
	s.mu.Lock()
	c := s.consumers[id]
	s.mu.Unlock()
	if c == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no consumer %q: its stream has ended", id))
	}
	return c, nil
}

// openConsumer starts a consume stream: it validates the initial credit and
// counts the stream against MaxStreams until release.
func (s *Service) openConsumer(credit int32) (release func(), err error) {
	if credit < 1 || int(credit) > s.opts.MaxCredit {
		return nil, invalid("credit %d is out of range: 1 to %d", credit, s.opts.MaxCredit)
	}
	return s.openStream()
}

// attach registers c as a consumer with the given credit and returns the
// stream's context, which also ends when the server drains; detach undoes
// both.
func (s *Service) attach(ctx context.Context, c *consumer, credit int32) (_ context.Context, detach func()) {
	c.credit = newCredit(int(credit), s.opts.MaxCredit)
	s.register(c)
	ctx, cancel := s.untilDrain(ctx)
	return ctx, func() { cancel(); s.unregister(c) }
}

// untilDrain is ctx, also ended when the server drains: streams and long
// polls end at once on shutdown.
func (s *Service) untilDrain(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.drainCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// pump is the loop of the consume streams: wait for credit, take what the
// engine has (up to the credit), send it in frames. With tick > 0 the wait
// for credit gives up after tick and take is called with 0 (the stream
// member heartbeats meanwhile); take may return nothing. measure gives an
// item's bytes and how many messages it holds, which is what it spends of
// the credit.
func pump[T any](ctx context.Context, s *Service, c *consumer, tick time.Duration, take func(context.Context, int) ([]T, error), measure func(*T) (bytes, msgs int), send func([]T) error) error {
	for {
		n, err := c.credit.wait(ctx, tick)
		if err != nil {
			return s.streamEnd(err)
		}
		items, err := take(ctx, min(n, maxBatch))
		if err != nil {
			return s.streamEnd(err)
		}
		if len(items) == 0 {
			continue
		}
		err = frames(len(items), func(i int) (int, int) { return measure(&items[i]) }, func(lo, hi, msgs int) error {
			// Spent before the frame goes: the client may grant as soon
			// as it has it.
			c.credit.spend(msgs)
			return s.send(ctx, func() error { return send(items[lo:hi]) })
		})
		if err != nil {
			return err
		}
	}
}

// streamEnd is the error a consume stream ends with after err.
func (s *Service) streamEnd(err error) error {
	if s.draining() {
		return errShuttingDown
	}
	if errors.Is(err, engine.ErrMemberClosed) {
		return connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("consumer ended: its subscription was deleted or it was expelled (%v)", err))
	}
	return toConnect(err)
}

func (h consumers) ConsumeQueue(ctx context.Context, req *connect.Request[ferryv1.ConsumeQueueRequest], stream *connect.ServerStream[ferryv1.ConsumeQueueResponse]) error {
	s := h.s
	release, err := s.openConsumer(req.Msg.Credit)
	if err != nil {
		return err
	}
	defer release()
	m, err := s.b.JoinQueue(req.Msg.Topic, req.Msg.Subscription)
	if err != nil {
		return toConnect(err)
	}
	defer m.Leave()
	c := &consumer{queue: m}
	ctx, detach := s.attach(ctx, c, req.Msg.Credit)
	defer detach()

	if err := s.send(ctx, func() error { return stream.Send(&ferryv1.ConsumeQueueResponse{ConsumerId: c.id}) }); err != nil {
		return err
	}
	send := func(ds []engine.Delivery) error {
		return stream.Send(&ferryv1.ConsumeQueueResponse{Deliveries: deliveriesToProto(ds)})
	}
	if req.Msg.RecordBatches {
		send = func(ds []engine.Delivery) error {
			return s.deliveries.encode(ds, func(bs []*ferryv1.DeliveryBatch) error {
				return stream.Send(&ferryv1.ConsumeQueueResponse{Batches: bs})
			})
		}
	}
	return pump(ctx, s, c, 0, m.Receive,
		func(d *engine.Delivery) (int, int) { return measureMessage(&d.Message) }, send)
}

func (h consumers) ConsumeStream(ctx context.Context, req *connect.Request[ferryv1.ConsumeStreamRequest], stream *connect.ServerStream[ferryv1.ConsumeStreamResponse]) error {
	s := h.s
	release, err := s.openConsumer(req.Msg.Credit)
	if err != nil {
		return err
	}
	defer release()
	timeout := fromDur(req.Msg.SessionTimeout)
	if timeout < 0 {
		return invalid("session_timeout %v is negative", timeout)
	}
	m, err := s.b.JoinStream(req.Msg.Topic, req.Msg.Subscription, timeout)
	if err != nil {
		return toConnect(err)
	}
	defer m.Leave()
	if timeout == 0 {
		timeout = engine.DefaultSessionTimeout
	}
	c := &consumer{stream: m}
	ctx, detach := s.attach(ctx, c, req.Msg.Credit)
	defer detach()

	err = s.send(ctx, func() error {
		return stream.Send(&ferryv1.ConsumeStreamResponse{ConsumerId: c.id, MemberId: m.ID()})
	})
	if err != nil {
		return err
	}
	// The loop wakes at least this often to heartbeat and to tell the
	// client of a new assignment; a rebalance waits for the old owner to
	// let go, so this also bounds how long a handover takes.
	tick := min(timeout/3, 500*time.Millisecond)
	var sent *ferryv1.Assignment
	// assign heartbeats the member and tells the client when its
	// partitions changed; it returns the partitions owned now.
	assign := func() ([]int, error) {
		owned, gen, err := m.Heartbeat()
		if err != nil {
			return nil, err
		}
		if sent == nil || sent.Generation != gen || !sameParts(sent.Partitions, owned) {
			sent = &ferryv1.Assignment{Generation: gen, Partitions: int32s(owned)}
			err := s.send(ctx, func() error { return stream.Send(&ferryv1.ConsumeStreamResponse{Assignment: sent}) })
			if err != nil {
				return nil, err
			}
		}
		return owned, nil
	}
	if req.Msg.RecordBatches {
		// pump sends each take before the next: the takes can share one
		// scratch.
		var scratch engine.Scratch
		fetch := func(ctx context.Context, n int) ([]engine.Batches, error) { return m.FetchBatches(ctx, n, &scratch) }
		return pump(ctx, s, c, tick, fetchOwned(m, tick, assign, fetch, func(b *engine.Batches) int { return b.Partition }),
			measureBatches,
			func(bs []engine.Batches) error {
				raw, msgs, err := splitBatches(bs)
				if err != nil {
					return toConnect(err)
				}
				return stream.Send(&ferryv1.ConsumeStreamResponse{Batches: raw, Messages: msgs})
			})
	}
	return pump(ctx, s, c, tick, fetchOwned(m, tick, assign, m.Fetch, func(m *engine.Message) int { return m.Partition }),
		measureMessage,
		func(msgs []engine.Message) error {
			return stream.Send(&ferryv1.ConsumeStreamResponse{Messages: messagesToProto(msgs)})
		})
}

// fetchOwned is a stream member's take for pump: it fetches what the owned
// partitions have (nothing when n is 0: the wait for credit timed out, and
// only the heartbeat is due), waiting up to tick. assign heartbeats and
// tells the client of a new assignment, returning the partitions owned.
func fetchOwned[T any](m *engine.StreamMember, tick time.Duration, assign func() ([]int, error), fetch func(context.Context, int) ([]T, error), partition func(*T) int) func(context.Context, int) ([]T, error) {
	return func(ctx context.Context, n int) ([]T, error) {
		if _, err := assign(); err != nil || n == 0 {
			return nil, err
		}
		fctx, fcancel := context.WithTimeout(ctx, tick)
		items, err := fetch(fctx, n)
		fcancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return nil, nil
			}
			return nil, err
		}
		// Fetch heartbeats too and may have gained (or lost) partitions:
		// the client hears of a new assignment before any message of it,
		// and gets none of a partition it no longer owns.
		owned, err := assign()
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(items, func(it T) bool { return !slices.Contains(owned, partition(&it)) }), nil
	}
}

func (h consumers) Subscribe(ctx context.Context, req *connect.Request[ferryv1.SubscribeRequest], stream *connect.ServerStream[ferryv1.SubscribeResponse]) error {
	s := h.s
	release, err := s.openConsumer(req.Msg.Credit)
	if err != nil {
		return err
	}
	defer release()
	if req.Msg.Buffer < 0 {
		return invalid("buffer %d is negative", req.Msg.Buffer)
	}
	e, err := s.b.SubscribeEphemeral(req.Msg.Pattern, engine.EphemeralOptions{Buffer: req.Msg.Buffer})
	if err != nil {
		return toConnect(err)
	}
	defer e.Close()
	c := &consumer{}
	ctx, detach := s.attach(ctx, c, req.Msg.Credit)
	defer detach()

	if err := s.send(ctx, func() error { return stream.Send(&ferryv1.SubscribeResponse{ConsumerId: c.id}) }); err != nil {
		return err
	}
	if req.Msg.RecordBatches {
		var scratch engine.Scratch // as in ConsumeStream
		receive := func(ctx context.Context, n int) ([]engine.Batches, error) { return e.ReceiveBatches(ctx, n, &scratch) }
		return pump(ctx, s, c, 0, receive, measureBatches,
			func(bs []engine.Batches) error {
				raw, msgs, err := splitBatches(bs)
				if err != nil {
					return toConnect(err)
				}
				return stream.Send(&ferryv1.SubscribeResponse{Batches: raw, Messages: msgs})
			})
	}
	return pump(ctx, s, c, 0, e.Receive, measureMessage,
		func(msgs []engine.Message) error {
			return stream.Send(&ferryv1.SubscribeResponse{Messages: messagesToProto(msgs)})
		})
}

func sameParts(a []int32, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if int(a[i]) != b[i] {
			return false
		}
	}
	return true
}

func int32s(ps []int) []int32 {
	out := make([]int32, len(ps))
	for i, p := range ps {
		out[i] = int32(p)
	}
	return out
}
