package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Future is the outcome of PublishAsync: where the message was stored, or
// why it was not.
type Future struct {
	done chan struct{}
	res  Published
	err  error
}

// Done is closed once the future is resolved.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait returns the outcome once the broker acknowledged the message's
// batch (or it failed), or ctx's error when ctx ends first: the message
// may still be stored later.
func (f *Future) Wait(ctx context.Context) (Published, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return Published{}, ctx.Err()
	}
}

// Result waits for the outcome, however long it takes.
func (f *Future) Result() (Published, error) {
	<-f.done
	return f.res, f.err
}

func failedFuture(err error) *Future {
	f := &Future{done: make(chan struct{}), err: err}
	close(f.done)
	return f
}

// PublishAsync queues msg for topic and returns at once (unless too much
// is outstanding, see WithMaxOutstanding and WithBlockOnFull); the Future
// resolves when the broker acknowledged it.
//
// Messages are gathered per topic (and partition, with PublishAsyncTo) into
// batches, sent when full (WithPublishBatchBytes, WithPublishBatchMessages)
// or after the linger (WithPublishLinger), over one bidirectional stream
// per Client without waiting for earlier batches. With a linger of zero a
// message is sent at once when no batch of its topic and partition awaits
// its acknowledgement; otherwise it joins the next batch, sent as soon as
// that acknowledgement comes (or once full): the more messages come in
// while the broker stores one batch, the larger the next. Messages of one
// topic and partition (or one key) are stored in the order of the calls.
//
// Delivery is at-least-once: when the stream fails, the client reconnects
// (WithReconnectBackoff) and sends again every batch not yet acknowledged,
// so a batch the broker stored just before the failure may be stored
// twice, unless its messages have IDs (set them, or WithAutoMessageID):
// the broker's dedup window then stores them once and answers the resend
// with Duplicate set. A batch the broker refuses (NotFound topic, a
// message too large) fails its futures with the broker's error, as does a
// stream the broker refuses for good (Unimplemented, PermissionDenied).
//
// A message that does not fit in one request (WithMaxRequestBytes, 8 MiB
// by default) on its own fails at once with InvalidArgument; batches are
// cut to fit. Should a publish stream still end with ResourceExhausted
// twice in a row with the same batch first in line (WithMaxRequestBytes
// set above the broker's max_request_bytes, or a broker at its max_streams
// limit), that batch's futures fail with the error rather than the batch
// being sent for ever, and the batches after it go on.
//
// ctx bounds only the wait for room; once queued, the message is sent
// until acknowledged or the Client is closed. msg's byte slices must not
// be changed until the future resolves.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg Message) *Future {
	return c.publishAsync(ctx, batchKey{topic: topic, partition: -1}, &msg)
}

// PublishAsyncTo is PublishAsync into one partition.
func (c *Client) PublishAsyncTo(ctx context.Context, topic string, partition int32, msg Message) *Future {
	if partition < 0 {
		return failedFuture(connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("partition %d is negative", partition)))
	}
	return c.publishAsync(ctx, batchKey{topic: topic, partition: partition}, &msg)
}

// Flush sends every queued async message at once and waits until all the
// messages queued before the call are resolved, or ctx ends. Their
// outcomes are in their futures.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	p := c.async
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.flush(ctx)
}

func (c *Client) publishAsync(ctx context.Context, key batchKey, m *Message) *Future {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return failedFuture(ErrClosed)
	}
	if c.async == nil {
		c.async = newAsyncPublisher(c)
	}
	p := c.async
	c.mu.Unlock()
	return p.add(ctx, key, m)
}

// batchKey says where a batch goes; partition -1 lets the broker choose.
type batchKey struct {
	topic     string
	partition int32
}

type pubBatch struct {
	key     batchKey
	seq     uint64
	msgs    []*ferryv1.PublishMessage
	futures []*Future
	bytes   int64 // message bytes, as the outstanding and batch limits count
	wire    int   // encoded size of msgs within a PublishStreamRequest
	timer   *time.Timer
	done    chan struct{} // closed when every future is resolved
}

