package kafka

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/ferrymq/ferry/internal/clock"
)

// The group coordinator: Kafka's classic consumer group protocol
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), as a state machine per
// group driven by requests and by one timer per group.
//
// Ferry's engine has its own stream groups, which assign partitions
// themselves; a Kafka group instead lets its leader (a client) compute the
// assignment, and the broker only runs the membership protocol and hands
// the leader's assignment out. So membership lives here, in the front door,
// while what must outlive the process (committed offsets) lives in the
// engine's stream subscriptions: see offsetcommit.go.
//
// Requests that Kafka answers late (a JoinGroup waits for the rebalance to
// complete, a follower's SyncGroup waits for the leader's) get a buffered
// channel that the state machine answers exactly once; the handler waits on
// it outside the lock. Every wait ends: a rebalance ends at its deadline, a
// leader that never syncs expires after its session timeout, and Close
// answers everyone.
//
// A group is held here only while it has something to hold: members,
// member ids handed out and not yet used, commits under way, or a deletion
// under way. An Empty group with none of these is forgotten (its offsets
// live on in the engine, where ListGroups and DescribeGroups find them), so
// memory does not grow with every group id a client ever tried.
//
// Lock order: coordinator.mu before the engine's locks. Only the offset
// write itself (CommitStream, a write without fsync) runs under the lock,
// so a commit is checked against the generation it is applied in; what
// fsyncs (creating a group's subscription, deleting a group's
// subscriptions) runs outside it, with the group marked (committing,
// Dead) so that a deletion and a commit cannot undo each other. The engine
// never calls back into here.

// The group states, named as DescribeGroups and ListGroups report them.
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// Bounds on a member's session timeout (Kafka's group.min.session.timeout.ms
// and group.max.session.timeout.ms). The minimum is far below Kafka's 6s so
// that tests, and clients on one machine, can detect a dead member quickly.
const (
	minSessionTimeout = 100 * time.Millisecond
	maxSessionTimeout = 30 * time.Minute
	// defaultInitialRebalanceDelay is group.initial.rebalance.delay.ms: the
	// first rebalance of an empty group waits this long (extended by each
	// member that joins meanwhile, up to the rebalance timeout) so that a
	// group whose members start together forms in one generation. Kafka's
	// default is 3s; consumers of one application start within a fraction
	// of a second of each other, and a short delay keeps tests fast.
	defaultInitialRebalanceDelay = 100 * time.Millisecond
)

// coordinator holds the groups of one Server.
type coordinator struct {
	clock        clock.Clock
	initialDelay time.Duration

	mu     sync.Mutex
	groups map[string]*group
	seq    int64 // join order of members, across groups
	closed bool
	// committed is signalled when a group's last commit under way ends,
	// for a deletion waiting on it.
	committed *sync.Cond
}

func newCoordinator(clk clock.Clock, initialDelay time.Duration) *coordinator {
	c := &coordinator{clock: clk, initialDelay: initialDelay, groups: map[string]*group{}}
	c.committed = sync.NewCond(&c.mu)
	return c
}

// newGroup adds an Empty group. Called with c.mu held.
func (c *coordinator) newGroup(id string) *group {
	g := &group{c: c, id: id, members: map[string]*member{}, pending: map[string]time.Time{}}
	c.groups[id] = g
	return g
}

// group is one consumer group's membership.
type group struct {
	c            *coordinator
	id           string
	state        groupState
	generation   int32
	protocolType string
	protocol     string // chosen for the generation
	leader       string
	members      map[string]*member
	// pending are member ids handed out with MEMBER_ID_REQUIRED (JoinGroup
	// v4+) and not yet used, with when they lapse: Kafka holds them for a
	// session timeout so an abandoned first join leaves nothing behind.
	pending map[string]time.Time

	// While PreparingRebalance: when the rebalance ends at the latest, and
	// whether it is an empty group's first, delayed, rebalance (which waits
	// for its deadline rather than completing as soon as everyone joined).
	deadline     time.Time
	initial      bool
	initialLimit time.Time

	// While CompletingRebalance or Stable: when members that have not sent
	// their SyncGroup for the generation are removed (Kafka 3.x does the
	// same, after the rebalance timeout), so that a member that joins and
	// then only heartbeats cannot hold the group.
	syncDeadline time.Time

	// committing counts commits that are creating the group's
	// subscriptions, outside the lock: the group stays held, and a deletion
	// waits for them.
	committing int

	timer    clock.Timer
	timerSeq uint64 // which arm a timer callback belongs to: see tick
}

