package main

import (
	"slices"
	"strings"
	"testing"
)

func TestTopicLifecycle(t *testing.T) {
	t.Parallel()
	b := startBroker(t)

	r := b.ok(t, "topic", "create", "orders", "--partitions", "3", "--retention-age", "7d", "--max-message-bytes", "2MiB")
	if r.stdout != "created topic \"orders\" with 3 partitions\n" {
		t.Errorf("%v", r)
	}
	var jobs topicView
	decode(t, b.ok(t, "topic", "create", "jobs", "--work", "--dedup-window", "10m", "-o", "json"), &jobs)
	if jobs.Name != "jobs" || len(jobs.Partitions) != 1 || !jobs.Config.Retention.Work || jobs.Config.DedupWindow != "10m0s" {
		t.Errorf("created jobs: %+v", jobs)
	}
	if r := b.run(t, "", "topic", "create", "orders"); r.code != exitFailure || !strings.Contains(r.stderr, "already_exists") {
		t.Errorf("creating a topic twice: %v", r)
	}

	r = b.ok(t, "topic", "list")
	if got := lines(r.stdout); len(got) != 3 || !strings.HasPrefix(got[0], "NAME") ||
		!strings.HasPrefix(got[1], "jobs ") || !strings.Contains(got[1], "work") ||
		!strings.HasPrefix(got[2], "orders ") || !strings.Contains(got[2], "age 7d") {
		t.Errorf("topic list:\n%s", r.stdout)
	}
	var list []topicView
	decode(t, b.ok(t, "topic", "list", "-o", "json"), &list)
	if len(list) != 2 || list[0].Name != "jobs" || list[1].Name != "orders" {
		t.Errorf("topic list -o json: %+v", list)
	}

	b.publish(t, "orders", nil, "a", "b")
	r = b.ok(t, "topic", "describe", "orders")
	for _, want := range []string{"Topic:         orders", "Partitions:    3", "Retention:     age 7d", "Max message:   2 MiB", "PARTITION  START  END  MESSAGES"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe does not show %q:\n%s", want, r.stdout)
		}
	}
	var orders topicView
	decode(t, b.ok(t, "topic", "describe", "orders", "-o", "json"), &orders)
	var stored int64
	for _, p := range orders.Partitions {
		stored += p.Messages
	}
	if len(orders.Partitions) != 3 || stored != 2 || orders.Config.Retention.MaxAge != "168h0m0s" || orders.Config.MaxMessageBytes != 2<<20 {
		t.Errorf("describe -o json: %+v", orders)
	}

	// Only the flags given change: the age stays when the size is set.
	var altered topicView
	decode(t, b.ok(t, "topic", "alter", "orders", "--retention-bytes", "1GiB", "--partitions", "4", "-o", "json"), &altered)
	if len(altered.Partitions) != 4 || altered.Config.Retention.MaxAge != "168h0m0s" || altered.Config.Retention.MaxBytes != 1<<30 {
		t.Errorf("alter: %+v", altered)
	}
	decode(t, b.ok(t, "topic", "alter", "orders", "--retention-age", "0", "-o", "json"), &altered)
	if altered.Config.Retention.MaxAge != "" || altered.Config.Retention.MaxBytes != 1<<30 {
		t.Errorf("alter --retention-age 0: %+v", altered.Config.Retention)
	}
	if r := b.run(t, "", "topic", "alter", "orders"); r.code != exitUsage || !strings.Contains(r.stderr, "nothing to change") {
		t.Errorf("alter with no setting: %v", r)
	}

	r = b.ok(t, "topic", "delete", "orders")
	if r.stdout != "deleted topic \"orders\"\n" {
		t.Errorf("%v", r)
	}
	r = b.run(t, "", "topic", "describe", "orders")
	if r.code != exitNotFound || r.stdout != "" || !strings.HasPrefix(r.stderr, "ferry: ") ||
		!strings.Contains(r.stderr, `"orders"`) || !strings.Contains(r.stderr, "(not_found)") {
		t.Errorf("describe a deleted topic: %v", r)
	}
	if r := b.run(t, "", "topic", "delete", "orders"); r.code != exitNotFound {
		t.Errorf("delete a deleted topic: %v", r)
	}
}

func TestTopicUsageErrors(t *testing.T) {
	t.Parallel()
	// Usage errors are found before any call: no broker is needed.
	for _, args := range [][]string{
		{"topic", "create"},
		{"topic", "create", "a", "b"},
		{"topic", "create", "a", "--partitions", "0"},
		{"topic", "create", "a", "--retention-age", "soon"},
		{"topic", "create", "a", "--retention-bytes", "lots"},
		{"topic", "create", "a", "--dedup-window", "-1m"},
		{"topic", "create", "a", "--no-such-flag"},
		{"topic", "list", "-o", "yaml"},
		{"topic", "describe"},
		{"topic", "bogus"},
		{"topic", "list", "--server", "ftp://host"},
	} {
		r := (*testBroker)(nil).run(t, "", args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--help") || r.stdout != "" {
			t.Errorf("%v", r)
		}
	}
}

func TestServerFlagBeatsEnv(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	// FERRY_SERVER names a port nothing listens on; --server wins.
	bad := &testBroker{url: "127.0.0.1:1"}
	r := bad.run(t, "", "topic", "list")
	if r.code != exitFailure || !strings.Contains(r.stderr, "cannot reach the broker at http://127.0.0.1:1") {
		t.Errorf("unreachable broker: %v", r)
	}
	host := strings.TrimPrefix(b.url, "http://")
	if r := bad.run(t, "", "topic", "create", "x", "--server", host); r.code != exitOK {
		t.Errorf("--server over FERRY_SERVER: %v", r)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders")
	b.ok(t, "topic", "create", "other")
	b.ok(t, "sub", "create", "orders", "billing", "--kind", "queue")
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "topic", "describe", "or"}, []string{"orders"}},
		{[]string{"__complete", "pub", ""}, []string{"orders", "other"}},
		{[]string{"__complete", "consume", "orders", ""}, []string{"billing"}},
		{[]string{"__complete", "sub", "create", "orders", "x", "--kind", ""}, []string{"queue", "stream"}},
	} {
		r := b.ok(t, tt.args...)
		got := lines(r.stdout)
		if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], ":") || !slices.Equal(got[:len(got)-1], tt.want) {
			t.Errorf("%v\nwant %q", r, tt.want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := b.ok(t, "completion", shell); len(r.stdout) < 100 {
			t.Errorf("%v", r)
		}
	}
}
