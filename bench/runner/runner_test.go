package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// fake is an in-memory system: Publish hands a copy of the payload to the
// subscribers at once (or stores it, for streams), with faults on demand.
type fake struct {
	dropEvery uint64        // lose messages whose id is a multiple (not 0)
	dupEvery  uint64        // deliver those twice
	failEvery uint64        // fail those publishes
	stallID   uint64        // Publish of this id blocks for stall
	stall     time.Duration //
}

func (f *fake) Name() string                        { return "fake" }
func (f *fake) Durability(workload.Spec) string     { return "none: memory" }
func (f *fake) Close() error                        { return nil }
func (f *fake) hit(every, id uint64) bool           { return every > 0 && id > 0 && id%every == 0 }
func (b *fakeBench) Teardown(context.Context) error { return nil }

func (f *fake) Setup(_ context.Context, spec workload.Spec, run string) (driver.Bench, error) {
	if run == "" {
		return nil, errors.New("no run name")
	}
	return &fakeBench{f: f, spec: spec, subs: make([][]driver.Handler, spec.Subscriptions)}, nil
}

type fakeBench struct {
	f      *fake
	spec   workload.Spec
	mu     sync.Mutex
	subs   [][]driver.Handler
	next   int
	stored [][]byte
}

func (b *fakeBench) Producer(context.Context, int) (driver.Producer, error) {
	return fakeProducer{b}, nil
}

func (b *fakeBench) Subscribe(_ context.Context, sub, _ int, h driver.Handler) (driver.Consumer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[sub] = append(b.subs[sub], h)
	return fakeConsumer{}, nil
}

func (b *fakeBench) Replay(_ context.Context, _ int, handler func(int) driver.Handler) error {
	h := handler(0)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.stored {
		h(p)
	}
	return nil
}

type fakeConsumer struct{}

func (fakeConsumer) Close() error { return nil }

type fakeProducer struct{ b *fakeBench }

func (p fakeProducer) Flush(context.Context) error { return nil }
func (p fakeProducer) Close() error                { return nil }

func (p fakeProducer) Publish(_ context.Context, _ int, payload []byte, done func(error)) error {
	b, f := p.b, p.b.f
	id, _, _ := readHeader(payload)
	if f.stall > 0 && id == f.stallID {
		time.Sleep(f.stall)
	}
	if f.hit(f.failEvery, id) {
		done(errors.New("refused"))
		return nil
	}
	b.mu.Lock()
	if b.spec.Pattern == workload.Stream {
		b.stored = append(b.stored, append([]byte(nil), payload...))
	} else if !f.hit(f.dropEvery, id) {
		times := 1
		if f.hit(f.dupEvery, id) {
			times = 2
		}
		for range times {
			for _, members := range b.subs {
				members[b.next%len(members)](payload) // handlers do not keep it
			}
			b.next++
		}
	}
	b.mu.Unlock()
	done(nil)
	return nil
}

func spec(p workload.Pattern) workload.Spec {
	return workload.Spec{Name: string(p) + "/128B", Workload: string(p), Pattern: p, Size: 128,
		Producers: 2, Consumers: 2, Subscriptions: 1, Partitions: 3, Messages: 3000, Warmup: 20 * time.Millisecond}
}

func runFake(t *testing.T, f *fake, s workload.Spec) Result {
	t.Helper()
	res := Run(context.Background(), f, s, Options{Drain: 200 * time.Millisecond, Timeout: 30 * time.Second})
	t.Logf("%+v", res.Counts)
	return res
}

func TestCountsClean(t *testing.T) {
	for _, p := range []workload.Pattern{workload.Queue, workload.PubSub, workload.Stream} {
		t.Run(string(p), func(t *testing.T) {
			s := spec(p)
			if p == workload.PubSub {
				s.Subscriptions, s.Consumers = 3, 1
			}
			res := runFake(t, &fake{}, s)
			c := res.Counts
			if !res.OK || c.Missing != 0 || c.Duplicates != 0 || c.Expected != c.Acked*int64(s.Subscriptions) || c.Received != c.Expected {
				t.Fatalf("clean run: OK %v, error %q, counts %+v", res.OK, res.Error, c)
			}
			if c.Sent < s.Messages {
				t.Errorf("sent %d, want the %d measured at least", c.Sent, s.Messages)
			}
			if p == workload.Stream && (res.ReplayRate <= 0 || res.AckLatency.Count == 0) {
				t.Errorf("stream: replay rate %v, ack latency %+v", res.ReplayRate, res.AckLatency)
			}
			if p != workload.Stream && (res.Latency.Count == 0 || res.DeliveryRate <= 0 || res.PublishRate <= 0) {
				t.Errorf("latency %+v, rates %v %v", res.Latency, res.PublishRate, res.DeliveryRate)
			}
		})
	}
}

