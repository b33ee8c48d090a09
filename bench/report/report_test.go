package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
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
	md, f, err := Write(sample(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.JSON != filepath.Join(dir, "t-20261127T170122Z.json") || len(f.Charts) != 6 {
		t.Fatalf("files %+v", f)
	}
	if !strings.Contains(md, "![queue-durable 128B: throughput](t-20261127T170122Z-queue-durable-128B-throughput.png)") {
		t.Errorf("no chart link in:\n%s", md)
	}
	for _, c := range f.Charts {
		os.Remove(c)
	}
	r, err := Load(f.JSON)
	if err != nil {
		t.Fatal(err)
	}
	md2, f2, err := Write(r, dir, f.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if md2 != md || len(f2.Charts) != 6 {
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
