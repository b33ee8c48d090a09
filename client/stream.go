package client

import (
	"context"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Assignment is the partitions a stream consumer owns now.
type Assignment struct {
	// Generation counts the group's rebalances.
	Generation int64
	// Partitions, sorted.
	Partitions []int32
}

// streamItem is a received message and the ownership it was received
// under: it counts only while that stream and that ownership last.
type streamItem struct {
	msg   Message
	att   *attachment
	epoch uint64
}

// StreamConsumer is a member of a stream subscription's group
// (ConsumeStream): it receives the messages of the partitions the group
// assigns it, in order per partition, from their committed offsets.
//
// Positions: a message is processed once the application is done with it
// (see Next and Messages); with automatic commits (WithAutoCommit, on by
// default) the consumer commits the positions after the processed
// messages every interval, when its assignment changes (for the
// partitions it keeps) and when it is closed. Commit commits chosen
// offsets yourself.
//
// Rebalances: by the time the consumer hears that it lost a partition, the
// broker has handed the partition to another member and refuses commits
// for it (FailedPrecondition). What the consumer processed on it since its
// last commit is received again by the new owner: up to one auto-commit
// interval of messages (at-least-once).
//
// Next and Messages are for one goroutine at a time; the other methods
// are safe for concurrent use.
type StreamConsumer struct {
	c     *Client
	core  *core[streamItem]
	topic string
	sub   string
	cfg   subscribeConfig

	mu         sync.Mutex
	att        *attachment      // the stream the state below belongs to
	assignment Assignment       // as the broker last sent it
	epoch      map[int32]uint64 // owned partitions and since when
	nextEpoch  uint64
	processed  map[int32]int64 // next offset after the processed messages, not committed yet
	last       *streamItem     // returned by Next, processed at the next Next

	commitMu sync.Mutex
	kick     chan struct{}
	stop     chan struct{}
	autoDone chan struct{}
	once     sync.Once
}

// ConsumeStream joins the group of the stream subscription sub of topic
// and returns once the broker accepted the member (retrying while the
// broker is unreachable, until ctx ends; ctx does not bound the consumer's
// life). Take messages with Next or Messages; Close it when done.
//
// When its stream fails with a retryable error the consumer rejoins with
// backoff, as a new member: the group reassigns partitions, and each
// resumes from its committed offset, so messages processed but not yet
// committed are received again (at-least-once). So are, after a
// rebalance, those processed on a partition the consumer lost since its
// last commit (see StreamConsumer). A non-retryable error (NotFound,
// FailedPrecondition when the subscription is deleted) ends the consumer:
// Next returns it.
func (c *Client) ConsumeStream(ctx context.Context, topic, sub string, opts ...SubscribeOption) (*StreamConsumer, error) {
	cfg, err := c.subscribeConfig(opts)
	if err != nil {
		return nil, err
	}
	return c.consumeStream(ctx, topic, sub, cfg)
}

func (c *Client) consumeStream(ctx context.Context, topic, sub string, cfg subscribeConfig) (*StreamConsumer, error) {
	var err error
	s := &StreamConsumer{c: c, topic: topic, sub: sub, cfg: cfg,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), autoDone: make(chan struct{})}
	s.core, err = startCore(ctx, c, "stream "+topic+"/"+sub, cfg.credit, false, s.dial)
	if err != nil {
		return nil, err
	}
	if err := c.addConsumer(s); err != nil {
		s.core.close()
		return nil, err
	}
	if cfg.autoCommit > 0 {
		go s.autoCommit(cfg.autoCommit)
	} else {
		close(s.autoDone)
	}
	return s, nil
}

func (s *StreamConsumer) dial(ctx context.Context, ss *session[streamItem]) (func() error, error) {
	stream, err := s.c.consume.ConsumeStream(ctx, connect.NewRequest(&ferryv1.ConsumeStreamRequest{
		Topic: s.topic, Subscription: s.sub, Credit: int32(cap(ss.items)),
		SessionTimeout: durationOrNil(s.cfg.sessionTimeout), RecordBatches: true}))
	if err != nil {
		return nil, err
	}
	first, err := firstResponse(stream)
	if err != nil {
		return nil, err
	}
	ss.id, ss.member = first.GetConsumerId(), first.GetMemberId()
	s.mu.Lock()
	s.att = ss.attachment
	s.assignment = Assignment{}
	s.epoch, s.processed = map[int32]uint64{}, map[int32]int64{}
	s.last = nil
	s.mu.Unlock()
	return func() error {
		defer stream.Close()
		return receiveAhead(stream, first, ss.cancel, func(resp *ferryv1.ConsumeStreamResponse) error {
			if a := resp.GetAssignment(); a != nil {
				s.assign(ss.attachment, a)
			}
			items := make([]streamItem, 0, len(resp.GetMessages())+countRecords(resp.GetBatches()))
			for _, m := range resp.GetMessages() {
				items = append(items, streamItem{msg: fromProtoMessage(m), att: ss.attachment, epoch: s.epochOf(m.GetPartition())})
			}
			for _, rb := range resp.GetBatches() {
				epoch := s.epochOf(rb.GetPartition())
				err := decodeRecordBatches(rb, func() *Message {
					items = append(items, streamItem{att: ss.attachment, epoch: epoch})
					return &items[len(items)-1].msg
				})
				if err != nil {
					return err
				}
			}
			return push(ctx, ss, items)
		})
	}, nil
}

