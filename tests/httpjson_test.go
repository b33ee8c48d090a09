package tests

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The three patterns over plain HTTP with JSON, the way a curl user drives
// Ferry.

func TestHTTPJSONQueue(t *testing.T) {
	_, base := startServer(t)
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "jobs", "config": map[string]any{"partitions": 2}})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "jobs", "name": "workers",
		"config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE", "ackDeadline": "30s", "maxDeliveries": 2},
	})
	out := mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{
		"topic": "jobs",
		"messages": []any{
			map[string]any{"text": "resize a.png"},
			map[string]any{"value": b64("resize b.png"), "key": b64("b"), "headers": []any{map[string]any{"key": "trace", "value": b64("t1")}}},
		},
	})
	if n := len(out["results"].([]any)); n != 2 {
		t.Fatalf("publish results: %v", out)
	}

	got := map[string]string{}
	var ids []any
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		out := mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{
			"topic": "jobs", "subscription": "workers", "maxMessages": 10, "wait": "1s",
		})
		ds, _ := out["deliveries"].([]any)
		for _, d := range ds {
			d := d.(map[string]any)
			msg := d["message"].(map[string]any)
			got[unb64(t, msg["value"])] = d["id"].(string)
			ids = append(ids, d["id"])
			if d["count"].(float64) != 1 {
				t.Errorf("first delivery with count %v", d["count"])
			}
		}
	}
	if len(got) != 2 || got["resize a.png"] == "" || got["resize b.png"] == "" {
		t.Fatalf("received %v", got)
	}
	mustCall(t, base, "ferry.v1.ConsumeService/Ack", map[string]any{"topic": "jobs", "subscription": "workers", "deliveryIds": ids})

	// Acknowledged twice: NotFound naming the delivery.
	status, e := call(t, base, "ferry.v1.ConsumeService/Ack", map[string]any{"topic": "jobs", "subscription": "workers", "deliveryIds": ids[:1]})
	if status != http.StatusNotFound || e["code"] != "not_found" || !strings.Contains(e["message"].(string), ids[0].(string)) {
		t.Errorf("second ack: %d %v", status, e)
	}

	sub := mustCall(t, base, "ferry.v1.SubscriptionService/DescribeSubscription", map[string]any{"topic": "jobs", "name": "workers"})
	for _, p := range sub["subscription"].(map[string]any)["partitions"].([]any) {
		if b, ok := p.(map[string]any)["backlog"]; ok && b != "0" {
			t.Errorf("backlog after acks: %v", p)
		}
	}
}

func TestHTTPJSONNackDeadLetter(t *testing.T) {
	_, base := startServer(t)
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "jobs"})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "jobs", "name": "w", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE", "maxDeliveries": 2},
	})
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "jobs", "messages": []any{map[string]any{"text": "poison"}}})
	for i := 1; i <= 2; i++ {
		out := mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{"topic": "jobs", "subscription": "w", "wait": "5s"})
		ds := out["deliveries"].([]any)
		if len(ds) != 1 || ds[0].(map[string]any)["count"].(float64) != float64(i) {
			t.Fatalf("delivery %d: %v", i, out)
		}
		mustCall(t, base, "ferry.v1.ConsumeService/Nack", map[string]any{"topic": "jobs", "subscription": "w", "deliveryIds": []any{ds[0].(map[string]any)["id"]}})
	}
	// The dead-letter topic holds it now.
	out := mustCall(t, base, "ferry.v1.ReadService/Read", map[string]any{"topic": "jobs.w.dlq", "earliest": true, "wait": "5s"})
	msgs, _ := out["messages"].([]any)
	if len(msgs) != 1 || unb64(t, msgs[0].(map[string]any)["value"]) != "poison" {
		t.Fatalf("dead letters: %v", out)
	}
}

