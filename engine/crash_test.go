package engine

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
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
		for _, line := range runQueueChild(t, dir, time.Duration(5+rng.IntN(60))*time.Millisecond) {
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

func runQueueChild(t *testing.T, dir string, d time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestQueueCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acks []string
	take := func(line string) {
		if strings.HasPrefix(line, "error") {
			t.Errorf("child: %s", line)
		}
		if strings.HasPrefix(line, "ack ") {
			acks = append(acks, line)
		}
	}
	select {
	case line, ok := <-lines:
		if ok {
			take(line)
		}
	case <-ctx.Done():
	}
	time.Sleep(d)
	cmd.Process.Signal(syscall.SIGKILL)
	for line := range lines {
		take(line)
	}
	cmd.Wait()
	return acks
}
