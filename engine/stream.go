package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/meta"
)

// DefaultSessionTimeout is how long a stream member may go without a
// heartbeat before it loses its partitions.
const DefaultSessionTimeout = 30 * time.Second

// streamSub is an open stream subscription (a consumer group).
//
// Lock order: Broker.mu (shared) before streamSub.mu.
type streamSub struct {
	b   *Broker
	t   *topic
	rec subRecord

	mu        sync.Mutex
	group     *groupState
	committed []atomic.Int64 // per partition
	savedGen  int64          // generation last written to the metadata store
	members   map[string]*StreamMember
	seq       int64
	timer     clock.Timer
	changed   chan struct{}
	closed    atomic.Bool
}

// StreamMember is one member of a stream subscription. It consumes the
// partitions the group assigns it, from their committed offsets.
type StreamMember struct {
	s        *streamSub
	id       string
	position map[int]int64 // next offset to fetch, per owned partition
	closed   bool
	reads    readSizer
}

func offsetKey(topic, sub string, p int) string {
	return stateKey(topic, sub) + strconv.Itoa(p) + "/o"
}

func generationKey(topic, sub string) string { return stateKey(topic, sub) + "gen" }

func newStreamSub(b *Broker, t *topic, rec subRecord, offsets []int64, generation int64) *streamSub {
	s := &streamSub{b: b, t: t, rec: rec, members: map[string]*StreamMember{},
		group:     newGroupState(len(offsets), DefaultSessionTimeout, generation),
		committed: make([]atomic.Int64, len(offsets))}
	for p, o := range offsets {
		s.committed[p].Store(o)
	}
	s.savedGen = generation
	return s
}

func loadStreamSub(b *Broker, t *topic, rec subRecord) (*streamSub, error) {
	offsets := make([]int64, len(t.parts))
	for p := range offsets {
		if v, ok := b.meta.Get(offsetKey(rec.Topic, rec.Name, p)); ok {
			o, err := decodeOffset(v)
			if err != nil {
				return nil, err
			}
			offsets[p] = o
		}
	}
	var gen int64
	if v, ok := b.meta.Get(generationKey(rec.Topic, rec.Name)); ok {
		g, err := decodeOffset(v)
		if err != nil {
			return nil, err
		}
		gen = g
	}
	return newStreamSub(b, t, rec, offsets, gen), nil
}

// sync follows partitions added to the topic. Called with the locks held.
func (s *streamSub) syncPartitions() {
	n := len(s.t.parts)
	if n <= len(s.committed) {
		return
	}
	grown := make([]atomic.Int64, n)
	for p := range s.committed {
		grown[p].Store(s.committed[p].Load())
	}
	s.committed = grown
	s.group.setPartitions(n)
}

// afterChange persists the generation and re-arms the session timer.
// Called with the locks held.
func (s *streamSub) afterChange(now time.Time) {
	rebalanced := s.group.generation != s.savedGen
	if rebalanced {
		var mb meta.Batch
		mb.Put(generationKey(s.rec.Topic, s.rec.Name), encodeOffset(s.group.generation))
		if err := s.b.apply(&mb, meta.Written); err != nil {
			s.b.opts.Logger.Warn("cannot record group generation", "topic", s.rec.Topic, "subscription", s.rec.Name, "err", err)
		} else {
			s.savedGen = s.group.generation
		}
	}
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if at, ok := s.group.nextExpiry(); ok {
		s.timer = s.b.opts.Clock.AfterFunc(max(at.Sub(now), 0), s.onTimer)
	}
	if rebalanced {
		for _, h := range s.b.hooks.rebalance {
			h.OnRebalance(s.rec.Topic, s.rec.Name, s.group.generation, len(s.group.members))
		}
	}
}

func (s *streamSub) onTimer() {
	if s.closed.Load() {
		return
	}
	s.b.mu.RLock()
	defer s.b.mu.RUnlock()
	if s.b.closed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	now := s.b.opts.Clock.Now()
	if s.group.expire(now) {
		for id, m := range s.members {
			if _, alive := s.group.members[id]; !alive {
				m.closed = true
				delete(s.members, id)
			}
		}
	}
	s.afterChange(now)
}

// notify wakes fetching members (a publish).
func (s *streamSub) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

func (s *streamSub) shutdown() {
	s.closed.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	for _, m := range s.members {
		m.closed = true
	}
}

