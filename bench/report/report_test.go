package report

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/bench/runner"
)

// result is one run of spec on system with the given delivered rate; the
// latencies and CPU follow from it.
func result(system, wl, pattern string, run int, rate float64) runner.Result {
	lat := runner.Latency{Count: 1000, P50: 1000 / rate, P99: 5000 / rate, P999: 9000 / rate, Max: 20000 / rate}
	return runner.Result{System: system, Workload: wl, Spec: wl + "/128B", Pattern: pattern, Size: 128, Run: run,
		Durability: system + " durability", PublishRate: rate * 1.1, DeliveryRate: rate, Latency: lat, AckLatency: lat,
		BrokerCPUPerMsg: 1e6 / rate, OK: true,
		Counts: runner.Counts{Sent: 100, Acked: 100, Expected: 100, Received: 100}}
}

func sample() *Report {
	r := &Report{Label: "t", Started: time.Date(2026, 11, 27, 17, 1, 22, 0, time.UTC), Runs: 1,
		Machine: Machine{CPUs: 2, Versions: map[string]string{"redis-server": "Redis 7"}}}
	for _, s := range []struct {
		system string
		rate   float64
	}{{"ferry", 90000}, {"ferry-1s", 120000}, {"nats", 30000}, {"redis", 50000}} {
		r.Results = append(r.Results,
			result(s.system, "queue-durable", "queue", 1, s.rate),
			result(s.system, "pubsub-fanout-1", "pubsub", 1, s.rate*2),
			result(s.system, "latency-10k", "latency", 1, 10000))
		st := result(s.system, "stream-append-replay", "stream", 1, s.rate)
		st.DeliveryRate, st.ReplayRate, st.BrokerCPUPerReplayed = 0, s.rate*3, 1
		r.Results = append(r.Results, st)
	}
	return r
}

func TestCharts(t *testing.T) {
	dir := t.TempDir()
	charts, err := WriteCharts(Rows(sample().Results), dir, "t-x")
	if err != nil {
		t.Fatal(err)
	}
	// Throughput for each of the 4 workloads, latency for the queue and
	// the latency one.
	if len(charts) != 6 {
		t.Errorf("%d charts, want 6: %+v", len(charts), charts)
	}
	for _, c := range charts {
		b, err := os.ReadFile(filepath.Join(dir, c.File))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", c.File, err)
		}
		if sz := img.Bounds().Size(); sz.X < 100 || sz.Y < 100 {
			t.Errorf("%s: %v pixels", c.File, sz)
		}
	}
	if charts[0].File != "t-x-queue-durable-128B-throughput.png" || charts[1].File != "t-x-queue-durable-128B-latency.png" {
		t.Errorf("files %q, %q", charts[0].File, charts[1].File)
	}
}

