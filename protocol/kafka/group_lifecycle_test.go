package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/ferrymq/ferry/internal/clock"
)

// These tests drive the coordinator alone, with a fake clock: how long a
// group is held, its timers, and how commits and deletions meet the group's
// state.

func newTestCoordinator(t *testing.T) (*coordinator, *clock.Fake) {
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	c := newCoordinator(clk, 0)
	t.Cleanup(c.close)
	return c, clk
}

func testJoin(group, id string) joinRequest {
	return joinRequest{group: group, memberID: id, protocolType: "consumer", clientID: "c",
		protocols: []protocol{{name: "range"}}, session: time.Second, rebalance: 2 * time.Second}
}

// stableMember joins a member alone into group and syncs it.
func stableMember(t *testing.T, c *coordinator, group string) joinResult {
	t.Helper()
	_, w := c.join(testJoin(group, ""))
	j := <-w
	if j.err != 0 {
		t.Fatalf("join: %+v", j)
	}
	if _, s := c.sync(group, j.memberID, j.generation, nil, nil, nil); (<-s).err != 0 {
		t.Fatal("sync failed")
	}
	return j
}

func heldGroups(c *coordinator) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.groups)
}

// TestGroupForgottenWhenIdle: a group is held only while it has members,
// member ids handed out, or commits under way. A v4+ first join that only
// got MEMBER_ID_REQUIRED is forgotten once the id lapses; a group whose
// last member leaves is forgotten at once; a commit without a member holds
// nothing after it.
func TestGroupForgottenWhenIdle(t *testing.T) {
	c, clk := newTestCoordinator(t)
	first := testJoin("probe", "")
	first.requireKnownID = true
	if res, w := c.join(first); res.err != kerr.MemberIDRequired.Code || w != nil {
		t.Fatalf("first join: %+v", res)
	}
	if heldGroups(c) != 1 {
		t.Fatal("the member id handed out is not held")
	}
	clk.Advance(time.Second)
	if n := heldGroups(c); n != 0 {
		t.Fatalf("%d groups held after the member id lapsed", n)
	}

	j := stableMember(t, c, "g")
	if code := c.leave("g", j.memberID); code != 0 {
		t.Fatalf("leave: %d", code)
	}
	if n := heldGroups(c); n != 0 {
		t.Fatalf("%d groups held after the last member left", n)
	}

	wrote := false
	if code := c.commit("simple", "", -1, func() int16 { return 0 }, func() int16 { wrote = true; return 0 }); code != 0 || !wrote {
		t.Fatalf("commit without a member: %d, wrote %v", code, wrote)
	}
	if n := heldGroups(c); n != 0 {
		t.Fatalf("%d groups held after a commit without a member", n)
	}
	if clk.Pending() != 0 {
		t.Fatalf("%d timers left for forgotten groups", clk.Pending())
	}
}

// TestGroupCommitWithMemberNeedsGeneration: a commit that names a member is
// checked as the member's, even with generation -1, as Kafka does: an
// unknown member gets UNKNOWN_MEMBER_ID, a member without its generation
// ILLEGAL_GENERATION, and nothing is written.
func TestGroupCommitWithMemberNeedsGeneration(t *testing.T) {
	c, _ := newTestCoordinator(t)
	j := stableMember(t, c, "g")
	write := func() int16 { t.Fatal("the commit was written"); return 0 }
	if code := c.commit("g", "nobody", -1, nil, write); code != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member, generation -1: %d", code)
	}
	if code := c.commit("g", j.memberID, -1, nil, write); code != kerr.IllegalGeneration.Code {
		t.Fatalf("member, generation -1: %d", code)
	}
	if code := c.commit("other", "nobody", -1, nil, write); code != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member of a group not held, generation -1: %d", code)
	}
}

