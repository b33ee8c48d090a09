package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

func TestQueueTwoConsumers(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "tasks", 2)
	// One delivery in flight per consumer: the second message must go to
	// the other consumer.
	createSub(t, c, "tasks", "workers", client.SubscriptionConfig{Kind: client.KindQueue, MaxInFlight: 1})
	a, err := c.ConsumeQueue(ctx, "tasks", "workers")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.ConsumeQueue(ctx, "tasks", "workers")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "tasks", values(2, "t")...); err != nil {
		t.Fatal(err)
	}
	da, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(da.Message.Value) == string(db.Message.Value) || da.Count != 1 || db.Count != 1 {
		t.Fatalf("a got %s (#%d), b got %s (#%d)", da.Message.Value, da.Count, db.Message.Value, db.Count)
	}
	if time.Until(da.Deadline) <= 0 || time.Until(da.Deadline) > 31*time.Second {
		t.Fatalf("deadline %v", da.Deadline)
	}
	if d, err := da.Extend(ctx, time.Minute); err != nil || time.Until(d) < 50*time.Second {
		t.Fatalf("extend: %v %v", d, err)
	}

	// A nack comes back, counted.
	if err := da.Nack(ctx, 0); err != nil {
		t.Fatal(err)
	}
	again, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Message.Value) != string(da.Message.Value) || again.Count != 2 {
		t.Fatalf("after nack: %s #%d", again.Message.Value, again.Count)
	}
	if err := again.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Ack(ctx); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("second ack: %v, want NotFound", err)
	}
	// An ack naming one unknown delivery still acknowledges the others.
	if _, err := c.Publish(ctx, "tasks", values(1, "u")...); err != nil {
		t.Fatal(err)
	}
	fresh, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(ctx, again, fresh); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("ack of an acked and a fresh delivery: %v", err)
	}
	if err := fresh.Ack(ctx); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("the fresh delivery was not acknowledged: %v", err)
	}

	// What a consumer holds when it goes is delivered to the other one.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	moved, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(moved.Message.Value) != string(db.Message.Value) || moved.Count != 2 {
		t.Fatalf("after b left: %s #%d", moved.Message.Value, moved.Count)
	}
	if err := a.Ack(ctx, moved); err != nil {
		t.Fatal(err)
	}
	sub, err := c.DescribeSubscription(ctx, "tasks", "workers")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sub.GetPartitions() {
		if p.GetBacklog() != 0 || p.GetInFlight() != 0 {
			t.Fatalf("left over: %v", sub)
		}
	}

	// Deleting the subscription ends its consumers for good.
	if err := c.DeleteSubscription(ctx, "tasks", "workers"); err != nil {
		t.Fatal(err)
	}
	_, err = a.Next(ctx)
	if code := connect.CodeOf(err); code != connect.CodeFailedPrecondition && code != connect.CodeNotFound {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := c.ConsumeQueue(ctx, "tasks", "workers"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("consume a deleted subscription: %v", err)
	}
	a.Close()
}

func TestQueueCreditBoundsBuffer(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "jobs", 1)
	createSub(t, c, "jobs", "w", client.SubscriptionConfig{Kind: client.KindQueue})
	q, err := c.ConsumeQueue(ctx, "jobs", "w", client.WithSubscribeCredit(10))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := c.Publish(ctx, "jobs", values(100, "j")...); err != nil {
		t.Fatal(err)
	}
	inFlight := func() int32 {
		sub, err := c.DescribeSubscription(ctx, "jobs", "w")
		if err != nil {
			t.Fatal(err)
		}
		return sub.GetPartitions()[0].GetInFlight()
	}
	// The application takes nothing: the broker sends the credit, no more.
	waitFor(t, "10 deliveries in flight", func() bool { return inFlight() == 10 })
	seen := map[string]bool{}
	for range 100 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(d.Message.Value)] = true
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if n := inFlight(); n > 10 {
			t.Fatalf("%d in flight with a credit of 10", n)
		}
	}
	if len(seen) != 100 {
		t.Fatalf("%d distinct messages", len(seen))
	}
}

