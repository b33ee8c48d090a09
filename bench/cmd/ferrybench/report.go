package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ferrymq/ferry/bench/peers"
	"github.com/ferrymq/ferry/bench/runner"
	"github.com/ferrymq/ferry/bench/workload"
)

// report is what the JSON file holds.
type report struct {
	Label   string          `json:"label"`
	Started time.Time       `json:"started"`
	Command string          `json:"command"`
	Machine machine         `json:"machine"`
	Runs    int             `json:"runs_per_row"`
	Results []runner.Result `json:"results"`
}

type machine struct {
	CPUs     int               `json:"cpus"`
	OS       string            `json:"os"`
	Kernel   string            `json:"kernel"`
	Go       string            `json:"go"`
	Versions map[string]string `json:"versions"`
}

func newReport(o options) *report {
	m := machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
		Versions: map[string]string{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	for _, p := range []string{"nats-server", "redis-server"} {
		if path, err := peers.Find(p); err == nil {
			if out, err := exec.Command(path, "--version").Output(); err == nil {
				m.Versions[p] = strings.TrimSpace(string(out))
			}
		}
	}
	return &report{Label: o.label, Started: time.Now().UTC(), Command: strings.Join(append([]string{"go run ./cmd/ferrybench"}, os.Args[1:]...), " "), Machine: m, Runs: o.runs}
}

func (r *report) add(res runner.Result) { r.Results = append(r.Results, res) }

func writeReport(r *report, o options) error {
	if len(r.Results) == 0 {
		return nil
	}
	base := filepath.Join(o.out, fmt.Sprintf("%s-%s", r.Label, r.Started.Format("20060102T150405Z")))
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(r)
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	fmt.Fprintf(os.Stderr, "wrote %s.json and %s.md\n", base, base)
	return nil
}

// row is the results of one spec on one system, over its runs.
type row struct {
	spec, system string
	runs         []runner.Result
}

func rows(results []runner.Result) []*row {
	var out []*row
	index := map[string]*row{}
	for _, res := range results {
		k := res.Spec + "\x00" + res.System
		if index[k] == nil {
			index[k] = &row{spec: res.Spec, system: res.System}
			out = append(out, index[k])
		}
		index[k].runs = append(index[k].runs, res)
	}
	return out
}

func median(runs []runner.Result, f func(runner.Result) float64) float64 {
	var v []float64
	for _, r := range runs {
		if r.Error == "" {
			v = append(v, f(r))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func markdown(r *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ferrybench: %s, %s\n\n", r.Label, r.Started.Format("2006-01-02 15:04 UTC"))
	m := r.Machine
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, Linux %s, %s", m.CPUs, m.OS, m.Kernel, m.Go)
	for _, k := range []string{"nats-server", "redis-server"} {
		if v := m.Versions[k]; v != "" {
			fmt.Fprintf(&b, "; %s", v)
		}
	}
	fmt.Fprintf(&b, ".\n\nCommand: `%s` (in bench/). Medians of %d run(s) per row; every run on a fresh broker on 127.0.0.1, brokers and clients sharing the machine.\n\n", r.Command, r.Runs)
	b.WriteString("| workload | size | system | durability at ack | publish msgs/s | delivered msgs/s | replay msgs/s | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU µs/msg | check |\n")
	b.WriteString("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, rw := range rows(r.Results) {
		first := rw.runs[0]
		med := func(f func(runner.Result) float64) float64 { return median(rw.runs, f) }
		lat := func(res runner.Result) runner.Latency {
			if res.Pattern == string(workload.Stream) {
				return res.AckLatency
			}
			return res.Latency
		}
		dash := func(v float64, f string) string {
			if v == 0 {
				return "–"
			}
			return fmt.Sprintf(f, v)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			first.Workload, workload.SizeName(first.Size), rw.system, first.Durability,
			dash(med(func(x runner.Result) float64 { return x.PublishRate }), "%.0f"),
			dash(med(func(x runner.Result) float64 { return x.DeliveryRate }), "%.0f"),
			dash(med(func(x runner.Result) float64 { return x.ReplayRate }), "%.0f"),
			dash(med(func(x runner.Result) float64 { return lat(x).P50 }), "%.2f"),
			dash(med(func(x runner.Result) float64 { return lat(x).P99 }), "%.2f"),
			dash(med(func(x runner.Result) float64 { return lat(x).P999 }), "%.2f"),
			dash(med(func(x runner.Result) float64 { return lat(x).Max }), "%.2f"),
			dash(med(func(x runner.Result) float64 { return x.BrokerCPUPerMsg }), "%.1f"),
			check(rw.runs))
	}
	b.WriteString("\nLatency: end to end, from each message's scheduled send time (its send time at rate 0) to its consumer; " +
		"for stream-append-replay rows, from send to the append's acknowledgement. At rate 0 (as fast as possible) the latency " +
		"includes the queueing of a saturated system. Delivered: every subscription's copy counted. Broker CPU: the broker " +
		"process's CPU time in the window divided by the messages delivered in it, per subscription (stream rows: appended; Ferry in process: not measured). " +
		"Check: every acknowledged message received by every subscription; duplicates (redeliveries) are allowed and counted.\n")
	return b.String()
}

func check(runs []runner.Result) string {
	var missing, dups, failedRuns int64
	var firstErr string
	for _, r := range runs {
		missing += r.Counts.Missing
		dups += r.Counts.Duplicates
		if !r.OK {
			failedRuns++
			if firstErr == "" {
				firstErr = r.Error
			}
		}
	}
	var parts []string
	if failedRuns > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d runs failed", failedRuns, len(runs)))
	}
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", missing))
	}
	if dups > 0 {
		parts = append(parts, fmt.Sprintf("%d duplicates", dups))
	}
	if firstErr != "" {
		parts = append(parts, strings.ReplaceAll(firstErr, "|", "/"))
	}
	if len(parts) == 0 {
		return "ok"
	}
	return strings.Join(parts, "; ")
}

// si writes a rate as 1.23M, 456k or 789.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