// epochOf returns the ownership a message of p is received under. The
// broker may send a partition's first messages just before the assignment
// that names it: a message is proof enough that the partition is owned.
func (s *StreamConsumer) epochOf(p int32) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.epoch[p]
	if !ok {
		s.nextEpoch++
		e = s.nextEpoch
		s.epoch[p] = e
	}
	return e
}

// assign applies a new assignment: messages of partitions gone are
// dropped, positions forgotten; partitions gained start a new ownership.
// The positions of partitions gone cannot be committed any more: the
// broker let go of them (and gave them to another member) when it
// reported the new assignment, before sending it, so a commit now fails
// with FailedPrecondition. The autoCommit kick below commits the
// partitions kept.
func (s *StreamConsumer) assign(att *attachment, a *ferryv1.Assignment) {
	s.mu.Lock()
	if s.att != att {
		s.mu.Unlock()
		return
	}
	parts := slices.Clone(a.GetPartitions())
	slices.Sort(parts)
	for p := range s.epoch {
		if _, ok := slices.BinarySearch(parts, p); !ok {
			delete(s.epoch, p)
			delete(s.processed, p)
		}
	}
	for _, p := range parts {
		if _, ok := s.epoch[p]; !ok {
			s.nextEpoch++
			s.epoch[p] = s.nextEpoch
		}
	}
	s.assignment = Assignment{Generation: a.GetGeneration(), Partitions: parts}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if s.cfg.onAssign != nil {
		s.cfg.onAssign(Assignment{Generation: a.GetGeneration(), Partitions: slices.Clone(parts)})
	}
}

// owns reports whether the item still counts: same stream, same
// ownership.
func (s *StreamConsumer) owns(it *streamItem) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ownsLocked(it)
}

// ownsLocked is owns with s.mu held.
func (s *StreamConsumer) ownsLocked(it *streamItem) bool {
	e, ok := s.epoch[it.msg.Partition]
	return it.att == s.att && ok && e == it.epoch
}

// mark records the item as processed.
func (s *StreamConsumer) mark(it *streamItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markLocked(it)
}

func (s *StreamConsumer) markLocked(it *streamItem) {
	if s.ownsLocked(it) {
		s.processed[it.msg.Partition] = it.msg.Offset + 1
	}
}

// nextItem returns the next message still owned; with setLast it also
// remembers it as the one Next returned last, under the same lock.
func (s *StreamConsumer) nextItem(ctx context.Context, setLast bool) (*streamItem, error) {
	for {
		it, ss, err := s.core.next(ctx)
		if err != nil {
			return nil, err
		}
		ss.credit.consumed(1)
		s.mu.Lock()
		owned := s.ownsLocked(it)
		if owned && setLast {
			s.last = it
		}
		s.mu.Unlock()
		if owned {
			return it, nil
		}
	}
}

// Next marks the message it returned last as processed and waits for the
// next one, until ctx ends or the consumer ends (ErrClosed after Close, or
// the error that ended it). Messages of a partition come in offset order;
// those of a partition the consumer lost are skipped.
func (s *StreamConsumer) Next(ctx context.Context) (*Message, error) {
	s.mu.Lock()
	if s.last != nil {
		s.markLocked(s.last)
		s.last = nil
	}
	s.mu.Unlock()
	it, err := s.nextItem(ctx, true)
	if err != nil {
		return nil, err
	}
	return &it.msg, nil
}

// Messages iterates over the messages as Next returns them; a message is
// processed when the loop's body finishes with it, so a break leaves it
// unprocessed. The iteration ends after yielding the error that stops it
// (ctx's, ErrClosed, or the consumer's).
func (s *StreamConsumer) Messages(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			it, err := s.nextItem(ctx, false)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(&it.msg, nil) {
				return
			}
			s.mark(it)
		}
	}
}

// Assignment returns the partitions the consumer owns, as the broker last
// told it.
func (s *StreamConsumer) Assignment() Assignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Assignment{Generation: s.assignment.Generation, Partitions: slices.Clone(s.assignment.Partitions)}
}

// MemberID is the member's id in the group (as DescribeSubscription shows
// partition owners); it changes when the consumer rejoins.
func (s *StreamConsumer) MemberID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.att == nil {
		return ""
	}
	return s.att.member
}

