package rabbitdriver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Subscribe implements driver.Bench.
func (b *bench) Subscribe(ctx context.Context, sub, member int, h driver.Handler) (driver.Consumer, error) {
	var queues []string
	switch {
	case b.spec.Pattern == workload.PubSub:
		queues = []string{b.subscription(sub)}
	case b.spec.QueueLike():
		for p := range b.spec.Partitions {
			queues = append(queues, b.queue(p))
		}
	default:
		return nil, fmt.Errorf("%w: subscribe on a %s workload", driver.ErrUnsupported, b.spec.Pattern)
	}
	conn, err := dial(b.d.cfg.URL, fmt.Sprintf("consumer %d/%d", sub, member))
	if err != nil {
		return nil, err
	}
	c := &consumer{conn: conn, g: &guarded{h: h}}
	for _, q := range queues {
		if err := c.consume(b, q); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// consumer is one member: a connection, a channel per queue it reads.
type consumer struct {
	conn *amqp.Connection
	g    *guarded
	chs  []*amqp.Channel
	tags []string
	wg   sync.WaitGroup
}

// consume opens a channel on queue q and starts its loop. A pub/sub
// subscription's queue is declared and bound here: it lives as long as its
// consumers.
func (c *consumer) consume(b *bench, q string) error {
	ch, err := c.conn.Channel()
	if err != nil {
		return err
	}
	if b.spec.Pattern == workload.PubSub {
		exclusive := b.spec.Consumers == 1
		if _, err := ch.QueueDeclare(q, false, true, exclusive, false, nil); err != nil {
			return err
		}
		b.mu.Lock()
		b.queues = append(b.queues, q)
		b.mu.Unlock()
		if err := ch.QueueBind(q, "", b.exchange(), false, nil); err != nil {
			return err
		}
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	tag := fmt.Sprintf("ferrybench-%d", len(c.tags))
	deliveries, err := ch.Consume(q, tag, false, false, false, false, nil)
	if err != nil {
		return err
	}
	c.chs, c.tags = append(c.chs, ch), append(c.tags, tag)
	c.wg.Go(func() { loop(ch, deliveries, c.g) })
	return nil
}

// loop hands each delivery to the handler, then acknowledges what was
// handled (multiple=true): every ackEvery messages, ackDelay after the
// first message not yet acknowledged, and at the end (deliveries closes
// after Cancel has passed on what had arrived, or when the channel
// closes). With prefetch > ackEvery deliveries never wait for an ack.
func loop(ch *amqp.Channel, deliveries <-chan amqp.Delivery, g *guarded) {
	var last uint64
	unacked := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	ack := func() {
		if unacked > 0 {
			_ = ch.Ack(last, true) // fails only once the channel is closed
			unacked = 0
		}
		timer.Stop()
	}
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				ack()
				return
			}
			g.call(d.Body)
			last = d.DeliveryTag
			if unacked++; unacked >= ackEvery {
				ack()
			} else if unacked == 1 {
				timer.Reset(ackDelay)
			}
		case <-timer.C:
			ack()
		}
	}
}

// Close cancels the member's consumers, lets its loops hand over and
// acknowledge what had arrived, then closes its connection.
func (c *consumer) Close() error {
	var errs []error
	for i, ch := range c.chs {
		if err := ch.Cancel(c.tags[i], false); err != nil && !errors.Is(err, amqp.ErrClosed) {
			errs = append(errs, err)
		}
	}
	looped := make(chan struct{})
	go func() { c.wg.Wait(); close(looped) }()
	select {
	case <-looped:
	case <-time.After(10 * time.Second):
		errs = append(errs, errors.New("rabbitmq consumer: deliveries did not end 10s after cancel"))
	}
	if err := c.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		errs = append(errs, err)
	}
	// Closing the connection ends every loop.
	c.wg.Wait()
	return errors.Join(errs...)
}

// guarded calls h one at a time (a member's channels each have a loop).
type guarded struct {
	mu sync.Mutex
	h  driver.Handler
}

func (g *guarded) call(p []byte) {
	g.mu.Lock()
	g.h(p)
	g.mu.Unlock()
}

// Replay implements driver.Bench: reader r reads the streams of
// partitions r, r+readers, ... from the first offset, each up to the
// number of messages it held when Replay began.
func (b *bench) Replay(ctx context.Context, readers int, handler func(int) driver.Handler) error {
	if b.spec.Pattern != workload.Stream {
		return fmt.Errorf("%w: replay on a %s workload", driver.ErrUnsupported, b.spec.Pattern)
	}
	// The end as of now: what this driver saw confirmed on each stream
	// (Replay follows the producers' Flush). queue.declare's message
	// count is no substitute: for a stream it comes from statistics
	// gathered every few seconds, and was 0 right after the appends.
	ends := make([]int64, b.spec.Partitions)
	for p := range ends {
		ends[p] = b.appended[p].Load()
	}
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for r := range min(readers, b.spec.Partitions) {
		wg.Go(func() {
			conn, err := dial(b.d.cfg.URL, fmt.Sprintf("replay %d", r))
			if err != nil {
				errs[r] = err
				return
			}
			defer conn.Close()
			h := handler(r)
			for part := r; part < b.spec.Partitions; part += readers {
				if err := replayStream(ctx, conn, b.queue(part), ends[part], h); err != nil {
					errs[r] = fmt.Errorf("stream %s: %w", b.queue(part), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// replayStream reads stream q's first n messages on a channel of its own.
func replayStream(ctx context.Context, conn *amqp.Connection, q string, n int64, h driver.Handler) error {
	if n == 0 {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	// Closing the channel drops what was delivered beyond n.
	defer ch.Close()
	if err := ch.Qos(replayPrefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(q, "ferrybench-replay", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		return err
	}
	unacked := 0
	for read := int64(0); read < n; read++ {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return fmt.Errorf("deliveries ended after %d of %d messages", read, n)
		}
		h(d.Body)
		// Acks only return credit on a stream.
		if unacked++; unacked >= replayAckEvery {
			if err := ch.Ack(d.DeliveryTag, true); err != nil {
				return err
			}
			unacked = 0
		}
	}
	return nil
}
