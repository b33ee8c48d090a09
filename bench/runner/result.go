package runner

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is one run of one workload spec on one system, as written to
// the JSON results.
type Result struct {
	System     string `json:"system"`
	Workload   string `json:"workload"`
	Spec       string `json:"spec"` // workload/size: "queue-durable/128B"
	Pattern    string `json:"pattern"`
	Size       int    `json:"size"`
	Run        int    `json:"run"`
	Durability string `json:"durability"`

	Producers     int `json:"producers"`
	Consumers     int `json:"consumers"`
	Subscriptions int `json:"subscriptions"`
	Partitions    int `json:"partitions"`
	Rate          int `json:"rate"` // 0: as fast as possible

	// Measured is the measurement window (after the warm-up).
	Measured float64 `json:"measured_seconds"`
	// PublishRate: publishes acknowledged per second in the window.
	PublishRate float64 `json:"publish_rate"`
	// DeliveryRate: messages handed to consumers per second in the
	// window, every subscription's copy counted (pubsub: deliveries/s).
	DeliveryRate float64 `json:"delivery_rate"`
	// ReplayRate: stream workloads, messages replayed per second.
	ReplayRate float64 `json:"replay_rate,omitempty"`

	// Latency: end to end, from each message's scheduled send time (its
	// actual send time at rate 0) to its handler, for messages scheduled
	// in the window.
	Latency Latency `json:"latency"`
	// AckLatency: from scheduled send to the publish's acknowledgement.
	AckLatency Latency `json:"ack_latency"`

	Counts Counts `json:"counts"`

	// BrokerCPUPerMsg: the broker process's CPU time in the window per
	// message delivered to every subscription (stream: per message
	// appended), in microseconds; 0 when unknown.
	BrokerCPUPerMsg float64 `json:"broker_cpu_us_per_msg,omitempty"`
	// BrokerCPUPerReplayed: stream workloads, per message replayed.
	BrokerCPUPerReplayed float64 `json:"broker_cpu_us_per_replayed,omitempty"`

	// OK: no error ended the run and its count check passed (something
	// acknowledged; no publish failed; nothing missing, nothing
	// unexpected). Error says what failed otherwise ("count check: …"
	// when only the count check did); such a run is reported, not
	// counted in medians.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`

	Started time.Time `json:"started"`
}

// Counts is the run's count check, added up over subscriptions.
type Counts struct {
	// Sent: publishes attempted. Acked: acknowledged without error.
	// Failed: done with an error (not expected at consumers).
	Sent   int64 `json:"sent"`
	Acked  int64 `json:"acked"`
	Failed int64 `json:"failed"`
	// Expected: deliveries due, Acked × subscriptions.
	Expected int64 `json:"expected"`
	// Received: distinct expected messages received, per subscription,
	// added up. Missing = Expected − Received.
	Received int64 `json:"received"`
	Missing  int64 `json:"missing"`
	// Duplicates: messages received again by the same subscription
	// (at-least-once redelivery); Unexpected: received but never
	// acknowledged as published (a failed publish that was stored).
	Duplicates int64 `json:"duplicates"`
	Unexpected int64 `json:"unexpected"`
}

// Latency summarises an HDR histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Histograms hold microseconds, from 1 µs to a minute, 3 significant
// digits.
const histMax = int64(time.Minute / time.Microsecond)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, 3) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / time.Microsecond)
	h.RecordValue(min(max(us, 1), histMax))
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() / 1000,
	}
}
