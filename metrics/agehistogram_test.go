package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// written is what a metric writes, less its created timestamp.
func written(t *testing.T, m prometheus.Metric) *dto.Histogram {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	h := pb.GetHistogram()
	if h == nil {
		t.Fatal("not a histogram")
	}
	h.CreatedTimestamp = nil
	return h
}

// TestAgeHistogramIsClientGolangs: observing a value n times at once
// writes what client_golang's histogram (with the options of the other
// latency histograms) writes after n observations of it: the same count,
// sum, classic buckets, schema and native buckets, also once there are
// more native buckets than the limit and both widen them.
func TestAgeHistogramIsClientGolangs(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []float64
	}{
		{"typical", []float64{0, 0, 0.0004, 0.001, 0.001, 0.0013, 0.0071, 0.03, 0.25, 2, 7, 10, 11, 3600}},
		{"exact bounds", append(slices.Clone(endToEndBuckets), 1, 2, 0.5, math.Exp2(1.0/8), math.Exp2(-3.0/8))},
		{"wide spread", spread(600, 7)},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := histogramOpts("x_seconds", "x")
			opts.Buckets = endToEndBuckets
			want := prometheus.NewHistogram(opts)
			got := newAgeHistogram(endToEndBuckets, time.Now())
			desc := prometheus.NewDesc("ferry_x_seconds", "x", nil, nil)
			for i, v := range c.values {
				n := uint64(1 + i%4)
				for range n {
					want.Observe(v)
				}
				got.observeLocked(v, n)
			}
			m, err := got.metric(desc)
			if err != nil {
				t.Fatal(err)
			}
			g, w := written(t, m), written(t, want)
			if widened := c.name == "wide spread"; widened != (g.GetSchema() < nativeSchema) {
				t.Errorf("schema %d: the case is not what it is meant to test", g.GetSchema())
			}
			// Sums differ in the last bits: n*v is not v+v+...+v.
			if math.Abs(g.GetSampleSum()-w.GetSampleSum()) > 1e-9*math.Max(1, w.GetSampleSum()) {
				t.Errorf("sum %v, want %v", g.GetSampleSum(), w.GetSampleSum())
			}
			g.SampleSum, w.SampleSum = nil, nil
			if !proto.Equal(g, w) {
				t.Errorf("wrote\n%v\nclient_golang wrote\n%v", g, w)
			}
		})
	}
}

// spread is n ages from a microsecond to a day, in random order.
func spread(n int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Pow(10, -6+11*r.Float64())
	}
	return out
}

// TestAgeHistogramVecFollowsTopics: histograms are made on first use,
// exported with their labels, and dropped with their topic.
func TestAgeHistogramVecFollowsTopics(t *testing.T) {
	v := newAgeHistogramVec(prometheus.NewDesc("ferry_x_seconds", "x", []string{"topic", "kind"}, nil), endToEndBuckets)
	reg := prometheus.NewRegistry()
	reg.MustRegister(v)
	h := v.get("a", "queue")
	if v.get("a", "queue") != h {
		t.Fatal("get made a second histogram for the same labels")
	}
	h.mu.Lock()
	h.observeLocked(0.002, 5)
	h.mu.Unlock()
	v.get("b", "stream")
	counts := func() map[string]uint64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := ""
				for _, l := range m.GetLabel() {
					key += l.GetName() + "=" + l.GetValue() + " "
				}
				out[key] = m.GetHistogram().GetSampleCount()
			}
		}
		return out
	}
	if got := counts(); len(got) != 2 || got["kind=queue topic=a "] != 5 || got["kind=stream topic=b "] != 0 {
		t.Fatalf("series %v", got)
	}
	v.deleteTopic("a")
	if got := counts(); len(got) != 1 || got["kind=stream topic=b "] != 0 {
		t.Fatalf("after deleting topic a: %v", got)
	}
}
