package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"pgregory.net/rapid"
)

// TestQueueProperties drives a queue subscription with random interleavings
// of publish, receive, ack, nack (at once or with a delay), extend, the
// clock moving on (deadlines expiring one by one), deadline expiry, member
// loss, broker restart and purge, and checks the queue's promises:
//   - a message is never in flight twice at once, and an acknowledged or
//     dead-lettered one is never delivered again;
//   - a message is delivered again only after a nack, an expired deadline, its
//     member leaving or a restart, with its count one higher;
//   - a purge settles exactly the messages neither acknowledged nor
//     dead-lettered (its count says how many), none of them is delivered
//     again, and its deliveries in flight can no longer be acknowledged,
//     nacked or extended;
//   - in the end every published message is acknowledged, dead-lettered or
//     purged, exactly one of the three, and the dead-lettered ones are
//     exactly those that failed their max_deliveries-th delivery;
//   - after every step the partitions' state hangs together (see
//     checkQueueState): a purge that left a key held, a ready entry or a
//     member's in-flight count behind would show there first.
func TestQueueProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const maxDeliveries = 3
		clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
		dir := t.TempDir()
		opts := Options{Dir: dir, Clock: clk, DefaultFsync: "never"}
		b, err := Open(opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { b.Close() }()
		parts := rapid.IntRange(1, 3).Draw(rt, "partitions")
		if _, err := b.CreateTopic(bg, "jobs", TopicConfig{Partitions: parts}); err != nil {
			rt.Fatal(err)
		}
		cfg := SubscriptionConfig{Kind: KindQueue, AckDeadline: 10 * time.Second, MaxDeliveries: maxDeliveries,
			MaxInFlight: rapid.IntRange(1, 5).Draw(rt, "maxInFlight"), KeyOrdering: rapid.Bool().Draw(rt, "keyOrdering")}
		if _, err := b.CreateSubscription(bg, "jobs", "q", cfg); err != nil {
			rt.Fatal(err)
		}

		type flight struct {
			d      Delivery
			member int
		}
		var (
			published []string
			acked     = map[string]bool{}
			dead      = map[string]bool{}
			count     = map[string]int{}  // deliveries so far
			released  = map[string]bool{} // may be delivered again
			inFlight  = map[string]flight{}
			members   = make([]*QueueMember, 2)
			purged    = map[string]bool{}
			// gone are the deliveries in flight when a purge came.
			gone []flight
		)
		joinAll := func() {
			for i := range members {
				m, err := b.JoinQueue("jobs", "q")
				if err != nil {
					rt.Fatal(err)
				}
				members[i] = m
			}
		}
		joinAll()
		// fail records a failed delivery of v. Like SQS's maxReceiveCount,
		// max_deliveries counts deliveries: the one that fails as the
		// max_deliveries-th goes to the dead-letter topic.
		fail := func(v string) {
			delete(inFlight, v)
			if count[v] >= maxDeliveries {
				dead[v] = true
			} else {
				released[v] = true
			}
		}
		receive := func(i int) {
			ds, err := members[i].Poll(rapid.IntRange(1, 4).Draw(rt, "max"))
			if err != nil {
				rt.Fatal(err)
			}
			for _, d := range ds {
				v := string(d.Message.Value)
				switch {
				case purged[v]:
					rt.Fatalf("purged %s delivered again", v)
				case acked[v]:
					rt.Fatalf("acknowledged %s delivered again", v)
				case dead[v]:
					rt.Fatalf("dead-lettered %s delivered again", v)
				case isInFlight(inFlight, v):
					rt.Fatalf("%s delivered while in flight", v)
				case count[v] > 0 && !released[v]:
					rt.Fatalf("%s delivered again without a nack, expiry, leave or restart", v)
				case d.Count != count[v]+1:
					rt.Fatalf("%s delivered with count %d after %d deliveries", v, d.Count, count[v])
				}
				count[v] = d.Count
				released[v] = false
				inFlight[v] = flight{d, i}
			}
		}
		someInFlight := func() (string, flight, bool) {
			if len(inFlight) == 0 {
				return "", flight{}, false
			}
			keys := make([]string, 0, len(inFlight))
			for v := range inFlight {
				keys = append(keys, v)
			}
			slices.Sort(keys)
			v := rapid.SampledFrom(keys).Draw(rt, "delivery")
			return v, inFlight[v], true
		}

		rt.Repeat(map[string]func(*rapid.T){
			// After every step: each member holds what the model says is
			// in flight for it, no more (MaxInFlight counts it), no less.
			"": func(rt *rapid.T) {
				for i, m := range members {
					want := 0
					for _, f := range inFlight {
						if f.member == i {
							want++
						}
					}
					m.s.mu.Lock()
					got := m.inflight
					m.s.mu.Unlock()
					if got != want {
						rt.Fatalf("member %d counts %d deliveries in flight, the model %d", i, got, want)
					}
				}
				checkQueueState(rt, members[0].s)
			},
			"publish": func(rt *rapid.T) {
				n := rapid.IntRange(1, 4).Draw(rt, "n")
				var msgs []Message
				for range n {
					v := fmt.Sprintf("m%d", len(published))
					published = append(published, v)
					key := []byte(fmt.Sprintf("k%d", rapid.IntRange(0, 2).Draw(rt, "key")))
					msg := Message{Key: key, Value: []byte(v)}
					if rapid.IntRange(0, 3).Draw(rt, "delayed") == 0 {
						msg.DeliverAt = clk.Now().Add(time.Duration(rapid.IntRange(1, 15).Draw(rt, "delay")) * time.Second)
					}
					msgs = append(msgs, msg)
				}
				if _, err := b.Publish(bg, "jobs", msgs...); err != nil {
					rt.Fatal(err)
				}
			},
			"receive": func(rt *rapid.T) { receive(rapid.IntRange(0, 1).Draw(rt, "member")) },
			"ack": func(rt *rapid.T) {
				v, f, ok := someInFlight()
				if !ok {
					return
				}
				if err := members[f.member].Ack(f.d.ID); err != nil {
					rt.Fatal(err)
				}
				delete(inFlight, v)
				acked[v] = true
			},
			"nack": func(rt *rapid.T) {
				v, f, ok := someInFlight()
				if !ok {
					return
				}
				if err := members[f.member].Nack(f.d.ID, 0); err != nil {
					rt.Fatal(err)
				}
				fail(v)
			},
			"nackLater": func(rt *rapid.T) {
				v, f, ok := someInFlight()
				if !ok {
					return
				}
				delay := time.Duration(rapid.IntRange(1, 20).Draw(rt, "nack delay")) * time.Second
				if err := members[f.member].Nack(f.d.ID, delay); err != nil {
					rt.Fatal(err)
				}
				fail(v)
			},
			"extend": func(rt *rapid.T) {
				v, f, ok := someInFlight()
				if !ok {
					return
				}
				// At most the ack deadline: "expire" still expires it.
				by := time.Duration(rapid.IntRange(1, 10).Draw(rt, "extend by")) * time.Second
				deadline, err := members[f.member].Extend(f.d.ID, by)
				if err != nil {
					rt.Fatal(err)
				}
				f.d.Deadline = deadline
				inFlight[v] = f
			},
			"tick": func(rt *rapid.T) {
				clk.Advance(time.Duration(rapid.IntRange(1, 3).Draw(rt, "tick")) * time.Second)
				for v, f := range inFlight {
					if !f.d.Deadline.After(clk.Now()) {
						fail(v)
					}
				}
			},
			"expire": func(rt *rapid.T) {
				clk.Advance(11 * time.Second)
				for v := range inFlight {
					fail(v)
				}
			},
			"leave": func(rt *rapid.T) {
				i := rapid.IntRange(0, 1).Draw(rt, "member")
				if err := members[i].Leave(); err != nil {
					rt.Fatal(err)
				}
				for v, f := range inFlight {
					if f.member == i {
						fail(v)
					}
				}
				gone = slices.DeleteFunc(gone, func(f flight) bool { return f.member == i })
				m, err := b.JoinQueue("jobs", "q")
				if err != nil {
					rt.Fatal(err)
				}
				members[i] = m
			},
			"restart": func(rt *rapid.T) {
				if err := b.Close(); err != nil {
					rt.Fatal(err)
				}
				if b, err = Open(opts); err != nil {
					rt.Fatal(err)
				}
				// In-flight deliveries come back without counting as failed.
				for v := range inFlight {
					delete(inFlight, v)
					released[v] = true
				}
				gone = nil
				joinAll()
			},
			"purge": func(rt *rapid.T) {
				var want int64
				for _, v := range published {
					if !acked[v] && !dead[v] && !purged[v] {
						purged[v] = true
						want++
					}
				}
				for v, f := range inFlight {
					delete(inFlight, v)
					gone = append(gone, f)
				}
				n, err := b.PurgeSubscription(bg, "jobs", "q")
				if err != nil {
					rt.Fatal(err)
				}
				if n != want {
					rt.Fatalf("purge settled %d messages, want %d", n, want)
				}
			},
			"settlePurged": func(rt *rapid.T) {
				if len(gone) == 0 {
					return
				}
				f := gone[rapid.IntRange(0, len(gone)-1).Draw(rt, "purged delivery")]
				var err error
				switch rapid.IntRange(0, 2).Draw(rt, "how") {
				case 0:
					err = members[f.member].Ack(f.d.ID)
				case 1:
					err = members[f.member].Nack(f.d.ID, 0)
				default:
					_, err = members[f.member].Extend(f.d.ID, time.Minute)
				}
				if !errors.Is(err, ErrUnknownDelivery) {
					rt.Fatalf("settling %s after the purge: %v, want ErrUnknownDelivery", f.d.Message.Value, err)
				}
			},
		})

		// Drain: acknowledge everything still deliverable.
		for v, f := range inFlight {
			if err := members[f.member].Ack(f.d.ID); err != nil {
				rt.Fatal(err)
			}
			delete(inFlight, v)
			acked[v] = true
		}
		clk.Advance(time.Minute) // every delayed message is due
		for range 1000 {
			before := len(acked)
			receive(0)
			for v, f := range inFlight {
				if err := members[f.member].Ack(f.d.ID); err != nil {
					rt.Fatal(err)
				}
				delete(inFlight, v)
				acked[v] = true
			}
			if len(acked) == before {
				break
			}
		}
		for _, v := range published {
			if n := btoi(acked[v]) + btoi(dead[v]) + btoi(purged[v]); n != 1 {
				rt.Fatalf("%s: acknowledged %v, dead-lettered %v, purged %v", v, acked[v], dead[v], purged[v])
			}
		}
		var deadGot []string
		if _, err := b.DescribeTopic("jobs.q.dlq"); err == nil {
			for p := range 1 {
				for _, m := range readAllOf(t, b, "jobs.q.dlq", p) {
					deadGot = append(deadGot, string(m.Value))
				}
			}
		}
		var deadWant []string
		for v := range dead {
			deadWant = append(deadWant, v)
		}
		slices.Sort(deadGot)
		slices.Sort(deadWant)
		if !slices.Equal(deadGot, deadWant) {
			rt.Fatalf("dead-letter topic holds %v, want %v", deadGot, deadWant)
		}
	})
}