// lingerZeroWindow is how many batches of one topic and partition may
// await their acknowledgement, with a linger of zero, before the next
// message waits in an open batch for one of them (full batches do not
// wait): a message finding none goes out at once, and under load the
// batches grow with what came in while the earlier ones were out. One, not
// more: under fsync=always a second batch would wait at the broker for the
// whole fsync round of the first before its own, where one sent on the
// first's acknowledgement waits only for the round trip. In interleaved
// runs of BenchmarkNetQueueLatency (tests/), one gave a lower p50 than two
// in four sessions of five (the same in the other; 1.20 against 1.54ms in
// the quietest), and p99 no different beyond the noise.
const lingerZeroWindow = 1

// asyncPublisher owns the PublishStream of a Client. Batches move from
// open (filling) to queue (sealed, numbered, waiting to be sent) to sent
// (on the current stream, waiting for the acknowledgement). When a stream
// fails, sent goes back to the front of queue.
type asyncPublisher struct {
	c      *Client
	ctx    context.Context // ends the sender when the publisher is closed
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	open       map[batchKey]*pubBatch
	sealed     map[batchKey]int // per key, the sealed batches not resolved yet
	queue      []*pubBatch
	sent       []*pubBatch
	nextSeq    uint64
	msgs       int   // outstanding messages
	bytes      int64 // and their bytes
	room       chan struct{}
	roomWaited bool
	wake       chan struct{}
	stopped    chan struct{}
	// exhausted is the sequence of the batch first in line when the last
	// stream ended with ResourceExhausted (0: the last did not).
	exhausted uint64
}

func newAsyncPublisher(c *Client) *asyncPublisher {
	p := &asyncPublisher{
		c:       c,
		open:    map[batchKey]*pubBatch{},
		sealed:  map[batchKey]int{},
		room:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(c.ctx)
	go p.run()
	return p
}

func (p *asyncPublisher) add(ctx context.Context, key batchKey, m *Message) *Future {
	cfg := &p.c.cfg
	pm := toPublishMessage(m)
	size := int64(m.size())
	if pm.Id == "" && cfg.autoID {
		pm.Id = p.c.newMessageID()
		size += int64(len(pm.Id))
	}
	// The request limit bounds the encoded batch: the message's own bytes
	// plus its field's tag and length, besides the request's other fields.
	wire := 1 + protowire.SizeBytes(proto.Size(pm))
	room := cfg.maxRequest - streamRequestOverhead(key.topic)
	if wire > room {
		return failedFuture(connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
			"ferry client: message of %d bytes (%d encoded) does not fit in one request of at most %d bytes "+
				"(WithMaxRequestBytes, which must not exceed the broker's max_request_bytes)",
			m.size(), wire, cfg.maxRequest)))
	}
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return failedFuture(ErrClosed)
		}
		if p.msgs == 0 || (p.msgs < cfg.maxOutMessages && p.bytes+size <= cfg.maxOutBytes) {
			break
		}
		if !cfg.blockOnFull {
			p.mu.Unlock()
			return failedFuture(ErrTooManyOutstanding)
		}
		room := p.room
		p.roomWaited = true
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return failedFuture(ctx.Err())
		}
		p.mu.Lock()
	}
	b := p.open[key]
	if b != nil && (b.bytes+size > int64(cfg.batchBytes) || b.wire+wire > room) {
		p.sealLocked(b)
		b = nil
	}
	if b == nil {
		b = &pubBatch{key: key, done: make(chan struct{})}
		p.open[key] = b
		if cfg.linger > 0 {
			b.timer = time.AfterFunc(cfg.linger, func() {
				p.mu.Lock()
				if p.open[key] == b {
					p.sealLocked(b)
				}
				p.mu.Unlock()
			})
		}
	}
	f := &Future{done: make(chan struct{})}
	b.msgs = append(b.msgs, pm)
	b.futures = append(b.futures, f)
	b.bytes += size
	b.wire += wire
	p.msgs++
	p.bytes += size
	if len(b.msgs) >= cfg.batchMessages || b.bytes >= int64(cfg.batchBytes) ||
		(cfg.linger == 0 && p.sealed[key] < lingerZeroWindow) {
		p.sealLocked(b)
	}
	p.mu.Unlock()
	return f
}

