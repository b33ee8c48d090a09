package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

func TestEphemeralWildcard(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	for _, name := range []string{"orders.eu.created", "orders.us.created", "orders.eu.paid", "billing.created"} {
		createTopic(t, c, name, 1)
	}
	if _, err := c.Publish(ctx, "orders.eu.created", client.Message{Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	all, err := c.ConsumeEphemeral(ctx, "orders.>")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	created, err := c.ConsumeEphemeral(ctx, "orders.*.created")
	if err != nil {
		t.Fatal(err)
	}
	defer created.Close()
	for _, name := range []string{"orders.eu.created", "orders.us.created", "orders.eu.paid", "billing.created"} {
		if _, err := c.Publish(ctx, name, client.Message{Value: []byte(name)}); err != nil {
			t.Fatal(err)
		}
	}
	// A topic created later matches too.
	createTopic(t, c, "orders.asia.created", 1)
	if _, err := c.Publish(ctx, "orders.asia.created", client.Message{Value: []byte("orders.asia.created")}); err != nil {
		t.Fatal(err)
	}
	collect := func(e *client.EphemeralConsumer, n int) []string {
		var got []string
		for m, err := range e.Messages(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != string(m.Value) {
				t.Fatalf("message %q from topic %s", m.Value, m.Topic)
			}
			got = append(got, m.Topic)
			if len(got) == n {
				break
			}
		}
		slices.Sort(got)
		return got
	}
	if got := collect(all, 4); fmt.Sprint(got) != "[orders.asia.created orders.eu.created orders.eu.paid orders.us.created]" {
		t.Fatalf("orders.>: %v", got)
	}
	if got := collect(created, 3); fmt.Sprint(got) != "[orders.asia.created orders.eu.created orders.us.created]" {
		t.Fatalf("orders.*.created: %v", got)
	}
	// Nothing else arrives.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if m, err := created.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unexpected %v %v", m, err)
	}
}

func TestSubscribeEphemeral(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "room.1", 2)
	createTopic(t, c, "room.2", 1)
	var mu sync.Mutex
	got := map[string][]string{}
	runCtx, stop := context.WithCancel(ctx)
	result := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		result <- c.SubscribeEphemeral(runCtx, "room.*", func(ctx context.Context, m *client.Message) error {
			mu.Lock()
			k := fmt.Sprintf("%s/%d", m.Topic, m.Partition)
			got[k] = append(got[k], string(m.Value))
			mu.Unlock()
			return nil
		}, client.WithConcurrency(2))
	}()
	<-started
	// The subscription starts at "now": publish until it is attached.
	waitFor(t, "the subscriber to attach", func() bool {
		if _, err := c.PublishTo(ctx, "room.2", 0, client.Message{Value: []byte("ping")}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return len(got["room.2/0"]) > 0
	})
	for i := range 50 {
		for _, to := range []struct {
			topic string
			p     int32
		}{{"room.1", 0}, {"room.1", 1}, {"room.2", 0}} {
			if _, err := c.PublishTo(ctx, to.topic, to.p, client.Message{Value: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "150 messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["room.1/0"]) == 50 && len(got["room.1/1"]) == 50 && len(got["room.2/0"]) >= 50
	})
	stop()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	for k, vs := range got {
		if k == "room.2/0" {
			vs = slices.DeleteFunc(vs, func(v string) bool { return v == "ping" })
		}
		for i, v := range vs {
			if v != fmt.Sprint(i) {
				t.Fatalf("%s: %v out of order", k, vs)
			}
		}
	}

	if err := c.SubscribeEphemeral(ctx, "bad pattern!", func(context.Context, *client.Message) error { return nil }); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad pattern: %v", err)
	}
}

func TestRead(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "history", 2)
	start := time.Now()
	var msgs []client.Message
	for i := range 20 {
		msgs = append(msgs, client.Message{Value: fmt.Appendf(nil, "%d", i), Timestamp: start.Add(time.Duration(i) * time.Second)})
	}
	if _, err := c.PublishTo(ctx, "history", 1, msgs...); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read(ctx, "history", 1, client.Earliest(), client.ReadOptions{MaxMessages: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Messages) != 5 || r.NextOffset != 5 || r.HighWatermark != 20 || r.StartOffset != 0 || r.Messages[4].Offset != 4 {
		t.Fatalf("earliest: %+v", r)
	}
	r, err = c.Read(ctx, "history", 1, client.AtTime(start.Add(12*time.Second)), client.ReadOptions{MaxMessages: 1})
	if err != nil || len(r.Messages) != 1 || r.Messages[0].Offset != 12 {
		t.Fatalf("at time: %+v %v", r, err)
	}
	r, err = c.Read(ctx, "history", 1, client.Latest(), client.ReadOptions{Wait: 20 * time.Millisecond})
	if err != nil || len(r.Messages) != 0 || r.NextOffset != 20 {
		t.Fatalf("latest: %+v %v", r, err)
	}
	if _, err := c.Read(ctx, "history", 1, client.AtOffset(99), client.ReadOptions{}); connect.CodeOf(err) != connect.CodeOutOfRange {
		t.Fatalf("offset 99: %v", err)
	}
	if _, err := c.Read(ctx, "history", 5, client.Earliest(), client.ReadOptions{}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("partition 5: %v", err)
	}

	// A long poll returns when a message arrives (whether it starts before
	// or after the publish).
	polled := make(chan *client.ReadResult, 1)
	go func() {
		r, err := c.Read(ctx, "history", 0, client.AtOffset(0), client.ReadOptions{Wait: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		polled <- r
	}()
	if _, err := c.PublishTo(ctx, "history", 0, client.Message{Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	if r := <-polled; r == nil || len(r.Messages) != 1 || string(r.Messages[0].Value) != "late" {
		t.Fatalf("long poll: %+v", r)
	}

	// Replay walks to the end in several reads.
	var got []int64
	for m, err := range c.Replay(ctx, "history", 1, client.AtOffset(3), client.ReadOptions{MaxMessages: 4}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Offset)
	}
	if len(got) != 17 || got[0] != 3 || got[16] != 19 {
		t.Fatalf("replay: %v", got)
	}
	// Following with a wait ends with its context.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	for _, err := range c.Replay(fctx, "history", 1, client.Earliest(), client.ReadOptions{Wait: 10 * time.Millisecond}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 20 {
			cancel()
		}
	}
	if n != 20 {
		t.Fatalf("followed %d messages", n)
	}
}

func TestEphemeralSlowConsumerCutOff(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "firehose", 1)
	e, err := c.ConsumeEphemeral(ctx, "firehose", client.WithBuffer(10), client.WithSubscribeCredit(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := c.Publish(ctx, "firehose", values(100, "a")...); err != nil {
		t.Fatal(err)
	}
	// What arrived before the cut-off is handed out, then the error, for good.
	for range 2 {
		if _, err = e.Next(ctx); err != nil {
			break
		}
	}
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("slow consumer: %v", err)
	}
	if _, err := e.Next(ctx); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("after the cut-off: %v", err)
	}
}
