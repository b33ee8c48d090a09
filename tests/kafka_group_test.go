package tests

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/client"
)

// groupMember is one kgo consumer group member that polls in its own
// goroutine, commits what it polled after each poll (at-least-once, with
// no auto-commit so every commit is one the test knows of), and records
// what it consumed and which partitions it holds.
type groupMember struct {
	name string
	kc   *kgo.Client

	mu    sync.Mutex
	owned map[int32]bool
	got   []*kgo.Record

	cancel context.CancelFunc
	done   chan struct{}
}

// groupOpts are short timeouts, so a rebalance or a dead member is quick.
func groupOpts(group, topic string) []kgo.Opt {
	return []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(2 * time.Second), kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second), kgo.FetchMaxWait(200 * time.Millisecond)}
}

func startMember(t *testing.T, addr, name, group, topic string) *groupMember {
	t.Helper()
	m := &groupMember{name: name, owned: map[int32]bool{}, done: make(chan struct{})}
	opts := append(groupOpts(group, topic), kgo.ClientID(name),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.track(a, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.track(r, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { m.track(l, false) }))
	kc, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.kc = kc
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := kc.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachError(func(topic string, p int32, err error) { t.Errorf("%s: fetch %s/%d: %v", name, topic, p, err) })
			m.mu.Lock()
			m.got = append(m.got, fs.Records()...)
			m.mu.Unlock()
			// Not ctx: stop must not cut the commit of what was just polled.
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := kc.CommitUncommittedOffsets(cctx); err != nil {
				t.Logf("%s: commit: %v", name, err) // a commit cut by a rebalance: those records come again
			}
			ccancel()
		}
	}()
	return m
}

func (m *groupMember) track(ps map[string][]int32, add bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, parts := range ps {
		for _, p := range parts {
			if add {
				m.owned[p] = true
			} else {
				delete(m.owned, p)
			}
		}
	}
}

func (m *groupMember) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.owned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *groupMember) records() []*kgo.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*kgo.Record(nil), m.got...)
}

// stop ends the polling; close leaves the group as kgo does on Close.
func (m *groupMember) stop() { m.cancel(); <-m.done }
func (m *groupMember) close() {
	m.stop()
	m.kc.Close()
}

// waitUntil polls cond until it holds or 20 seconds pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assignedOnce reports whether the members together hold each of n
// partitions exactly once.
func assignedOnce(n int, ms ...*groupMember) bool {
	seen := map[int32]int{}
	for _, m := range ms {
		for _, p := range m.partitions() {
			seen[p]++
		}
	}
	if len(seen) != n {
		return false
	}
	for _, c := range seen {
		if c != 1 {
			return false
		}
	}
	return true
}

func produceValues(t *testing.T, ctx context.Context, prod *kgo.Client, from, to int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consumedValues counts each value the members consumed.
func consumedValues(ms ...*groupMember) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		for _, r := range m.records() {
			out[string(r.Value)]++
		}
	}
	return out
}

