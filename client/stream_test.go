package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

// member consumes a stream subscription in the background and records
// what it received.
type member struct {
	sc   *client.StreamConsumer
	mu   sync.Mutex
	got  map[int32][]int64 // offsets by partition, in order of receipt
	done chan error
}

func join(t *testing.T, c *client.Client, topic, sub string, opts ...client.SubscribeOption) *member {
	t.Helper()
	sc, err := c.ConsumeStream(testCtx(t), topic, sub, opts...)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{sc: sc, got: map[int32][]int64{}, done: make(chan error, 1)}
	go func() {
		for {
			msg, err := sc.Next(context.Background())
			if err != nil {
				m.done <- err
				return
			}
			m.mu.Lock()
			m.got[msg.Partition] = append(m.got[msg.Partition], msg.Offset)
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, offs := range m.got {
		n += len(offs)
	}
	return n
}

func (m *member) offsets(p int32) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.got[p])
}

func (m *member) close(t *testing.T) {
	t.Helper()
	if err := m.sc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-m.done; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("member ended with %v", err)
	}
}

func TestStreamGroup(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "events", 4)
	createSub(t, c, "events", "g", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest})
	for p := range int32(4) {
		if _, err := c.PublishTo(ctx, "events", p, values(25, "a")...); err != nil {
			t.Fatal(err)
		}
	}
	var assigned []client.Assignment
	var amu sync.Mutex
	a := join(t, c, "events", "g", client.WithAutoCommit(20*time.Millisecond), client.WithOnAssign(func(as client.Assignment) {
		amu.Lock()
		assigned = append(assigned, as)
		amu.Unlock()
	}))
	waitFor(t, "a owns every partition and read everything", func() bool {
		return len(a.sc.Assignment().Partitions) == 4 && a.count() == 100
	})
	for p := range int32(4) {
		if got := a.offsets(p); len(got) != 25 || got[0] != 0 || !slices.IsSorted(got) {
			t.Fatalf("partition %d: %v", p, got)
		}
	}
	if a.sc.MemberID() == "" {
		t.Fatal("no member id")
	}
	waitFor(t, "a's commits", func() bool { return committed(t, c, "events", "g") == 100 })

	b := join(t, c, "events", "g", client.WithAutoCommit(20*time.Millisecond))
	waitFor(t, "two partitions each", func() bool {
		pa, pb := a.sc.Assignment().Partitions, b.sc.Assignment().Partitions
		return len(pa) == 2 && len(pb) == 2 && !slices.ContainsFunc(pa, func(p int32) bool { return slices.Contains(pb, p) })
	})
	amu.Lock()
	if len(assigned) < 2 || len(assigned[len(assigned)-1].Partitions) != 2 {
		t.Fatalf("assignments seen by a: %v", assigned)
	}
	amu.Unlock()
	if b.count() != 0 {
		t.Fatalf("b received %d committed messages again", b.count())
	}
	for p := range int32(4) {
		if _, err := c.PublishTo(ctx, "events", p, values(10, "b")...); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the new messages split between a and b", func() bool { return a.count()+b.count() == 140 })
	if b.count() != 20 {
		t.Fatalf("b got %d messages, want 20", b.count())
	}
	for _, p := range b.sc.Assignment().Partitions {
		if got := b.offsets(p); len(got) != 10 || got[0] != 25 || got[9] != 34 {
			t.Fatalf("b partition %d: %v", p, got)
		}
	}
	waitFor(t, "every position committed", func() bool { return committed(t, c, "events", "g") == 140 })

	// Both leave; a new member resumes from the committed offsets.
	a.close(t)
	b.close(t)
	for p := range int32(4) {
		if _, err := c.PublishTo(ctx, "events", p, values(5, "c")...); err != nil {
			t.Fatal(err)
		}
	}
	n := join(t, c, "events", "g", client.WithAutoCommit(0))
	waitFor(t, "the newcomer reads the rest", func() bool { return n.count() == 20 })
	for p := range int32(4) {
		if got := n.offsets(p); len(got) != 5 || got[0] != 35 {
			t.Fatalf("newcomer partition %d: %v", p, got)
		}
	}
	// Without automatic commits nothing moved until Commit.
	if got := committed(t, c, "events", "g"); got != 140 {
		t.Fatalf("committed %d without commits", got)
	}
	if err := n.sc.Commit(ctx, map[int32]int64{0: 40, 1: 40, 2: 40, 3: 40}); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c, "events", "g"); got != 160 {
		t.Fatalf("committed %d after Commit", got)
	}
	n.close(t)
}