// member is one member of a group.
type member struct {
	id, clientID, clientHost string
	protocolType             string
	protocols                []protocol
	session, rebalance       time.Duration
	seq                      int64
	lastSeen                 time.Time
	assignment               []byte
	assigned                 bool // the leader gave an assignment in this generation
	synced                   bool // sent a SyncGroup in this generation

	join chan joinResult // a JoinGroup waiting for the rebalance
	sync chan syncResult // a SyncGroup waiting for the leader's
}

type protocol struct {
	name     string
	metadata []byte
}

// joinRequest is a JoinGroup in the coordinator's words.
type joinRequest struct {
	group, memberID    string
	clientID, host     string
	protocolType       string
	protocols          []protocol
	session, rebalance time.Duration
	// requireKnownID: JoinGroup v4+, where a member without an id is given
	// one and asked to join again with it (KIP-394).
	requireKnownID bool
}

type joinResult struct {
	err          int16
	generation   int32
	protocolType string
	protocol     string
	leader       string
	memberID     string
	members      []joinedMember // for the leader only
}

type joinedMember struct {
	id       string
	metadata []byte
}

type syncResult struct {
	err          int16
	protocolType string
	protocol     string
	assignment   []byte
}

// newMemberID is a member id as Kafka makes them: the client id and a
// random suffix, unique across groups and restarts.
func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

