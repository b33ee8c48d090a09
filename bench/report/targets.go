package report

import (
	"fmt"
	"slices"

	"github.com/ferrymq/ferry/bench/workload"
)

// TargetSize is the message size the ratios and targets are read at.
const TargetSize = 128

// Target is one of the issues' targets for one of Ferry's systems (by
// default "ferry": Ferry at its default, fsync before ack), at
// TargetSize.
type Target struct {
	Workload string
	// System is the Ferry system measured; "ferry" when empty.
	System  string
	Measure Measure
	// Peer is the peer system compared with; "" for the best peer that
	// ran (the one with the best median of Measure).
	Peer string
	// Factor: Ferry ÷ peer must be ≥ Factor when more of Measure is
	// better, ≤ Factor when less is.
	Factor float64
	// Limit, when set, is an absolute bound instead: Ferry's median
	// must be below it.
	Limit float64
	// Min, when set, is an absolute floor instead: Ferry's median must
	// be at least it.
	Min float64
	// Text says the target in words.
	Text string
}

// Targets are issue 5's, then issue 6's.
var Targets = []Target{
	{Workload: "queue-durable", Measure: Delivered, Peer: "redis", Factor: 1.5,
		Text: "queue-durable: delivered msgs/s ≥ 1.5× Redis Streams (`redis`)"},
	{Workload: "queue-durable", Measure: Delivered, Peer: "nats", Factor: 2,
		Text: "queue-durable: delivered msgs/s ≥ 2× JetStream (`nats`)"},
	{Workload: "queue-durable", Measure: Delivered, Peer: "rabbitmq-quorum", Factor: 6,
		Text: "queue-durable: delivered msgs/s ≥ 6× RabbitMQ quorum queue (`rabbitmq-quorum`)"},
	{Workload: "pubsub-fanout-1", Measure: Delivered, Peer: "nats", Factor: 1,
		Text: "pubsub-fanout-1: delivered msgs/s ≥ NATS core (`nats`)"},
	{Workload: "pubsub-fanout-4", Measure: Delivered, Peer: "nats", Factor: 1,
		Text: "pubsub-fanout-4: delivered msgs/s ≥ NATS core (`nats`)"},
	{Workload: "stream-append-replay", Measure: Appended, Peer: "redis", Factor: 1.5,
		Text: "stream-append-replay: append msgs/s ≥ 1.5× Redis Streams (`redis`)"},
	{Workload: "stream-append-replay", Measure: Replayed, Peer: "redis", Factor: 1.5,
		Text: "stream-append-replay: replay msgs/s ≥ 1.5× Redis Streams (`redis`)"},
	{Workload: "latency-10k", Measure: P99, Limit: 1,
		Text: "latency-10k: end-to-end p99 < 1 ms"},
	{Workload: "queue-durable", Measure: CPU, Factor: 0.5,
		Text: "queue-durable: broker CPU µs/msg ≤ ½ the best peer's"},
	{Workload: "pubsub-fanout-1", Measure: CPU, Factor: 0.5,
		Text: "pubsub-fanout-1: broker CPU µs/msg ≤ ½ the best peer's"},
	{Workload: "pubsub-fanout-4", Measure: CPU, Factor: 0.5,
		Text: "pubsub-fanout-4: broker CPU µs/msg ≤ ½ the best peer's"},
	{Workload: "stream-append-replay", Measure: CPUAppend, Factor: 0.5,
		Text: "stream-append-replay: broker CPU µs/msg appended ≤ ½ the best peer's"},
	{Workload: "stream-append-replay", Measure: CPUReplay, Factor: 0.5,
		Text: "stream-append-replay: broker CPU µs/msg replayed ≤ ½ the best peer's"},
	{Workload: "latency-10k", Measure: CPU, Factor: 0.5,
		Text: "latency-10k: broker CPU µs/msg ≤ ½ the best peer's"},
	// Issue 6: franz-go against the Kafka door, acks=-1, batching.
	{Workload: "stream-append-replay", System: "ferry-kafka", Measure: Appended, Min: 1e6,
		Text: "issue 6, stream-append-replay on `ferry-kafka`: franz-go produce (acks=-1) ≥ 1,000,000 msgs/s"},
	{Workload: "stream-append-replay", System: "ferry-kafka", Measure: Replayed, Min: 1e6,
		Text: "issue 6, stream-append-replay on `ferry-kafka`: franz-go consume (replay) ≥ 1,000,000 msgs/s"},
}

