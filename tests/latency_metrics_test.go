package tests

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
)

// TestLatencyAndDeliveryMetrics publishes through the Go client and
// consumes every message through a queue, a stream and an ephemeral
// subscription, and checks over HTTP that the latency histograms and the
// delivery counters moved by what was done: one publish latency per call,
// an fsync at least per call (fsync always, one call at a time), one
// end-to-end latency per message delivered on each kind, and the stream's
// and ephemeral subscriber's bytes as many as were stored.
func TestLatencyAndDeliveryMetrics(t *testing.T) {
	_, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.New(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "ev", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "ev", "work", client.SubscriptionConfig{Kind: client.KindQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "ev", "audit", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest}); err != nil {
		t.Fatal(err)
	}
	eph, err := c.ConsumeEphemeral(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	defer eph.Close()
	before := scrape(t, base)

	const calls, per = 5, 4
	for i := range calls {
		msgs := make([]client.Message, per)
		for j := range msgs {
			msgs[j] = client.Message{Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("message %d.%d", i, j))}
		}
		if _, err := c.Publish(ctx, "ev", msgs...); err != nil {
			t.Fatal(err)
		}
	}
	const total = calls * per

	// Every message, through each kind.
	var got []string
	for range total {
		m, err := eph.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Value))
	}
	sc, err := c.ConsumeStream(ctx, "ev", "audit")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for range total {
		m, err := sc.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Value))
	}
	q, err := c.ConsumeQueue(ctx, "ev", "work")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for range total {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d.Message.Value))
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Sort(got); len(slices.Compact(got)) != total {
		t.Fatalf("consumed %d distinct messages, want %d", len(slices.Compact(got)), total)
	}

	ev := `{topic="ev"}`
	kind := func(k string) string { return fmt.Sprintf(`{kind=%q,topic="ev"}`, k) }
	sub := func(s string) string { return fmt.Sprintf(`{subscription=%q,topic="ev"}`, s) }
	exact := map[string]float64{
		`ferry_publish_duration_seconds_count` + ev:                  calls,
		`ferry_end_to_end_latency_seconds_count` + kind("queue"):     total,
		`ferry_end_to_end_latency_seconds_count` + kind("stream"):    total,
		`ferry_end_to_end_latency_seconds_count` + kind("ephemeral"): total,
		`ferry_subscription_deliveries_total` + sub("work"):          total,
		`ferry_subscription_deliveries_total` + sub("audit"):         total,
		`ferry_ephemeral_deliveries_total` + ev:                      total,
		`ferry_subscription_redeliveries_total` + sub("work"):        0,
	}
	var after map[string]float64
	var diffs []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after = scrape(t, base)
		diffs = diffs[:0]
		for s, want := range exact {
			if _, ok := after[s]; !ok {
				diffs = append(diffs, s+" missing")
			} else if moved := after[s] - before[s]; moved != want {
				diffs = append(diffs, fmt.Sprintf("%s moved by %v, want %v", s, moved, want))
			}
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	moved := func(s string) float64 { return after[s] - before[s] }

	// Each publish waited for its own fsync.
	if n := moved(`ferry_fsync_duration_seconds_count{}`); n < calls {
		t.Errorf("%v fsyncs for %d publishes under fsync always", n, calls)
	}
	if s := moved(`ferry_fsync_duration_seconds_sum{}`); s <= 0 {
		t.Errorf("fsync durations sum to %v", s)
	}
	if s := moved(`ferry_publish_duration_seconds_sum` + ev); s <= 0 {
		t.Errorf("publish durations sum to %v", s)
	}
	// The messages were delivered within the test's minute of being
	// published, and no age is negative.
	for _, k := range []string{"queue", "stream", "ephemeral"} {
		if s := moved(`ferry_end_to_end_latency_seconds_sum` + kind(k)); s < 0 || s > total*60 {
			t.Errorf("end-to-end latencies of %s sum to %v s for %d messages", k, s, total)
		}
	}
	// The stream and the ephemeral subscriber took what was stored, less
	// at most a byte a take for a take ending inside a batch.
	stored := moved(`ferry_published_bytes_total{partition="0",topic="ev"}`) + moved(`ferry_published_bytes_total{partition="1",topic="ev"}`)
	for _, s := range []string{`ferry_subscription_delivered_bytes_total` + sub("audit"), `ferry_ephemeral_delivered_bytes_total` + ev} {
		if b := moved(s); b > stored || b < stored-total {
			t.Errorf("%s moved by %v, want the %v bytes stored", s, b, stored)
		}
	}
}
