package kafka

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/ferrymq/ferry/internal/clock"
)

// actor is one client of the coordinator in the property test: what it
// knows of itself, and its requests still waiting for an answer.
type actor struct {
	id         string
	generation int32
	leader     bool
	members    []string // the leader's member list for its generation
	join       <-chan joinResult
	sync       <-chan syncResult
	gone       bool
}

// groupChecker drives one group with random requests and clock moves and
// checks the protocol's invariants after every step.
type groupChecker struct {
	t       *testing.T
	rng     *rand.Rand
	clk     *clock.Fake
	c       *coordinator
	actors  []*actor
	leaders map[int32]string            // generation -> its leader, from join answers
	given   map[int32]map[string]string // generation -> member -> assignment the leader sent
	lastGen int32
	log     []string
}

func (k *groupChecker) fail(format string, args ...any) {
	k.t.Helper()
	for _, l := range k.log {
		k.t.Log(l)
	}
	k.t.Fatalf(format, args...)
}

func (k *groupChecker) step(format string, args ...any) {
	k.log = append(k.log, fmt.Sprintf("%v: ", k.clk.Now().UnixMilli()%100000)+fmt.Sprintf(format, args...))
}

func (k *groupChecker) joinReq(a *actor) joinRequest {
	return joinRequest{group: "g", memberID: a.id, clientID: "c", protocolType: "consumer",
		protocols:      []protocol{{name: "range", metadata: []byte(a.id)}},
		session:        time.Duration(300+k.rng.IntN(700)) * time.Millisecond,
		rebalance:      time.Second,
		requireKnownID: true}
}

// act does one random thing.
func (k *groupChecker) act() {
	live := []*actor{}
	for _, a := range k.actors {
		if !a.gone {
			live = append(live, a)
		}
	}
	n := k.rng.IntN(10)
	if len(live) == 0 || (n == 0 && len(k.actors) < 8) {
		a := &actor{}
		k.actors = append(k.actors, a)
		res, wait := k.c.join(k.joinReq(a))
		if res.err != kerr.MemberIDRequired.Code || wait != nil || res.memberID == "" {
			k.fail("first join: %+v", res)
		}
		a.id = res.memberID
		_, a.join = k.c.join(k.joinReq(a))
		k.step("%s joins", a.id[len(a.id)-4:])
		return
	}
	a := live[k.rng.IntN(len(live))]
	name := a.id[len(a.id)-4:]
	switch {
	case n <= 2 && a.join == nil:
		res, wait := k.c.join(k.joinReq(a))
		k.step("%s joins again: %d", name, res.err)
		if wait == nil {
			k.joined(a, res)
		} else {
			a.join = wait
		}
	case n <= 4 && a.sync == nil && a.join == nil:
		assign := map[string][]byte{}
		if a.leader {
			given := map[string]string{}
			for _, m := range a.members {
				assign[m] = fmt.Appendf(nil, "%s@%d", m, a.generation)
				given[m] = string(assign[m])
			}
			if k.given[a.generation] == nil {
				k.given[a.generation] = given
			}
		}
		res, wait := k.c.sync("g", a.id, a.generation, nil, nil, assign)
		k.step("%s syncs gen %d (leader %v): %d", name, a.generation, a.leader, res.err)
		if wait == nil {
			k.synced(a, res)
		} else {
			a.sync = wait
		}
	case n <= 7:
		code := k.c.heartbeat("g", a.id, a.generation)
		k.step("%s heartbeats gen %d: %d", name, a.generation, code)
		switch code {
		case 0, kerr.RebalanceInProgress.Code, kerr.IllegalGeneration.Code:
		case kerr.UnknownMemberID.Code:
			k.c.mu.Lock()
			in := false
			if g := k.c.groups["g"]; g != nil {
				_, in = g.members[a.id]
			}
			k.c.mu.Unlock()
			if in {
				k.fail("%s is in the group but its heartbeat got UNKNOWN_MEMBER_ID", a.id)
			}
			a.gone = a.join == nil
		default:
			k.fail("heartbeat: code %d", code)
		}
	case n == 8:
		k.step("%s leaves: %d", name, k.c.leave("g", a.id))
		a.gone = true
	default:
		d := time.Duration(k.rng.IntN(400)) * time.Millisecond
		k.step("clock +%v", d)
		k.clk.Advance(d)
	}
}