// TestKafkaGroupRebalanceAndResume: three kgo members of one group split a
// topic of 6 partitions and consume every record once; one member leaves
// and its partitions move to the other two; after everyone has committed
// and closed, a new member resumes from the committed offsets, with no gap
// and nothing consumed twice. The Ferry subscription named after the group
// shows the same committed offsets, and the lag as its backlog.
func TestKafkaGroupRebalanceAndResume(t *testing.T) {
	s, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const topic, group, parts = "kg", "g1", 6
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	prod := kafkaClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))

	ms := []*groupMember{
		startMember(t, s.KafkaAddr(), "m0", group, topic),
		startMember(t, s.KafkaAddr(), "m1", group, topic),
		startMember(t, s.KafkaAddr(), "m2", group, topic),
	}
	defer func() {
		for _, m := range ms {
			m.close()
		}
	}()
	waitUntil(t, "three members to share the 6 partitions", func() bool {
		return assignedOnce(parts, ms...) && len(ms[0].partitions()) > 0 && len(ms[1].partitions()) > 0 && len(ms[2].partitions()) > 0
	})

	produceValues(t, ctx, prod, 0, 300)
	waitUntil(t, "300 records consumed", func() bool { return len(consumedValues(ms...)) == 300 })
	for v, n := range consumedValues(ms...) {
		if n != 1 {
			t.Fatalf("%s consumed %d times in a stable group", v, n)
		}
	}

	// m2 goes; its partitions move to m0 and m1.
	gone := ms[2].partitions()
	ms[2].close()
	ms = ms[:2]
	waitUntil(t, "m0 and m1 to take m2's partitions", func() bool { return assignedOnce(parts, ms...) })
	t.Logf("m2 held %v; now m0 %v, m1 %v", gone, ms[0].partitions(), ms[1].partitions())
	produceValues(t, ctx, prod, 300, 600)
	waitUntil(t, "600 records consumed", func() bool {
		seen := consumedValues(ms...)
		for i := 300; i < 600; i++ {
			if seen[fmt.Sprintf("v%d", i)] == 0 {
				return false
			}
		}
		return true
	})
	for v, n := range consumedValues(ms...) {
		if n != 1 && v >= "v300" && len(v) == 4 {
			t.Fatalf("%s consumed %d times after the rebalance", v, n)
		}
	}
	for _, m := range ms {
		m.stop() // each committed what it polled before polling again
	}

	// The subscription t/g holds the committed offsets: everything, no lag.
	ti, err := c.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.DescribeSubscription(ctx, topic, group)
	if err != nil {
		t.Fatalf("the group's subscription: %v", err)
	}
	if len(sub.Partitions) != parts {
		t.Fatalf("subscription has %d partitions", len(sub.Partitions))
	}
	committed := map[int32]int64{}
	for i, sp := range sub.Partitions {
		end := ti.Partitions[i].GetEndOffset()
		if sp.Committed != end || sp.Backlog != 0 {
			t.Fatalf("partition %d: committed %d backlog %d, end %d", sp.Partition, sp.Committed, sp.Backlog, end)
		}
		committed[sp.Partition] = sp.Committed
	}
	for _, m := range ms {
		m.kc.Close()
	}
	ms = nil

	// Closed group, new records: the lag shows in the subscription.
	produceValues(t, ctx, prod, 600, 800)
	sub, err = c.DescribeSubscription(ctx, topic, group)
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	for _, sp := range sub.Partitions {
		lag += sp.Backlog
	}
	if lag != 200 {
		t.Fatalf("lag %d, expected 200", lag)
	}

	// A new member resumes from the commits: exactly the new records.
	m3 := startMember(t, s.KafkaAddr(), "m3", group, topic)
	ms = append(ms, m3)
	waitUntil(t, "m3 to consume 200 records", func() bool { return len(m3.records()) >= 200 })
	time.Sleep(300 * time.Millisecond) // a record beyond the 200 would be a duplicate: give it a chance to show
	next := map[int32]int64{}
	for p, o := range committed {
		next[p] = o
	}
	for _, r := range m3.records() {
		if r.Offset != next[r.Partition] {
			t.Fatalf("m3 read %d/%d, expected offset %d (committed %d)", r.Partition, r.Offset, next[r.Partition], committed[r.Partition])
		}
		next[r.Partition]++
		var i int
		if _, err := fmt.Sscanf(string(r.Value), "v%d", &i); err != nil || i < 600 {
			t.Fatalf("m3 read %q, committed already", r.Value)
		}
	}
	if n := len(m3.records()); n != 200 {
		t.Fatalf("m3 read %d records, expected 200", n)
	}
	m3.stop()
	sub, err = c.DescribeSubscription(ctx, topic, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range sub.Partitions {
		if sp.Backlog != 0 {
			t.Fatalf("partition %d: backlog %d after m3 committed", sp.Partition, sp.Backlog)
		}
	}
}

