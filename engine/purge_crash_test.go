package engine

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/crashtest"
)

const purgeChildEnv = "FERRY_ENGINE_PURGE_CHILD_DIR"

// TestPurgeCrashChild is the child of TestPurgeCrash: it takes deliveries
// (some in flight, some nacked to come back in an hour), purges the queue,
// prints "purged N" once PurgeSubscription has returned, then publishes
// new messages ten at a time, printing "pub VALUE" for each once their
// publish has returned.
func TestPurgeCrashChild(t *testing.T) {
	dir := os.Getenv(purgeChildEnv)
	if dir == "" {
		t.Skip("run by TestPurgeCrash")
	}
	fail := func(err error) {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	b, err := Open(Options{Dir: dir})
	if err != nil {
		fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	m, err := b.JoinQueue("jobs", "workers")
	if err != nil {
		fail(err)
	}
	ds, err := m.Receive(context.Background(), 20)
	if err != nil {
		fail(err)
	}
	for _, d := range ds[:2] {
		if err := m.Nack(d.ID, time.Hour); err != nil {
			fail(err)
		}
	}
	n, err := b.PurgeSubscription(context.Background(), "jobs", "workers")
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(out, "purged %d\n", n)
	out.Flush()
	for i := 0; ; i += 10 {
		var msgs []Message
		for j := i; j < i+10; j++ {
			msgs = append(msgs, Message{Key: []byte(fmt.Sprint(j % 7)), Value: []byte(fmt.Sprintf("new%05d", j))})
		}
		if _, err := b.Publish(context.Background(), "jobs", msgs...); err != nil {
			fail(err)
		}
		for _, msg := range msgs {
			fmt.Fprintf(out, "pub %s\n", msg.Value)
		}
		out.Flush()
	}
}

// TestPurgeCrash kills a child that purges a queue subscription (messages
// ready, delayed, in flight, nacked, held back by key ordering) and then
// publishes, with SIGKILL at random moments around the purge. After a
// restart: once the child saw the purge return, no purged message is
// delivered and every message it saw published is; a purge cut short by
// the kill took effect entirely or not at all.
func TestPurgeCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const total, delayed = 300, 30 // every tenth message is delayed by an hour
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	purgedRounds := 0
	for round := range 6 {
		dir := t.TempDir()
		b, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		createTopic(t, b, "jobs", TopicConfig{Partitions: 3})
		if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue, KeyOrdering: true}); err != nil {
			t.Fatal(err)
		}
		var msgs []Message
		for i := range total {
			msg := Message{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprintf("old%05d", i))}
			if i%10 == 9 {
				msg.DeliverAt = time.Now().Add(time.Hour)
			}
			msgs = append(msgs, msg)
		}
		publish(t, b, "jobs", msgs...)
		b.Close()

		// Even rounds are killed while publishing after the purge, odd ones
		// at any moment from the start, which may be before or during it.
		started, d := func(l string) bool { return strings.HasPrefix(l, "purged ") }, time.Duration(100+rng.IntN(300))*time.Millisecond
		if round%2 == 1 {
			started, d = func(l string) bool { return l == "ready" }, time.Duration(rng.IntN(15))*time.Millisecond
		}
		lines := runPurgeChild(t, dir, started, d)
		purged := false
		published := map[string]bool{}
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, "purged "); ok {
				purged = true
				if v != fmt.Sprint(total) {
					t.Fatalf("round %d: purged %s, want %d", round, v, total)
				}
			}
			if v, ok := strings.CutPrefix(l, "pub "); ok {
				published[v] = true
			}
		}

		b, err = Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := b.JoinQueue("jobs", "workers")
		old, seen := 0, map[string]bool{}
		for {
			ds, err := m.Poll(1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				break
			}
			for _, d := range ds {
				v := string(d.Message.Value)
				seen[v] = true
				if strings.HasPrefix(v, "old") {
					old++
				}
				if err := m.Ack(d.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		for v := range published {
			if !seen[v] {
				t.Fatalf("round %d: %s published after the purge and not delivered", round, v)
			}
		}
		si, _ := b.DescribeSubscription("jobs", "workers")
		var backlog int64
		for _, p := range si.Partitions {
			backlog += p.Backlog
		}
		switch {
		case purged && (old != 0 || backlog != 0):
			t.Fatalf("round %d: after the purge returned, %d purged messages delivered, %d left as backlog", round, old, backlog)
		case !purged && old == 0 && backlog != 0:
			t.Fatalf("round %d: purge cut short: %d left as backlog", round, backlog)
		case !purged && old != 0 && (old != total-delayed || backlog != delayed):
			t.Fatalf("round %d: purge cut short: %d of %d messages delivered, %d left as backlog: not all or nothing", round, old, total-delayed, backlog)
		}
		if purged {
			purgedRounds++
		}
		t.Logf("round %d: purge returned %v, %d old delivered, %d published after it", round, purged, old, len(published))
		b.Close()
	}
	if purgedRounds < 3 {
		t.Fatalf("only %d rounds saw the purge return", purgedRounds)
	}
}

// runPurgeChild runs TestPurgeCrashChild on dir, kills it d after the line
// started accepts, and returns what it printed.
func runPurgeChild(t *testing.T, dir string, started func(string) bool, d time.Duration) []string {
	t.Helper()
	child := crashtest.Child{Run: "^TestPurgeCrashChild$", Env: []string{purgeChildEnv + "=" + dir}}
	return child.RunAndKill(t, started, d)
}