// TestGroupCommitCreatesWithoutLock: the slow part of a first commit
// (making the subscription) runs without the coordinator's lock, so the
// group's heartbeats go on meanwhile; the commit is then checked again
// against the group as it is when it writes, so a rebalance that
// completed meanwhile refuses it.
func TestGroupCommitCreatesWithoutLock(t *testing.T) {
	c, clk := newTestCoordinator(t)
	j := stableMember(t, c, "g")
	creating, release := make(chan struct{}), make(chan struct{})
	wrote := false
	done := make(chan int16)
	go func() {
		done <- c.commit("g", j.memberID, j.generation, func() int16 {
			close(creating)
			<-release
			return 0
		}, func() int16 { wrote = true; return 0 })
	}()
	<-creating
	heartbeat := make(chan int16)
	go func() { heartbeat <- c.heartbeat("g", j.memberID, j.generation) }()
	select {
	case code := <-heartbeat:
		if code != 0 {
			t.Fatalf("heartbeat during the commit: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a heartbeat waited for a commit creating its subscription")
	}
	// A second member joins: the rebalance completes without the first
	// (it does not join again in its rebalance timeout).
	_, w := c.join(testJoin("g", ""))
	clk.Advance(2 * time.Second)
	if res := <-w; res.err != 0 || res.generation != j.generation+1 {
		t.Fatalf("the new generation: %+v", res)
	}
	close(release)
	if code := <-done; code != kerr.UnknownMemberID.Code || wrote {
		t.Fatalf("a commit of a member removed meanwhile: %d, wrote %v", code, wrote)
	}
}

// TestGroupDeleteWaitsForCommit: DeleteGroups marks the group Dead, waits
// for commits that are making subscriptions, then deletes the offsets; the
// commit, found Dead, writes nothing and is told to retry, and no commit
// or join can bring the group back while it is being deleted.
func TestGroupDeleteWaitsForCommit(t *testing.T) {
	c, _ := newTestCoordinator(t)
	creating, release := make(chan struct{}), make(chan struct{})
	created := false
	committed := make(chan int16)
	go func() {
		committed <- c.commit("g", "", -1, func() int16 {
			close(creating)
			<-release
			created = true
			return 0
		}, func() int16 { t.Error("written into a group being deleted"); return 0 })
	}()
	<-creating
	removing, finish := make(chan bool), make(chan struct{})
	deleted := make(chan int16)
	go func() {
		deleted <- c.delete("g", func(bool) int16 {
			removing <- created
			<-finish
			return 0
		})
	}()
	// The deletion has marked the group: a join is told to retry.
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.groups["g"] != nil && c.groups["g"].state == stateDead
	})
	if res, _ := c.join(testJoin("g", "")); res.err != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("join during the deletion: %+v", res)
	}
	close(release)
	if !<-removing {
		t.Fatal("the offsets were deleted before the commit had made its subscription")
	}
	if code := <-committed; code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("commit into a group being deleted: %d", code)
	}
	if code := c.commit("g", "", -1, nil, func() int16 { t.Error("written during the deletion"); return 0 }); code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("a later commit during the deletion: %d", code)
	}
	close(finish)
	if code := <-deleted; code != 0 {
		t.Fatalf("delete: %d", code)
	}
	if n := heldGroups(c); n != 0 {
		t.Fatalf("%d groups held after the deletion", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupStaleTimerCallback: a timer callback that fires while a request
// holds the lock and re-arms the group must not clear the new timer (it
// used to, leaving two timers running and one of them not stoppable).
func TestGroupStaleTimerCallback(t *testing.T) {
	c, clk := newTestCoordinator(t)
	first := testJoin("g", "")
	first.requireKnownID = true
	c.join(first) // a pending member id, lapsing in 1s: the group's timer
	c.mu.Lock()
	advanced := make(chan struct{})
	go func() {
		clk.Advance(time.Second)
		close(advanced)
	}()
	for clk.Pending() != 0 {
		time.Sleep(time.Millisecond) // until the callback runs (and waits for the lock)
	}
	// A request arms the group meanwhile.
	g := c.groups["g"]
	g.pending["later"] = clk.Now().Add(5 * time.Second)
	g.arm(clk.Now())
	c.mu.Unlock()
	<-advanced
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers for one group", n)
	}
	clk.Advance(5 * time.Second)
	if n := heldGroups(c); n != 0 || clk.Pending() != 0 {
		t.Fatalf("after every id lapsed: %d groups, %d timers", n, clk.Pending())
	}
}

// TestGroupMemberThatNeverSyncs: a member that joins a generation and then
// only heartbeats, never sending its SyncGroup, is removed after the
// rebalance timeout, as in Kafka 3.x, and the others rebalance.
func TestGroupMemberThatNeverSyncs(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	c := newCoordinator(clk, 100*time.Millisecond) // both join generation 1
	defer c.close()
	_, wa := c.join(testJoin("g", ""))
	_, wb := c.join(testJoin("g", ""))
	clk.Advance(100 * time.Millisecond)
	a, b := <-wa, <-wb
	leader, follower := a, b
	if b.leader == b.memberID {
		leader, follower = b, a
	}
	if _, s := c.sync("g", leader.memberID, leader.generation, nil, nil, nil); (<-s).err != 0 {
		t.Fatal("leader's sync failed")
	}
	for range 3 { // the follower heartbeats for 1.5s, within its session
		clk.Advance(500 * time.Millisecond)
		if code := c.heartbeat("g", follower.memberID, follower.generation); code != 0 {
			t.Fatalf("heartbeat within the rebalance timeout: %d", code)
		}
		c.heartbeat("g", leader.memberID, leader.generation)
	}
	clk.Advance(500 * time.Millisecond) // 2s: the rebalance timeout
	if code := c.heartbeat("g", follower.memberID, follower.generation); code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of a member that never synced, after the rebalance timeout: %d", code)
	}
	if code := c.heartbeat("g", leader.memberID, leader.generation); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("the leader's heartbeat: %d", code)
	}
}

// TestGroupDescribeProtocolOnlyWhenStable: DescribeGroups names the
// generation's protocol only once the group is Stable, as Kafka does.
func TestGroupDescribeProtocolOnlyWhenStable(t *testing.T) {
	c, _ := newTestCoordinator(t)
	_, w := c.join(testJoin("g", ""))
	j := <-w
	if d, _ := c.describe("g"); d.state != stateCompletingRebalance || d.protocol != "" || d.protocolType != "consumer" {
		t.Fatalf("before the sync: %+v", d)
	}
	c.sync("g", j.memberID, j.generation, nil, nil, nil)
	if d, _ := c.describe("g"); d.state != stateStable || d.protocol != "range" {
		t.Fatalf("stable: %+v", d)
	}
}