// streamRequestOverhead bounds the encoded size of a PublishStreamRequest's
// fields other than its messages: sequence, topic and partition.
func streamRequestOverhead(topic string) int {
	return 1 + protowire.SizeVarint(^uint64(0)) + // sequence
		1 + protowire.SizeBytes(len(topic)) + // topic
		1 + protowire.SizeVarint(uint64(1<<31-1)) // partition
}

// sealLocked numbers an open batch and queues it for sending.
func (p *asyncPublisher) sealLocked(b *pubBatch) {
	if b.timer != nil {
		b.timer.Stop()
	}
	delete(p.open, b.key)
	p.sealed[b.key]++
	p.nextSeq++
	b.seq = p.nextSeq
	p.queue = append(p.queue, b)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// resolveLocked settles a batch's futures and makes room. With a linger of
// zero, the open batch of the same key, held back by the window, is sealed.
func (p *asyncPublisher) resolveLocked(b *pubBatch, results []*ferryv1.Published, err error) {
	if err == nil && len(results) != len(b.futures) {
		err = connect.NewError(connect.CodeInternal,
			fmt.Errorf("broker answered %d results for a batch of %d messages", len(results), len(b.futures)))
	}
	for i, f := range b.futures {
		if err != nil {
			f.err = err
		} else {
			f.res = fromProtoPublished(results[i])
		}
		close(f.done)
	}
	p.msgs -= len(b.futures)
	p.bytes -= b.bytes
	if p.roomWaited {
		close(p.room)
		p.room = make(chan struct{})
		p.roomWaited = false
	}
	close(b.done)
	if n := p.sealed[b.key] - 1; n > 0 {
		p.sealed[b.key] = n
	} else {
		delete(p.sealed, b.key)
	}
	if o := p.open[b.key]; o != nil && p.c.cfg.linger == 0 && p.sealed[b.key] < lingerZeroWindow {
		p.sealLocked(o)
	}
}

func (p *asyncPublisher) flush(ctx context.Context) error {
	p.mu.Lock()
	for _, b := range p.open {
		p.sealLocked(b)
	}
	waits := make([]chan struct{}, 0, len(p.queue)+len(p.sent))
	for _, b := range p.sent {
		waits = append(waits, b.done)
	}
	for _, b := range p.queue {
		waits = append(waits, b.done)
	}
	p.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// close stops taking messages, flushes until ctx ends, stops the sender
// and fails what is left with ErrClosed. No batch is open by then: flush
// sealed them all, and add takes no message once closed is set.
func (p *asyncPublisher) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	close(p.room) // callers waiting for room see closed
	p.room = make(chan struct{})
	p.mu.Unlock()
	err := p.flush(ctx)
	p.cancel()
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range append(p.sent, p.queue...) {
		p.resolveLocked(b, nil, ErrClosed)
	}
	p.sent, p.queue = nil, nil
	return err
}

// run keeps a stream open while there is something to send, reconnecting
// with backoff when it fails.
func (p *asyncPublisher) run() {
	defer close(p.stopped)
	bo := p.c.newBackoff()
	for {
		p.mu.Lock()
		idle := len(p.queue) == 0 && len(p.sent) == 0
		p.mu.Unlock()
		if idle {
			select {
			case <-p.wake:
			case <-p.ctx.Done():
				return
			}
		}
		acked, err := p.serve()
		if p.ctx.Err() != nil {
			return
		}
		if acked {
			bo.reset()
		}
		p.mu.Lock()
		p.queue = append(p.sent, p.queue...)
		p.sent = nil
		pending := len(p.queue)
		exhausted := p.exhausted
		p.exhausted = 0
		switch {
		case connect.CodeOf(err) == connect.CodeResourceExhausted:
			// The broker ends a stream so when a request is over its
			// max_request_bytes (the batch will never go through) or when
			// it has too many streams open (it may, later). The batch
			// first in line is the one the broker could not read: refused
			// twice in a row, it fails, and the others go on.
			if pending == 0 {
				break
			}
			head := p.queue[0]
			if head.seq != exhausted {
				p.exhausted = head.seq
				break
			}
			p.queue[0] = nil
			p.queue = p.queue[1:]
			pending--
			p.c.log.Warn("ferry client: publish stream refused the same batch twice, failing it",
				"topic", head.key.topic, "messages", len(head.msgs), "encoded_bytes", head.wire, "err", err)
			p.resolveLocked(head, nil, err)
		case !retryable(err):
			// Resolving may seal open batches (linger 0): they go in
			// the new queue, for the next stream.
			failed := p.queue
			p.queue = nil
			for _, b := range failed {
				p.resolveLocked(b, nil, err)
			}
		}
		p.mu.Unlock()
		if pending == 0 && retryable(err) {
			// An idle stream ended: open the next one when there is work.
			continue
		}
		d := bo.next()
		p.c.log.Warn("ferry client: publish stream failed", "err", err, "batches", pending, "retry_in", d)
		if sleep(p.ctx, d) != nil {
			return
		}
	}
}

// serve runs one stream until it fails: it sends queued batches (run has
// put the previous stream's unacknowledged ones first) and resolves
// acknowledged ones. acked reports whether any batch was acknowledged, so
// the backoff starts over.
func (p *asyncPublisher) serve() (acked bool, err error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	stream := p.c.pub.PublishStream(ctx)

	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			resp, rerr := stream.Receive()
			if rerr != nil {
				err = rerr
				return
			}
			ok, rerr := p.acknowledge(resp)
			if rerr != nil {
				err = rerr
				return
			}
			acked = acked || ok
		}
	}()
	p.send(ctx, stream, recvDone)
	cancel()
	// The HTTP/2 transport notices the cancellation only once the request
	// body is closed; until then a Receive would wait for ever.
	_ = stream.CloseRequest()
	<-recvDone
	_ = stream.CloseResponse()
	return acked, err
}

