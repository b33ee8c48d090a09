package natsdriver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Producer implements driver.Bench: each producer on its own connection.
func (b *bench) Producer(ctx context.Context, i int) (driver.Producer, error) {
	nc, err := connect(b.d.cfg.URL)
	if err != nil {
		return nil, err
	}
	if b.spec.Pattern == workload.PubSub {
		return &coreProducer{nc: nc, subject: b.subject(0)}, nil
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxAsyncPending))
	if err != nil {
		nc.Close()
		return nil, err
	}
	p := &jsProducer{nc: nc, js: js, b: b, pending: make(chan pendingAck, 2*maxAsyncPending), quit: make(chan struct{})}
	p.wg.Go(p.collect)
	return p, nil
}

type pendingAck struct {
	f     jetstream.PubAckFuture
	done  func(error)
	flush chan struct{}
}

// jsProducer publishes with PublishAsync; one goroutine waits for the
// acks in publish order (they come back in order on one connection).
type jsProducer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	b       *bench
	pending chan pendingAck
	quit    chan struct{} // closed by Close: futures still open fail
	wg      sync.WaitGroup
	close   sync.Once
}

func (p *jsProducer) collect() {
	for it := range p.pending {
		if it.flush != nil {
			close(it.flush)
			continue
		}
		select {
		case <-it.f.Ok():
			it.done(nil)
		case err := <-it.f.Err():
			it.done(err)
		case <-p.quit:
			it.done(nats.ErrConnectionClosed)
		}
	}
}

func (p *jsProducer) Publish(ctx context.Context, partition int, payload []byte, done func(error)) error {
	// PublishAsync stalls (up to its stall wait, then fails) while
	// max pending acks are outstanding: that is its flow control.
	var f jetstream.PubAckFuture
	var err error
	for {
		f, err = p.js.PublishAsync(p.b.subject(partition), payload)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	select {
	case p.pending <- pendingAck{f: f, done: done}:
	case <-ctx.Done():
		go func() {
			select {
			case <-f.Ok():
				done(nil)
			case err := <-f.Err():
				done(err)
			case <-p.quit:
				done(nats.ErrConnectionClosed)
			}
		}()
	}
	return nil
}

func (p *jsProducer) Flush(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	marker := make(chan struct{})
	select {
	case p.pending <- pendingAck{flush: marker}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-marker:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *jsProducer) Close() error {
	p.close.Do(func() {
		close(p.quit)
		close(p.pending)
		p.wg.Wait()
		p.nc.Close()
	})
	return nil
}

// Subscribe implements driver.Bench.
func (b *bench) Subscribe(ctx context.Context, sub, member int, h driver.Handler) (driver.Consumer, error) {
	if b.spec.Pattern == workload.PubSub {
		return b.subscribeCore(ctx, h)
	}
	if !b.spec.QueueLike() {
		return nil, fmt.Errorf("%w: subscribe on a %s workload", driver.ErrUnsupported, b.spec.Pattern)
	}
	nc, err := connect(b.d.cfg.URL)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	g := &guarded{h: h}
	c := &jsConsumer{nc: nc, g: g}
	// A member pulls from every partition's stream, each Consume on its
	// own callback goroutine; guarded serialises the handler.
	for p := range b.spec.Partitions {
		cons, err := js.Consumer(ctx, b.stream(p), consumerName)
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(m jetstream.Msg) {
				g.call(m.Data())
				_ = m.Ack() // sent without waiting for a reply
			}, jetstream.PullMaxMessages(pullBatch))
			if err == nil {
				c.ccs = append(c.ccs, cc)
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

type jsConsumer struct {
	nc  *nats.Conn
	ccs []jetstream.ConsumeContext
	g   *guarded
}

func (c *jsConsumer) Close() error {
	c.g.stop()
	for _, cc := range c.ccs {
		cc.Stop()
	}
	for _, cc := range c.ccs {
		<-cc.Closed()
	}
	// Acks sent but not yet written go out before the connection ends.
	_ = c.nc.Flush()
	c.nc.Close()
	return nil
}

// Replay implements driver.Bench: reader r reads the streams of
// partitions r, r+readers, ... with an ordered consumer, up to the
// message count each stream had when the replay began.
func (b *bench) Replay(ctx context.Context, readers int, handler func(int) driver.Handler) error {
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for r := range min(readers, b.spec.Partitions) {
		wg.Go(func() {
			nc, err := connect(b.d.cfg.URL)
			if err != nil {
				errs[r] = err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs[r] = err
				return
			}
			h := handler(r)
			for part := r; part < b.spec.Partitions; part += readers {
				if err := b.replayStream(ctx, js, b.stream(part), h); err != nil {
					errs[r] = fmt.Errorf("stream %s: %w", b.stream(part), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *bench) replayStream(ctx context.Context, js jetstream.JetStream, name string, h driver.Handler) error {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	n := s.CachedInfo().State.Msgs
	if n == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayBatch))
	if err != nil {
		return err
	}
	defer it.Stop()
	for range n {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		h(m.Data())
	}
	return nil
}
