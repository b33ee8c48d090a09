package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConsumeQueue(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "jobs", "--partitions", "2")
	b.ok(t, "sub", "create", "jobs", "workers", "--kind", "queue")
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("job %d", i))
	}
	b.publish(t, "jobs", nil, want[:5]...)
	b.publish(t, "jobs", nil, want[5:]...)

	// --no-ack takes 3 and leaves them: they are delivered again.
	r := b.ok(t, "consume", "jobs", "workers", "--no-ack", "--count", "3", "--timeout", "20s")
	if len(lines(r.stdout)) != 3 {
		t.Fatalf("%v", r)
	}
	if bl, _ := backlog(b.describeSub(t, "jobs", "workers")); bl != 10 {
		t.Errorf("backlog after --no-ack is %d, want 10", bl)
	}

	r = b.ok(t, "consume", "jobs", "workers", "--count", "10", "--timeout", "20s", "-o", "json")
	ms := jsonLines(t, r)
	var got []string
	redelivered := 0
	for _, m := range ms {
		got = append(got, *m.Value)
		if m.Topic != "jobs" || m.DeliveryCount < 1 || m.Timestamp == "" {
			t.Errorf("message %+v", m)
		}
		if m.DeliveryCount > 1 {
			redelivered++
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("consumed %q, want %q", got, want)
	}
	if redelivered != 3 {
		t.Errorf("%d messages delivered more than once, want the 3 left unacknowledged", redelivered)
	}
	// Printed means acknowledged.
	if bl, inFlight := backlog(b.describeSub(t, "jobs", "workers")); bl != 0 || inFlight != 0 {
		t.Errorf("after consume: backlog %d, in flight %d; want 0, 0", bl, inFlight)
	}
	r = b.ok(t, "sub", "describe", "jobs", "workers", "-o", "json")
	var v subscriptionView
	decode(t, r, &v)
	for _, p := range v.Partitions {
		if p.Backlog != 0 || p.AckFloor != p.EndOffset {
			t.Errorf("partition after consume: %+v", p)
		}
	}

	// Nothing left: --timeout ends it, exit 0, nothing printed.
	if r := b.ok(t, "consume", "jobs", "workers", "--timeout", "200ms"); r.stdout != "" {
		t.Errorf("%v", r)
	}
}

func TestConsumeStream(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders", "--partitions", "3")
	b.ok(t, "sub", "create", "orders", "analytics", "--kind", "stream", "--start", "earliest")
	for i := range 6 {
		b.publish(t, "orders", nil, fmt.Sprintf("order %d", i))
	}
	r := b.ok(t, "consume", "orders", "analytics", "--count", "4", "--timeout", "20s", "-o", "json")
	first := jsonLines(t, r)
	r = b.ok(t, "consume", "orders", "analytics", "--count", "2", "--timeout", "20s")
	var got []string
	for _, m := range first {
		got = append(got, *m.Value)
	}
	got = append(got, lines(r.stdout)...)
	slices.Sort(got)
	if want := []string{"order 0", "order 1", "order 2", "order 3", "order 4", "order 5"}; !slices.Equal(got, want) {
		t.Errorf("consumed %q in two runs, want each of %q once", got, want)
	}
	s := b.describeSub(t, "orders", "analytics")
	for _, p := range s.GetPartitions() {
		if p.GetCommitted() != p.GetEndOffset() || p.GetBacklog() != 0 {
			t.Errorf("partition after consume: %v", p)
		}
	}

	// Rewind and take them again without committing.
	b.ok(t, "sub", "seek", "orders", "analytics", "--to", "earliest")
	r = b.ok(t, "consume", "orders", "analytics", "--no-ack", "--count", "6", "--timeout", "20s")
	if len(lines(r.stdout)) != 6 {
		t.Errorf("after seek: %v", r)
	}
	if bl, _ := backlog(b.describeSub(t, "orders", "analytics")); bl != 6 {
		t.Errorf("lag after --no-ack is %d, want 6", bl)
	}
}

func TestConsumeErrors(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"consume", "orders", "nope", "--timeout", "1s"}, exitNotFound, "(not_found)"},
		{[]string{"consume", "nope", "nope", "--timeout", "1s"}, exitNotFound, "(not_found)"},
		{[]string{"consume", "orders"}, exitUsage, "accepts 2 arg(s)"},
		{[]string{"consume", "orders", "s", "--count", "-1"}, exitUsage, "--count"},
		{[]string{"consume", "orders", "s", "-o", "xml"}, exitUsage, `bad --output "xml"`},
		{[]string{"tail"}, exitUsage, "accepts 1 arg(s)"},
		{[]string{"tail", "orders", "--prefetch", "0"}, exitUsage, "--prefetch"},
	} {
		r := b.run(t, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v\nwant exit %d and %q", r, tt.code, tt.want)
		}
	}
}

// TestTailWildcard tails room.* while messages are published to rooms and
// to a topic the pattern does not match.
func TestTailWildcard(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, name := range []string{"room.1", "room.2", "room.1.typing", "lobby"} {
		b.ok(t, "topic", "create", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	args := []string{"tail", "room.*", "--count", "4", "--timeout", "20s", "-o", "json"}
	c := b.cmd(t, ctx, "", args...)
	done := make(chan result, 1)
	go func() { done <- wait(c, args) }()

	// The subscription starts when the command has connected: publish
	// until it has seen its four messages.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var r result
	for n := 0; ; n++ {
		select {
		case r = <-done:
		case <-tick.C:
			b.publish(t, "lobby", nil, "not for rooms")
			b.publish(t, "room.1.typing", nil, "too deep")
			b.publish(t, []string{"room.1", "room.2"}[n%2], nil, fmt.Sprintf("hello %d", n))
			continue
		case <-ctx.Done():
			t.Fatal("tail did not end")
		}
		break
	}
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	ms := jsonLines(t, r)
	if len(ms) != 4 {
		t.Fatalf("tail printed %d messages, want 4: %v", len(ms), r)
	}
	rooms := map[string]bool{}
	for _, m := range ms {
		if (m.Topic != "room.1" && m.Topic != "room.2") || !strings.HasPrefix(*m.Value, "hello ") {
			t.Errorf("tail room.* printed %+v", m)
		}
		rooms[m.Topic] = true
	}
	if len(rooms) != 2 {
		t.Errorf("tail saw only %v", rooms)
	}

	// Nothing published: --timeout ends it quietly.
	if r := b.ok(t, "tail", "room.>", "--timeout", "200ms"); r.stdout != "" {
		t.Errorf("%v", r)
	}
}
