package main

import (
	"strings"
	"testing"

	"github.com/ferrymq/ferry/bench/runner"
)

func TestMarkdownMedians(t *testing.T) {
	res := func(run int, rate float64, ok bool, missing int64) runner.Result {
		return runner.Result{System: "redis", Workload: "queue-durable", Spec: "queue-durable/128B", Pattern: "queue",
			Size: 128, Run: run, Durability: "aof", DeliveryRate: rate, OK: ok,
			Counts: runner.Counts{Missing: missing}, Latency: runner.Latency{P99: rate / 1000}}
	}
	r := &report{Label: "t", Runs: 3, Results: []runner.Result{res(1, 300, true, 0), res(2, 100, true, 0), res(3, 200, false, 5)}}
	md := markdown(r)
	row := "| queue-durable | 128B | redis | aof | – | 200 | – | – | 0.20 |"
	if !strings.Contains(md, row) {
		t.Errorf("want the median row %q in:\n%s", row, md)
	}
	if !strings.Contains(md, "1 of 3 runs failed; 5 missing") {
		t.Errorf("want the failed run reported in:\n%s", md)
	}
}

func TestSI(t *testing.T) {
	for v, want := range map[float64]string{999: "999", 141000: "141k", 1_500_000: "1.50M"} {
		if got := si(v); got != want {
			t.Errorf("si(%v) = %q, want %q", v, got, want)
		}
	}
}