type bidiPublish = connect.BidiStreamForClient[ferryv1.PublishStreamRequest, ferryv1.PublishStreamResponse]

// send writes queued batches to the stream until the receiver ends (the
// stream failed: a failed Send only says so, the receiver learns why) or
// ctx ends.
func (p *asyncPublisher) send(ctx context.Context, stream *bidiPublish, recvDone <-chan struct{}) {
	for {
		p.mu.Lock()
		for len(p.queue) == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-recvDone:
				return
			case <-ctx.Done():
				return
			}
			p.mu.Lock()
		}
		b := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.sent = append(p.sent, b)
		req := &ferryv1.PublishStreamRequest{Sequence: b.seq, Topic: b.key.topic, Messages: b.msgs}
		if b.key.partition >= 0 {
			req.Partition = &b.key.partition
		}
		p.mu.Unlock()
		if err := stream.Send(req); err != nil {
			select {
			case <-recvDone:
			case <-ctx.Done():
			}
			return
		}
	}
}

// acknowledge resolves the batch a response names; ok reports whether it
// was stored. A batch the broker could not store for now (Unavailable: it
// is shutting down) stays unacknowledged and retry says to end the
// stream, so that it is sent again, after the batches before it, on the
// next one.
func (p *asyncPublisher) acknowledge(resp *ferryv1.PublishStreamResponse) (ok bool, retry error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.sent, func(b *pubBatch) bool { return b.seq == resp.GetSequence() })
	if i < 0 {
		p.c.log.Warn("ferry client: publish acknowledgement for an unknown batch", "sequence", resp.GetSequence())
		return false, nil
	}
	b := p.sent[i]
	if e := resp.GetError(); e != nil {
		err := streamError(e)
		if connect.CodeOf(err) == connect.CodeUnavailable {
			return false, err
		}
		p.sent = slices.Delete(p.sent, i, i+1)
		p.resolveLocked(b, nil, err)
		return false, nil
	}
	p.sent = slices.Delete(p.sent, i, i+1)
	p.resolveLocked(b, resp.GetResults(), nil)
	return true, nil
}