// Commit commits offsets (partition to the next offset to consume) for
// partitions the consumer owns. FailedPrecondition when it owns one of
// them no longer: nothing is committed then.
func (s *StreamConsumer) Commit(ctx context.Context, offsets map[int32]int64) error {
	s.mu.Lock()
	att := s.att
	s.mu.Unlock()
	return s.commit(ctx, att, offsets)
}

// CommitProcessed commits the positions after the messages processed
// since the last commit, on the partitions the consumer owns.
func (s *StreamConsumer) CommitProcessed(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	att := s.att
	offsets := maps.Clone(s.processed)
	s.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	return s.commit(ctx, att, offsets)
}

func (s *StreamConsumer) commit(ctx context.Context, att *attachment, offsets map[int32]int64) error {
	if att == nil {
		return ErrClosed
	}
	grant := att.credit.take()
	_, err := call(s.c, ctx, s.c.consume.Commit, &ferryv1.CommitRequest{
		ConsumerId: att.id, Offsets: offsets, Grant: grant})
	s.c.settled(att, grant, err)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.att == att {
		for p, o := range offsets {
			if s.processed[p] == o {
				delete(s.processed, p) // nothing processed since
			}
		}
	}
	s.mu.Unlock()
	return nil
}

func (s *StreamConsumer) autoCommit(interval time.Duration) {
	defer close(s.autoDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.stop:
			return
		case <-s.core.ended:
			return
		}
		ctx, cancel := context.WithTimeout(s.core.ctx, max(interval, time.Second))
		if err := s.CommitProcessed(ctx); err != nil && s.core.ctx.Err() == nil {
			// A partition lost just now fails the whole commit: the next
			// assignment drops it and the next tick commits the rest.
			s.c.log.Debug("ferry client: automatic commit failed", "topic", s.topic,
				"subscription", s.sub, "err", err)
		}
		cancel()
	}
}

// Close commits the processed positions (with automatic commits on) and
// leaves the group; its partitions go to the other members. Next then
// returns ErrClosed.
func (s *StreamConsumer) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.autoDone
		if s.cfg.autoCommit > 0 && s.core.current() != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.closeTimeout)
			err = s.CommitProcessed(ctx)
			cancel()
		}
		s.core.close()
		s.c.removeConsumer(s)
	})
	return err
}

// SubscribeStream consumes the stream subscription sub of topic with
// handler until ctx ends (it then returns nil), the Client is closed
// (ErrClosed), the consumer fails for good, or the handler returns an
// error (returned after the processed positions are committed: the
// failed message is received again by whoever consumes the partition
// next). Messages of one partition are handled in order, one at a time;
// WithConcurrency handles different partitions in parallel. Positions are
// committed automatically (WithAutoCommit). See ConsumeStream for
// rebalancing and reconnection.
func (c *Client) SubscribeStream(ctx context.Context, topic, sub string, handler func(context.Context, *Message) error, opts ...SubscribeOption) error {
	cfg, err := c.subscribeConfig(opts)
	if err != nil {
		return err
	}
	s, err := c.consumeStream(ctx, topic, sub, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	next := func(ctx context.Context) (*streamItem, error) { return s.nextItem(ctx, false) }
	err = inOrder(ctx, cfg.concurrency, next,
		func(it *streamItem) uint64 { return uint64(it.msg.Partition) },
		func(ctx context.Context, it *streamItem) error {
			if !s.owns(it) {
				return nil
			}
			if err := handler(ctx, &it.msg); err != nil {
				return err
			}
			s.mark(it)
			return nil
		})
	if cerr := s.Close(); err == nil && cerr != nil && ctx.Err() == nil {
		err = cerr
	}
	return err
}

// handlerError carries a handler's error through a context's cause.
type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

// inOrder feeds the items next returns to n goroutines running handle;
// items with the same key go to the same goroutine, in order. It returns
// nil when ctx ends, the first handler error, or next's error.
func inOrder[T any](ctx context.Context, n int, next func(context.Context) (T, error), key func(T) uint64, handle func(context.Context, T) error) error {
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lanes := make([]chan T, n)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan T, 1)
		wg.Go(func() {
			for it := range lanes[i] {
				if hctx.Err() != nil {
					continue
				}
				if err := handle(hctx, it); err != nil {
					cancel(handlerError{err})
				}
			}
		})
	}
	var err error
feed:
	for {
		it, nerr := next(hctx)
		if nerr != nil {
			err = nerr
			break
		}
		select {
		case lanes[key(it)%uint64(n)] <- it:
		case <-hctx.Done():
			break feed
		}
	}
	for _, l := range lanes {
		close(l)
	}
	wg.Wait()
	if h, ok := context.Cause(hctx).(handlerError); ok {
		return h.err
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}
