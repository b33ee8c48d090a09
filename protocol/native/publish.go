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
	msgs := publishMessages(m.Messages)
	if len(msgs) == 0 {
		return nil, invalid("no messages to publish")
	}
	var res []engine.Published
	var err error
	if m.Partition != nil {
		if *m.Partition < 0 {
			return nil, invalid("partition %d is negative", *m.Partition)
		}
		res, err = h.s.b.PublishTo(ctx, m.Topic, int(*m.Partition), msgs...)
	} else {
		res, err = h.s.b.Publish(ctx, m.Topic, msgs...)
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&ferryv1.PublishResponse{Results: publishedToProto(res)}), nil
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
				if errors.Is(err, io.EOF) {
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
			if err := s.send(ctx, func() error { return stream.Send(r) }); err != nil {
				return err
			}
		}
	}
}

// storeBatches stores a stream's batches and returns their answers in
// order. Each message's partition is settled here (the named one, its
// key's, or for a batch's keyless messages the stream's next partition),
// and the messages of one topic and partition, from every batch, go to the
// engine in one call, in the order sent: per partition, storage order is
// the order of the stream. Calls for different partitions run at once.
func (s *Service) storeBatches(ctx context.Context, sp *spreader, batches []*ferryv1.PublishStreamRequest) []*ferryv1.PublishStreamResponse {
	type slot struct{ batch, msg int }
	type part struct {
		topic string
		p     int
	}
	type group struct {
		part
		msgs  []engine.Message
		slots []slot
	}
	var groups []*group
	byPart := map[part]*group{}
	res := make([][]engine.Published, len(batches))
	errs := make([]error, len(batches))
	for i, b := range batches {
		msgs := publishMessages(b.Messages)
		res[i] = make([]engine.Published, len(msgs))
		if len(msgs) == 0 {
			errs[i] = invalid("no messages to publish")
			continue
		}
		parts, err := sp.partitions(b, msgs)
		if err != nil {
			errs[i] = err
			continue
		}
		for j := range msgs {
			k := part{b.Topic, parts[j]}
			g := byPart[k]
			if g == nil {
				g = &group{part: k}
				byPart[k] = g
				groups = append(groups, g)
			}
			g.msgs = append(g.msgs, msgs[j])
			g.slots = append(g.slots, slot{i, j})
		}
	}
	var errMu sync.Mutex // a batch's messages may be in several groups
	fail := func(i int, err error) {
		errMu.Lock()
		if errs[i] == nil {
			errs[i] = err
		}
		errMu.Unlock()
	}
	store := func(g *group) {
		out, err := s.b.PublishTo(ctx, g.topic, g.p, g.msgs...)
		if err == nil {
			for k, sl := range g.slots {
				res[sl.batch][sl.msg] = out[k]
			}
			return
		}
		err = toConnect(err)
		if len(out) == len(g.msgs) {
			// The engine stored some and says which (offset -1: not
			// stored): a batch fails only if one of its own did.
			for k, sl := range g.slots {
				res[sl.batch][sl.msg] = out[k]
				if out[k].Offset < 0 {
					fail(sl.batch, err)
				}
			}
			return
		}
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			for _, sl := range g.slots {
				fail(sl.batch, err)
			}
			return
		}
		// A bad message fails its own batch only: the engine checks the
		// messages before it stores any, so the group's batches are stored
		// again one at a time, in order.
		for lo := 0; lo < len(g.slots); {
			hi := lo
			for hi < len(g.slots) && g.slots[hi].batch == g.slots[lo].batch {
				hi++
			}
			out, err := s.b.PublishTo(ctx, g.topic, g.p, g.msgs[lo:hi]...)
			for k := lo; k < hi; k++ {
				if err != nil {
					fail(g.slots[k].batch, toConnect(err))
				} else {
					res[g.slots[k].batch][g.slots[k].msg] = out[k-lo]
				}
			}
			lo = hi
		}
	}
	if len(groups) == 1 {
		store(groups[0])
	} else {
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Go(func() { store(g) })
		}
		wg.Wait()
	}
	answers := make([]*ferryv1.PublishStreamResponse, len(batches))
	for i, b := range batches {
		answers[i] = streamAnswer(b.Sequence, res[i], errs[i])
	}
	return answers
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

// spreader settles the partitions of a publish stream's messages as
// separate Publish calls would: the named partition; the key's (Kafka's
// murmur2, over the topic's partition count); and for the keyless messages
// of a batch one partition, the next one for the stream's next batch.
type spreader struct {
	s      *Service
	topics map[string]*spread
}

type spread struct {
	partitions int
	next       int
	checked    time.Time
}

// spreadRefresh is how often a stream rereads a topic's partition count,
// so that partitions added later get messages too.
const spreadRefresh = time.Second

// partitions returns the partition of each message of batch b.
func (sp *spreader) partitions(b *ferryv1.PublishStreamRequest, msgs []engine.Message) ([]int, error) {
	out := make([]int, len(msgs))
	if b.Partition != nil {
		if *b.Partition < 0 {
			return nil, invalid("partition %d is negative", *b.Partition)
		}
		for j := range out {
			out[j] = int(*b.Partition)
		}
		return out, nil
	}
	t := sp.topics[b.Topic]
	now := time.Now()
	if t == nil || now.Sub(t.checked) > spreadRefresh {
		info, err := sp.s.b.DescribeTopic(b.Topic)
		if err != nil {
			return nil, toConnect(err)
		}
		if t == nil {
			// Streams start at a random partition, so that many short
			// streams do not all load the first.
			t = &spread{next: rand.IntN(1 << 20)}
			sp.topics[b.Topic] = t
		}
		t.partitions, t.checked = len(info.Partitions), now
	}
	keyless := -1
	for j, m := range msgs {
		if m.Key != nil {
			out[j] = engine.KeyPartition(m.Key, t.partitions)
			continue
		}
		if keyless < 0 {
			keyless = t.next % t.partitions
			t.next = keyless + 1
		}
		out[j] = keyless
	}
	return out, nil
}
