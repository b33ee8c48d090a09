package rabbitdriver

import (
	"context"
	"errors"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// errNacked: the broker refused the message (basic.nack).
var errNacked = errors.New("rabbitmq: publish nacked by the broker")

// Producer implements driver.Bench: a connection of its own, one channel in
// confirm mode.
func (b *bench) Producer(ctx context.Context, i int) (driver.Producer, error) {
	conn, err := dial(b.d.cfg.URL, "producer")
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	p := &producer{
		b: b, conn: conn, ch: ch,
		mode:  amqp.Persistent,
		slots: make(chan struct{}, confirmWindow),
		dead:  make(chan struct{}),
	}
	if b.spec.Pattern == workload.PubSub {
		p.mode = amqp.Transient
	}
	// Room for every confirm that may be outstanding, so the connection's
	// reader never waits on collect.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, confirmWindow))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	p.wg.Go(func() { p.collect(confirms, closed) })
	return p, nil
}

// pending is a published message waiting for its confirm.
type pending struct {
	partition int
	done      func(error)
}

type flushWaiter struct {
	published uint64
	ch        chan struct{}
}

// producer publishes with confirms, at most confirmWindow unconfirmed.
// Confirms come in delivery-tag order (the client resequences them and
// expands multiple acks), which is publish order: pending is a FIFO ring.
type producer struct {
	b    *bench
	conn *amqp.Connection
	ch   *amqp.Channel
	mode uint8

	slots chan struct{} // a token per unconfirmed message
	dead  chan struct{} // closed once the channel is closed and pending failed

	mu                   sync.Mutex
	ring                 [confirmWindow]pending
	head, n              int
	published, confirmed uint64
	waiters              []flushWaiter
	err                  error // why the channel closed

	wg    sync.WaitGroup
	close sync.Once
}

func (p *producer) Publish(ctx context.Context, partition int, payload []byte, done func(error)) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.dead:
		return p.deadErr()
	}
	exchange, key := p.b.target(partition)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		<-p.slots
		return p.err
	}
	// Queued before it is sent: its confirm may come back before
	// PublishWithContext returns. The client copies payload into its
	// buffer before returning.
	p.ring[(p.head+p.n)%confirmWindow] = pending{partition, done}
	p.n++
	err := p.ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: payload, DeliveryMode: p.mode})
	if err != nil {
		// Not sent, no delivery tag taken: no confirm will come for it.
		p.n--
		p.ring[(p.head+p.n)%confirmWindow] = pending{}
		p.mu.Unlock()
		<-p.slots
		return err
	}
	p.published++
	p.mu.Unlock()
	return nil
}

// collect resolves confirms in order until the channel closes, then fails
// what is still pending. A message counts as confirmed for Flush once its
// done has returned.
func (p *producer) collect(confirms <-chan amqp.Confirmation, closed <-chan *amqp.Error) {
	for c := range confirms {
		p.mu.Lock()
		it := p.ring[p.head]
		p.ring[p.head] = pending{}
		p.head = (p.head + 1) % confirmWindow
		p.n--
		p.mu.Unlock()
		<-p.slots
		if c.Ack {
			if p.b.spec.Pattern == workload.Stream {
				p.b.appended[it.partition].Add(1)
			}
			it.done(nil)
		} else {
			it.done(errNacked)
		}
		p.mu.Lock()
		p.confirmed++
		p.wakeFlushers()
		p.mu.Unlock()
	}
	err := error(amqp.ErrClosed)
	if e, ok := <-closed; ok && e != nil {
		err = e
	}
	p.mu.Lock()
	p.err = err
	left := make([]pending, 0, p.n)
	for ; p.n > 0; p.n-- {
		left = append(left, p.ring[p.head])
		p.ring[p.head] = pending{}
		p.head = (p.head + 1) % confirmWindow
	}
	p.mu.Unlock()
	for _, it := range left {
		it.done(err)
	}
	p.mu.Lock()
	for _, w := range p.waiters {
		close(w.ch)
	}
	p.waiters = nil
	p.mu.Unlock()
	close(p.dead)
}

// wakeFlushers releases the Flush calls whose messages are all confirmed;
// p.mu is held.
func (p *producer) wakeFlushers() {
	k := 0
	for _, w := range p.waiters {
		if p.confirmed >= w.published {
			close(w.ch)
		} else {
			p.waiters[k] = w
			k++
		}
	}
	p.waiters = p.waiters[:k]
}

func (p *producer) deadErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush implements driver.Producer: the client writes each publish to the
// socket as it goes, so what remains is to wait for the confirms.
func (p *producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.err != nil {
		defer p.mu.Unlock()
		return p.err
	}
	if p.confirmed >= p.published {
		p.mu.Unlock()
		return nil
	}
	w := flushWaiter{published: p.published, ch: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	select {
	case <-w.ch:
		// Woken by a confirm, or by the channel's end (then p.err is
		// set and what was pending failed).
		return p.deadErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *producer) Close() error {
	var err error
	p.close.Do(func() {
		err = p.conn.Close()
		p.wg.Wait()
		if errors.Is(err, amqp.ErrClosed) {
			err = nil
		}
	})
	return err
}
