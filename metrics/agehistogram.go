package metrics

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ageHistogram is a histogram that takes many observations of one value
// at once: the end-to-end latency of a take of messages published
// together is one age told for hundreds of messages, and client_golang's
// histogram observes one value at a time (about 75 ns each, with native
// buckets). It exports what histogramOpts' histograms export: classic
// buckets (its bounds), and native buckets of schema 3 (about 9% wide,
// what a bucket factor of 1.1 picks), widened when there are more than
// maxNativeBuckets (it never resets its counts to narrow them again).
type ageHistogram struct {
	bounds []float64 // of the classic buckets

	mu      sync.Mutex
	count   uint64
	sum     float64
	classic []uint64 // by bucket of bounds, not cumulative; one more for above the last
	zero    uint64
	schema  int32
	native  map[int]int64
	created time.Time
}

const (
	nativeSchema     = 3
	maxNativeBuckets = 100
)

// nativeBounds are the fractions (of a power of two) where the buckets of
// nativeSchema end, 2^(i/8)/2, written as client_golang writes them (its
// nativeHistogramBounds): computed, the last bits of three differ, and a
// value on a bound would land in another bucket than theirs.
var nativeBounds = []float64{
	0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048,
	0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
}

func newAgeHistogram(bounds []float64, now time.Time) *ageHistogram {
	return &ageHistogram{bounds: bounds, classic: make([]uint64, len(bounds)+1), schema: nativeSchema,
		native: map[int]int64{}, created: now}
}

// observeLocked adds n observations of v (seconds, not negative). The
// caller holds h.mu: a take locks once for all its ages.
func (h *ageHistogram) observeLocked(v float64, n uint64) {
	h.count += n
	h.sum += v * float64(n)
	h.classic[sort.SearchFloat64s(h.bounds, v)] += n
	if v <= prometheus.DefNativeHistogramZeroThreshold {
		h.zero += n
		return
	}
	// The bucket of v at nativeSchema (upper bound 2^(key/8), as
	// client_golang finds it), then at the schema widened to.
	frac, exp := math.Frexp(v)
	key := sort.SearchFloat64s(nativeBounds, frac) + (exp-1)*len(nativeBounds)
	if shift := nativeSchema - h.schema; shift > 0 {
		key = (key + 1<<shift - 1) >> shift
	}
	h.native[key] += int64(n)
	for len(h.native) > maxNativeBuckets && h.schema > -4 {
		h.widen()
	}
}

// widen halves the native resolution: bucket k joins ceil(k/2).
func (h *ageHistogram) widen() {
	wider := make(map[int]int64, len(h.native)/2+1)
	for k, c := range h.native {
		wider[(k+1)>>1] += c
	}
	h.native = wider
	h.schema--
}

// metric is the histogram now, as a Prometheus metric with labels.
func (h *ageHistogram) metric(desc *prometheus.Desc, labels ...string) (prometheus.Metric, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, err := prometheus.NewConstNativeHistogram(desc, h.count, h.sum, h.native, nil, h.zero, h.schema,
		prometheus.DefNativeHistogramZeroThreshold, h.created, labels...)
	if err != nil {
		return nil, err
	}
	buckets := make([]*dto.Bucket, len(h.bounds))
	cumulative := uint64(0)
	for i, upper := range h.bounds {
		cumulative += h.classic[i]
		buckets[i] = &dto.Bucket{CumulativeCount: new(cumulative), UpperBound: new(upper)}
	}
	return withClassicBuckets{m, buckets}, nil
}

// withClassicBuckets adds classic buckets to a native histogram, as
// client_golang's own histograms have both.
type withClassicBuckets struct {
	prometheus.Metric
	buckets []*dto.Bucket
}

func (m withClassicBuckets) Write(out *dto.Metric) error {
	if err := m.Metric.Write(out); err != nil {
		return err
	}
	out.Histogram.Bucket = m.buckets
	return nil
}

// ageHistogramVec is ageHistograms by topic and subscription kind.
type ageHistogramVec struct {
	desc   *prometheus.Desc
	bounds []float64
	now    func() time.Time

	mu sync.RWMutex
	m  map[[2]string]*ageHistogram
}

func newAgeHistogramVec(desc *prometheus.Desc, bounds []float64) *ageHistogramVec {
	return &ageHistogramVec{desc: desc, bounds: bounds, now: time.Now, m: map[[2]string]*ageHistogram{}}
}

// get returns the histogram of topic and kind, made on first use.
func (v *ageHistogramVec) get(topic, kind string) *ageHistogram {
	key := [2]string{topic, kind}
	v.mu.RLock()
	h := v.m[key]
	v.mu.RUnlock()
	if h != nil {
		return h
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if h = v.m[key]; h == nil {
		h = newAgeHistogram(v.bounds, v.now())
		v.m[key] = h
	}
	return h
}

// deleteTopic drops the histograms of topic.
func (v *ageHistogramVec) deleteTopic(topic string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for key := range v.m {
		if key[0] == topic {
			delete(v.m, key)
		}
	}
}

// topics lists the topics that have histograms.
func (v *ageHistogramVec) topics() map[string]bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := map[string]bool{}
	for key := range v.m {
		out[key[0]] = true
	}
	return out
}

// Describe implements prometheus.Collector.
func (v *ageHistogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector.
func (v *ageHistogramVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.RLock()
	hs := make(map[[2]string]*ageHistogram, len(v.m))
	for key, h := range v.m {
		hs[key] = h
	}
	v.mu.RUnlock()
	for key, h := range hs {
		m, err := h.metric(v.desc, key[0], key[1])
		if err != nil {
			m = prometheus.NewInvalidMetric(v.desc, err)
		}
		ch <- m
	}
}