func TestHTTPJSONPubSub(t *testing.T) {
	_, base := startServer(t)
	for _, room := range []string{"room.a", "room.b", "lobby"} {
		mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": room})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openStream(t, ctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "room.*", "credit": 100})
	first, err := st.next()
	if err != nil || first["consumerId"] == "" {
		t.Fatalf("first frame %v, %v", first, err)
	}
	for _, topic := range []string{"room.a", "lobby", "room.b"} {
		mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": topic, "messages": []any{map[string]any{"text": "hi " + topic}}})
	}
	got := map[string]bool{}
	for len(got) < 2 {
		m, err := st.next()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		for _, msg := range m["messages"].([]any) {
			got[unb64(t, msg.(map[string]any)["value"])] = true
		}
	}
	if !got["hi room.a"] || !got["hi room.b"] || len(got) != 2 {
		t.Fatalf("pattern room.* received %v", got)
	}
}

func TestHTTPJSONStreamReplay(t *testing.T) {
	_, base := startServer(t)
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "clicks", "config": map[string]any{"partitions": 1}})
	var msgs []any
	for i := range 50 {
		msgs = append(msgs, map[string]any{"text": fmt.Sprintf("click %d", i)})
	}
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "clicks", "messages": msgs})

	// Replay from the start, 20 at a time.
	var got []string
	next := any(0)
	for len(got) < 50 {
		out := mustCall(t, base, "ferry.v1.ReadService/Read", map[string]any{"topic": "clicks", "partition": 0, "offset": next, "maxMessages": 20})
		for _, m := range out["messages"].([]any) {
			got = append(got, unb64(t, m.(map[string]any)["value"]))
		}
		next = out["nextOffset"]
	}
	for i, v := range got {
		if v != fmt.Sprintf("click %d", i) {
			t.Fatalf("message %d is %q", i, v)
		}
	}

	// A consumer group member over the JSON stream gets its assignment
	// and the messages, and commits.
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "clicks", "name": "counter", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_STREAM", "startAt": "START_POSITION_EARLIEST"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openStream(t, ctx, base, "ferry.v1.ConsumeService/ConsumeStream", map[string]any{"topic": "clicks", "subscription": "counter", "credit": 1000})
	first, err := st.next()
	if err != nil {
		t.Fatal(err)
	}
	consumer := first["consumerId"]
	seen := 0
	assigned := false
	for seen < 50 {
		m, err := st.next()
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := m["assignment"].(map[string]any); ok {
			assigned = fmt.Sprint(a["partitions"]) == "[0]"
		}
		if ms, ok := m["messages"].([]any); ok {
			seen += len(ms)
		}
	}
	if !assigned {
		t.Error("no assignment of partition 0 before the messages")
	}
	mustCall(t, base, "ferry.v1.ConsumeService/Commit", map[string]any{"consumerId": consumer, "offsets": map[string]any{"0": 50}})
	sub := mustCall(t, base, "ferry.v1.SubscriptionService/DescribeSubscription", map[string]any{"topic": "clicks", "name": "counter"})
	p0 := sub["subscription"].(map[string]any)["partitions"].([]any)[0].(map[string]any)
	if p0["committed"] != "50" {
		t.Errorf("committed %v", p0)
	}
}

// A consume stream sends no more than its credit; grants and the grant
// field of Ack open it further.
func TestHTTPJSONCredit(t *testing.T) {
	_, base := startServer(t)
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "jobs"})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "jobs", "name": "w", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE"},
	})
	var msgs []any
	for i := range 20 {
		msgs = append(msgs, map[string]any{"text": fmt.Sprint(i)})
	}
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "jobs", "messages": msgs})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openStream(t, ctx, base, "ferry.v1.ConsumeService/ConsumeQueue", map[string]any{"topic": "jobs", "subscription": "w", "credit": 3})
	first, err := st.next()
	if err != nil {
		t.Fatal(err)
	}
	consumer := first["consumerId"]
	var ids []any
	readUntil := func(n int) {
		t.Helper()
		for len(ids) < n {
			m, err := st.next()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range m["deliveries"].([]any) {
				ids = append(ids, d.(map[string]any)["id"])
			}
		}
		if len(ids) != n {
			t.Fatalf("received %d deliveries, credit allowed %d", len(ids), n)
		}
	}
	readUntil(3)
	inFlight := func() (n float64) {
		sub := mustCall(t, base, "ferry.v1.SubscriptionService/DescribeSubscription", map[string]any{"topic": "jobs", "name": "w"})
		for _, p := range sub["subscription"].(map[string]any)["partitions"].([]any) {
			f, _ := p.(map[string]any)["inFlight"].(float64)
			n += f
		}
		return n
	}
	if n := inFlight(); n != 3 {
		t.Fatalf("in flight %v with credit 3", n)
	}
	out := mustCall(t, base, "ferry.v1.ConsumeService/Grant", map[string]any{"consumerId": consumer, "credit": 4})
	if out["credit"] != float64(4) {
		t.Errorf("credit after grant: %v", out)
	}
	readUntil(7)
	mustCall(t, base, "ferry.v1.ConsumeService/Ack", map[string]any{"consumerId": consumer, "deliveryIds": ids, "grant": 13})
	readUntil(20)
	if n := inFlight(); n != 13 {
		t.Fatalf("in flight %v after acking 7 of 20", n)
	}
	// A negative grant: a clear error.
	status, e := call(t, base, "ferry.v1.ConsumeService/Grant", map[string]any{"consumerId": "x", "credit": -1})
	if status != 400 || e["code"] != "invalid_argument" {
		t.Errorf("negative grant: %d %v", status, e)
	}
}