func TestSubscribeQueue(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "mail", 3)
	createSub(t, c, "mail", "senders", client.SubscriptionConfig{Kind: client.KindQueue, StartAt: client.StartEarliest})
	const n = 300
	if _, err := c.Publish(ctx, "mail", values(n, "m")...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	done := map[string]int{}
	var failures, running, maxRunning atomic.Int32
	runCtx, stop := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() {
		result <- c.SubscribeQueue(runCtx, "mail", "senders", func(ctx context.Context, d *client.Delivery) error {
			r := running.Add(1)
			defer running.Add(-1)
			for {
				m := maxRunning.Load()
				if r <= m || maxRunning.CompareAndSwap(m, r) {
					break
				}
			}
			var i int
			fmt.Sscanf(string(d.Message.Value), "m%d", &i)
			if i%10 == 0 && d.Count == 1 {
				failures.Add(1)
				return errors.New("try again")
			}
			if i%10 == 5 {
				// The handler may settle the delivery itself.
				if err := d.Ack(ctx); err != nil {
					return err
				}
			}
			mu.Lock()
			done[string(d.Message.Value)]++
			mu.Unlock()
			return nil
		}, client.WithConcurrency(4), client.WithSubscribeCredit(16))
	}()
	waitFor(t, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == n
	})
	waitFor(t, "an empty backlog", func() bool {
		sub, err := c.DescribeSubscription(ctx, "mail", "senders")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range sub.GetPartitions() {
			if p.GetBacklog() != 0 || p.GetInFlight() != 0 {
				return false
			}
		}
		return true
	})
	stop()
	if err := <-result; err != nil {
		t.Fatalf("SubscribeQueue: %v", err)
	}
	for v, k := range done {
		if k != 1 {
			t.Fatalf("%s handled %d times", v, k)
		}
	}
	if failures.Load() != n/10 {
		t.Fatalf("%d failures, want %d", failures.Load(), n/10)
	}
	if maxRunning.Load() < 2 {
		t.Logf("handlers never ran concurrently (max %d)", maxRunning.Load())
	}

	// An unknown subscription ends it at once.
	if err := c.SubscribeQueue(ctx, "mail", "nobody", func(context.Context, *client.Delivery) error { return nil }); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown subscription: %v", err)
	}
}

func TestQueueDeliveriesIterator(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "it", 1)
	createSub(t, c, "it", "s", client.SubscriptionConfig{Kind: client.KindQueue})
	q, err := c.ConsumeQueue(ctx, "it", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "it", values(5, "v")...); err != nil {
		t.Fatal(err)
	}
	var got []string
	for d, err := range q.Deliveries(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d.Message.Value))
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got) == 5 {
			break
		}
	}
	if fmt.Sprint(got) != "[v0 v1 v2 v3 v4]" {
		t.Fatalf("got %v", got)
	}
	// Client.Close ends the consumer.
	c.Close()
	if _, err := q.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Client.Close: %v", err)
	}
}

func TestQueueDelayAndDeadLetters(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "orders", 1)
	createSub(t, c, "orders", "ship", client.SubscriptionConfig{Kind: client.KindQueue, MaxDeliveries: 2})
	q, err := c.ConsumeQueue(ctx, "orders", "ship")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	at := time.Now().Add(150 * time.Millisecond).Truncate(time.Millisecond)
	if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("later"), DeliverAt: at}); err != nil {
		t.Fatal(err)
	}
	d, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(at) || !d.Message.DeliverAt.Equal(at) {
		t.Fatalf("delivered at %v, deliver_at %v, want %v", time.Now(), d.Message.DeliverAt, at)
	}
	// Two failed deliveries move it to the dead-letter topic.
	if err := d.Nack(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if d, err = q.Next(ctx); err != nil || d.Count != 2 {
		t.Fatalf("second delivery: %v %v", d, err)
	}
	if err := d.Nack(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var dead *client.ReadResult
	waitFor(t, "the dead letter", func() bool {
		dead, err = c.Read(ctx, "orders.ship.dlq", 0, client.Earliest(), client.ReadOptions{})
		return err == nil && len(dead.Messages) == 1
	})
	if m := dead.Messages[0]; string(m.Value) != "later" {
		t.Fatalf("dead letter %+v", m)
	} else if reason, _ := m.Header("ferry-dead-reason"); len(reason) == 0 {
		t.Fatalf("dead letter without a reason: %+v", m.Headers)
	}
}