func isInFlight[F any](m map[string]F, v string) bool {
	_, ok := m[v]
	return ok
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkQueueState checks that q's partition state hangs together: every
// ready entry is marked queued; every delivery in flight is above the
// floor and holds its key, if keyed; every held key is held by an offset
// in flight or queued, both ways round (keys, offKey); every key with
// offsets blocked behind it is held; floorPub is the floor; and each
// member's in-flight count is the number of deliveries it holds.
func checkQueueState(rt *rapid.T, q *queueSub) {
	q.mu.Lock()
	defer q.mu.Unlock()
	held := map[*QueueMember]int{}
	for _, qp := range q.parts {
		for _, it := range qp.ready {
			if !qp.queued[it.offset] {
				rt.Fatalf("p%d: %d is ready but not marked queued", qp.p, it.offset)
			}
		}
		for o, in := range qp.inflight {
			held[in.member]++
			if o < qp.floor {
				rt.Fatalf("p%d: %d in flight below the floor %d", qp.p, o, qp.floor)
			}
			if h, ok := qp.keys[in.key]; in.keyed && (!ok || h != o) {
				rt.Fatalf("p%d: %d in flight does not hold its key %q (held: %v by %d)", qp.p, o, in.key, ok, h)
			}
		}
		for k, o := range qp.keys {
			if qp.offKey[o] != k {
				rt.Fatalf("p%d: key %q held by %d, which holds %q", qp.p, k, o, qp.offKey[o])
			}
			if qp.inflight[o] == nil && !qp.queued[o] {
				rt.Fatalf("p%d: key %q held by %d, neither in flight nor queued: it would block its key for good", qp.p, k, o)
			}
		}
		for o, k := range qp.offKey {
			if h, ok := qp.keys[k]; !ok || h != o {
				rt.Fatalf("p%d: %d holds %q, which is held by %d (%v)", qp.p, o, k, h, ok)
			}
		}
		for k, list := range qp.blocked {
			if _, ok := qp.keys[k]; !ok || len(list) == 0 {
				rt.Fatalf("p%d: %v blocked behind key %q, held: %v", qp.p, list, k, ok)
			}
		}
		if f := qp.floorPub.Load(); f != qp.floor {
			rt.Fatalf("p%d: floorPub %d, floor %d", qp.p, f, qp.floor)
		}
	}
	for m := range q.members {
		if m.inflight != held[m] {
			rt.Fatalf("a member counts %d deliveries in flight and holds %d", m.inflight, held[m])
		}
	}
}
