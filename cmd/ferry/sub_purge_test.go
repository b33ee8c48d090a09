package main

import (
	"strings"
	"testing"
)

func TestSubscriptionPurge(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders", "--partitions", "2")
	b.ok(t, "sub", "create", "orders", "billing", "--kind", "queue")
	b.ok(t, "sub", "create", "orders", "analytics", "--kind", "stream")
	b.publish(t, "orders", nil, "a", "b", "c", "d", "e")
	backlog := func(name string) int64 {
		var n int64
		for _, p := range b.describeSub(t, "orders", name).GetPartitions() {
			n += p.GetBacklog()
		}
		return n
	}

	// Standard input is no terminal here: no question.
	r := b.ok(t, "sub", "purge", "orders", "billing")
	if r.stdout != "purged 5 messages of subscription \"billing\" of topic \"orders\"\n" || r.stderr != "" {
		t.Errorf("%v", r)
	}
	if n := backlog("billing"); n != 0 {
		t.Errorf("backlog after purge: %d", n)
	}
	b.publish(t, "orders", nil, "f")
	var v purgeView
	decode(t, b.ok(t, "sub", "purge", "orders", "analytics", "-o", "json"), &v)
	if v.Purged != 6 || v.Subscription.Kind != "stream" || len(v.Subscription.Partitions) != 2 {
		t.Errorf("purge -o json: %+v", v)
	}
	for _, p := range v.Subscription.Partitions {
		if p.Committed != p.EndOffset || p.Backlog != 0 {
			t.Errorf("stream partition after purge: %+v", p)
		}
	}
	decode(t, b.ok(t, "sub", "purge", "orders", "billing", "-y", "-o", "json"), &v)
	if v.Purged != 1 || v.Subscription.Kind != "queue" {
		t.Errorf("second purge -o json: %+v", v)
	}

	for _, args := range [][]string{{"sub", "purge", "orders", "nope"}, {"sub", "purge", "nope", "billing"}} {
		if r := b.run(t, "", args...); r.code != exitNotFound || !strings.Contains(r.stderr, "not_found") {
			t.Errorf("%v", r)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sub", "purge", "orders"}, "accepts 2 arg(s)"},
		{[]string{"sub", "purge", "orders", "billing", "-o", "yaml"}, `bad --output "yaml"`},
	} {
		if r := b.run(t, "", tt.args...); r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v\nwant exit 2 and %q", r, tt.want)
		}
	}
}
