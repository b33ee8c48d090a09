package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// The three consumers share one machine, core: it keeps a consume stream
// attached, reattaching with backoff when the stream fails with a
// retryable error, and hands what the streams receive to the application
// through a buffer bounded by the credit.
//
// Credit: the request of each stream grants the consumer's credit W; the
// broker sends at most W messages more than the client granted since.
// Each message the application takes (or the client drops, for a revoked
// partition) is owed back; once W/2 are owed, a Grant call pays them back,
// unless an Ack, Nack or Commit carried them first in its grant field. So
// at most W received messages wait in the client, and the broker never
// stops while the application keeps up.

// attachment is one consume stream: the broker's consumer id, its credit
// and its end.
type attachment struct {
	id     string // consumer_id, for the unary calls
	member string // stream member id
	credit *credit
	cancel context.CancelFunc
	done   chan struct{} // closed when the stream ended
	err    error         // why, set before done is closed
}

// session is one stream's hand-off to the application: each response's
// items arrive as one slice in items (a channel send per response, not per
// message), and head holds what is left of the slice being handed out.
// The credit bounds what all the slices hold together, so items' capacity,
// the credit, always suffices.
type session[T any] struct {
	*attachment
	items chan []T

	// ready holds a token while items may be waiting (in items or head):
	// push puts one after each slice, and pop another while some remain,
	// so every caller of next waiting meanwhile (queue consumers take from
	// several goroutines) gets to them. Only pop receives from items, with
	// mu held, so what pending sees is all there is.
	ready chan struct{}

	mu   sync.Mutex
	head []T
}

// dialFunc opens a stream for s within ctx, reads its first response
// (setting s.id) and returns the pump: the loop that receives the rest
// into s.items until the stream fails.
type dialFunc[T any] func(ctx context.Context, s *session[T]) (pump func() error, err error)

type core[T any] struct {
	c       *Client
	what    string // names the consumer in logs
	dial    dialFunc[T]
	credit  int
	keepOld bool // hand out what an ended stream received (ephemeral)

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	cur     *session[T]   // nil once ended
	old     []*session[T] // ended streams whose items are still to hand out (keepOld)
	changed chan struct{} // closed when cur changes
	err     error         // why it ended
	ended   chan struct{}
}

// startCore attaches the first stream, retrying retryable failures until
// ctx ends, and keeps the consumer attached in the background afterwards.
func startCore[T any](ctx context.Context, c *Client, what string, credit int, keepOld bool, dial dialFunc[T]) (*core[T], error) {
	k := &core[T]{c: c, what: what, dial: dial, credit: credit, keepOld: keepOld,
		changed: make(chan struct{}), ended: make(chan struct{})}
	k.ctx, k.cancel = context.WithCancel(c.ctx)
	bo := c.newBackoff()
	for {
		s, err := k.attach(ctx)
		if err == nil {
			k.cur = s
			break
		}
		if k.ctx.Err() != nil {
			k.cancel()
			return nil, ErrClosed
		}
		if ctx.Err() != nil || !retryable(err) {
			k.cancel()
			return nil, ctxErr(ctx, err)
		}
		d := bo.next()
		c.log.Warn("ferry client: cannot attach consumer, retrying", "consumer", what, "err", err, "retry_in", d)
		if err := sleep(ctx, d); err != nil {
			k.cancel()
			return nil, err
		}
	}
	k.wg.Add(1)
	go k.run(k.cur)
	return k, nil
}

// attach opens one stream. ctx bounds the wait for its first response;
// the stream itself lives until the consumer is closed.
func (k *core[T]) attach(ctx context.Context) (*session[T], error) {
	sctx, scancel := context.WithCancel(k.ctx)
	s := &session[T]{
		attachment: &attachment{cancel: scancel, done: make(chan struct{})},
		items:      make(chan []T, k.credit),
		ready:      make(chan struct{}, 1),
	}
	stop := context.AfterFunc(ctx, scancel)
	pump, err := k.dial(sctx, s)
	stop()
	if err != nil {
		scancel()
		return nil, err
	}
	s.credit = newCredit(k.c, s.id, k.credit)
	k.wg.Add(2)
	go func() {
		defer k.wg.Done()
		s.credit.run(sctx)
	}()
	go func() {
		defer k.wg.Done()
		err := pump()
		if err == nil {
			err = connect.NewError(connect.CodeUnavailable, errors.New("stream ended by the broker"))
		}
		s.err = err
		scancel()
		close(s.done)
	}()
	return s, nil
}

func (k *core[T]) run(s *session[T]) {
	defer k.wg.Done()
	bo := k.c.newBackoff()
	for {
		select {
		case <-s.done:
		case <-k.ctx.Done():
		}
		if k.ctx.Err() != nil {
			k.end(ErrClosed)
			return
		}
		if !retryable(s.err) {
			k.end(s.err)
			return
		}
		k.c.log.Warn("ferry client: consumer stream ended, reattaching", "consumer", k.what, "err", s.err)
		for {
			if sleep(k.ctx, bo.next()) != nil {
				k.end(ErrClosed)
				return
			}
			ns, err := k.attach(k.ctx)
			if err == nil {
				bo.reset()
				k.replace(ns)
				s = ns
				break
			}
			if k.ctx.Err() != nil {
				k.end(ErrClosed)
				return
			}
			if !retryable(err) {
				k.end(err)
				return
			}
			k.c.log.Warn("ferry client: cannot reattach consumer", "consumer", k.what, "err", err)
		}
	}
}

func (k *core[T]) replace(s *session[T]) {
	k.mu.Lock()
	k.keepItemsLocked()
	k.cur = s
	close(k.changed)
	k.changed = make(chan struct{})
	k.mu.Unlock()
}