// committed sums a stream subscription's committed offsets.
func committed(t *testing.T, c *client.Client, topic, sub string) int64 {
	s, err := c.DescribeSubscription(testCtx(t), topic, sub)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range s.GetPartitions() {
		n += p.GetCommitted()
	}
	return n
}

func TestSubscribeStream(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "ledger", 3)
	createSub(t, c, "ledger", "audit", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest})
	for p := range int32(3) {
		if _, err := c.PublishTo(ctx, "ledger", p, values(50, "x")...); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	last := map[int32]int64{}
	seen := 0
	var bad error
	runCtx, stop := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() {
		result <- c.SubscribeStream(runCtx, "ledger", "audit", func(ctx context.Context, m *client.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if o, ok := last[m.Partition]; ok && m.Offset != o+1 && bad == nil {
				bad = fmt.Errorf("partition %d: offset %d after %d", m.Partition, m.Offset, o)
			}
			last[m.Partition] = m.Offset
			seen++
			return nil
		}, client.WithConcurrency(3), client.WithSubscribeCredit(8))
	}()
	waitFor(t, "150 messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen == 150
	})
	stop()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if bad != nil {
		t.Fatal(bad)
	}
	// Closing committed everything.
	if got := committed(t, c, "ledger", "audit"); got != 150 {
		t.Fatalf("committed %d after the handler returned", got)
	}

	// A handler error ends SubscribeStream; what came before is committed.
	if _, err := c.PublishTo(ctx, "ledger", 0, values(10, "y")...); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := c.SubscribeStream(ctx, "ledger", "audit", func(ctx context.Context, m *client.Message) error {
		if m.Offset == 55 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("SubscribeStream: %v, want boom", err)
	}
	s, err := c.DescribeSubscription(ctx, "ledger", "audit")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.GetPartitions()[0].GetCommitted(); got != 55 {
		t.Fatalf("partition 0 committed at %d, want 55", got)
	}

	// The iterator form: a message is processed when the loop body is done
	// with it, so the one the loop broke on stays unprocessed.
	sc, err := c.ConsumeStream(ctx, "ledger", "audit")
	if err != nil {
		t.Fatal(err)
	}
	for m, err := range sc.Messages(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset == 57 {
			break
		}
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c, "ledger", "audit"); got != 157 {
		t.Fatalf("committed %d after the iterator, want 157", got)
	}

	if err := c.SubscribeStream(ctx, "ledger", "nobody", func(context.Context, *client.Message) error { return nil }); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown subscription: %v", err)
	}
}

func TestClientCloseCommits(t *testing.T) {
	s, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "t", 1)
	createSub(t, c, "t", "g", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest})
	if _, err := c.Publish(ctx, "t", values(10, "v")...); err != nil {
		t.Fatal(err)
	}
	sc, err := c.ConsumeStream(ctx, "t", "g", client.WithAutoCommit(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := sc.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The tenth is processed once the loop asks for more.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := sc.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after Client.Close: %v", err)
	}
	if _, err := c.ListTopics(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	c2 := newClient(t, s)
	if got := committed(t, c2, "t", "g"); got != 10 {
		t.Fatalf("committed %d after Client.Close, want 10", got)
	}
}

func TestStreamSeekWhileConsuming(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "e", 2)
	createSub(t, c, "e", "g", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest})
	if _, err := c.PublishTo(ctx, "e", 0, values(5, "a")...); err != nil {
		t.Fatal(err)
	}
	m := join(t, c, "e", "g", client.WithAutoCommit(10*time.Millisecond))
	waitFor(t, "5 messages committed", func() bool { return m.count() == 5 && committed(t, c, "e", "g") == 5 })
	// The member goes on from the new position, and commits again what it
	// processed again.
	if _, err := c.SeekSubscription(ctx, "e", "g", 0, client.AtOffset(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "offsets 1 to 4 again", func() bool { return m.count() == 9 })
	if got := m.offsets(0); fmt.Sprint(got) != "[0 1 2 3 4 1 2 3 4]" {
		t.Fatalf("offsets %v", got)
	}
	waitFor(t, "the commit after the seek", func() bool { return committed(t, c, "e", "g") == 5 })
	if err := m.sc.Commit(ctx, map[int32]int64{7: 1}); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("commit of a partition not owned: %v", err)
	}
	m.close(t)
}
