package engine

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/crashtest"
)

const crashChildEnv = "FERRY_ENGINE_CRASH_CHILD_DIR"

// TestQueueCrashChild is the child of TestQueueCrash: it consumes the queue,
// acknowledging every message it receives, and prints each acknowledgement
// once Ack has returned.
func TestQueueCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestQueueCrash")
	}
	b, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	m, err := b.JoinQueue("jobs", "workers")
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for {
		ds, err := m.Receive(context.Background(), 7)
		if err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		for _, d := range ds {
			if err := m.Ack(d.ID); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(3)
			}
			fmt.Fprintf(out, "ack %s\n", d.Message.Value)
			out.Flush()
		}
	}
}

// TestQueueCrash kills a consuming child with SIGKILL at random moments and
// checks, after each restart, that no acknowledged message is delivered again
// and that every message is acknowledged in the end.
func TestQueueCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, b, "jobs", TopicConfig{Partitions: 3})
	if _, err := b.CreateSubscription(bg, "jobs", "workers", SubscriptionConfig{Kind: KindQueue}); err != nil {
		t.Fatal(err)
	}
	const total = 3000
	for i := 0; i < total; i += 100 {
		var msgs []Message
		for j := i; j < i+100; j++ {
			msgs = append(msgs, Message{Key: []byte(fmt.Sprint(j % 17)), Value: []byte(fmt.Sprintf("m%05d", j))})
		}
		publish(t, b, "jobs", msgs...)
	}
	b.Close()

	acked := map[string]bool{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	deadline := time.Now().Add(10 * time.Second)
	rounds := 0
	for ; len(acked) < total && rounds < 15 && time.Now().Before(deadline); rounds++ {
		round := rounds
		for _, line := range runChild(t, crashChildEnv, "^TestQueueCrashChild$", dir, time.Duration(10+rng.IntN(150))*time.Millisecond) {
			v := strings.TrimPrefix(line, "ack ")
			if acked[v] {
				t.Fatalf("round %d: %s acknowledged twice: delivered again after its ack", round, v)
			}
			acked[v] = true
		}
	}
	// What is left after the last kill is delivered, and only that.
	b, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, _ := b.JoinQueue("jobs", "workers")
	for len(acked) < total {
		ds, err := m.Poll(500)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			v := string(d.Message.Value)
			if acked[v] {
				t.Fatalf("%s delivered again after its ack", v)
			}
			acked[v] = true
			m.Ack(d.ID)
		}
	}
	// A kill between Ack returning and the child printing it loses the line,
	// not the ack: at most one such message per kill, and the subscription
	// must hold no backlog at all.
	if missing := total - len(acked); missing < 0 || missing > rounds {
		t.Fatalf("%d of %d messages seen acknowledged after %d kills", len(acked), total, rounds)
	}
	si, err := b.DescribeSubscription("jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range si.Partitions {
		if p.Backlog != 0 {
			t.Fatalf("messages neither acknowledged nor delivered: %+v", si.Partitions)
		}
	}
	t.Logf("%d kills, %d acknowledgements checked", rounds, len(acked))
}

// runChild runs the child test named by run with env set to dir, waits for
// its "ready", lets it work for d, kills it with SIGKILL and returns its
// "ack" lines.
func runChild(t *testing.T, env, run, dir string, d time.Duration) []string {
	t.Helper()
	child := crashtest.Child{Run: run, Env: []string{env + "=" + dir}}
	var acks []string
	for _, line := range child.RunAndKill(t, func(line string) bool { return line == "ready" }, d) {
		if strings.HasPrefix(line, "ack ") {
			acks = append(acks, line)
		}
	}
	return acks
}

const streamChildEnv = "FERRY_ENGINE_STREAM_CHILD_DIR"

// TestStreamCrashChild consumes the stream subscription, committing after
// every fetch, and prints each commit once Commit has returned.
func TestStreamCrashChild(t *testing.T) {
	dir := os.Getenv(streamChildEnv)
	if dir == "" {
		t.Skip("run by TestStreamCrash")
	}
	b, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	m, err := b.JoinStream("events", "g", time.Minute)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for {
		ms, err := m.Fetch(context.Background(), 50)
		if err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		next := map[int]int64{}
		for _, msg := range ms {
			next[msg.Partition] = msg.Offset + 1
		}
		if err := m.Commit(next); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		for p, o := range next {
			fmt.Fprintf(out, "ack %d %d\n", p, o)
		}
		out.Flush()
	}
}