// Write, then the Markdown again from the JSON it wrote: the same, with
// the charts linked.
func TestWriteAndRewrite(t *testing.T) {
	dir := t.TempDir()
	r := sample()
	r.Results = slices.DeleteFunc(r.Results, func(x runner.Result) bool { return x.Workload != "queue-durable" })
	md, f, err := Write(r, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.JSON != filepath.Join(dir, "t-20261127T170122Z.json") || len(f.Charts) != 2 {
		t.Fatalf("files %+v", f)
	}
	if !strings.Contains(md, "![queue-durable 128B: throughput](t-20261127T170122Z-queue-durable-128B-throughput.png)") {
		t.Errorf("no chart link in:\n%s", md)
	}
	for _, c := range f.Charts {
		os.Remove(c)
	}
	back, err := Load(f.JSON)
	if err != nil {
		t.Fatal(err)
	}
	md2, f2, err := Write(back, dir, f.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if md2 != md || len(f2.Charts) != 2 {
		t.Errorf("rewritten from the JSON: %d charts, Markdown differs:\n%s\n---\n%s", len(f2.Charts), md, md2)
	}
	for _, c := range f2.Charts {
		if _, err := os.Stat(c); err != nil {
			t.Error(err)
		}
	}
}

func TestSI(t *testing.T) {
	for v, want := range map[float64]string{999: "999", 141000: "141k", 1_500_000: "1.50M"} {
		if got := SI(v); got != want {
			t.Errorf("SI(%v) = %q, want %q", v, got, want)
		}
	}
}

// Failed runs, also those that failed only their count check, stay in
// the JSON with their error and are counted, but not in the medians.
func TestMediansLeaveOutFailedRuns(t *testing.T) {
	r := &Report{Label: "t", Runs: 4}
	add := func(system string, run int, rate float64, err string, missing int64) {
		res := result(system, "queue-durable", "queue", run, rate)
		res.OK, res.Error, res.Counts.Missing = err == "" && missing == 0, err, missing
		r.Results = append(r.Results, res)
	}
	add("redis", 1, 100, "", 0)
	add("redis", 2, 300, "", 0)
	add("redis", 3, 1000, "count check: 5 of 100 deliveries missing", 5)
	add("redis", 4, 5000, "", 7) // OK false without an error: results of an older runner
	add("nats", 1, 100, "start: no nats-server", 0)
	add("nats", 2, 900, "count check: 1 publishes failed", 0)
	add("ferry", 1, 900, "", 0)

	rows := Rows(r.Results)
	if len(rows) != 3 || len(rows[0].OK) != 2 || len(rows[1].OK) != 0 {
		t.Fatalf("rows %d, ok runs %d and %d; want 2, 2 and 0", len(rows), len(rows[0].OK), len(rows[1].OK))
	}
	if got := rows[0].Median(Delivered); got != 200 {
		t.Errorf("redis median %v, want 200 (of 100 and 300 only)", got)
	}
	if got := rows[1].Median(Delivered); got != 0 {
		t.Errorf("nats median %v, want 0: no run passed", got)
	}

	dir := t.TempDir()
	md, f, err := Write(r, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| queue-durable | 128B | redis | redis durability | 220 | 200 | – | 6.67 |",
		"| 2 of 4 | 12 missing; run 3: count check: 5 of 100 deliveries missing; run 4: count check failed |",
		"| queue-durable | 128B | nats | nats durability | – | – | – | – | – | – | – | – | 0 of 2 | run 1: start: no nats-server; run 2: count check: 1 publishes failed |",
		"| queue-durable: delivered msgs/s ≥ 1.5× Redis Streams (`redis`) | 900 | 200 (`redis`) | 4.50× | met |",
		// nats has no passing run: the target against it was not run.
		"| queue-durable: delivered msgs/s ≥ 2× JetStream (`nats`) | 900 | – | – | not run: nats: 0 of 2 runs ok |",
		"| queue-durable: broker CPU µs/msg ≤ ½ the best peer's | 1111 | 6667 (`redis`) | 0.17× | met |",
		"| queue-durable | delivered msgs/s | 900 | `redis` | 200 | 4.50× |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("want %q in:\n%s", want, md)
		}
	}
	back, err := Load(f.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 7 || back.Results[2].Error != "count check: 5 of 100 deliveries missing" || back.Results[2].OK {
		t.Errorf("JSON: %d results, run 3: %+v", len(back.Results), back.Results[2])
	}
	// The chart is of the medians: redis at 200.
	if len(f.Charts) != 2 {
		t.Errorf("charts %v", f.Charts)
	}
}

func TestTargets(t *testing.T) {
	got := map[string]string{}
	for _, o := range Evaluate(Rows(sample().Results), Targets) {
		got[o.Text] = fmt.Sprintf("%s %.2f %s", o.Result, o.Ratio, o.Why)
	}
	for text, want := range map[string]string{
		"queue-durable: delivered msgs/s ≥ 1.5× Redis Streams (`redis`)":                 "met 1.80 ",
		"queue-durable: delivered msgs/s ≥ 2× JetStream (`nats`)":                        "met 3.00 ",
		"queue-durable: delivered msgs/s ≥ 6× RabbitMQ quorum queue (`rabbitmq-quorum`)": "not run 0.00 rabbitmq-quorum not in this run",
		"pubsub-fanout-1: delivered msgs/s ≥ NATS core (`nats`)":                         "met 3.00 ",
		"pubsub-fanout-4: delivered msgs/s ≥ NATS core (`nats`)":                         "not run 0.00 pubsub-fanout-4 at 128B not in this run",
		"stream-append-replay: append msgs/s ≥ 1.5× Redis Streams (`redis`)":             "met 1.80 ",
		"stream-append-replay: replay msgs/s ≥ 1.5× Redis Streams (`redis`)":             "met 1.80 ",
		"latency-10k: end-to-end p99 < 1 ms":                                             "met 0.00 ",
		// The best peer's CPU is redis's, 20 µs; Ferry's is 11.1.
		"queue-durable: broker CPU µs/msg ≤ ½ the best peer's":                                          "missed 0.56 ",
		"stream-append-replay: broker CPU µs/msg replayed ≤ ½ the best peer's":                          "missed 1.00 ",
		"latency-10k: broker CPU µs/msg ≤ ½ the best peer's":                                            "missed 1.00 ",
		"issue 6, stream-append-replay on `ferry-kafka`: franz-go produce (acks=-1) ≥ 1,000,000 msgs/s": "not run 0.00 ferry-kafka not in this run",
	} {
		if got[text] != want {
			t.Errorf("%s: %q, want %q", text, got[text], want)
		}
	}
	if len(got) != len(Targets) {
		t.Errorf("%d outcomes for %d targets", len(got), len(Targets))
	}
}

// Issue 6's targets read ferry-kafka's stream row against an absolute
// floor; ferry-kafka is one of Ferry's systems, never a peer; what was
// skipped is listed.
func TestKafkaTargets(t *testing.T) {
	r := sample()
	st := result("ferry-kafka", "stream-append-replay", "stream", 1, 1.2e6)
	st.PublishRate, st.DeliveryRate, st.ReplayRate = 1.2e6, 0, 0.8e6
	r.Results = append(r.Results, st)
	r.Skipped = []Skipped{
		{System: "ferry-kafka", Spec: "queue-durable/128B", Reason: "needs consumer groups"},
		{System: "ferry-kafka", Spec: "queue-durable/1KiB", Reason: "needs consumer groups"},
	}
	rows := Rows(r.Results)
	got := map[string]Outcome{}
	for _, o := range Evaluate(rows, Targets) {
		got[o.Text] = o
	}
	produce := got["issue 6, stream-append-replay on `ferry-kafka`: franz-go produce (acks=-1) ≥ 1,000,000 msgs/s"]
	consume := got["issue 6, stream-append-replay on `ferry-kafka`: franz-go consume (replay) ≥ 1,000,000 msgs/s"]
	if produce.Result != "met" || produce.Ferry != 1.2e6 || consume.Result != "missed" || consume.Ferry != 0.8e6 {
		t.Errorf("produce %s %v, consume %s %v; want met 1.2e6, missed 8e5", produce.Result, produce.Ferry, consume.Result, consume.Ferry)
	}
	// ferry-kafka's 1.2M appends are not the best peer's.
	if peer, v := BestPeer(rows, "stream-append-replay", 128, Appended); peer == nil || peer.System != "redis" {
		t.Errorf("best peer %+v (%v), want redis", peer, v)
	}
	md := Markdown(r, nil)
	for _, want := range []string{
		"| issue 6, stream-append-replay on `ferry-kafka`: franz-go produce (acks=-1) ≥ 1,000,000 msgs/s | 1200000 | – | – | met |",
		"- `ferry-kafka`, queue-durable/128B, queue-durable/1KiB: needs consumer groups",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("want %q in:\n%s", want, md)
		}
	}
}
