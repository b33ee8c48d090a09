package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/storage/record"
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
	ref     deliveryRef // ID in parts, when the broker sent it so
	settled atomic.Bool
	// live: the deadline had not passed, by this machine's clock, when the
	// delivery was received. Only such a delivery is judged expired later:
	// one that arrives already past its deadline says the clocks disagree.
	live bool
}

// expired reports whether the delivery's deadline has passed since it was
// received: the broker has given it, or will give it at once, to another
// consumer (or this one again).
func (d *Delivery) expired(now time.Time) bool {
	return d.live && !now.Before(d.Deadline)
}

// Ack acknowledges the delivery: it is never delivered again. NotFound
// when it is no longer in flight for this consumer (acked already, its
// deadline passed, or the consumer's stream was reattached since it was
// received): it will be, or was, delivered again; or its subscription was
// purged since (PurgeSubscription): it is never delivered again.
func (d *Delivery) Ack(ctx context.Context) error {
	d.settled.Store(true)
	return d.c.ack(ctx, d.att, []ackItem{d.ackItem()})
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

// deliveryRef is a delivery's ID in parts, "PARTITION-OFFSET-COUNT", as
// the broker's DeliveryBatch gives it; count 0 when unknown (the delivery
// came as a Delivery, with an ID only).
type deliveryRef struct {
	partition int32
	offset    int64
	count     int32
}

func (r deliveryRef) id() string {
	var b [48]byte
	s := strconv.AppendInt(b[:0], int64(r.partition), 10)
	s = append(s, '-')
	s = strconv.AppendInt(s, r.offset, 10)
	s = append(s, '-')
	s = strconv.AppendInt(s, int64(r.count), 10)
	return string(s)
}

// ackItem is one delivery to acknowledge: by ref when it has one, by id
// otherwise.
type ackItem struct {
	ref deliveryRef
	id  string
}

func (d *Delivery) ackItem() ackItem {
	if d.ref.count > 0 {
		return ackItem{ref: d.ref}
	}
	return ackItem{id: d.ID}
}

// ack acknowledges items with as few Ack calls as fit WithMaxRequestBytes
// (one, but for a huge backlog), so that the broker never refuses one for
// its size and settled can tell what the broker did with its grant.
func (c *Client) ack(ctx context.Context, att *attachment, items []ackItem) error {
	var errs []error
	for len(items) > 0 {
		req, n := ackRequest(att.id, items, c.cfg.maxRequest)
		req.Grant = att.credit.take()
		_, err := call(c, ctx, c.consume.Ack, req)
		c.settled(att, req.Grant, err)
		if err != nil {
			errs = append(errs, err)
		}
		items = items[n:]
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// ackRequest builds an AckRequest for as many of items (at least one) as
// fit in limit bytes encoded, and says how many that is. Refs of one
// partition share one DeliveryRefs.
func ackRequest(consumerID string, items []ackItem, limit int) (*ferryv1.AckRequest, int) {
	req := &ferryv1.AckRequest{ConsumerId: consumerID}
	room := limit - ackRequestOverhead(consumerID)
	size, n := 0, 0
	for ; n < len(items); n++ {
		it := &items[n]
		var sz int
		var refs *ferryv1.DeliveryRefs
		if it.ref.count > 0 {
			for _, r := range req.Refs {
				if r.Partition == it.ref.partition {
					refs = r
					break
				}
			}
			// Each ref's two varints, and the worst case of the lengths
			// of the refs message and its packed columns growing by a byte.
			sz = protowire.SizeVarint(uint64(it.ref.offset)) + protowire.SizeVarint(uint64(it.ref.count)) + 3
			if refs == nil {
				sz += refsOverhead
			}
		} else {
			sz = 1 + protowire.SizeBytes(len(it.id))
		}
		if n > 0 && size+sz > room {
			break
		}
		size += sz
		if it.ref.count == 0 {
			req.DeliveryIds = append(req.DeliveryIds, it.id)
			continue
		}
		if refs == nil {
			refs = &ferryv1.DeliveryRefs{Partition: it.ref.partition}
			req.Refs = append(req.Refs, refs)
		}
		refs.Offsets = append(refs.Offsets, it.ref.offset)
		refs.Counts = append(refs.Counts, it.ref.count)
	}
	return req, n
}

// ackRequestOverhead bounds the encoded size of an AckRequest's fields
// other than its deliveries.
func ackRequestOverhead(consumerID string) int {
	return 1 + protowire.SizeBytes(len(consumerID)) + 1 + protowire.SizeVarint(uint64(1<<31-1))
}

// refsOverhead bounds what a DeliveryRefs costs beside its columns'
// contents: its tag and length, the partition, and the columns' tags and
// lengths.
const refsOverhead = 1 + 5 + 1 + 5 + 2*(1+5)

// settled gives back the credit an Ack, Nack or Commit carried in its
// grant field, unless the broker applied it. The rule (consume.proto): the
// broker applies the grant of a call that names a live consumer and is
// well-formed, even when the acknowledgement or commit itself fails;
// it does not when the call fails as malformed (InvalidArgument) or never
// reached the broker (Unavailable, DeadlineExceeded, Canceled, a broken
// connection, the client closed). So:
//
//   - NotFound: a delivery was not in flight (grant applied), or the
//     consumer is gone (not applied, but its stream has ended: its credit
//     no longer matters);
//   - FailedPrecondition: a partition not owned, or the consumer ended
//     (applied);
//   - ResourceExhausted: the broker could not write the acknowledgement
//     or commit (disk full; applied). A request over the broker's
//     max_request_bytes would be refused unread with that code too, which
//     is why ack splits what it sends to fit WithMaxRequestBytes;
//   - InvalidArgument, and every failure to reach the broker: not applied;
//   - anything else, Internal included (a failure inside the broker, or a
//     stream reset in transit: no telling how far the call got): taken as
//     not applied. Should the broker have applied it after all, the
//     consumer ends up with more credit than asked for, which costs
//     memory; the other way round it would lose credit for good, and a
//     consumer whose credit drains to zero receives nothing more.
func (c *Client) settled(att *attachment, grant int32, err error) {
	if err == nil || grant == 0 {
		return
	}
	if !grantApplied(err) {
		att.credit.giveBack(grant)
	}
}

// grantApplied reports whether the broker applied the grant of an Ack,
// Nack or Commit that failed with err; see settled.
func grantApplied(err error) bool {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return false // the client's own error: the call was not made
	}
	switch ce.Code() {
	case connect.CodeNotFound, connect.CodeFailedPrecondition, connect.CodeResourceExhausted:
		return true
	}
	return false
}

// QueueConsumer is a consumer attached to a queue subscription
// (ConsumeQueue). Its methods are safe for concurrent use: several
// goroutines may call Next and settle deliveries.
type QueueConsumer struct {
	c       *Client
	core    *core[Delivery]
	topic   string
	sub     string
	once    sync.Once
	acks    acker        // SubscribeQueue's
	expired atomic.Int64 // deliveries Next skipped
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
//
// The broker sends up to the credit (WithSubscribeCredit) deliveries
// ahead, and their ack deadlines run while they wait in the client. Keep
// the credit to what the application gets through well within the
// subscription's ack deadline: Next skips deliveries whose deadline
// passed while they waited (see Next).
func (c *Client) ConsumeQueue(ctx context.Context, topic, sub string, opts ...SubscribeOption) (*QueueConsumer, error) {
	sc, err := c.subscribeConfig(opts)
	if err != nil {
		return nil, err
	}
	return c.consumeQueue(ctx, topic, sub, sc)
}

func (c *Client) consumeQueue(ctx context.Context, topic, sub string, sc subscribeConfig) (*QueueConsumer, error) {
	q := &QueueConsumer{c: c, topic: topic, sub: sub}
	q.acks.c = c
	var err error
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

func (q *QueueConsumer) dial(ctx context.Context, s *session[Delivery]) (func() error, error) {
	stream, err := q.c.consume.ConsumeQueue(ctx, connect.NewRequest(&ferryv1.ConsumeQueueRequest{
		Topic: q.topic, Subscription: q.sub, Credit: int32(cap(s.items)), RecordBatches: true}))
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
		return receiveAhead(stream, first, s.cancel, func(resp *ferryv1.ConsumeQueueResponse) error {
			ds, err := q.decodeResponse(resp, s.attachment, cap(s.items))
			if err != nil {
				return err
			}
			return push(ctx, s, ds)
		})
	}, nil
}

// decodeResponse returns the deliveries of one ConsumeQueue response.
// credit, the consumer's, is the most a response of a sound broker holds:
// the slice is sized by what the response announces only up to that, so
// that a broken broker's counts (a byte each on the wire, a Delivery each
// here) cannot make the client allocate without bound before the records
// are found missing.
func (q *QueueConsumer) decodeResponse(resp *ferryv1.ConsumeQueueResponse, att *attachment, credit int) ([]Delivery, error) {
	pds := resp.GetDeliveries()
	n := len(pds)
	for _, b := range resp.GetBatches() {
		n += len(b.GetCounts())
	}
	ds := make([]Delivery, len(pds), max(len(pds), min(n, credit)))
	for i, d := range pds {
		q.fillDelivery(&ds[i], att, d)
	}
	for _, b := range resp.GetBatches() {
		if err := q.decodeBatch(&ds, att, b); err != nil {
			return nil, err
		}
	}
	return ds, nil
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

func (q *QueueConsumer) fillDelivery(out *Delivery, att *attachment, d *ferryv1.Delivery) {
	out.ID, out.Count, out.c, out.att = d.GetId(), d.GetCount(), q.c, att
	if d.Message != nil {
		out.Message = fromProtoMessage(d.Message)
	}
	if d.Deadline != nil {
		out.Deadline = d.Deadline.AsTime()
		out.live = time.Now().Before(out.Deadline)
	}
}

// decodeBatch appends the deliveries of b to ds: one per record, decoded in
// place.
func (q *QueueConsumer) decodeBatch(ds *[]Delivery, att *attachment, b *ferryv1.DeliveryBatch) error {
	counts := b.GetCounts()
	topic, partition := b.GetTopic(), b.GetPartition()
	var deadline time.Time
	if b.Deadline != nil {
		deadline = b.Deadline.AsTime()
	}
	live := time.Now().Before(deadline)
	i := 0
	var r record.Record
	err := record.Split(b.GetRecords(), func(_ record.Header, batch []byte) error {
		rd, err := record.NewReader(batch, record.Limits{})
		if err != nil {
			return err
		}
		for rd.Next(&r) {
			if i >= len(counts) || counts[i] <= 0 {
				return fmt.Errorf("record %d has no delivery count", i)
			}
			*ds = append(*ds, Delivery{Count: counts[i], Deadline: deadline, c: q.c, att: att, live: live,
				ref: deliveryRef{partition: partition, offset: r.Offset, count: counts[i]}})
			d := &(*ds)[len(*ds)-1]
			fillMessage(&d.Message, topic, partition, &r)
			d.ID = d.ref.id()
			i++
		}
		return rd.Err()
	})
	if err == nil && i != len(counts) {
		err = fmt.Errorf("%d records for %d delivery counts", i, len(counts))
	}
	if err != nil {
		return fmt.Errorf("ferry: queue deliveries of %s/%d: %w", topic, partition, err)
	}
	return nil
}

// Next waits for the next delivery, until ctx ends or the consumer ends
// (ErrClosed after Close, or the error that ended it).
//
// Deliveries whose Deadline passed while they waited in the client (the
// broker sent them ahead, up to the credit, and the application took long
// to get to them) are skipped, neither acknowledged nor handed out: the
// broker has already given them to another consumer, or will give them to
// this one again, so working on them would do the work twice (and their
// acks would fail with NotFound). They are logged at debug level. Deadlines are the broker's clock read by this machine's: keep the
// clocks synchronized. A delivery that arrives already past its deadline
// (the clocks disagree by more than the ack deadline) is handed out.
func (q *QueueConsumer) Next(ctx context.Context) (*Delivery, error) {
	for {
		d, s, err := q.core.next(ctx)
		if err != nil {
			return nil, err
		}
		s.credit.consumed(1)
		if !d.expired(time.Now()) {
			return d, nil
		}
		n := q.expired.Add(1)
		q.c.log.Debug("ferry client: skipped a delivery whose ack deadline passed while it waited in the client",
			"topic", q.topic, "subscription", q.sub, "delivery", d.ID, "deadline", d.Deadline,
			"skipped", n)
	}
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
		var items []ackItem
		rest := ds[:0:0]
		for _, d := range ds {
			if d.att == att {
				d.settled.Store(true)
				items = append(items, d.ackItem())
			} else {
				rest = append(rest, d)
			}
		}
		if err := q.c.ack(ctx, att, items); err != nil {
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
//
// Deliveries whose ack deadline passed while they waited for a free
// handler are skipped (see QueueConsumer.Next). The credit (how many
// deliveries the broker sends ahead) is by default
// max(2 × concurrency, DefaultQueueCredit) rather than the Client's
// WithCredit: enough that short handlers do not wait for a grant's round
// trip after every delivery, few enough that a delivery waits at most
// credit / concurrency handler runs. With the 30 s default ack deadline
// and concurrency 1, that keeps deliveries of handlers up to about 0.45 s
// from expiring in the client. For slower handlers lower
// WithSubscribeCredit (or raise the concurrency or the ack deadline),
// keeping credit / concurrency × the slowest handler run well within the
// subscription's ack deadline; for throughput with short handlers raise it.
func (c *Client) SubscribeQueue(ctx context.Context, topic, sub string, handler func(context.Context, *Delivery) error, opts ...SubscribeOption) error {
	sc, err := c.subscribeConfig(opts)
	if err != nil {
		return err
	}
	if !sc.creditSet {
		sc.credit = min(max(2*sc.concurrency, DefaultQueueCredit), MaxCredit)
	}
	q, err := c.consumeQueue(ctx, topic, sub, sc)
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
	pending map[*attachment][]ackItem
	idle    chan struct{} // nil while idle; closed when the sender stops
}

func (a *acker) add(d *Delivery) {
	d.settled.Store(true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[*attachment][]ackItem{}
	}
	a.pending[d.att] = append(a.pending[d.att], d.ackItem())
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
		for att, items := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
			if err := a.c.ack(ctx, att, items); err != nil {
				a.c.log.Debug("ferry client: ack failed", "deliveries", len(items), "err", err)
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
