package report

import (
	"slices"
	"strings"

	"github.com/ferrymq/ferry/bench/runner"
	"github.com/ferrymq/ferry/bench/workload"
)

// Row is one workload spec on one system, over its runs.
type Row struct {
	Workload, Spec, Pattern, System string
	Size                            int
	// Durability: what an acknowledgement promised, from the first run
	// that says it ("" when no run got as far as a driver).
	Durability string
	// Runs: every run, failed or not; OK: the runs that passed, which
	// the medians are taken over.
	Runs, OK []runner.Result
}

// Rows groups results by spec and system, in the order they first
// appear.
func Rows(results []runner.Result) []*Row {
	var out []*Row
	index := map[string]*Row{}
	for _, res := range results {
		k := res.Spec + "\x00" + res.System
		rw := index[k]
		if rw == nil {
			rw = &Row{Workload: res.Workload, Spec: res.Spec, Pattern: res.Pattern, System: res.System, Size: res.Size}
			index[k] = rw
			out = append(out, rw)
		}
		rw.Runs = append(rw.Runs, res)
		if rw.Durability == "" {
			rw.Durability = res.Durability
		}
		if passed(res) {
			rw.OK = append(rw.OK, res)
		}
	}
	return out
}

// passed: the run ended without an error and its count check passed.
// (OK alone says so for results of this runner; the error is checked too
// for results written before it set one for a failed count check.)
func passed(r runner.Result) bool { return r.OK && r.Error == "" }

// Median is the median of m over the row's passed runs; 0 when none
// passed or m is not measured.
func (rw *Row) Median(m Measure) float64 {
	var v []float64
	for _, r := range rw.OK {
		if x := m.Get(r); x > 0 {
			v = append(v, x)
		}
	}
	return median(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Stream says whether the row is a stream workload's (append and
// replay; its latency is the append's acknowledgement).
func (rw *Row) Stream() bool { return rw.Pattern == string(workload.Stream) }

// Ferry says whether system is one of Ferry's (any fsync setting);
// every other system is a peer.
func Ferry(system string) bool { return system == "ferry" || strings.HasPrefix(system, "ferry-") }

// Measure is one figure of a run.
type Measure struct {
	Name string // "delivered msgs/s"
	// Higher: more is better (throughput); else less is (latency, CPU).
	Higher bool
	Get    func(runner.Result) float64
}

// latency is the row's latency: the append's acknowledgement for a
// stream, end to end otherwise.
func latency(r runner.Result) runner.Latency {
	if r.Pattern == string(workload.Stream) {
		return r.AckLatency
	}
	return r.Latency
}

// The measures.
var (
	Published = Measure{"published msgs/s", true, func(r runner.Result) float64 { return r.PublishRate }}
	Delivered = Measure{"delivered msgs/s", true, func(r runner.Result) float64 { return r.DeliveryRate }}
	Appended  = Measure{"append msgs/s", true, func(r runner.Result) float64 { return r.PublishRate }}
	Replayed  = Measure{"replay msgs/s", true, func(r runner.Result) float64 { return r.ReplayRate }}
	P50       = Measure{"p50 ms", false, func(r runner.Result) float64 { return latency(r).P50 }}
	P99       = Measure{"p99 ms", false, func(r runner.Result) float64 { return latency(r).P99 }}
	P999      = Measure{"p99.9 ms", false, func(r runner.Result) float64 { return latency(r).P999 }}
	Max       = Measure{"max ms", false, func(r runner.Result) float64 { return latency(r).Max }}
	CPU       = Measure{"broker CPU µs/msg", false, func(r runner.Result) float64 { return r.BrokerCPUPerMsg }}
	CPUAppend = Measure{"broker CPU µs/msg appended", false, func(r runner.Result) float64 { return r.BrokerCPUPerMsg }}
	CPUReplay = Measure{"broker CPU µs/msg replayed", false, func(r runner.Result) float64 { return r.BrokerCPUPerReplayed }}
	Latencies = []Measure{P50, P99, P999, Max}
)

// Headline lists the measures a workload of the pattern is judged by:
// its throughput(s), its latency p99 at a fixed rate, the broker's CPU.
func Headline(pattern string) []Measure {
	switch workload.Pattern(pattern) {
	case workload.Stream:
		return []Measure{Appended, Replayed, CPUAppend, CPUReplay}
	case workload.Latency:
		return []Measure{P99, CPU}
	default:
		return []Measure{Delivered, CPU}
	}
}
