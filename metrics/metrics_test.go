package metrics_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/metrics"
)

var bg = context.Background()

// open starts a broker with the metrics hooks and collector on a fresh
// registry.
func open(t *testing.T) (*engine.Broker, *prometheus.Registry) {
	t.Helper()
	b, reg, _ := openHooks(t)
	return b, reg
}

// openHooks is open, with the hooks the broker was given.
func openHooks(t *testing.T) (*engine.Broker, *prometheus.Registry, *metrics.Hooks) {
	t.Helper()
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	hooks := metrics.NewHooks(reg)
	b, err := engine.Open(engine.Options{Dir: dir, DefaultFsync: "never", Hooks: []engine.Hook{hooks}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	hooks.Follow(b)
	reg.MustRegister(metrics.NewCollector(b, dir, nil))
	return b, reg, hooks
}

// value is the value of the series name{labels} in reg; labels are name,
// value pairs and must name all of the series' labels. It fails the test
// when there is no such series.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := find(t, reg, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func find(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	m := series(t, reg, name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

// series is the series name{labels} of reg (exactly those labels), nil
// when there is none.
func series(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel())*2 != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if !hasLabel(lp, labels) {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func hasLabel(lp *dto.LabelPair, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if labels[i] == lp.GetName() && labels[i+1] == lp.GetValue() {
			return true
		}
	}
	return false
}

func TestQueueLifeMovesTheSeries(t *testing.T) {
	b, reg := open(t)
	if _, err := b.CreateTopic(bg, "jobs", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "jobs", "w", engine.SubscriptionConfig{Kind: engine.KindQueue, MaxDeliveries: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "jobs", "s", engine.SubscriptionConfig{Kind: engine.KindStream}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(bg, "jobs", engine.Message{Value: []byte("a")}, engine.Message{Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	m, err := b.JoinQueue("jobs", "w")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := m.Poll(10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("poll: %d deliveries, %v", len(ds), err)
	}
	must(t, m.Ack(ds[0].ID))
	must(t, m.Nack(ds[1].ID, 0))
	ds, err = m.Poll(10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("poll again: %d deliveries, %v", len(ds), err)
	}
	must(t, m.Nack(ds[0].ID, 0)) // its second failure: a dead letter
	// One more, delivered and not acknowledged: backlog and in flight.
	if _, err := b.Publish(bg, "jobs", engine.Message{Value: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if ds, err = m.Poll(10); err != nil || len(ds) != 1 {
		t.Fatalf("poll the third: %d deliveries, %v", len(ds), err)
	}

	jobs := []string{"topic", "jobs", "partition", "0"}
	w := []string{"topic", "jobs", "subscription", "w"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ferry_published_messages_total", jobs, 3},
		{"ferry_published_messages_total", []string{"topic", "jobs.w.dlq", "partition", "0"}, 1},
		{"ferry_subscription_deliveries_total", w, 4},
		{"ferry_subscription_redeliveries_total", w, 1},
		{"ferry_subscription_acks_total", w, 1},
		{"ferry_subscription_nacks_total", w, 2},
		{"ferry_subscription_dead_letters_total", w, 1},
		{"ferry_topics", nil, 2},
		{"ferry_partition_start_offset", jobs, 0},
		{"ferry_partition_end_offset", jobs, 3},
		{"ferry_partition_segments", jobs, 1},
		{"ferry_subscription_backlog_messages", []string{"topic", "jobs", "subscription", "w", "kind", "queue", "partition", "0"}, 1},
		{"ferry_subscription_backlog_messages", []string{"topic", "jobs", "subscription", "s", "kind", "stream", "partition", "0"}, 3},
		{"ferry_subscription_in_flight_messages", w, 1},
		{"ferry_subscription_members", w, 1},
		{"ferry_subscription_members", []string{"topic", "jobs", "subscription", "s"}, 0},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	info, err := b.DescribeTopic("jobs")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := value(t, reg, "ferry_partition_storage_bytes", jobs...), float64(info.Partitions[0].Bytes); got != want || got <= 0 {
		t.Errorf("storage bytes %v, want %v (> 0)", got, want)
	}
	if got := value(t, reg, "ferry_published_bytes_total", jobs...); got <= 0 {
		t.Errorf("published bytes %v, want > 0", got)
	}
	if free, size := value(t, reg, "ferry_data_disk_free_bytes"), value(t, reg, "ferry_data_disk_size_bytes"); free <= 0 || size < free {
		t.Errorf("disk free %v of %v", free, size)
	}

	// Leaving returns the in-flight delivery: nothing is in flight, the
	// member is gone, the message waits again.
	must(t, m.Leave())
	if got := value(t, reg, "ferry_subscription_in_flight_messages", w...); got != 0 {
		t.Errorf("in flight after leave = %v", got)
	}
	if got := value(t, reg, "ferry_subscription_members", w...); got != 0 {
		t.Errorf("members after leave = %v", got)
	}
}

func TestStreamRebalancesAndLag(t *testing.T) {
	b, reg := open(t)
	if _, err := b.CreateTopic(bg, "events", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "events", "g", engine.SubscriptionConfig{Kind: engine.KindStream, StartAt: engine.StartEarliest}); err != nil {
		t.Fatal(err)
	}
	for p := range 2 {
		msgs := make([]engine.Message, 1+p)
		for i := range msgs {
			msgs[i] = engine.Message{Value: []byte("x")}
		}
		if _, err := b.PublishTo(bg, "events", p, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	sm, err := b.JoinStream("events", "g", 0)
	if err != nil {
		t.Fatal(err)
	}
	g := []string{"topic", "events", "subscription", "g"}
	if got := value(t, reg, "ferry_subscription_members", g...); got != 1 {
		t.Errorf("members = %v, want 1", got)
	}
	for p, want := range []float64{1, 2} {
		l := []string{"topic", "events", "subscription", "g", "kind", "stream", "partition", string(rune('0' + p))}
		if got := value(t, reg, "ferry_subscription_backlog_messages", l...); got != want {
			t.Errorf("lag on %d = %v, want %v", p, got, want)
		}
	}
	must(t, sm.Leave())
	if got := value(t, reg, "ferry_subscription_rebalances_total", g...); got != 2 {
		t.Errorf("rebalances = %v, want 2 (join, leave)", got)
	}
	// One series per partition and no more: labels never grow with traffic.
	if n := testutil.CollectAndCount(metrics.NewCollector(b, "", nil), "ferry_partition_end_offset"); n != 2 {
		t.Errorf("%d end offset series, want 2", n)
	}
}

// TestSeriesFollowConventions runs Prometheus's own linter over every
// series: names, units, _total on counters, help text. It first makes
// every series exist (the linter sees only those), and checks that
// docs/operations.md lists exactly the series that exist.
func TestSeriesFollowConventions(t *testing.T) {
	b, reg, hooks := openHooks(t)
	hooks.Fetched("kafka")("t", 1, 10)
	if _, err := b.CreateTopic(bg, "t", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "t", "q", engine.SubscriptionConfig{Kind: engine.KindQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "t", "s", engine.SubscriptionConfig{Kind: engine.KindStream}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(bg, "t", engine.Message{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	doors := metrics.NewDoors(reg)
	doors.Connection("kafka")(1)
	doors.RequestError("kafka")("UNKNOWN_TOPIC_OR_PARTITION")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]documented{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "ferry_") {
			t.Errorf("series %s lacks the ferry_ prefix", mf.GetName())
		}
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		have[mf.GetName()] = documented{strings.ToLower(mf.GetType().String()), strings.Join(slices.Sorted(maps.Keys(labels)), ", ")}
	}
	docs := documentedSeries(t)
	for name, got := range have {
		doc, ok := docs[name]
		switch {
		case !ok:
			t.Errorf("%s is exported but not in docs/operations.md", name)
		case doc != got:
			t.Errorf("%s is exported as a %s with labels [%s]; docs/operations.md says a %s with labels [%s]",
				name, got.kind, got.labels, doc.kind, doc.labels)
		}
	}
	for name := range docs {
		if _, ok := have[name]; !ok {
			t.Errorf("docs/operations.md lists %s, which is not exported", name)
		}
	}
}

// documented is a series' type and labels (sorted, comma-separated).
type documented struct{ kind, labels string }

// documentedSeries reads the series tables of docs/operations.md: rows
// "| `ferry_...` | type | labels | meaning |".
func documentedSeries(t *testing.T) map[string]documented {
	t.Helper()
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]documented{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `ferry_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Errorf("docs/operations.md: short row %q", line)
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		var labels []string
		for _, l := range strings.Split(cells[3], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[name] = documented{strings.TrimSpace(cells[2]), strings.Join(labels, ", ")}
	}
	if len(out) == 0 {
		t.Fatal("no series rows found in docs/operations.md")
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