func (k *core[T]) end(err error) {
	k.mu.Lock()
	if !errors.Is(err, ErrClosed) {
		// What the last stream received comes before the error; after
		// Close there is nothing more to take.
		k.keepItemsLocked()
	}
	k.cur = nil
	k.err = err
	close(k.changed)
	close(k.ended)
	k.mu.Unlock()
}

// keepItemsLocked queues, with keepOld, the items the current stream
// received but the application has not taken, to be handed out before
// any later stream's. It is called when the current stream has ended,
// so nothing more arrives in its items.
func (k *core[T]) keepItemsLocked() {
	if k.keepOld && k.cur != nil && k.cur.pending() {
		k.old = append(k.old, k.cur)
	}
}

// current returns the attached stream, nil while reattaching or ended.
func (k *core[T]) current() *session[T] {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil || k.cur.ended() {
		return nil
	}
	return k.cur
}

// next waits for the next item and returns a pointer to it, which stays
// valid (items are never reused). What a failed stream received but the
// application did not take is dropped (the broker delivers it again),
// except with keepOld: then it is all handed out, in the order received,
// before anything the next stream receives, and before the error that
// ended the consumer (but not after Close). It is safe for concurrent use.
func (k *core[T]) next(ctx context.Context) (*T, *session[T], error) {
	for {
		k.mu.Lock()
		for len(k.old) > 0 {
			o := k.old[0]
			if it := o.pop(); it != nil {
				k.mu.Unlock()
				return it, o, nil
			}
			k.old[0] = nil
			k.old = k.old[1:]
		}
		s, changed, err := k.cur, k.changed, k.err
		k.mu.Unlock()
		if s == nil {
			return nil, nil, err
		}
		if !k.keepOld && s.ended() {
			// What the ended stream received is given up: the broker
			// delivers it again.
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		if it := s.pop(); it != nil {
			return it, s, nil
		}
		select {
		case <-s.ready:
			continue
		case <-s.done:
			if k.keepOld {
				if it := s.pop(); it != nil {
					return it, s, nil
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// pop takes the next item without waiting, nil when there is none.
func (s *session[T]) pop() *T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.head) == 0 {
		select {
		case s.head = <-s.items:
		default:
			return nil
		}
	}
	it := &s.head[0]
	s.head = s.head[1:]
	if len(s.head) > 0 || len(s.items) > 0 {
		s.signal()
	}
	return it
}

// signal leaves a token in ready, unless one is there.
func (s *session[T]) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// ended says whether the stream has ended.
func (s *session[T]) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// pending says whether items are left to hand out.
func (s *session[T]) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.head) > 0 || len(s.items) > 0
}

// close ends the stream and waits for the consumer's goroutines.
func (k *core[T]) close() {
	k.cancel()
	k.wg.Wait()
}

// push hands one response's items to the application's side, unless the
// stream ends first.
func push[T any](ctx context.Context, s *session[T], items []T) error {
	if len(items) == 0 {
		return nil
	}
	select {
	case s.items <- items:
		s.signal()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// credit counts what the application consumed and the broker is owed.
type credit struct {
	c         *Client
	id        string
	threshold int32
	kick      chan struct{}
	pending   atomic.Int32
}

func newCredit(c *Client, id string, window int) *credit {
	return &credit{c: c, id: id, threshold: int32(max(1, window/2)), kick: make(chan struct{}, 1)}
}

// consumed records n messages taken or dropped.
func (cr *credit) consumed(n int32) {
	if cr.pending.Add(n) >= cr.threshold {
		select {
		case cr.kick <- struct{}{}:
		default:
		}
	}
}

// take returns everything owed, for an Ack, Nack or Commit to carry.
func (cr *credit) take() int32 { return cr.pending.Swap(0) }

// giveBack returns credit a failed call carried.
func (cr *credit) giveBack(n int32) {
	if n > 0 {
		cr.consumed(n)
	}
}

// run grants what is owed once it reaches the threshold, until ctx ends.
func (cr *credit) run(ctx context.Context) {
	for {
		select {
		case <-cr.kick:
		case <-ctx.Done():
			return
		}
		if cr.pending.Load() < cr.threshold {
			continue
		}
		n := cr.pending.Swap(0)
		if n == 0 {
			continue
		}
		_, err := cr.c.consume.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: cr.id, Credit: n}))
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		cr.c.log.Debug("ferry client: grant failed", "consumer_id", cr.id, "err", err)
		if sleep(ctx, cr.c.cfg.backoffMin) != nil {
			return
		}
		cr.giveBack(n)
	}
}

// receiveAhead hands handle the first response and then each that stream
// receives, in order, receiving the next in its own goroutine meanwhile:
// reading HTTP/2 frames and unmarshalling one response overlaps decoding
// the one before and handing it over (fan-out over loopback went about a
// fifth faster). cancel ends the stream's context; receiveAhead calls it
// and waits for the receiving goroutine before it returns, so the caller
// may close the stream then. It returns handle's error, else the stream's
// (nil when the stream ended cleanly).
func receiveAhead[R any](stream *connect.ServerStreamForClient[R], first *R, cancel context.CancelFunc, handle func(*R) error) error {
	ch := make(chan *R, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for stream.Receive() {
			select {
			case ch <- stream.Msg():
			case <-stop:
				return
			}
		}
	}()
	err := handle(first)
	for err == nil {
		r, ok := <-ch
		if !ok {
			break
		}
		err = handle(r)
	}
	close(stop)
	cancel()
	<-done
	if err != nil {
		return err
	}
	return stream.Err()
}