func TestCountsFaults(t *testing.T) {
	res := runFake(t, &fake{dropEvery: 100}, spec(workload.Queue))
	if res.OK || res.Counts.Missing == 0 || res.Counts.Missing != res.Counts.Expected-res.Counts.Received {
		t.Errorf("lost messages: OK %v, counts %+v; want missing counted and the run failed", res.OK, res.Counts)
	}
	if want := fmt.Sprintf("count check: %d of %d deliveries missing", res.Counts.Missing, res.Counts.Expected); res.Error != want {
		t.Errorf("lost messages: error %q, want %q", res.Error, want)
	}
	res = runFake(t, &fake{dupEvery: 100}, spec(workload.Queue))
	if !res.OK || res.Error != "" || res.Counts.Duplicates == 0 || res.Counts.Missing != 0 {
		t.Errorf("redelivered messages: OK %v, error %q, counts %+v; want duplicates counted, the run OK", res.OK, res.Error, res.Counts)
	}
	res = runFake(t, &fake{failEvery: 100}, spec(workload.Queue))
	c := res.Counts
	if res.OK || c.Failed == 0 || c.Expected != c.Acked || c.Missing != 0 || c.Sent != c.Acked+c.Failed {
		t.Errorf("failed publishes: OK %v, counts %+v; want them counted, not expected, the run failed", res.OK, c)
	}
	if want := fmt.Sprintf("count check: %d publishes failed", c.Failed); res.Error != want {
		t.Errorf("failed publishes: error %q, want %q", res.Error, want)
	}
}

// A stall at a fixed rate must count against every message scheduled
// during it: latency runs from the schedule, not from the late send.
func TestCoordinatedOmission(t *testing.T) {
	s := spec(workload.Latency)
	s.Producers, s.Consumers, s.Partitions, s.Warmup = 1, 1, 1, 0
	s.Rate, s.Messages = 2000, 1000 // half a second
	res := runFake(t, &fake{stallID: 200, stall: 100 * time.Millisecond}, s)
	if !res.OK {
		t.Fatalf("run failed: %s %+v", res.Error, res.Counts)
	}
	// 100 ms at 2,000/s: ~200 messages (20%) wait 0–100 ms.
	if res.Latency.Max < 90 || res.Latency.P99 < 80 {
		t.Errorf("latency %+v: want the stall in p99 and max", res.Latency)
	}
	if res.Latency.P50 > 20 {
		t.Errorf("p50 %.2f ms: want the messages away from the stall fast", res.Latency.P50)
	}
	if res.Counts.Sent != 1000 {
		t.Errorf("sent %d, want exactly the 1000 scheduled", res.Counts.Sent)
	}
}

func TestDurationBound(t *testing.T) {
	s := spec(workload.Queue)
	s.Messages, s.Duration, s.Warmup, s.Rate = 0, 300*time.Millisecond, 100*time.Millisecond, 1000
	start := time.Now()
	res := runFake(t, &fake{}, s)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a 0.4 s run took %v", el)
	}
	if !res.OK || res.Measured < 0.25 || res.Measured > 0.6 {
		t.Errorf("OK %v, measured %.3f s, want about 0.3", res.OK, res.Measured)
	}
	// 1,000/s for 0.4 s from the start.
	if c := res.Counts.Sent; c < 380 || c > 420 {
		t.Errorf("sent %d at 1000/s over 0.4 s", c)
	}
}

func TestIDSet(t *testing.T) {
	var s idSet
	for _, id := range []uint64{0, 1, 63, 64, chunkBits, 5 * chunkBits, maxIDs - 1} {
		if s.add(id) || !s.has(id) {
			t.Fatalf("id %d: first add says duplicate, or has says no", id)
		}
		if !s.add(id) {
			t.Fatalf("id %d: second add not a duplicate", id)
		}
	}
	if s.unique.Load() != 7 || s.dups.Load() != 7 || s.has(2) || s.has(maxIDs) {
		t.Fatalf("unique %d dups %d", s.unique.Load(), s.dups.Load())
	}
}

// BenchmarkRunnerQueue measures the runner's own cost per message (publish,
// acknowledgement, delivery, count and time) on the in-memory fake, which
// hands each payload to a handler inside Publish.
func BenchmarkRunnerQueue(b *testing.B) {
	s := spec(workload.Queue)
	s.Warmup, s.Messages = 0, int64(max(b.N, 2))
	b.ReportAllocs()
	b.ResetTimer()
	res := Run(context.Background(), &fake{}, s, Options{Drain: time.Second, Timeout: time.Minute})
	b.StopTimer()
	if !res.OK {
		b.Fatalf("run failed: %s %+v", res.Error, res.Counts)
	}
}
