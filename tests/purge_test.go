package tests

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

// Purging a queue subscription with the Go client: the backlog is
// dropped, deliveries held by a consumer can no longer be acknowledged,
// and the consumer (at its max in flight before) receives what is
// published afterwards.
func TestPurgeGoClient(t *testing.T) {
	_, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "jobs", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", client.SubscriptionConfig{Kind: client.KindQueue, MaxInFlight: 2, KeyOrdering: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "jobs", "audit", client.SubscriptionConfig{Kind: client.KindStream}); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Message
	for i := range 20 {
		m := client.Message{Key: fmt.Appendf(nil, "k%d", i%3), Value: fmt.Appendf(nil, "old%d", i)}
		if i%5 == 4 {
			m.DeliverAt = time.Now().Add(time.Hour)
		}
		msgs = append(msgs, m)
	}
	if _, err := c.Publish(ctx, "jobs", msgs...); err != nil {
		t.Fatal(err)
	}
	q, err := c.ConsumeQueue(ctx, "jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var held []*client.Delivery
	for range 2 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, d)
	}
	waitBacklog(t, c, "workers", 20, 2)

	n, err := c.PurgeSubscription(ctx, "jobs", "workers")
	if err != nil || n != 20 {
		t.Fatalf("purge: %d, %v; want 20", n, err)
	}
	waitBacklog(t, c, "workers", 0, 0)
	for _, d := range held {
		if err := d.Ack(ctx); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("ack of %s after the purge: %v, want NotFound", d.Message.Value, err)
		}
	}

	// The consumer was at its max in flight (2): the purge freed it.
	if _, err := c.Publish(ctx, "jobs", client.Message{Key: []byte("k0"), Value: []byte("new0")}, client.Message{Key: []byte("k1"), Value: []byte("new1")}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v := string(d.Message.Value)
		if !strings.HasPrefix(v, "new") {
			t.Fatalf("%s delivered after the purge", v)
		}
		got[v] = true
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitBacklog(t, c, "workers", 0, 0)

	// The stream subscription was not touched; purging it skips its lag.
	if n, err := c.PurgeSubscription(ctx, "jobs", "audit"); err != nil || n != 22 {
		t.Fatalf("purge of the stream subscription: %d, %v; want 22", n, err)
	}
	waitBacklog(t, c, "audit", 0, 0)

	if _, err := c.PurgeSubscription(ctx, "jobs", "nope"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("purge of an unknown subscription: %v", err)
	}
	if _, err := c.PurgeSubscription(ctx, "nope", "workers"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("purge on an unknown topic: %v", err)
	}
}

// waitBacklog waits until sub of jobs shows backlog and inFlight over its
// partitions (in flight shows once the consumer's stream took them).
func waitBacklog(t *testing.T, c *client.Client, sub string, backlog, inFlight int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := c.DescribeSubscription(context.Background(), "jobs", sub)
		if err != nil {
			t.Fatal(err)
		}
		var b, f int64
		for _, p := range s.GetPartitions() {
			b += p.GetBacklog()
			f += int64(p.GetInFlight())
		}
		if b == backlog && f == inFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: backlog %d, in flight %d; want %d, %d", sub, b, f, backlog, inFlight)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Purging over plain HTTP with JSON, as curl does.
func TestHTTPJSONPurge(t *testing.T) {
	_, base := startServer(t)
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "jobs", "config": map[string]any{"partitions": 2}})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "jobs", "name": "workers", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE"}})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "jobs", "name": "audit", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_STREAM"}})
	var msgs []any
	for i := range 10 {
		msgs = append(msgs, map[string]any{"text": fmt.Sprintf("old%d", i)})
	}
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "jobs", "messages": msgs})
	out := mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{
		"topic": "jobs", "subscription": "workers", "maxMessages": 3, "wait": "5s"})
	ds, _ := out["deliveries"].([]any)
	if len(ds) == 0 {
		t.Fatalf("received %v", out)
	}

	out = mustCall(t, base, "ferry.v1.SubscriptionService/PurgeSubscription", map[string]any{"topic": "jobs", "name": "workers"})
	if out["purged"] != "10" { // int64: a string in protobuf JSON
		t.Fatalf("purge answered %v, want purged 10", out)
	}
	for _, p := range out["subscription"].(map[string]any)["partitions"].([]any) {
		p := p.(map[string]any)
		if p["backlog"] != "0" || p["inFlight"] != 0.0 || p["ackFloor"] != p["endOffset"] {
			t.Errorf("partition after the purge: %v", p)
		}
	}
	id := ds[0].(map[string]any)["id"].(string)
	status, e := call(t, base, "ferry.v1.ConsumeService/Ack", map[string]any{"topic": "jobs", "subscription": "workers", "deliveryIds": []any{id}})
	if status != http.StatusNotFound || e["code"] != "not_found" || !strings.Contains(e["message"].(string), id) {
		t.Errorf("ack of a purged delivery: %d %v", status, e)
	}
	out = mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{
		"topic": "jobs", "subscription": "workers", "maxMessages": 10, "wait": "0.2s"})
	if ds, _ := out["deliveries"].([]any); len(ds) != 0 {
		t.Fatalf("purged messages received: %v", ds)
	}
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "jobs", "messages": []any{map[string]any{"text": "new"}}})
	out = mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{
		"topic": "jobs", "subscription": "workers", "maxMessages": 10, "wait": "5s"})
	ds, _ = out["deliveries"].([]any)
	if len(ds) != 1 || unb64(t, ds[0].(map[string]any)["message"].(map[string]any)["value"]) != "new" {
		t.Fatalf("after the purge received %v, want new", ds)
	}

	// A stream subscription: its lag (11) skipped, committed at the end.
	out = mustCall(t, base, "ferry.v1.SubscriptionService/PurgeSubscription", map[string]any{"topic": "jobs", "name": "audit"})
	if out["purged"] != "11" {
		t.Fatalf("stream purge answered %v, want purged 11", out)
	}
	for _, p := range out["subscription"].(map[string]any)["partitions"].([]any) {
		p := p.(map[string]any)
		if p["backlog"] != "0" || p["committed"] != p["endOffset"] {
			t.Errorf("stream partition after the purge: %v", p)
		}
	}

	for _, req := range []map[string]any{{"topic": "jobs", "name": "nope"}, {"topic": "nope", "name": "workers"}, {"topic": "jobs"}} {
		if status, e := call(t, base, "ferry.v1.SubscriptionService/PurgeSubscription", req); status != http.StatusNotFound || e["code"] != "not_found" {
			t.Errorf("purge %v: %d %v", req, status, e)
		}
	}
}