// JoinStream adds a member to a stream subscription. sessionTimeout (0 for
// DefaultSessionTimeout) is how long it may go without a heartbeat.
func (b *Broker) JoinStream(topicName, sub string, sessionTimeout time.Duration) (*StreamMember, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, err := b.streamSub(topicName, sub)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncPartitions()
	if sessionTimeout <= 0 {
		sessionTimeout = DefaultSessionTimeout
	}
	s.seq++
	m := &StreamMember{s: s, id: fmt.Sprintf("m%d-%d", s.group.generation, s.seq), position: map[int]int64{}}
	now := b.opts.Clock.Now()
	s.group.join(m.id, now, s.seq, sessionTimeout)
	s.members[m.id] = m
	s.afterChange(now)
	return m, nil
}

func (b *Broker) streamSub(topicName, name string) (*streamSub, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	s, ok := t.streams[name]
	if !ok {
		if _, isQueue := t.subs[name]; isQueue {
			return nil, fmt.Errorf("%w: %q on %q is a queue subscription", ErrInvalidConfig, name, topicName)
		}
		return nil, fmt.Errorf("%w %q on topic %q", ErrUnknownSubscription, name, topicName)
	}
	return s, nil
}

func (m *StreamMember) lock() (func(), error) {
	s := m.s
	s.b.mu.RLock()
	s.mu.Lock()
	unlock := func() { s.mu.Unlock(); s.b.mu.RUnlock() }
	if m.closed || s.closed.Load() || s.b.closed {
		unlock()
		return nil, ErrMemberClosed
	}
	s.syncPartitions()
	return unlock, nil
}

// ID is the member's id in the group.
func (m *StreamMember) ID() string { return m.id }

// Heartbeat keeps the member alive and returns the partitions it owns from
// now on. Partitions not listed must no longer be consumed.
func (m *StreamMember) Heartbeat() ([]int, int64, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	s := m.s
	now := s.b.opts.Clock.Now()
	owned, ok := s.group.heartbeat(m.id, now)
	if !ok {
		m.closed = true
		return nil, 0, ErrMemberClosed
	}
	keep := map[int]int64{}
	for _, p := range owned {
		if pos, ok := m.position[p]; ok {
			keep[p] = pos
		} else {
			keep[p] = s.committed[p].Load()
		}
	}
	m.position = keep
	s.afterChange(now)
	return owned, s.group.generation, nil
}

// Leave removes the member; its partitions go to the others at once.
func (m *StreamMember) Leave() error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	s := m.s
	s.group.leave(m.id)
	delete(s.members, m.id)
	m.closed = true
	s.afterChange(s.b.opts.Clock.Now())
	return nil
}

// Fetch returns up to max messages from the partitions the member owns,
// from its positions (the committed offsets when it got them), waiting
// until there is one or ctx ends. It also counts as a heartbeat.
func (m *StreamMember) Fetch(ctx context.Context, max int) ([]Message, error) {
	return waitFor(ctx, func() ([]Message, <-chan struct{}, error) { return fetchStream(m, max, collectMessages, nil) })
}

// fetchStream takes up to limit records from the member's partitions with
// collect.
func fetchStream[T any](m *StreamMember, limit int, collect collector[T], scratch *Scratch) ([]T, <-chan struct{}, error) {
	limit = max(limit, 1)
	if _, _, err := m.Heartbeat(); err != nil {
		return nil, nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	s := m.s
	var out []T
	taken := 0
	tell := takeTeller{b: s.b}
	for p, pos := range m.position {
		if taken >= limit || s.group.owner[p] != m.id {
			continue
		}
		l := s.t.parts[p]
		pos = max(pos, l.StartOffset())
		m.position[p] = pos
		if pos >= l.VisibleOffset() {
			continue
		}
		res, err := scratch.read(l, pos, m.reads.size(limit-taken))
		if err != nil {
			return out, nil, fmt.Errorf("read %s/%d at %d: %w", s.rec.Topic, p, pos, err)
		}
		m.reads.saw(res.Data)
		var n int
		out, n, m.position[p], err = collect(out, s.rec.Topic, p, pos, res.Data, limit-taken)
		taken += n
		if err != nil {
			return out, nil, fmt.Errorf("read %s/%d at %d: %w", s.rec.Topic, p, pos, err)
		}
		tell.tell(s.rec.Topic, s.rec.Name, KindStream, res.Data, pos, m.position[p])
	}
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return out, s.changed, nil
}

// Commit records the offsets to resume from (the next offset to read) for
// partitions the member owns. It is written before Commit returns.
func (m *StreamMember) Commit(offsets map[int]int64) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	s := m.s
	for p, o := range offsets {
		if p < 0 || p >= len(s.group.owner) || s.group.owner[p] != m.id {
			return fmt.Errorf("%w: member %s does not own partition %d", ErrNotOwner, m.id, p)
		}
		if end := s.t.parts[p].VisibleOffset(); o < 0 || o > end {
			return fmt.Errorf("%w: offset %d of partition %d outside 0..%d", ErrInvalidConfig, o, p, end)
		}
	}
	return s.writeCommitted(offsets)
}