// TestStreamCrash kills a consuming, committing child with SIGKILL at random
// moments; after each restart the committed offsets are at least those the
// child reported, and a new member resumes exactly there, with no gap.
func TestStreamCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, b, "events", TopicConfig{Partitions: 3})
	if _, err := b.CreateSubscription(bg, "events", "g", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i += 100 {
		var msgs []Message
		for j := i; j < i+100; j++ {
			msgs = append(msgs, Message{Key: []byte(fmt.Sprint(j)), Value: []byte(fmt.Sprint(j))})
		}
		publish(t, b, "events", msgs...)
	}
	b.Close()
	reported := map[int]int64{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	for round := 0; round < 8; round++ {
		lines := runChild(t, streamChildEnv, "^TestStreamCrashChild$", dir, time.Duration(5+rng.IntN(40))*time.Millisecond)
		for _, line := range lines {
			var p int
			var o int64
			if _, err := fmt.Sscanf(line, "ack %d %d", &p, &o); err == nil && o > reported[p] {
				reported[p] = o
			}
		}
		b, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		si, _ := b.DescribeSubscription("events", "g")
		committed := map[int]int64{}
		for _, p := range si.Partitions {
			committed[p.Partition] = p.Committed
			if p.Committed < reported[p.Partition] {
				t.Fatalf("round %d: partition %d committed %d, child saw %d committed", round, p.Partition, p.Committed, reported[p.Partition])
			}
		}
		m, _ := b.JoinStream("events", "g", time.Minute)
		m.Heartbeat()
		ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		ms, _ := m.Fetch(ctx, 10)
		cancel()
		first := map[int]int64{}
		for _, msg := range ms {
			if _, ok := first[msg.Partition]; !ok {
				first[msg.Partition] = msg.Offset
			}
		}
		for p, o := range first {
			if o != committed[p] {
				t.Fatalf("round %d: partition %d resumed at %d, committed %d", round, p, o, committed[p])
			}
		}
		m.Leave()
		b.Close()
	}
}

const churnChildEnv = "FERRY_ENGINE_CHURN_CHILD_DIR"

// TestTopicChurnCrashChild creates and deletes topics without end.
func TestTopicChurnCrashChild(t *testing.T) {
	dir := os.Getenv(churnChildEnv)
	if dir == "" {
		t.Skip("run by TestTopicChurnCrash")
	}
	b, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		name := fmt.Sprintf("c%d-%d", time.Now().UnixNano(), i)
		if _, err := b.CreateTopic(context.Background(), name, TopicConfig{Partitions: 3}); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		if _, err := b.Publish(context.Background(), name, Message{Value: []byte("v")}); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		if i%2 == 0 {
			if err := b.DeleteTopic(context.Background(), name); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(3)
			}
		}
	}
}

// TestTopicChurnCrash kills a child that creates and deletes topics at random
// moments: after each restart every folder is explained (a catalogued topic,
// or one a create or delete left behind, which Open removes), so none is
// reported stray, and the folders are exactly the catalogued topics'.
func TestTopicChurnCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for round := 0; round < 8; round++ {
		runChild(t, churnChildEnv, "^TestTopicChurnCrashChild$", dir, time.Duration(10+rng.IntN(150))*time.Millisecond)
		b, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if s := b.StrayTopicFolders(); len(s) != 0 {
			t.Fatalf("round %d: stray folders %v", round, s)
		}
		if keys := dropKeys(b); len(keys) != 0 {
			t.Fatalf("round %d: drop keys left after open: %v", round, keys)
		}
		list, err := b.ListTopics()
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "topics"))
		if len(entries) != len(list) {
			t.Fatalf("round %d: %d topic folders, %d topics", round, len(entries), len(list))
		}
		t.Logf("round %d: %d topics", round, len(list))
		b.Close()
	}
}
