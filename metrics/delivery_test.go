package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferrymq/ferry/engine"
)

// histogramOf is the series name{labels} of reg, a histogram; nil when
// there is none.
func histogramOf(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) *dto.Histogram {
	t.Helper()
	return series(t, reg, name, labels...).GetHistogram()
}

// TestDeliveriesOfEveryKind: a stream member's, an ephemeral subscriber's
// and a queue member's takes move the delivery counters and the
// end-to-end latency histogram by the number of messages, and the bytes
// by what the messages take in storage.
func TestDeliveriesOfEveryKind(t *testing.T) {
	b, reg := open(t)
	if _, err := b.CreateTopic(bg, "ev", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for name, kind := range map[string]engine.SubscriptionKind{"g": engine.KindStream, "q": engine.KindQueue} {
		if _, err := b.CreateSubscription(bg, "ev", name, engine.SubscriptionConfig{Kind: kind, StartAt: engine.StartEarliest}); err != nil {
			t.Fatal(err)
		}
	}
	eph, err := b.SubscribeEphemeral("ev", engine.EphemeralOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eph.Close()
	// Before anything is delivered: the counters at 0, the histograms of
	// the kinds the topic's subscriptions have empty, none for ephemeral.
	g, ev := []string{"topic", "ev", "subscription", "g"}, []string{"topic", "ev"}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"ferry_subscription_deliveries_total", g},
		{"ferry_subscription_delivered_bytes_total", g},
		{"ferry_ephemeral_deliveries_total", ev},
		{"ferry_ephemeral_delivered_bytes_total", ev},
	} {
		if got := value(t, reg, c.name, c.labels...); got != 0 {
			t.Errorf("%s%v = %v before any delivery", c.name, c.labels, got)
		}
	}
	for _, kind := range []string{"queue", "stream"} {
		if h := histogramOf(t, reg, "ferry_end_to_end_latency_seconds", "topic", "ev", "kind", kind); h == nil || h.GetSampleCount() != 0 {
			t.Errorf("end-to-end latency of %s before any delivery: %v", kind, h)
		}
	}

	msgs := make([]engine.Message, 30)
	for i := range msgs {
		msgs[i] = engine.Message{Key: []byte{byte(i)}, Value: []byte("some value")}
	}
	if _, err := b.Publish(bg, "ev", msgs...); err != nil {
		t.Fatal(err)
	}
	stored := value(t, reg, "ferry_published_bytes_total", "topic", "ev", "partition", "0") +
		value(t, reg, "ferry_published_bytes_total", "topic", "ev", "partition", "1")

	// The stream: 10 as stored batches, then the rest decoded.
	sm, err := b.JoinStream("ev", "g", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sc engine.Scratch
	got := 0
	for got < 30 {
		var n int
		if got == 0 {
			bs, err := sm.FetchBatches(bg, 10, &sc)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range bs {
				n += x.Count()
			}
		} else {
			ms, err := sm.Fetch(bg, 100)
			if err != nil {
				t.Fatal(err)
			}
			n = len(ms)
		}
		got += n
	}
	// The ephemeral subscriber, in takes of 7.
	for got = 0; got < 30; {
		ms, err := eph.Receive(bg, 7)
		if err != nil {
			t.Fatal(err)
		}
		got += len(ms)
	}
	// The queue, 30 deliveries and 5 redelivered.
	qm, err := b.JoinQueue("ev", "q")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := qm.Poll(100)
	if err != nil || len(ds) != 30 {
		t.Fatalf("queue poll: %d, %v", len(ds), err)
	}
	for _, d := range ds[:5] {
		must(t, qm.Nack(d.ID, 0))
	}
	if ds, err = qm.Poll(100); err != nil || len(ds) != 5 {
		t.Fatalf("queue poll of the nacked: %d, %v", len(ds), err)
	}

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ferry_subscription_deliveries_total", g, 30},
		{"ferry_subscription_delivered_bytes_total", g, stored},
		{"ferry_ephemeral_deliveries_total", ev, 30},
		{"ferry_ephemeral_delivered_bytes_total", ev, stored},
		{"ferry_subscription_deliveries_total", []string{"topic", "ev", "subscription", "q"}, 35},
	} {
		// A take ending inside a batch counts its share of the batch, so
		// the bytes may fall short of what is stored by a byte a take.
		if got := value(t, reg, c.name, c.labels...); got > c.want || got < c.want-10 {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The queue's bytes: every message's share of its batch once, and the
	// 5 redelivered again (the messages are all of one size), rounded
	// down by less than a byte each.
	qb := value(t, reg, "ferry_subscription_delivered_bytes_total", "topic", "ev", "subscription", "q")
	if want := stored * 35 / 30; qb > want || qb < want-35 {
		t.Errorf("queue delivered bytes %v, want about %v", qb, want)
	}
	for kind, want := range map[string]uint64{"stream": 30, "ephemeral": 30, "queue": 35} {
		h := histogramOf(t, reg, "ferry_end_to_end_latency_seconds", "topic", "ev", "kind", kind)
		if h.GetSampleCount() != want {
			t.Errorf("end-to-end latency of %s: count %d, want %d", kind, h.GetSampleCount(), want)
		}
		// Delivered within seconds of publishing: all within 10 s, and the
		// sum is the ages'.
		for _, bk := range h.GetBucket() {
			if bk.GetUpperBound() == 10 && bk.GetCumulativeCount() != want {
				t.Errorf("end-to-end latency of %s: %d of %d within 10 s", kind, bk.GetCumulativeCount(), want)
			}
		}
		if s := h.GetSampleSum(); s < 0 || s > float64(want)*10 {
			t.Errorf("end-to-end latency of %s: sum %v", kind, s)
		}
	}

	// Deleting the topic drops its delivery series.
	must(t, b.DeleteTopic(bg, "ev"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "topic" && lp.GetValue() == "ev" {
					t.Errorf("%s%v left after its topic was deleted", mf.GetName(), m.GetLabel())
				}
			}
		}
	}
}
