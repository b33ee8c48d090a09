package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
)

// TestReconnect stops the broker under a working client and starts a new
// one on the same data folder and address: the async publisher, a queue
// consumer, a stream member and an ephemeral subscriber carry on.
func TestReconnect(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	s1 := startServer(t, dir, "127.0.0.1:0")
	addr := s1.Addr()
	c := newClient(t, s1, client.WithAutoMessageID(true), client.WithPublishLinger(time.Millisecond))
	ctx := testCtx(t)
	createTopic(t, c, "jobs", 2)
	createTopic(t, c, "live", 1)
	createSub(t, c, "jobs", "workers", client.SubscriptionConfig{Kind: client.KindQueue, StartAt: client.StartEarliest})
	createSub(t, c, "jobs", "group", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest})

	var qmu sync.Mutex
	queued := map[string]int{}
	queueDone := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		queueDone <- c.SubscribeQueue(runCtx, "jobs", "workers", func(ctx context.Context, d *client.Delivery) error {
			qmu.Lock()
			queued[string(d.Message.Value)]++
			qmu.Unlock()
			return nil
		}, client.WithConcurrency(2))
	}()
	queuedCount := func() int {
		qmu.Lock()
		defer qmu.Unlock()
		return len(queued)
	}
	g := join(t, c, "jobs", "group", client.WithAutoCommit(10*time.Millisecond))
	streamed := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		seen := map[string]bool{}
		for p, offs := range g.got {
			for _, o := range offs {
				seen[fmt.Sprint(p, "/", o)] = true
			}
		}
		return len(seen)
	}
	live, err := c.ConsumeEphemeral(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}

	var futures []*client.Future
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			futures = append(futures, c.PublishAsync(ctx, "jobs", client.Message{Value: fmt.Appendf(nil, "%d", i)}))
		}
	}
	publish(0, 100)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first 100 consumed", func() bool { return queuedCount() == 100 && streamed() == 100 })
	if _, err := c.Publish(ctx, "live", client.Message{Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if m, err := live.Next(ctx); err != nil || string(m.Value) != "before" {
		t.Fatalf("live before restart: %v %v", m, err)
	}

	// Publish while the broker shuts down and while none runs: batches in
	// flight when the stream breaks are sent again.
	publishing := make(chan []*client.Future)
	go func() {
		var fs []*client.Future
		for i := 100; i < 150; i++ {
			fs = append(fs, c.PublishAsync(ctx, "jobs", client.Message{Value: fmt.Appendf(nil, "%d", i)}))
		}
		publishing <- fs
	}()
	shutdown(t, s1)
	futures = append(futures, <-publishing...)
	s2 := startServer(t, dir, addr)
	publish(150, 200)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range futures {
		if _, err := f.Result(); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, "all 200 consumed by the queue and the group", func() bool { return queuedCount() == 200 && streamed() == 200 })

	// Resent batches were deduplicated by their ids: stored once.
	topic, err := c.DescribeTopic(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, p := range topic.GetPartitions() {
		stored += p.GetEndOffset()
	}
	if stored != 200 {
		t.Fatalf("stored %d messages, want 200", stored)
	}

	// The ephemeral subscriber is back (from "now": publish until it sees one).
	got := make(chan string, 1)
	go func() {
		m, err := live.Next(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(m.Value)
	}()
	var v string
	waitFor(t, "the ephemeral subscriber", func() bool {
		if _, err := c.Publish(ctx, "live", client.Message{Value: []byte("after")}); err != nil {
			t.Fatal(err)
		}
		select {
		case v = <-got:
			return true
		default:
			return false
		}
	})
	if v != "after" {
		t.Fatalf("live after restart: %s", v)
	}

	stop()
	if err := <-queueDone; err != nil {
		t.Fatal(err)
	}
	g.close(t)
	live.Close()
	_ = s2
}
