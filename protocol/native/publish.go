package native

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
)

// publisher serves ferry.v1.PublishService.
type publisher struct{ s *Service }

func (h publisher) Publish(ctx context.Context, req *connect.Request[ferryv1.PublishRequest]) (*connect.Response[ferryv1.PublishResponse], error) {
	m := req.Msg
	res, err := h.s.publish(ctx, m.Topic, m.Partition, publishMessages(m.Messages))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.PublishResponse{Results: publishedToProto(res)}), nil
}

func (s *Service) publish(ctx context.Context, topic string, partition *int32, msgs []engine.Message) ([]engine.Published, error) {
	if len(msgs) == 0 {
		return nil, invalid("no messages to publish")
	}
	var res []engine.Published
	var err error
	if partition != nil {
		if *partition < 0 {
			return nil, invalid("partition %d is negative", *partition)
		}
		res, err = s.b.PublishTo(ctx, topic, int(*partition), msgs...)
	} else {
		res, err = s.b.Publish(ctx, topic, msgs...)
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return res, nil
}

// pendingBatches bounds the batches a publish stream reads ahead of the one
// being stored: with MaxRequestBytes, the memory one stream may hold.
const pendingBatches = 16

// PublishStream stores the batches of a stream in the order they come, and
// answers each by its sequence number. While one engine call is under way
// the next batches are read and, per topic and partition, stored together
// in the following call: one fsync for them all.
func (h publisher) PublishStream(ctx context.Context, stream *connect.BidiStream[ferryv1.PublishStreamRequest, ferryv1.PublishStreamResponse]) error {
	s := h.s
	release, err := s.openStream()
	if err != nil {
		return err
	}
	defer release()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan *ferryv1.PublishStreamRequest, pendingBatches)
	recvErr := make(chan error, 1)
	go func() {
		defer close(in)
		for {
			req, err := stream.Receive()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case in <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	sp := &spreader{s: s, topics: map[string]*spread{}}
	for {
		var batch []*ferryv1.PublishStreamRequest
		select {
		case req, ok := <-in:
			if !ok {
				err := <-recvErr
				if isEOF(err) {
					return nil
				}
				return err
			}
			batch = append(batch, req)
		case <-s.drain:
			return errShuttingDown
		case <-ctx.Done():
			return toConnect(ctx.Err())
		}
	more:
		for len(batch) < pendingBatches {
			select {
			case req, ok := <-in:
				if !ok {
					break more
				}
				batch = append(batch, req)
			default:
				break more
			}
		}
		for _, r := range s.storeBatches(ctx, sp, batch) {
			sendDeadline(ctx, s.opts.SendTimeout)
			if err := stream.Send(r); err != nil {
				return err
			}
		}
	}
}

// storeBatches stores a stream's batches, those of one topic and partition
// together in one engine call, and returns their answers in order.
func (s *Service) storeBatches(ctx context.Context, sp *spreader, batches []*ferryv1.PublishStreamRequest) []*ferryv1.PublishStreamResponse {
	type group struct {
		topic     string
		partition *int32
		idx       []int // batches of the group, in order
	}
	type groupKey struct {
		topic     string
		explicit  bool // a partition was named
		partition int32
	}
	var groups []*group
	byKey := map[groupKey]*group{}
	for i, b := range batches {
		key := groupKey{topic: b.Topic}
		part := b.Partition
		if part == nil {
			part = sp.keyless(b)
		}
		if part != nil {
			key.explicit, key.partition = true, *part
		}
		g := byKey[key]
		if g == nil {
			g = &group{topic: b.Topic, partition: part}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	out := make([]*ferryv1.PublishStreamResponse, len(batches))
	store := func(g *group) {
		var msgs []engine.Message
		for _, i := range g.idx {
			msgs = append(msgs, publishMessages(batches[i].Messages)...)
		}
		res, err := s.publish(ctx, g.topic, g.partition, msgs)
		if err != nil && len(g.idx) > 1 && connect.CodeOf(err) == connect.CodeInvalidArgument {
			// A bad message fails its own batch only; the engine checks
			// messages before it stores any, so the others are stored
			// one batch at a time.
			for _, i := range g.idx {
				res, err := s.publish(ctx, g.topic, g.partition, publishMessages(batches[i].Messages))
				out[i] = streamAnswer(batches[i].Sequence, res, err)
			}
			return
		}
		at := 0
		for _, i := range g.idx {
			n := len(batches[i].Messages)
			var part []engine.Published
			if err == nil {
				part = res[at : at+n]
			}
			out[i] = streamAnswer(batches[i].Sequence, part, err)
			at += n
		}
	}
	if len(groups) == 1 {
		store(groups[0])
		return out
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() { store(g) })
	}
	wg.Wait()
	return out
}

func streamAnswer(seq uint64, res []engine.Published, err error) *ferryv1.PublishStreamResponse {
	if err != nil {
		return &ferryv1.PublishStreamResponse{Sequence: seq, Error: &ferryv1.Error{
			Code:    connect.CodeOf(err).String(),
			Message: errorMessage(err),
		}}
	}
	return &ferryv1.PublishStreamResponse{Sequence: seq, Results: publishedToProto(res)}
}

// errorMessage is err's message without the code Connect puts in front.
func errorMessage(err error) string {
	if ce, ok := errors.AsType[*connect.Error](err); ok {
		return ce.Message()
	}
	return err.Error()
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// spreader gives a publish stream's keyless batches their partitions, the
// next partition for each batch, as separate Publish calls get: without it
// the batches stored together would all land on one partition.
type spreader struct {
	s      *Service
	topics map[string]*spread
}

type spread struct {
	partitions int32
	next       int32
	checked    time.Time
}

// spreadRefresh is how often a stream rereads a topic's partition count,
// so that partitions added later get batches too.
const spreadRefresh = time.Second

// keyless returns the partition for batch b when all its messages are
// keyless, nil otherwise (keys pick partitions; or the topic is unknown,
// which the engine then reports).
func (sp *spreader) keyless(b *ferryv1.PublishStreamRequest) *int32 {
	for _, m := range b.Messages {
		if len(m.Key) > 0 {
			return nil
		}
	}
	t := sp.topics[b.Topic]
	now := time.Now()
	if t == nil || now.Sub(t.checked) > spreadRefresh {
		info, err := sp.s.b.DescribeTopic(b.Topic)
		if err != nil {
			return nil
		}
		if t == nil {
			// Streams start at a random partition, so that many short
			// streams do not all load the first.
			t = &spread{next: rand.Int32N(1 << 20)}
			sp.topics[b.Topic] = t
		}
		t.partitions, t.checked = int32(len(info.Partitions)), now
	}
	if t.partitions == 0 {
		return nil
	}
	p := t.next % t.partitions
	t.next = p + 1
	return &p
}
