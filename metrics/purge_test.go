package metrics_test

import (
	"testing"

	"github.com/ferrymq/ferry/engine"
)

// A purge adds the backlog it dropped to the subscription's purged
// counter, which exists at 0 before.
func TestPurgeMovesTheSeries(t *testing.T) {
	b, reg := open(t)
	if _, err := b.CreateTopic(bg, "jobs", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for name, kind := range map[string]engine.SubscriptionKind{"w": engine.KindQueue, "s": engine.KindStream} {
		if _, err := b.CreateSubscription(bg, "jobs", name, engine.SubscriptionConfig{Kind: kind}); err != nil {
			t.Fatal(err)
		}
	}
	w := []string{"topic", "jobs", "subscription", "w"}
	s := []string{"topic", "jobs", "subscription", "s"}
	for _, l := range [][]string{w, s} {
		if got, ok := find(t, reg, "ferry_subscription_purged_messages_total", l...); !ok || got != 0 {
			t.Errorf("purged%v before any purge: %v, %v; want 0", l, got, ok)
		}
	}
	for range 3 {
		if _, err := b.Publish(bg, "jobs", engine.Message{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"w", "w", "s"} {
		if _, err := b.PurgeSubscription(bg, "jobs", name); err != nil {
			t.Fatal(err)
		}
	}
	if got := value(t, reg, "ferry_subscription_purged_messages_total", w...); got != 3 {
		t.Errorf("purged of the queue: %v, want 3", got)
	}
	if got := value(t, reg, "ferry_subscription_purged_messages_total", s...); got != 3 {
		t.Errorf("purged of the stream: %v, want 3", got)
	}
	if got := value(t, reg, "ferry_subscription_backlog_messages", "topic", "jobs", "subscription", "w", "kind", "queue", "partition", "0"); got != 0 {
		t.Errorf("backlog after the purge: %v", got)
	}
}
