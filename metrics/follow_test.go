package metrics_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/metrics"
)

// TestCountersExistBeforeTheirFirstEvent: an alert on increase() needs a
// sample before the first event, so every partition's and subscription's
// counters are at 0 from the first scrape after they are created.
func TestCountersExistBeforeTheirFirstEvent(t *testing.T) {
	b, reg := open(t)
	if _, err := b.CreateTopic(bg, "jobs", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "jobs", "w", engine.SubscriptionConfig{Kind: engine.KindQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "jobs", "s", engine.SubscriptionConfig{Kind: engine.KindStream}); err != nil {
		t.Fatal(err)
	}
	w := []string{"topic", "jobs", "subscription", "w"}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"ferry_published_messages_total", []string{"topic", "jobs", "partition", "0"}},
		{"ferry_published_messages_total", []string{"topic", "jobs", "partition", "1"}},
		{"ferry_published_bytes_total", []string{"topic", "jobs", "partition", "1"}},
		{"ferry_subscription_deliveries_total", w},
		{"ferry_subscription_redeliveries_total", w},
		{"ferry_subscription_acks_total", w},
		{"ferry_subscription_nacks_total", w},
		{"ferry_subscription_dead_letters_total", w},
		{"ferry_subscription_rebalances_total", []string{"topic", "jobs", "subscription", "s"}},
	} {
		if got := value(t, reg, c.name, c.labels...); got != 0 {
			t.Errorf("%s%v = %v, want 0", c.name, c.labels, got)
		}
	}
	// Only the counters a kind has: a stream has no acks, a queue no rebalances.
	if _, ok := find(t, reg, "ferry_subscription_acks_total", "topic", "jobs", "subscription", "s"); ok {
		t.Error("a stream subscription has an acks series")
	}
	if _, ok := find(t, reg, "ferry_subscription_rebalances_total", w...); ok {
		t.Error("a queue subscription has a rebalances series")
	}
}

// TestSeriesOfDeletedTopicsAndSubscriptionsGo: Kafka clients create topics
// and groups at will; their series must not outlive them.
func TestSeriesOfDeletedTopicsAndSubscriptionsGo(t *testing.T) {
	b, reg := open(t)
	for _, name := range []string{"gone", "kept"} {
		if _, err := b.CreateTopic(bg, name, engine.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"a", "b"} {
			if _, err := b.CreateSubscription(bg, name, sub, engine.SubscriptionConfig{Kind: engine.KindQueue}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Publish(bg, name, engine.Message{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.JoinQueue("kept", "a")
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := m.Poll(1); err != nil || len(ds) != 1 {
		t.Fatalf("poll: %d, %v", len(ds), err)
	}
	value(t, reg, "ferry_subscription_deliveries_total", "topic", "kept", "subscription", "b") // scraped once
	must(t, b.DeleteTopic(bg, "gone"))
	must(t, b.DeleteSubscription(bg, "kept", "b"))

	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"ferry_published_messages_total", []string{"topic", "gone", "partition", "0"}},
		{"ferry_published_bytes_total", []string{"topic", "gone", "partition", "0"}},
		{"ferry_subscription_deliveries_total", []string{"topic", "gone", "subscription", "a"}},
		{"ferry_subscription_acks_total", []string{"topic", "kept", "subscription", "b"}},
	} {
		if v, ok := find(t, reg, c.name, c.labels...); ok {
			t.Errorf("%s%v = %v after deletion", c.name, c.labels, v)
		}
	}
	// The live ones keep their counts.
	if got := value(t, reg, "ferry_published_messages_total", "topic", "kept", "partition", "0"); got != 1 {
		t.Errorf("kept published = %v, want 1", got)
	}
	if got := value(t, reg, "ferry_subscription_deliveries_total", "topic", "kept", "subscription", "a"); got != 1 {
		t.Errorf("kept deliveries = %v, want 1", got)
	}
}

// failing is a Source whose listings fail.
type failing struct {
	topicsErr, subsErr error
	topics             []engine.TopicInfo
	subs               []engine.SubscriptionInfo
}

func (f failing) ListTopics() ([]engine.TopicInfo, error) { return f.topics, f.topicsErr }
func (f failing) ListSubscriptions(string) ([]engine.SubscriptionInfo, error) {
	return f.subs, f.subsErr
}

// TestUpSaysWhetherTheStateWasRead: when the broker cannot list its topics
// the gauges vanish; ferry_up says so, so alerts on it fire instead of
// backlog alerts quietly resolving. Hook series are kept meanwhile.
func TestUpSaysWhetherTheStateWasRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	hooks := metrics.NewHooks(reg)
	var logged bytes.Buffer
	src := &failing{
		topics: []engine.TopicInfo{{Name: "t"}},
		subs:   []engine.SubscriptionInfo{{Topic: "t", Name: "q", Config: engine.SubscriptionConfig{Kind: engine.KindQueue}}},
	}
	reg.MustRegister(metrics.NewCollector(src, "", slog.New(slog.NewTextHandler(&logged, nil))))
	hooks.Follow(src)
	hooks.OnAck("t", "q", 1)

	if got := value(t, reg, "ferry_up"); got != 1 {
		t.Errorf("ferry_up = %v while listing works", got)
	}
	src.subs, src.subsErr = nil, errors.New("disk on fire")
	value(t, reg, "ferry_up")
	if !strings.Contains(logged.String(), "disk on fire") {
		t.Errorf("a failed subscription listing is not logged: %q", logged.String())
	}
	src.topicsErr = engine.ErrClosed
	if got := value(t, reg, "ferry_up"); got != 0 {
		t.Errorf("ferry_up = %v when topics cannot be listed", got)
	}
	if got := value(t, reg, "ferry_subscription_acks_total", "topic", "t", "subscription", "q"); got != 1 {
		t.Errorf("acks = %v after failed listings, want kept at 1", got)
	}
}

// histogram is the sample count and sum of the histogram name{labels}.
func histogram(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (uint64, float64) {
	t.Helper()
	h := series(t, reg, name, labels...).GetHistogram()
	if h == nil {
		t.Fatalf("no histogram %s%v", name, labels)
	}
	return h.GetSampleCount(), h.GetSampleSum()
}

func TestPublishAndFsyncLatency(t *testing.T) {
	b, reg := open(t)
	if _, err := b.CreateTopic(bg, "sure", engine.TopicConfig{Fsync: "always", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if n, _ := histogram(t, reg, "ferry_publish_duration_seconds", "topic", "sure"); n != 0 {
		t.Errorf("%d publish latencies before any publish", n)
	}
	fsyncsBefore, _ := histogram(t, reg, "ferry_fsync_duration_seconds")
	for range 3 {
		if _, err := b.Publish(bg, "sure", engine.Message{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, sum := histogram(t, reg, "ferry_publish_duration_seconds", "topic", "sure"); n != 3 || sum <= 0 {
		t.Errorf("publish latency: %d samples summing to %v, want 3 and > 0", n, sum)
	}
	if n, _ := histogram(t, reg, "ferry_fsync_duration_seconds"); n < fsyncsBefore+3 {
		t.Errorf("%d fsyncs after 3 publishes under fsync always, had %d", n, fsyncsBefore)
	}
	if got := value(t, reg, "ferry_fsync_errors_total"); got != 0 {
		t.Errorf("fsync errors = %v", got)
	}
	must(t, b.DeleteTopic(bg, "sure"))
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "ferry_publish_duration_seconds" {
			for _, m := range mf.GetMetric() {
				t.Errorf("publish latency series %v left after its topic was deleted", m.GetLabel())
			}
		}
	}
}
