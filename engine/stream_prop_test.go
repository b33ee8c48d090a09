package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"pgregory.net/rapid"
)

// TestStreamResumeProperties drives a stream subscription with random
// publishes, joins, fetches, commits, leaves, session expiries and broker
// restarts. A member that gets a partition starts reading it exactly at the
// committed offset, and goes on from there with no gap and no repeat while
// it keeps it.
func TestStreamResumeProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
		dir := t.TempDir()
		opts := Options{Dir: dir, Clock: clk, DefaultFsync: "never"}
		b, err := Open(opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { b.Close() }()
		parts := rapid.IntRange(1, 4).Draw(rt, "partitions")
		b.CreateTopic(bg, "ev", TopicConfig{Partitions: parts})
		if _, err := b.CreateSubscription(bg, "ev", "g", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
			rt.Fatal(err)
		}
		committed := make([]int64, parts)
		type member struct {
			m    *StreamMember
			last map[int]int64 // last offset read per partition it holds
		}
		var members []*member
		done := func() context.Context {
			ctx, cancel := context.WithCancel(bg)
			cancel()
			return ctx
		}()
		drop := func(i int) { members = append(members[:i], members[i+1:]...) }
		pick := func(rt *rapid.T) (int, bool) {
			if len(members) == 0 {
				return 0, false
			}
			return rapid.IntRange(0, len(members)-1).Draw(rt, "member"), true
		}
		n := 0
		rt.Repeat(map[string]func(*rapid.T){
			"publish": func(rt *rapid.T) {
				var msgs []Message
				for range rapid.IntRange(1, 5).Draw(rt, "n") {
					msgs = append(msgs, Message{Key: []byte(fmt.Sprint(n % 7)), Value: []byte(fmt.Sprint(n))})
					n++
				}
				if _, err := b.Publish(bg, "ev", msgs...); err != nil {
					rt.Fatal(err)
				}
			},
			"join": func(rt *rapid.T) {
				m, err := b.JoinStream("ev", "g", 10*time.Second)
				if err != nil {
					rt.Fatal(err)
				}
				members = append(members, &member{m: m, last: map[int]int64{}})
			},
			"fetch": func(rt *rapid.T) {
				i, ok := pick(rt)
				if !ok {
					return
				}
				mb := members[i]
				owned, _, err := mb.m.Heartbeat()
				if errors.Is(err, ErrMemberClosed) {
					drop(i) // its session expired
					return
				}
				if err != nil {
					rt.Fatal(err)
				}
				holds := map[int]bool{}
				for _, p := range owned {
					holds[p] = true
				}
				for p := range mb.last {
					if !holds[p] {
						delete(mb.last, p) // lost it: a later regain starts at the commit
					}
				}
				msgs, err := mb.m.Fetch(done, rapid.IntRange(1, 20).Draw(rt, "max"))
				if err != nil && !errors.Is(err, context.Canceled) {
					rt.Fatal(err)
				}
				for _, msg := range msgs {
					p := msg.Partition
					if !holds[p] {
						rt.Fatalf("fetched partition %d not owned", p)
					}
					if last, ok := mb.last[p]; ok {
						if msg.Offset != last+1 {
							rt.Fatalf("partition %d: read %d after %d", p, msg.Offset, last)
						}
					} else if msg.Offset != committed[p] {
						rt.Fatalf("partition %d: started at %d, committed %d", p, msg.Offset, committed[p])
					}
					mb.last[p] = msg.Offset
				}
			},
			"commit": func(rt *rapid.T) {
				i, ok := pick(rt)
				if !ok {
					return
				}
				mb := members[i]
				offs := map[int]int64{}
				for p, last := range mb.last {
					if rapid.Bool().Draw(rt, "commit") {
						offs[p] = last + 1
					}
				}
				err := mb.m.Commit(offs)
				if errors.Is(err, ErrMemberClosed) || errors.Is(err, ErrNotOwner) {
					return // lost meanwhile (expired, or handed over)
				}
				if err != nil {
					rt.Fatal(err)
				}
				for p, o := range offs {
					committed[p] = o
				}
			},
			"leave": func(rt *rapid.T) {
				i, ok := pick(rt)
				if !ok {
					return
				}
				members[i].m.Leave()
				drop(i)
			},
			"tick": func(rt *rapid.T) {
				clk.Advance(time.Duration(rapid.IntRange(1, 12).Draw(rt, "seconds")) * time.Second)
			},
			"restart": func(rt *rapid.T) {
				if err := b.Close(); err != nil {
					rt.Fatal(err)
				}
				if b, err = Open(opts); err != nil {
					rt.Fatal(err)
				}
				members = nil
				si, _ := b.DescribeSubscription("ev", "g")
				for _, p := range si.Partitions {
					if p.Committed != committed[p.Partition] {
						rt.Fatalf("after restart partition %d committed %d, want %d", p.Partition, p.Committed, committed[p.Partition])
					}
				}
			},
		})
	})
}