// collect takes the answers that arrived.
func (k *groupChecker) collect() {
	for _, a := range k.actors {
		if a.join != nil {
			select {
			case res := <-a.join:
				a.join = nil
				k.joined(a, res)
			default:
			}
		}
		if a.sync != nil {
			select {
			case res := <-a.sync:
				a.sync = nil
				k.synced(a, res)
			default:
			}
		}
	}
}

func (k *groupChecker) joined(a *actor, res joinResult) {
	k.step("%s joined: err %d gen %d leader %v", a.id[len(a.id)-4:], res.err, res.generation, res.leader == a.id)
	if res.err != 0 {
		if res.err == kerr.UnknownMemberID.Code {
			a.gone = true
		}
		return
	}
	if l, ok := k.leaders[res.generation]; ok && l != res.leader {
		k.fail("generation %d has two leaders: %s and %s", res.generation, l, res.leader)
	}
	k.leaders[res.generation] = res.leader
	if res.generation < a.generation {
		k.fail("%s went from generation %d back to %d", a.id, a.generation, res.generation)
	}
	a.generation, a.leader, a.members = res.generation, res.leader == a.id, nil
	if a.leader {
		for _, m := range res.members {
			a.members = append(a.members, m.id)
			if string(m.metadata) != m.id {
				k.fail("leader got %q as %s's metadata", m.metadata, m.id)
			}
		}
	} else if len(res.members) > 0 {
		k.fail("a follower got the member list")
	}
}

func (k *groupChecker) synced(a *actor, res syncResult) {
	k.step("%s synced: err %d %q", a.id[len(a.id)-4:], res.err, res.assignment)
	if res.err != 0 {
		if res.err == kerr.UnknownMemberID.Code {
			a.gone = true
		}
		return
	}
	if want := k.given[a.generation][a.id]; string(res.assignment) != want {
		k.fail("%s got assignment %q in generation %d, the leader gave %q", a.id, res.assignment, a.generation, want)
	}
}

// check looks at the coordinator's state: the generation never goes
// back (while the group is held: a group forgotten starts again from
// generation 0, and its old members are unknown to it); a group past its
// rebalance has a leader among its members; in a stable group every member
// has its assignment; no rebalance outlives its deadline; the timer is set
// whenever something is pending; a group held has something to hold.
func (k *groupChecker) check() {
	k.c.mu.Lock()
	defer k.c.mu.Unlock()
	g := k.c.groups["g"]
	if g == nil {
		k.lastGen, k.leaders, k.given = 0, map[int32]string{}, map[int32]map[string]string{}
		return
	}
	if g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 && g.committing == 0 {
		k.fail("an idle group is still held")
	}
	if g.generation < k.lastGen {
		k.fail("generation went from %d to %d", k.lastGen, g.generation)
	}
	k.lastGen = g.generation
	now := k.clk.Now()
	switch g.state {
	case stateCompletingRebalance, stateStable:
		if _, ok := g.members[g.leader]; !ok {
			k.fail("%s with leader %q not a member", g.state, g.leader)
		}
		if l := k.leaders[g.generation]; l != "" && l != g.leader {
			k.fail("generation %d: leader %s, but %s was told", g.generation, g.leader, l)
		}
	case statePreparingRebalance:
		if now.After(g.deadline) {
			k.fail("rebalance past its deadline %v (now %v)", g.deadline, now)
		}
	case stateEmpty:
		if len(g.members) > 0 {
			k.fail("empty group with %d members", len(g.members))
		}
	}
	if g.state == stateStable {
		for _, m := range g.members {
			if !m.assigned {
				k.fail("member %s of stable generation %d has no assignment", m.id, g.generation)
			}
			if want := k.given[g.generation][m.id]; string(m.assignment) != want {
				k.fail("member %s holds %q, the leader gave %q", m.id, m.assignment, want)
			}
		}
	}
	if (len(g.members) > 0 || len(g.pending) > 0) && g.timer == nil {
		k.fail("%s group with %d members and no timer", g.state, len(g.members))
	}
}

