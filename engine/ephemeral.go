package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// DefaultEphemeralBuffer is how many messages an ephemeral subscription may
// fall behind on one partition before it is cut off.
const DefaultEphemeralBuffer = 10000

// EphemeralOptions configure an ephemeral subscription.
type EphemeralOptions struct {
	// Buffer is how many messages the subscriber may fall behind on any one
	// partition; past it the subscription is cut off with ErrSlowConsumer.
	// DefaultEphemeralBuffer when 0.
	Buffer int64
}

// Ephemeral is an unnamed subscription with no stored state: it sees the
// messages published, from the moment it was made, to every topic its
// pattern matches (topics created later included), and ends with Close. It
// reads the partition logs directly, so a slow subscriber costs no memory;
// one that falls further behind than its buffer is cut off.
type Ephemeral struct {
	b       *Broker
	pattern Pattern
	buffer  int64

	mu      sync.Mutex
	cursors map[string][]int64 // topic -> next offset per partition
	changed chan struct{}
	err     error
	rr      int
	reads   readSizer
}

// SubscribeEphemeral starts an ephemeral subscription on a topic name or a
// wildcard pattern ("orders.*", "orders.>").
func (b *Broker) SubscribeEphemeral(pattern string, opts EphemeralOptions) (*Ephemeral, error) {
	p, err := ParsePattern(pattern)
	if err != nil {
		return nil, err
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultEphemeralBuffer
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	e := &Ephemeral{b: b, pattern: p, buffer: opts.Buffer, cursors: map[string][]int64{}}
	for name, t := range b.topics {
		if p.Match(name) {
			cur := make([]int64, len(t.parts))
			for i, l := range t.parts {
				cur[i] = l.VisibleOffset()
			}
			e.cursors[name] = cur
		}
	}
	b.ephMu.Lock()
	b.ephemerals[e] = struct{}{}
	b.ephMu.Unlock()
	return e, nil
}

// Close ends the subscription; Receive then returns ErrMemberClosed.
func (e *Ephemeral) Close() {
	e.b.ephMu.Lock()
	delete(e.b.ephemerals, e)
	e.b.ephMu.Unlock()
	e.stop(ErrMemberClosed)
}

func (e *Ephemeral) stop(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
	e.wakeLocked()
}

func (e *Ephemeral) wakeLocked() {
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// Receive returns up to max messages, waiting until there is one or ctx
// ends. Messages of one partition come in order.
func (e *Ephemeral) Receive(ctx context.Context, max int) ([]Message, error) {
	return waitFor(ctx, func() ([]Message, <-chan struct{}, error) { return pollEphemeral(e, max, collectMessages, nil) })
}

// pollEphemeral takes up to limit records, round robin over the matching
// partitions, with collect.
func pollEphemeral[T any](e *Ephemeral, limit int, collect collector[T], scratch *Scratch) ([]T, <-chan struct{}, error) {
	limit = max(limit, 1)
	b := e.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, nil, e.err
	}
	if b.closed {
		return nil, nil, ErrClosed
	}
	topics := make([]string, 0, len(e.cursors))
	for name := range e.cursors {
		topics = append(topics, name)
	}
	slices.Sort(topics)
	var out []T
	taken := 0
	type slot struct {
		topic string
		p     int
	}
	var slots []slot
	for _, name := range topics {
		t, ok := b.topics[name]
		if !ok {
			delete(e.cursors, name)
			continue
		}
		cur := e.cursors[name]
		for len(cur) < len(t.parts) {
			cur = append(cur, 0) // partitions added since
		}
		e.cursors[name] = cur
		for p, l := range t.parts {
			cur[p] = max(cur[p], l.StartOffset())
			if behind := l.VisibleOffset() - cur[p]; behind > e.buffer {
				e.err = fmt.Errorf("%w: %d messages behind on %s/%d, buffer %d", ErrSlowConsumer, behind, name, p, e.buffer)
				return nil, nil, e.err
			}
			slots = append(slots, slot{name, p})
		}
	}
	tell := takeTeller{b: b}
	for i := 0; i < len(slots) && taken < limit; i++ {
		s := slots[(e.rr+i)%len(slots)]
		l := b.topics[s.topic].parts[s.p]
		cur := e.cursors[s.topic]
		if cur[s.p] >= l.VisibleOffset() {
			continue
		}
		res, err := scratch.read(l, cur[s.p], e.reads.size(limit-taken))
		if err != nil {
			return out, nil, fmt.Errorf("read %s/%d: %w", s.topic, s.p, err)
		}
		e.reads.saw(res.Data)
		var n int
		from := cur[s.p]
		out, n, cur[s.p], err = collect(out, s.topic, s.p, from, res.Data, limit-taken)
		taken += n
		if err != nil {
			return out, nil, fmt.Errorf("read %s/%d: %w", s.topic, s.p, err)
		}
		tell.tell(s.topic, "", KindEphemeral, res.Data, from, cur[s.p])
	}
	e.rr++
	if e.changed == nil {
		e.changed = make(chan struct{})
	}
	return out, e.changed, nil
}

// notifyEphemerals wakes the ephemeral subscriptions matching topic.
func (b *Broker) notifyEphemerals(topic string) {
	b.ephMu.RLock()
	defer b.ephMu.RUnlock()
	for e := range b.ephemerals {
		if e.pattern.Match(topic) {
			e.mu.Lock()
			e.wakeLocked()
			e.mu.Unlock()
		}
	}
}

// topicCreated starts matching ephemeral subscriptions on a new topic at its
// beginning: everything in it was published after they started.
func (b *Broker) topicCreated(name string, partitions int) {
	b.ephMu.RLock()
	defer b.ephMu.RUnlock()
	for e := range b.ephemerals {
		if e.pattern.Match(name) {
			e.mu.Lock()
			e.cursors[name] = make([]int64, partitions)
			e.mu.Unlock()
		}
	}
}

// closeEphemerals ends every ephemeral subscription (the broker closes).
func (b *Broker) closeEphemerals() {
	b.ephMu.Lock()
	list := make([]*Ephemeral, 0, len(b.ephemerals))
	for e := range b.ephemerals {
		list = append(list, e)
	}
	b.ephemerals = map[*Ephemeral]struct{}{}
	b.ephMu.Unlock()
	for _, e := range list {
		e.stop(ErrClosed)
	}
}
