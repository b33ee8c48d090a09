package engine

import (
	"slices"
	"time"
)

// groupState is the membership and partition ownership of a stream
// subscription: a deterministic state machine driven by join, heartbeat,
// leave and the clock. It does no I/O.
//
// A partition has at most one owner at any instant. Moving a partition from
// member A to member B is two steps: the partition is marked for B, and A
// keeps it until A's next heartbeat (which tells A it is gone) or until A's
// session expires; only then does B own it.
type groupState struct {
	partitions int
	timeout    time.Duration
	generation int64
	members    map[string]*groupMember
	owner      []string // partition -> current owner ("" none)
	target     []string // partition -> owner after the rebalance
}

type groupMember struct {
	id       string
	lastSeen time.Time
	timeout  time.Duration
	joined   int64 // join order, for stable tie-breaks
}

func newGroupState(partitions int, timeout time.Duration, generation int64) *groupState {
	return &groupState{
		partitions: partitions, timeout: timeout, generation: generation,
		members: map[string]*groupMember{},
		owner:   make([]string, partitions), target: make([]string, partitions),
	}
}

// setPartitions grows the partition count (partitions were added).
func (g *groupState) setPartitions(n int) bool {
	if n <= g.partitions {
		return false
	}
	for g.partitions < n {
		g.owner = append(g.owner, "")
		g.target = append(g.target, "")
		g.partitions++
	}
	g.rebalance()
	return true
}

func (g *groupState) join(id string, now time.Time, seq int64, timeout time.Duration) {
	if timeout <= 0 {
		timeout = g.timeout
	}
	g.members[id] = &groupMember{id: id, lastSeen: now, joined: seq, timeout: timeout}
	g.rebalance()
}

// leave removes a member; its partitions are free at once.
func (g *groupState) leave(id string) bool {
	if _, ok := g.members[id]; !ok {
		return false
	}
	delete(g.members, id)
	for p := range g.owner {
		if g.owner[p] == id {
			g.owner[p] = ""
		}
	}
	g.rebalance()
	return true
}

// heartbeat records that id is alive and hands over what it gave up: after
// this call, id owns exactly the partitions returned.
func (g *groupState) heartbeat(id string, now time.Time) ([]int, bool) {
	m, ok := g.members[id]
	if !ok {
		return nil, false
	}
	m.lastSeen = now
	for p := range g.owner {
		if g.owner[p] == id && g.target[p] != id {
			g.owner[p] = "" // revoked: id learns it now
		}
	}
	g.settle()
	return g.owned(id), true
}

// expire removes members whose session timed out; it reports whether any did.
func (g *groupState) expire(now time.Time) bool {
	var gone []string
	for id, m := range g.members {
		if now.Sub(m.lastSeen) >= m.timeout {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		g.leave(id)
	}
	return len(gone) > 0
}

// nextExpiry is when the next session times out.
func (g *groupState) nextExpiry() (time.Time, bool) {
	var t time.Time
	found := false
	for _, m := range g.members {
		if at := m.lastSeen.Add(m.timeout); !found || at.Before(t) {
			t, found = at, true
		}
	}
	return t, found
}

func (g *groupState) owned(id string) []int {
	var out []int
	for p, o := range g.owner {
		if o == id {
			out = append(out, p)
		}
	}
	return out
}

// settle gives unowned partitions to their targets.
func (g *groupState) settle() {
	for p := range g.owner {
		if g.owner[p] == "" && g.target[p] != "" {
			g.owner[p] = g.target[p]
		}
	}
}

// rebalance computes a new target: every member gets floor or ceil of
// partitions/members, keeping as many partitions where they are as it can
// (sticky), and starts a new generation.
func (g *groupState) rebalance() {
	g.generation++
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return int(g.members[a].joined - g.members[b].joined) })
	for p := range g.target {
		g.target[p] = ""
	}
	if len(ids) > 0 {
		base, extra := g.partitions/len(ids), g.partitions%len(ids)
		quota := map[string]int{}
		for i, id := range ids {
			quota[id] = base
			if i < extra {
				quota[id]++
			}
		}
		// Keep current (or already targeted) owners within quota.
		for p := range g.target {
			cur := g.owner[p]
			if cur == "" {
				continue
			}
			if _, alive := g.members[cur]; alive && quota[cur] > 0 {
				g.target[p] = cur
				quota[cur]--
			}
		}
		// Hand out the rest in join order.
		i := 0
		for p := range g.target {
			if g.target[p] != "" {
				continue
			}
			for quota[ids[i%len(ids)]] == 0 {
				i++
			}
			g.target[p] = ids[i%len(ids)]
			quota[ids[i%len(ids)]]--
		}
	}
	g.settle()
}
