package main

import (
	"strings"
	"testing"
	"time"
)

func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders", "--partitions", "2")

	var queue subscriptionView
	decode(t, b.ok(t, "sub", "create", "orders", "billing", "--kind", "queue", "--start", "earliest",
		"--ack-deadline", "1m", "--max-deliveries", "5", "--key-ordering", "-o", "json"), &queue)
	if queue.Kind != "queue" || queue.Config.AckDeadline != "1m0s" || queue.Config.MaxDeliveries != 5 ||
		!queue.Config.KeyOrdering || queue.Config.StartAt != "earliest" || len(queue.Partitions) != 2 {
		t.Errorf("sub create queue: %+v", queue)
	}
	r := b.ok(t, "sub", "create", "orders", "analytics", "--kind", "stream", "--start", "earliest")
	if r.stdout != "created stream subscription \"analytics\" on topic \"orders\"\n" {
		t.Errorf("%v", r)
	}

	b.publish(t, "orders", nil, "a", "b", "c")
	b.publish(t, "orders", nil, "d", "e")
	r = b.ok(t, "sub", "list", "orders")
	if got := lines(r.stdout); len(got) != 3 || !strings.HasPrefix(got[1], "analytics  stream") || !strings.HasPrefix(got[2], "billing    queue") ||
		!strings.Contains(got[1], " 5 ") || !strings.Contains(got[2], " 5 ") {
		t.Errorf("sub list:\n%s", r.stdout)
	}
	var list []subscriptionView
	decode(t, b.ok(t, "sub", "list", "orders", "-o", "json"), &list)
	if len(list) != 2 || list[0].Name != "analytics" || list[1].Name != "billing" {
		t.Errorf("sub list -o json: %+v", list)
	}

	r = b.ok(t, "sub", "describe", "orders", "billing")
	for _, want := range []string{"Kind:               queue", "Ack deadline:       1m", "Max deliveries:     5",
		"Dead-letter topic:  orders.billing.dlq", "Key ordering:       yes", "PARTITION  END  ACK FLOOR  BACKLOG  IN FLIGHT"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe queue does not show %q:\n%s", want, r.stdout)
		}
	}
	r = b.ok(t, "sub", "describe", "orders", "analytics")
	if !strings.Contains(r.stdout, "PARTITION  END  COMMITTED  LAG  OWNER") {
		t.Errorf("describe stream:\n%s", r.stdout)
	}

	seek := func(args ...string) subscriptionView {
		t.Helper()
		var v subscriptionView
		decode(t, b.ok(t, append([]string{"sub", "seek", "orders", "analytics", "-o", "json"}, args...)...), &v)
		return v
	}
	for _, p := range seek("--to", "latest").Partitions {
		if p.Committed != p.EndOffset || p.Backlog != 0 {
			t.Errorf("after seek to latest: %+v", p)
		}
	}
	v := seek("--to", "1", "--partition", "1")
	if p := v.Partitions[1]; p.Committed != 1 || p.Backlog != p.EndOffset-1 {
		t.Errorf("after seek of partition 1 to 1: %+v", p)
	}
	if p := v.Partitions[0]; p.Committed != p.EndOffset {
		t.Errorf("seek of partition 1 moved partition 0: %+v", p)
	}
	for _, p := range seek("--to", "earliest").Partitions {
		if p.Committed != 0 || p.Backlog != p.EndOffset {
			t.Errorf("after seek to earliest: %+v", p)
		}
	}
	// A time after every message stored: the end.
	for _, p := range seek("--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)).Partitions {
		if p.Committed != p.EndOffset {
			t.Errorf("after seek to a time past the end: %+v", p)
		}
	}
	for _, p := range seek("--to", "-1h").Partitions {
		if p.Committed != 0 {
			t.Errorf("after seek to an hour ago: %+v", p)
		}
	}

	if r := b.ok(t, "sub", "delete", "orders", "billing"); r.stdout != "deleted subscription \"billing\" of topic \"orders\"\n" {
		t.Errorf("%v", r)
	}
	for _, args := range [][]string{
		{"sub", "describe", "orders", "billing"},
		{"sub", "delete", "orders", "billing"},
		{"sub", "list", "nope"},
		{"sub", "create", "nope", "s", "--kind", "queue"},
	} {
		if r := b.run(t, "", args...); r.code != exitNotFound || !strings.Contains(r.stderr, "not_found") {
			t.Errorf("%v", r)
		}
	}
	if r := b.run(t, "", "sub", "create", "orders", "analytics", "--kind", "stream"); r.code != exitFailure || !strings.Contains(r.stderr, "already_exists") {
		t.Errorf("creating a subscription twice: %v", r)
	}
}

func TestSubscriptionUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sub", "create", "t", "s"}, "--kind is required"},
		{[]string{"sub", "create", "t", "s", "--kind", "fifo"}, `bad --kind "fifo"`},
		{[]string{"sub", "create", "t", "s", "--kind", "stream", "--ack-deadline", "1m"}, "queue subscriptions only"},
		{[]string{"sub", "create", "t", "s", "--kind", "queue", "--start", "middle"}, `bad --start "middle"`},
		{[]string{"sub", "seek", "t", "s"}, "--to is required"},
		{[]string{"sub", "seek", "t", "s", "--to", "yesterday"}, `bad position "yesterday"`},
		{[]string{"sub", "describe", "t"}, "accepts 2 arg(s)"},
	} {
		r := (*testBroker)(nil).run(t, "", tt.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v\nwant exit 2 and %q", r, tt.want)
		}
	}
}
