package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"pgregory.net/rapid"
)

func newStreamEnv(t *testing.T, partitions int) (*Broker, *clock.Fake, string) {
	t.Helper()
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	dir := t.TempDir()
	b := openBroker(t, dir, Options{Clock: clk, DefaultFsync: "never"})
	createTopic(t, b, "events", TopicConfig{Partitions: partitions})
	if _, err := b.CreateSubscription(bg, "events", "group", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	return b, clk, dir
}

func heartbeat(t *testing.T, m *StreamMember) []int {
	t.Helper()
	owned, _, err := m.Heartbeat()
	if err != nil {
		t.Fatal(err)
	}
	return owned
}

func fetchNow(t *testing.T, m *StreamMember) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 30*time.Millisecond)
	defer cancel()
	ms, err := m.Fetch(ctx, 1000)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	return ms
}

func TestStreamGroupSplitsAndRebalances(t *testing.T) {
	b, clk, _ := newStreamEnv(t, 4)
	a, err := b.JoinStream("events", "group", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := heartbeat(t, a); len(got) != 4 {
		t.Fatalf("alone, a owns %v", got)
	}
	c, _ := b.JoinStream("events", "group", 10*time.Second)
	// c gets nothing until a hands over at its next heartbeat.
	if got := heartbeat(t, c); len(got) != 0 {
		t.Fatalf("c owns %v before a let go", got)
	}
	aOwned := heartbeat(t, a)
	cOwned := heartbeat(t, c)
	if len(aOwned) != 2 || len(cOwned) != 2 {
		t.Fatalf("after rebalance a %v c %v", aOwned, cOwned)
	}
	// Sticky: a kept two of its partitions and gave up two.
	for _, p := range cOwned {
		if slices.Contains(aOwned, p) {
			t.Fatalf("partition %d owned twice", p)
		}
	}
	// a stops heart-beating: after the session timeout c owns everything.
	clk.Advance(5 * time.Second)
	heartbeat(t, c)
	clk.Advance(6 * time.Second)
	if got := heartbeat(t, c); len(got) != 4 {
		t.Fatalf("after a's session expired, c owns %v", got)
	}
	if _, _, err := a.Heartbeat(); !errors.Is(err, ErrMemberClosed) {
		t.Fatalf("expired member heartbeat: %v", err)
	}
	si, _ := b.DescribeSubscription("events", "group")
	if si.Members != 1 || si.Generation < 3 {
		t.Fatalf("info %+v", si)
	}
}

func TestStreamCommitResumeAndSeek(t *testing.T) {
	b, clk, dir := newStreamEnv(t, 2)
	for i := range 10 {
		publish(t, b, "events", Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i)), Timestamp: time.UnixMilli(int64(1000 * (i + 1)))})
	}
	m, _ := b.JoinStream("events", "group", 0)
	heartbeat(t, m)
	ms := fetchNow(t, m)
	if len(ms) != 10 {
		t.Fatalf("fetched %d", len(ms))
	}
	// Commit half of partition 0 and all of partition 1.
	ends := map[int]int64{}
	for _, msg := range ms {
		ends[msg.Partition] = max(ends[msg.Partition], msg.Offset+1)
	}
	if err := m.Commit(map[int]int64{0: 1, 1: ends[1]}); err != nil {
		t.Fatal(err)
	}
	si, _ := b.DescribeSubscription("events", "group")
	if si.Partitions[0].Backlog != ends[0]-1 || si.Partitions[1].Backlog != 0 {
		t.Fatalf("lag %+v", si.Partitions)
	}
	// Restart: a new member resumes from the committed offsets.
	b.Close()
	b = openBroker(t, dir, Options{Clock: clk, DefaultFsync: "never"})
	m, _ = b.JoinStream("events", "group", 0)
	heartbeat(t, m)
	ms = fetchNow(t, m)
	if int64(len(ms)) != ends[0]-1 || ms[0].Partition != 0 || ms[0].Offset != 1 {
		t.Fatalf("after restart fetched %d from %d/%d", len(ms), ms[0].Partition, ms[0].Offset)
	}
	if err := m.Commit(map[int]int64{5: 1}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("commit of a partition not owned: %v", err)
	}
	// Seek to a time: positions move.
	if err := b.SeekStream(bg, "events", "group", -1, SeekTarget{Time: time.UnixMilli(0)}); err != nil {
		t.Fatal(err)
	}
	if ms := fetchNow(t, m); len(ms) != 10 {
		t.Fatalf("after seeking to the start fetched %d", len(ms))
	}
	if err := b.SeekStream(bg, "events", "group", -1, SeekTarget{Latest: true}); err != nil {
		t.Fatal(err)
	}
	si, _ = b.DescribeSubscription("events", "group")
	for _, p := range si.Partitions {
		if p.Backlog != 0 {
			t.Fatalf("after seeking to latest: %+v", si.Partitions)
		}
	}
}