// TestGroupCoordinatorProperties drives a group with random sequences of
// joins, syncs, heartbeats, leaves and clock moves, checking the invariants
// after each step, then lets the clock run: every waiting request is
// answered and, with nobody heartbeating, the group is forgotten.
func TestGroupCoordinatorProperties(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			clk := clock.NewFake(time.Unix(1_000_000, 0))
			k := &groupChecker{t: t, rng: rand.New(rand.NewPCG(seed, 7)), clk: clk,
				c:       newCoordinator(clk, time.Duration(seed%3)*50*time.Millisecond),
				leaders: map[int32]string{}, given: map[int32]map[string]string{}}
			for range 300 {
				k.act()
				k.collect()
				k.check()
			}
			for range 20 {
				clk.Advance(500 * time.Millisecond)
				k.collect()
				k.check()
			}
			for _, a := range k.actors {
				if a.join != nil || a.sync != nil {
					k.fail("%s still waits (join %v, sync %v) after the clock ran", a.id, a.join != nil, a.sync != nil)
				}
			}
			k.c.mu.Lock()
			g := k.c.groups["g"]
			k.c.mu.Unlock()
			if g != nil {
				k.fail("after every session ran out the group is still held: %s with %d members", g.state, len(g.members))
			}
			k.c.close()
			if clk.Pending() != 0 {
				k.fail("%d timers left after close", clk.Pending())
			}
		})
	}
}

// TestGroupCoordinatorRebalance is the classic sequence step by step: two
// members form a generation after the initial delay; a third joins and the
// others must join again within the rebalance timeout; one that does not is
// removed; a leader's sync delivers each member its assignment.
func TestGroupCoordinatorRebalance(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	c := newCoordinator(clk, 100*time.Millisecond)
	defer c.close()
	req := func(id string) joinRequest {
		return joinRequest{group: "g", memberID: id, protocolType: "consumer", clientID: "c",
			protocols: []protocol{{name: "range"}, {name: "sticky"}}, session: time.Second, rebalance: 2 * time.Second}
	}
	_, wa := c.join(req(""))
	_, wb := c.join(req(""))
	clk.Advance(99 * time.Millisecond)
	if len(wa) != 0 {
		t.Fatal("the first rebalance ended before its delay")
	}
	clk.Advance(time.Millisecond)
	a, b := <-wa, <-wb
	if a.err != 0 || b.err != 0 || a.generation != 1 || b.generation != 1 || a.leader != a.memberID || b.leader != a.memberID || len(a.members) != 2 || a.protocol != "range" {
		t.Fatalf("generation 1: %+v / %+v", a, b)
	}
	_, sb := c.sync("g", b.memberID, 1, nil, nil, nil)
	if _, sa := c.sync("g", a.memberID, 1, nil, nil, map[string][]byte{a.memberID: []byte("A"), b.memberID: []byte("B")}); string((<-sa).assignment) != "A" || string((<-sb).assignment) != "B" {
		t.Fatal("assignments not delivered")
	}
	if code := c.heartbeat("g", b.memberID, 1); code != 0 {
		t.Fatalf("heartbeat in a stable group: %d", code)
	}
	_, wc := c.join(req(""))
	if code := c.heartbeat("g", b.memberID, 1); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat during the rebalance: %d", code)
	}
	_, wa = c.join(req(a.memberID))
	clk.Advance(900 * time.Millisecond) // b heartbeated at 100ms; its session runs to 1.1s
	if len(wa) != 0 || len(wc) != 0 {
		t.Fatal("the rebalance ended while b could still join")
	}
	clk.Advance(100 * time.Millisecond)
	a, cc := <-wa, <-wc
	if a.generation != 2 || cc.generation != 2 || len(a.members) != 2 {
		t.Fatalf("generation 2 without b: %+v / %+v", a, cc)
	}
	if code := c.heartbeat("g", b.memberID, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of the expired member: %d", code)
	}
	if code := c.heartbeat("g", cc.memberID, 1); code != kerr.IllegalGeneration.Code {
		t.Fatalf("heartbeat of a past generation: %d", code)
	}
}