// rawGroupClient sends group requests by hand, to see each error code.
func rawGroupClient(t *testing.T, addr string) *kgo.Client {
	return kafkaClient(t, addr, kgo.ClientID("raw"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

func joinRaw(t *testing.T, ctx context.Context, kc *kgo.Client, group, member string, session time.Duration) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
	req.SessionTimeoutMillis = int32(session.Milliseconds())
	req.RebalanceTimeoutMillis = 2000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte("meta")
	req.Protocols = append(req.Protocols, p)
	resp, err := req.RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func heartbeatRaw(t *testing.T, ctx context.Context, kc *kgo.Client, group, member string, gen int32) error {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	resp, err := req.RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

func deleteGroupRaw(t *testing.T, ctx context.Context, kc *kgo.Client, group string) error {
	t.Helper()
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	return kerr.ErrorForCode(resp.Groups[0].ErrorCode)
}

// TestKafkaGroupErrors: the coordinator's answers to requests that are
// wrong, by hand: an unknown member, a past generation, deleting a group
// with a member; a member that stops heartbeating is out after its session
// timeout; offsets never committed fetch as -1; static membership and
// transactions are refused; deleting the emptied group deletes its
// subscription.
func TestKafkaGroupErrors(t *testing.T) {
	s, c, ctx := kafkaTopic(t, "ke", 2, 30*time.Second)
	kc := rawGroupClient(t, s.KafkaAddr())
	if err := kc.ProduceSync(ctx, &kgo.Record{Topic: "ke", Partition: 0, Value: []byte("a")}, &kgo.Record{Topic: "ke", Value: []byte("b")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	first := joinRaw(t, ctx, kc, "ge", "", 500*time.Millisecond)
	if err := kerr.ErrorForCode(first.ErrorCode); err != kerr.MemberIDRequired || first.MemberID == "" {
		t.Fatalf("first join: %v, member %q", err, first.MemberID)
	}
	joined := joinRaw(t, ctx, kc, "ge", first.MemberID, 500*time.Millisecond)
	if joined.ErrorCode != 0 || joined.LeaderID != first.MemberID || len(joined.Members) != 1 || joined.Generation < 1 {
		t.Fatalf("join: %+v", joined)
	}
	me, gen := joined.MemberID, joined.Generation

	if err := heartbeatRaw(t, ctx, kc, "ge", "nobody", gen); err != kerr.UnknownMemberID {
		t.Fatalf("heartbeat of an unknown member: %v", err)
	}
	if err := heartbeatRaw(t, ctx, kc, "ge", me, gen+1); err != kerr.IllegalGeneration {
		t.Fatalf("heartbeat of another generation: %v", err)
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.MemberID, sreq.Generation = "ge", me, gen
	sreq.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: me, MemberAssignment: []byte("all")}}
	sresp, err := sreq.RequestWith(ctx, kc)
	if err != nil || sresp.ErrorCode != 0 || string(sresp.MemberAssignment) != "all" {
		t.Fatalf("sync: %+v, %v", sresp, err)
	}
	if err := heartbeatRaw(t, ctx, kc, "ge", me, gen); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}

	// Never committed: -1, and the fetch makes no subscription.
	ofreq := kmsg.NewPtrOffsetFetchRequest()
	ofreq.Group = "ge"
	ofreq.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "ke", Partitions: []int32{0, 1}}}
	ofresp, err := ofreq.RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ofresp.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Offset != -1 {
			t.Fatalf("offset fetch before any commit: %+v", p)
		}
	}
	if _, err := c.DescribeSubscription(ctx, "ke", "ge"); err == nil {
		t.Fatal("an offset fetch made the group's subscription")
	}

	ocreq := kmsg.NewPtrOffsetCommitRequest()
	ocreq.Group, ocreq.MemberID, ocreq.Generation = "ge", me, gen
	ocreq.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "ke", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	ocresp, err := ocreq.RequestWith(ctx, kc)
	if err != nil || ocresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit: %+v, %v", ocresp, err)
	}
	ocreq.Generation = gen + 1
	if ocresp, err = ocreq.RequestWith(ctx, kc); err != nil || ocresp.Topics[0].Partitions[0].ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("commit in another generation: %+v, %v", ocresp, err)
	}
	sub, err := c.DescribeSubscription(ctx, "ke", "ge")
	if err != nil || sub.Partitions[0].Committed != 1 {
		t.Fatalf("subscription after the commit: %v, %v", sub, err)
	}

	if err := deleteGroupRaw(t, ctx, kc, "ge"); err != kerr.NonEmptyGroup {
		t.Fatalf("deleting a group with a member: %v", err)
	}

	// Static membership is refused; so are transactions.
	sjreq := kmsg.NewPtrJoinGroupRequest()
	sjreq.Group, sjreq.ProtocolType, sjreq.InstanceID = "gs", "consumer", kmsg.StringPtr("i1")
	sjreq.SessionTimeoutMillis, sjreq.RebalanceTimeoutMillis = 1000, 1000
	sjreq.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if sj, err := sjreq.RequestWith(ctx, kc); err != nil || sj.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("static member join: %+v, %v", sj, err)
	}
	fcreq := kmsg.NewPtrFindCoordinatorRequest()
	fcreq.CoordinatorType, fcreq.CoordinatorKey, fcreq.CoordinatorKeys = 1, "tx", []string{"tx"}
	if fc, err := fcreq.RequestWith(ctx, kc); err != nil || len(fc.Coordinators) != 1 || fc.Coordinators[0].ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("transaction coordinator: %+v, %v", fc, err)
	}

	// No more heartbeats: after the 500ms session the member is out and
	// the group empty, so it can be deleted, with its subscription.
	dreq := kmsg.NewPtrDescribeGroupsRequest()
	dreq.Groups = []string{"ge"}
	waitUntil(t, "the silent member to expire", func() bool {
		d, err := dreq.RequestWith(ctx, kc)
		if err != nil {
			t.Fatal(err)
		}
		return d.Groups[0].State == "Empty" && len(d.Groups[0].Members) == 0
	})
	// Forgotten by the coordinator, the group is still listed by its offsets.
	lreq := kmsg.NewPtrListGroupsRequest()
	lresp, err := lreq.RequestWith(ctx, kc)
	if err != nil || len(lresp.Groups) != 1 || lresp.Groups[0].Group != "ge" || lresp.Groups[0].GroupState != "Empty" {
		t.Fatalf("list groups: %+v, %v", lresp, err)
	}
	if err := heartbeatRaw(t, ctx, kc, "ge", me, gen); err != kerr.UnknownMemberID {
		t.Fatalf("heartbeat of the expired member: %v", err)
	}
	if err := deleteGroupRaw(t, ctx, kc, "ge"); err != nil {
		t.Fatalf("deleting the empty group: %v", err)
	}
	if _, err := c.DescribeSubscription(ctx, "ke", "ge"); err == nil {
		t.Fatal("the group's subscription outlived the group")
	}
	if err := deleteGroupRaw(t, ctx, kc, "ge"); err != kerr.GroupIDNotFound {
		t.Fatalf("deleting it again: %v", err)
	}
}