// TestStreamGroupProperties: random joins, heartbeats, leaves and clock
// advances; at no instant is a partition owned by two members, and once
// everyone has heart-beaten every partition is owned by a live member.
func TestStreamGroupProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(rt, "partitions")
		g := newGroupState(n, 10*time.Second, 0)
		now := time.Unix(1000, 0)
		var seq int64
		var alive []string
		told := map[string][]int{} // what each member last heard it owns
		check := func() {
			for id := range told {
				if _, ok := g.members[id]; !ok {
					delete(told, id) // gone: it stopped consuming
				}
			}
			holders := map[int][]string{}
			for id, ps := range told {
				for _, p := range ps {
					holders[p] = append(holders[p], id)
				}
			}
			for p, hs := range holders {
				if len(hs) > 1 {
					rt.Fatalf("partition %d held by %v at once", p, hs)
				}
			}
			for p, o := range g.owner {
				if o != "" {
					if _, ok := g.members[o]; !ok {
						rt.Fatalf("partition %d owned by departed %s", p, o)
					}
				}
			}
			// What each member was told it owns never overlaps.
			seen := map[int]string{}
			for id := range g.members {
				for _, p := range g.owned(id) {
					if other, dup := seen[p]; dup {
						rt.Fatalf("partition %d owned by %s and %s", p, other, id)
					}
					seen[p] = id
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"join": func(rt *rapid.T) {
				seq++
				id := fmt.Sprintf("m%d", seq)
				g.join(id, now, seq, 0)
				alive = append(alive, id)
				check()
			},
			"heartbeat": func(rt *rapid.T) {
				if len(alive) == 0 {
					return
				}
				id := rapid.SampledFrom(alive).Draw(rt, "member")
				owned, _ := g.heartbeat(id, now)
				told[id] = owned
				check()
			},
			"leave": func(rt *rapid.T) {
				if len(alive) == 0 {
					return
				}
				i := rapid.IntRange(0, len(alive)-1).Draw(rt, "member")
				g.leave(alive[i])
				alive = append(alive[:i], alive[i+1:]...)
				check()
			},
			"tick": func(rt *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(1, 12).Draw(rt, "seconds")) * time.Second)
				g.expire(now)
				alive = alive[:0]
				for id := range g.members {
					alive = append(alive, id)
				}
				slices.Sort(alive)
				check()
			},
		})
		// Everyone heart-beats twice: the assignment settles and covers all.
		for range 2 {
			for id := range g.members {
				told[id], _ = g.heartbeat(id, now)
				check()
			}
		}
		check()
		if len(g.members) > 0 {
			counts := map[string]int{}
			for p, o := range g.owner {
				if o == "" {
					rt.Fatalf("partition %d unowned after everyone heart-beat", p)
				}
				counts[o]++
			}
			lo, hi := n/len(g.members), (n+len(g.members)-1)/len(g.members)
			for id := range g.members {
				if counts[id] < lo || counts[id] > hi {
					rt.Fatalf("member %s owns %d of %d partitions with %d members", id, counts[id], n, len(g.members))
				}
			}
		}
	})
}

// TestCommitStream: offsets committed without a member are what the
// subscription describes, survive a reopen, and bad ones are refused
// with nothing written.
func TestCommitStream(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, Options{DefaultFsync: "never"})
	createTopic(t, b, "k", TopicConfig{Partitions: 2})
	for range 5 {
		publish(t, b, "k", Message{Value: []byte("v")})
	}
	if _, err := b.CreateSubscription(bg, "k", "g", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	end0 := b.topics["k"].parts[0].VisibleOffset()
	if err := b.CommitStream(bg, "k", "g", map[int]int64{0: end0, 1: 0}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[int]int64{{0: end0 + 1}, {2: 0}, {0: -1}} {
		if err := b.CommitStream(bg, "k", "g", bad); err == nil {
			t.Fatalf("commit %v accepted", bad)
		}
	}
	if err := b.CommitStream(bg, "k", "nope", map[int]int64{0: 0}); !errors.Is(err, ErrUnknownSubscription) {
		t.Fatalf("commit to an unknown subscription: %v", err)
	}
	check := func(b *Broker) {
		t.Helper()
		si, err := b.DescribeSubscription("k", "g")
		if err != nil {
			t.Fatal(err)
		}
		if si.Partitions[0].Committed != end0 || si.Partitions[0].Backlog != 0 || si.Partitions[1].Committed != 0 {
			t.Fatalf("described %+v, committed %d and 0", si.Partitions, end0)
		}
	}
	check(b)
	b.Close()
	check(openBroker(t, dir, Options{DefaultFsync: "never"}))
}
