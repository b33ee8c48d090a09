package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "log")
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ts := []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute), t0.Add(3 * time.Minute)}
	b.publish(t, "log", ts, "a", "b", "c", "d")

	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"read", "log"}, []string{"a", "b", "c", "d"}},
		{[]string{"read", "log", "--from", "earliest", "--count", "2"}, []string{"a", "b"}},
		{[]string{"read", "log", "-p", "0", "--from", "2"}, []string{"c", "d"}},
		{[]string{"read", "log", "--from", "latest"}, nil},
		// By time: the first message at or after it.
		{[]string{"read", "log", "--from", "2026-05-01T12:01:00Z"}, []string{"b", "c", "d"}},
		{[]string{"read", "log", "--from", "2026-05-01T12:01:30Z"}, []string{"c", "d"}},
		{[]string{"read", "log", "--from", "2026-05-01T14:01:30+02:00", "--count", "1"}, []string{"c"}},
		// --follow with enough stored ends at --count.
		{[]string{"read", "log", "--follow", "--count", "3", "--timeout", "20s"}, []string{"a", "b", "c"}},
		// --follow past the end ends at --timeout.
		{[]string{"read", "log", "--from", "3", "--follow", "--timeout", "200ms"}, []string{"d"}},
	} {
		r := b.ok(t, tt.args...)
		if got := lines(r.stdout); !slices.Equal(got, tt.want) {
			t.Errorf("%v\nwant %q", r, tt.want)
		}
	}

	ms := jsonLines(t, b.ok(t, "read", "log", "-o", "json", "--count", "1"))
	if len(ms) != 1 || ms[0].Topic != "log" || ms[0].Offset != 0 || ms[0].Timestamp != "2026-05-01T12:00:00.000Z" || *ms[0].Value != "a" || ms[0].DeliveryCount != 0 {
		t.Errorf("read -o json: %+v", ms)
	}
}

func TestReadPartitions(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders", "--partitions", "3")
	b.ok(t, "pub", "orders", "-p", "0", "p0")
	b.ok(t, "pub", "orders", "-p", "2", "p2a", "p2b")
	// Without --partition every partition, in partition order.
	r := b.ok(t, "read", "orders")
	if got := lines(r.stdout); !slices.Equal(got, []string{"p0", "p2a", "p2b"}) {
		t.Errorf("%v", r)
	}
	// Following every partition at once.
	r = b.ok(t, "read", "orders", "--follow", "--count", "3", "--timeout", "20s")
	got := lines(r.stdout)
	slices.Sort(got)
	if !slices.Equal(got, []string{"p0", "p2a", "p2b"}) {
		t.Errorf("%v", r)
	}
	if r := b.ok(t, "read", "orders", "-p", "1"); r.stdout != "" {
		t.Errorf("%v", r)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"read", "nope"}, exitNotFound, "(not_found)"},
		{[]string{"read", "orders", "-p", "7"}, exitNotFound, "(not_found)"},
		{[]string{"read", "orders", "-p", "0", "--from", "5"}, exitFailure, "(out_of_range)"},
		{[]string{"read", "orders", "--from", "tomorrow"}, exitUsage, `bad position "tomorrow"`},
		{[]string{"read", "orders", "-p", "-1"}, exitUsage, "--partition"},
	} {
		r := b.run(t, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v\nwant exit %d and %q", r, tt.code, tt.want)
		}
	}
}