// system is the Ferry system the target measures.
func (t Target) system() string {
	if t.System == "" {
		return "ferry"
	}
	return t.System
}

// String says the target in words.
func (t Target) String() string { return t.Text }

// Outcome is a target read from a run.
type Outcome struct {
	Target
	// Ferry and PeerValue are the medians compared; PeerSystem the peer
	// they came from; Ratio Ferry ÷ peer (0 for a Limit).
	Ferry, PeerValue, Ratio float64
	PeerSystem              string
	// Result: "met", "missed" or "not run"; Why says why not run.
	Result, Why string
}

// Evaluate reads every target from rows.
func Evaluate(rows []*Row, targets []Target) []Outcome {
	var out []Outcome
	for _, t := range targets {
		out = append(out, evaluate(rows, t))
	}
	return out
}

func find(rows []*Row, workload string, size int, system string) *Row {
	for _, rw := range rows {
		if rw.Workload == workload && rw.Size == size && rw.System == system {
			return rw
		}
	}
	return nil
}

// notRun says why a row has no median of m: absent, every run failed, or
// not measured.
func notRun(rw *Row, system string, m Measure) string {
	switch {
	case rw == nil:
		return system + " not in this run"
	case len(rw.OK) == 0:
		return fmt.Sprintf("%s: 0 of %d runs ok", system, len(rw.Runs))
	case rw.Median(m) == 0:
		return fmt.Sprintf("%s: %s not measured", system, m.Name)
	}
	return ""
}

// BestPeer is the peer with the best median of m at the spec, or nil.
func BestPeer(rows []*Row, workload string, size int, m Measure) (*Row, float64) {
	var best *Row
	var bv float64
	for _, rw := range rows {
		if rw.Workload != workload || rw.Size != size || Ferry(rw.System) {
			continue
		}
		v := rw.Median(m)
		if v <= 0 {
			continue
		}
		if best == nil || (m.Higher && v > bv) || (!m.Higher && v < bv) {
			best, bv = rw, v
		}
	}
	return best, bv
}

func evaluate(rows []*Row, t Target) Outcome {
	o := Outcome{Target: t, Result: "not run"}
	if !slices.ContainsFunc(rows, func(rw *Row) bool { return rw.Workload == t.Workload && rw.Size == TargetSize }) {
		o.Why = fmt.Sprintf("%s at %s not in this run", t.Workload, workload.SizeName(TargetSize))
		return o
	}
	ferry := find(rows, t.Workload, TargetSize, t.system())
	if o.Why = notRun(ferry, t.system(), t.Measure); o.Why != "" {
		return o
	}
	o.Ferry = ferry.Median(t.Measure)
	switch {
	case t.Limit > 0:
		o.Result = verdict(o.Ferry < t.Limit)
		return o
	case t.Min > 0:
		o.Result = verdict(o.Ferry >= t.Min)
		return o
	}
	var peer *Row
	if t.Peer == "" {
		if peer, o.PeerValue = BestPeer(rows, t.Workload, TargetSize, t.Measure); peer == nil {
			o.Why = "no peer with a " + t.Measure.Name
			return o
		}
	} else {
		peer = find(rows, t.Workload, TargetSize, t.Peer)
		if o.Why = notRun(peer, t.Peer, t.Measure); o.Why != "" {
			return o
		}
		o.PeerValue = peer.Median(t.Measure)
	}
	o.PeerSystem = peer.System
	o.Ratio = o.Ferry / o.PeerValue
	if t.Measure.Higher {
		o.Result = verdict(o.Ratio >= t.Factor)
	} else {
		o.Result = verdict(o.Ratio <= t.Factor)
	}
	return o
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