// writeCommitted records checked committed offsets in one write. Called
// with the subscription's lock held.
func (s *streamSub) writeCommitted(offsets map[int]int64) error {
	var mb meta.Batch
	for p, o := range offsets {
		mb.Put(offsetKey(s.rec.Topic, s.rec.Name, p), encodeOffset(o))
	}
	if err := s.b.apply(&mb, meta.Written); err != nil {
		return fmt.Errorf("commit: %w", mapStorageErr(err))
	}
	for p, o := range offsets {
		s.committed[p].Store(o)
	}
	if s.t.rec.Config.Retention.Work {
		for p := range offsets {
			s.t.setWorkFloor(p)
		}
	}
	return nil
}

// SeekTarget says where Seek moves a stream subscription.
type SeekTarget struct {
	// Exactly one of: Earliest, Latest, Offset (>= 0), Time (non-zero).
	Earliest bool
	Latest   bool
	Offset   int64
	Time     time.Time
}

// SeekStream sets a stream subscription's committed offset on one partition
// (or every partition when partition < 0); members holding those partitions
// continue from there.
func (b *Broker) SeekStream(ctx context.Context, topicName, sub string, partition int, to SeekTarget) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, err := b.streamSub(topicName, sub)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncPartitions()
	parts := []int{partition}
	if partition < 0 {
		parts = parts[:0]
		for p := range s.t.parts {
			parts = append(parts, p)
		}
	} else if partition >= len(s.t.parts) {
		return fmt.Errorf("%w: %d", ErrUnknownPartition, partition)
	}
	var mb meta.Batch
	targets := map[int]int64{}
	for _, p := range parts {
		l := s.t.parts[p]
		var o int64
		switch {
		case to.Earliest:
			o = l.StartOffset()
		case to.Latest:
			o = l.VisibleOffset()
		case !to.Time.IsZero():
			o, _, err = l.OffsetForTime(to.Time.UnixMilli())
			if err != nil {
				return err
			}
		case to.Offset >= 0:
			o = to.Offset
		default:
			return fmt.Errorf("%w: seek needs earliest, latest, an offset or a time", ErrInvalidConfig)
		}
		targets[p] = o
		mb.Put(offsetKey(s.rec.Topic, s.rec.Name, p), encodeOffset(o))
	}
	if err := b.apply(&mb, meta.Written); err != nil {
		return fmt.Errorf("seek: %w", mapStorageErr(err))
	}
	for p, o := range targets {
		s.committed[p].Store(o)
		for _, m := range s.members {
			if _, ok := m.position[p]; ok {
				m.position[p] = o
			}
		}
	}
	return nil
}

// CommitStream records committed offsets (the next offset to read) of a
// stream subscription for the partitions named, in one write, without a
// member: for a front door whose clients assign partitions themselves (a
// Kafka consumer group). Unlike SeekStream it leaves the positions of the
// subscription's own members alone. An offset must lie in 0..end of its
// partition.
func (b *Broker) CommitStream(ctx context.Context, topicName, sub string, offsets map[int]int64) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, err := b.streamSub(topicName, sub)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncPartitions()
	for p, o := range offsets {
		if p < 0 || p >= len(s.t.parts) {
			return fmt.Errorf("%w: %d of %s", ErrUnknownPartition, p, topicName)
		}
		if end := s.t.parts[p].VisibleOffset(); o < 0 || o > end {
			return fmt.Errorf("%w: offset %d of partition %d outside 0..%d", ErrOffsetOutOfRange, o, p, end)
		}
	}
	return s.writeCommitted(offsets)
}

// info describes the subscription; Backlog is the lag. Called with b.mu held.
func (s *streamSub) info() SubscriptionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncPartitions()
	si := SubscriptionInfo{Topic: s.rec.Topic, Name: s.rec.Name, Created: s.rec.Created, Config: s.rec.Config,
		Members: len(s.group.members), Generation: s.group.generation}
	for p := range s.t.parts {
		end := s.t.parts[p].VisibleOffset()
		c := s.committed[p].Load()
		si.Partitions = append(si.Partitions, SubscriptionPartition{
			Partition: p, Committed: c, Backlog: max(end-c, 0), EndOffset: end, Owner: s.group.owner[p],
		})
	}
	return si
}