// join handles a JoinGroup. The result is final unless the channel is not
// nil, in which case the answer comes on it.
func (c *coordinator) join(r joinRequest) (joinResult, <-chan joinResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(code int16) (joinResult, <-chan joinResult) {
		return joinResult{err: code, generation: -1, memberID: r.memberID}, nil
	}
	switch {
	case c.closed:
		return fail(kerr.CoordinatorNotAvailable.Code)
	case r.protocolType == "" || len(r.protocols) == 0:
		return fail(kerr.InconsistentGroupProtocol.Code)
	case r.session < minSessionTimeout || r.session > maxSessionTimeout:
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	now := c.clock.Now()
	g := c.groups[r.group]
	switch {
	case g != nil && g.state == stateDead:
		// Being deleted: the client retries, and joins the group made anew.
		return fail(kerr.CoordinatorNotAvailable.Code)
	case g == nil && r.memberID != "":
		return fail(kerr.UnknownMemberID.Code)
	case g == nil:
		g = c.newGroup(r.group)
	}
	defer c.settle(g, now)
	if !g.accepts(r) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if r.memberID == "" {
		id := newMemberID(r.clientID)
		if r.requireKnownID {
			g.pending[id] = now.Add(r.session)
			return joinResult{err: kerr.MemberIDRequired.Code, generation: -1, memberID: id}, nil
		}
		r.memberID = id
		return joinResult{}, g.add(r, now)
	}
	if _, ok := g.pending[r.memberID]; ok {
		delete(g.pending, r.memberID)
		return joinResult{}, g.add(r, now)
	}
	m := g.members[r.memberID]
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	m.lastSeen = now
	same := m.protocolType == r.protocolType && slices.EqualFunc(m.protocols, r.protocols, func(a, b protocol) bool {
		return a.name == b.name && string(a.metadata) == string(b.metadata)
	})
	switch g.state {
	case stateCompletingRebalance, stateStable:
		// A member that joins again with nothing new gets the generation
		// it is in (its JoinGroup response was lost); the leader joining
		// again, or a member whose subscription changed, starts a rebalance
		// (the leader may have seen topics change).
		if same && (g.state == stateCompletingRebalance || m.id != g.leader) {
			return g.joinResultFor(m), nil
		}
	}
	m.protocolType, m.protocols = r.protocolType, r.protocols
	m.session, m.rebalance = r.session, r.rebalance
	if m.join != nil {
		// The same member asks again (its client gave up on the first
		// request): the old request gets an answer that makes it retry.
		m.join <- joinResult{err: kerr.RebalanceInProgress.Code, generation: -1, memberID: m.id}
	}
	m.join = make(chan joinResult, 1)
	ch := m.join
	if g.state != statePreparingRebalance {
		g.prepare(now)
	} else {
		g.maybeComplete(now)
	}
	return joinResult{}, ch
}

// accepts reports whether a joining member fits the group: the same
// protocol type, and one protocol every member (counting the new member's
// list in place of its old one) supports.
func (g *group) accepts(r joinRequest) bool {
	others := 0
	for _, m := range g.members {
		if m.id != r.memberID {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if r.protocolType != g.protocolType {
		return false
	}
	for _, p := range r.protocols {
		ok := true
		for _, m := range g.members {
			if m.id != r.memberID && !m.supports(p.name) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (m *member) supports(name string) bool {
	return slices.ContainsFunc(m.protocols, func(p protocol) bool { return p.name == name })
}

// add makes a new member and has it wait for the rebalance it starts (or
// joins, when one is under way).
func (g *group) add(r joinRequest, now time.Time) <-chan joinResult {
	g.c.seq++
	m := &member{id: r.memberID, clientID: r.clientID, clientHost: r.host, protocolType: r.protocolType,
		protocols: r.protocols, session: r.session, rebalance: r.rebalance, seq: g.c.seq, lastSeen: now,
		join: make(chan joinResult, 1)}
	ch := m.join
	if len(g.members) == 0 {
		g.protocolType = r.protocolType
	}
	g.members[m.id] = m
	switch {
	case g.state == statePreparingRebalance && g.initial:
		g.deadline = minTime(now.Add(g.c.initialDelay), g.initialLimit)
	case g.state == statePreparingRebalance:
		g.maybeComplete(now)
	default:
		g.prepare(now)
	}
	return ch
}

// prepare starts a rebalance: members that were in the generation have
// until the longest rebalance timeout to join again.
func (g *group) prepare(now time.Time) {
	longest := time.Duration(0)
	for _, m := range g.members {
		longest = max(longest, m.rebalance)
		if m.sync != nil {
			m.sync <- syncResult{err: kerr.RebalanceInProgress.Code}
			m.sync = nil
		}
	}
	g.initial = g.state == stateEmpty && g.c.initialDelay > 0
	g.state = statePreparingRebalance
	g.deadline = now.Add(longest)
	if g.initial {
		g.initialLimit = g.deadline
		g.deadline = minTime(now.Add(g.c.initialDelay), g.initialLimit)
	}
	g.maybeComplete(now)
}

// maybeComplete ends the rebalance once every member has joined (or, for
// the first rebalance, once its delay is over).
func (g *group) maybeComplete(now time.Time) {
	if g.state != statePreparingRebalance {
		return
	}
	if g.initial && now.Before(g.deadline) {
		return
	}
	if now.Before(g.deadline) {
		for _, m := range g.members {
			if m.join == nil {
				return
			}
		}
	}
	g.complete(now)
}

// complete forms the next generation from the members that joined; the
// others are out. The leader stays the leader when it joined again, so an
// assignor that keeps state (sticky, cooperative) keeps it.
func (g *group) complete(now time.Time) {
	for _, m := range g.members {
		if m.join == nil {
			g.remove(m, kerr.UnknownMemberID.Code)
		}
	}
	g.initial = false
	g.generation++
	if len(g.members) == 0 {
		g.becomeEmpty()
		return
	}
	g.state = stateCompletingRebalance
	g.protocolType = g.sorted()[0].protocolType // the same for all: see accepts
	g.protocol = g.vote()
	longest := time.Duration(0)
	for _, m := range g.members {
		longest = max(longest, m.rebalance)
	}
	g.syncDeadline = now.Add(longest)
	if _, ok := g.members[g.leader]; !ok {
		g.leader = ""
		for _, m := range g.members {
			if g.leader == "" || m.seq < g.members[g.leader].seq {
				g.leader = m.id
			}
		}
	}
	for _, m := range g.members {
		m.assignment, m.assigned, m.synced = nil, false, false
		m.lastSeen = now
		m.join <- g.joinResultFor(m)
		m.join = nil
	}
}

// vote picks the generation's protocol as Kafka does: among the protocols
// every member supports, each member votes for the first of its list, and
// the most votes win (ties go to the leader candidate's preference, then
// the name, so the choice is the same for the same members).
func (g *group) vote() string {
	ms := g.sorted()
	var candidates []string
	for _, p := range ms[0].protocols {
		all := true
		for _, m := range ms[1:] {
			all = all && m.supports(p.name)
		}
		if all {
			candidates = append(candidates, p.name)
		}
	}
	votes := map[string]int{}
	for _, m := range ms {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, name := range candidates {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// sorted lists the members in join order.
func (g *group) sorted() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int { return int(a.seq - b.seq) })
	return ms
}

// joinResultFor is m's JoinGroup answer for the current generation: the
// leader also gets every member's metadata for the chosen protocol.
func (g *group) joinResultFor(m *member) joinResult {
	r := joinResult{generation: g.generation, protocolType: g.protocolType, protocol: g.protocol,
		leader: g.leader, memberID: m.id}
	if m.id == g.leader {
		for _, o := range g.sorted() {
			jm := joinedMember{id: o.id}
			for _, p := range o.protocols {
				if p.name == g.protocol {
					jm.metadata = p.metadata
				}
			}
			r.members = append(r.members, jm)
		}
	}
	return r
}

// remove takes m out of the group, answering its waiting requests.
func (g *group) remove(m *member, code int16) {
	if m.join != nil {
		m.join <- joinResult{err: code, generation: -1, memberID: m.id}
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncResult{err: code}
		m.sync = nil
	}
	delete(g.members, m.id)
	if g.leader == m.id {
		g.leader = ""
	}
}

// removeAndRebalance takes m out and has the others rebalance without it.
func (g *group) removeAndRebalance(m *member, now time.Time) {
	g.remove(m, kerr.UnknownMemberID.Code)
	g.rebalanceAfterRemoval(now)
}

// rebalanceAfterRemoval has the members left rebalance without those just
// removed.
func (g *group) rebalanceAfterRemoval(now time.Time) {
	switch {
	case len(g.members) == 0:
		g.generation++
		g.becomeEmpty()
	case g.state == statePreparingRebalance:
		g.maybeComplete(now)
	default:
		g.prepare(now)
	}
}

func (g *group) becomeEmpty() {
	g.state = stateEmpty
	g.protocol, g.protocolType, g.leader = "", "", ""
	g.initial = false
}

// sync handles a SyncGroup; as join, the answer may come on the channel.
func (c *coordinator) sync(groupID, memberID string, generation int32, protocolType, protocolName *string, assignments map[string][]byte) (syncResult, <-chan syncResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, code := c.member(groupID, memberID, generation)
	if code != 0 {
		return syncResult{err: code}, nil
	}
	now := c.clock.Now()
	defer c.settle(g, now)
	m.lastSeen = now
	if (protocolType != nil && *protocolType != g.protocolType) || (protocolName != nil && *protocolName != g.protocol) {
		return syncResult{err: kerr.InconsistentGroupProtocol.Code}, nil
	}
	switch g.state {
	case statePreparingRebalance:
		return syncResult{err: kerr.RebalanceInProgress.Code}, nil
	case stateStable:
		m.synced = true
		return g.syncResultFor(m), nil
	}
	m.synced = true
	if m.sync != nil {
		m.sync <- syncResult{err: kerr.RebalanceInProgress.Code}
	}
	m.sync = make(chan syncResult, 1)
	ch := m.sync
	if m.id == g.leader {
		// A member the leader left out gets an empty assignment, as in
		// Kafka: it is in the group and consumes nothing.
		for _, o := range g.members {
			o.assignment, o.assigned = assignments[o.id], true
		}
		g.state = stateStable
		for _, o := range g.members {
			if o.sync != nil {
				o.sync <- g.syncResultFor(o)
				o.sync = nil
			}
		}
	}
	return syncResult{}, ch
}

func (g *group) syncResultFor(m *member) syncResult {
	return syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: m.assignment}
}

// member finds a member of a live group and checks its generation (none
// when generation is below 0). Called with c.mu held.
func (c *coordinator) member(groupID, memberID string, generation int32) (*group, *member, int16) {
	if c.closed {
		return nil, nil, kerr.CoordinatorNotAvailable.Code
	}
	g := c.groups[groupID]
	if g == nil || g.state == stateEmpty {
		return nil, nil, kerr.UnknownMemberID.Code
	}
	m := g.members[memberID]
	if m == nil {
		return nil, nil, kerr.UnknownMemberID.Code
	}
	if generation >= 0 && generation != g.generation {
		return nil, nil, kerr.IllegalGeneration.Code
	}
	return g, m, 0
}

// heartbeat handles a Heartbeat: it keeps the member alive and tells it
// whether it must join again.
func (c *coordinator) heartbeat(groupID, memberID string, generation int32) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, code := c.member(groupID, memberID, max(generation, -1))
	if generation < 0 && code == 0 {
		code = kerr.IllegalGeneration.Code
	}
	if code != 0 {
		return code
	}
	now := c.clock.Now()
	m.lastSeen = now
	c.settle(g, now)
	if g.state == statePreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// leave handles one member of a LeaveGroup.
func (c *coordinator) leave(groupID, memberID string) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, code := c.member(groupID, memberID, -1)
	if code != 0 {
		return code
	}
	now := c.clock.Now()
	g.removeAndRebalance(m, now)
	c.settle(g, now)
	return 0
}

// commit checks that an OffsetCommit may write, as Kafka does, and runs
// write with the lock held when it may, so that the offsets are applied in
// the generation they were checked against. A commit with generation -1
// and no member (a consumer that assigns itself partitions) is allowed
// while the group has no members; one that names a member is checked as a
// member's. A member commits in its generation, also while the group
// rebalances (it commits what it consumed before giving up its partitions)
// but not between the rebalance and the assignment, when its partitions
// may already be someone else's.
//
// create, when not nil, makes what write needs (the group's subscriptions,
// which fsyncs): it runs without the lock, after a first check (so a
// refused commit creates nothing) and before the check that write runs
// under. Meanwhile the group is held, and a deletion of it waits.
func (c *coordinator) commit(groupID, memberID string, generation int32, create, write func() int16) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, code := c.mayCommit(groupID, memberID, generation)
	if code != 0 {
		return code
	}
	if create != nil {
		if g == nil {
			g = c.newGroup(groupID)
		}
		g.committing++
		c.mu.Unlock()
		code := create()
		c.mu.Lock()
		if g.committing--; g.committing == 0 {
			c.committed.Broadcast()
		}
		defer c.settle(g, c.clock.Now())
		if code != 0 {
			return code
		}
		if g, code = c.mayCommit(groupID, memberID, generation); code != 0 {
			return code
		}
	}
	if g != nil && memberID != "" {
		now := c.clock.Now()
		g.members[memberID].lastSeen = now
		c.settle(g, now)
	}
	return write()
}

// mayCommit is commit's check. The group is nil when it is not held here
// (a commit without a member to a group without members). Called with c.mu
// held.
func (c *coordinator) mayCommit(groupID, memberID string, generation int32) (*group, int16) {
	if c.closed {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	g := c.groups[groupID]
	if g != nil && g.state == stateDead {
		// Being deleted: the client retries once it is gone.
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	if generation < 0 && memberID == "" {
		if g != nil && len(g.members) > 0 {
			return nil, kerr.UnknownMemberID.Code
		}
		return g, 0
	}
	g, _, code := c.member(groupID, memberID, generation)
	switch {
	case code != 0:
		return nil, code
	case generation < 0:
		return nil, kerr.IllegalGeneration.Code // a member, without its generation
	case g.state == stateCompletingRebalance:
		return nil, kerr.RebalanceInProgress.Code
	}
	return g, 0
}

// settle arms the group's timer, or forgets the group when there is
// nothing left to hold (its offsets stay in the engine). Called with c.mu
// held.
func (c *coordinator) settle(g *group, now time.Time) {
	if g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 && g.committing == 0 {
		g.arm(time.Time{}) // stops the timer: nothing is due
		if c.groups[g.id] == g {
			delete(c.groups, g.id)
		}
		return
	}
	g.arm(now)
}

// arm sets the group's one timer to its next event: a rebalance deadline,
// a session running out, a pending member id lapsing. Called with c.mu held.
func (g *group) arm(now time.Time) {
	g.timerSeq++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if g.c.closed || g.state == stateDead {
		return
	}
	var next time.Time
	take := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if g.state == statePreparingRebalance {
		take(g.deadline)
	}
	if g.unsynced() {
		take(g.syncDeadline)
	}
	for _, m := range g.members {
		if m.join == nil && m.sync == nil {
			take(m.lastSeen.Add(m.session))
		}
	}
	for _, at := range g.pending {
		take(at)
	}
	if next.IsZero() {
		return
	}
	seq := g.timerSeq
	g.timer = g.c.clock.AfterFunc(max(next.Sub(now), 0), func() { g.c.tick(g, seq) })
}

// unsynced reports whether a member of the generation has not sent its
// SyncGroup yet.
func (g *group) unsynced() bool {
	if g.state != stateCompletingRebalance && g.state != stateStable {
		return false
	}
	for _, m := range g.members {
		if !m.synced {
			return true
		}
	}
	return false
}

// tick runs a group's timed events. A callback whose timer was replaced
// while it waited for the lock (a request armed the group meanwhile) does
// nothing: the new timer is the group's, and comes at the right time.
func (c *coordinator) tick(g *group, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.groups[g.id] != g || g.timerSeq != seq {
		return
	}
	now := c.clock.Now()
	g.timer = nil
	for id, at := range g.pending {
		if !now.Before(at) {
			delete(g.pending, id)
		}
	}
	// A member waiting on a JoinGroup or SyncGroup is alive: its client
	// cannot heartbeat on that connection until it is answered.
	for _, m := range g.sorted() {
		if g.members[m.id] != m {
			continue // out already: a rebalance this tick completed without it
		}
		if m.join == nil && m.sync == nil && !now.Before(m.lastSeen.Add(m.session)) {
			g.removeAndRebalance(m, now)
		}
	}
	if g.unsynced() && !now.Before(g.syncDeadline) {
		for _, m := range g.sorted() {
			if !m.synced {
				g.remove(m, kerr.UnknownMemberID.Code)
			}
		}
		g.rebalanceAfterRemoval(now)
	}
	if g.state == statePreparingRebalance && !now.Before(g.deadline) {
		g.complete(now)
	}
	c.settle(g, now)
}

// close stops every timer and answers every waiting request.
func (c *coordinator) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, g := range c.groups {
		for _, m := range g.members {
			if m.join != nil {
				m.join <- joinResult{err: kerr.CoordinatorNotAvailable.Code, generation: -1, memberID: m.id}
				m.join = nil
			}
			if m.sync != nil {
				m.sync <- syncResult{err: kerr.CoordinatorNotAvailable.Code}
				m.sync = nil
			}
		}
		g.arm(time.Time{})
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
