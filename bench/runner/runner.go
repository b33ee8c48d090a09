// Package runner runs a workload spec on a driver: warm-up, then a
// measured window of throughput and end-to-end latency (HDR histograms,
// corrected for coordinated omission at fixed rates), then a count check
// that every message arrived as expected, all bounded in time.
package runner

import (
	"context"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Options tune one run.
type Options struct {
	// System names the system in the result ("ferry-1s"); the driver's
	// name when empty.
	System string
	// Run numbers the run among repeats.
	Run int
	// Drain bounds the wait, once the producers stop, for the last
	// acknowledgements and deliveries (and for a stream's replay); 30s
	// when 0.
	Drain time.Duration
	// Timeout bounds a run sized by a message count (one sized by a
	// duration is bounded by warm-up + duration + twice Drain + a
	// minute); 5 minutes when 0.
	Timeout time.Duration
	// BrokerCPU, when set, returns the broker process's CPU time so far;
	// the result then carries CPU per message.
	BrokerCPU func() (time.Duration, error)
	// Progress, when set, is called about once a second with a status
	// line.
	Progress func(line string)
}

type snapshot struct {
	at          time.Time
	acked, recv int64
	cpu         time.Duration
}

// run is the state of one Run.
type run struct {
	spec    workload.Spec
	opts    Options
	start   time.Time
	warmEnd time.Time
	end     time.Time // zero when sized by a message count

	sent, failed idSet
	subs         []*idSet

	sentN, ackedN, failedN, recvN, malformed atomic.Int64
	lastAck, lastRecv                        atomic.Int64 // unix ns

	mu         sync.Mutex
	hists      []*hdrhistogram.Histogram // end to end, one per consumer
	ackHists   []*hdrhistogram.Histogram // one per producer
	msgs       sync.Pool                 // of *msg
	errOnce    sync.Once
	firstError error
}

// msg is one message in flight, from Publish to its done. Pooled by
// pointer, with its done bound once, it costs no allocation per publish.
type msg struct {
	r     *run
	ack   *ackHist
	buf   []byte
	id    uint64
	sched time.Time
	done  func(error) // m.acked
}

// ackHist is a producer's acknowledgement latencies. done may be called
// from any goroutine, several at once, hence the lock.
type ackHist struct {
	mu   sync.Mutex
	hist *hdrhistogram.Histogram
}

// acked is the message's done: it counts and times the acknowledgement
// (or the failure) and returns the message to the pool.
func (m *msg) acked(err error) {
	now := time.Now()
	r := m.r
	if err != nil {
		r.failed.add(m.id)
		r.failedN.Add(1)
	} else {
		if !m.sched.Before(r.warmEnd) { // as the end-to-end path: no warm-up
			m.ack.mu.Lock()
			record(m.ack.hist, now.Sub(m.sched))
			m.ack.mu.Unlock()
		}
		r.ackedN.Add(1)
		storeMax(&r.lastAck, now.UnixNano())
	}
	m.ack = nil
	r.msgs.Put(m)
}

// Run runs spec on d and returns the result; a failure, of the run or of
// its count check, is in its Error field (and OK false), never a panic.
func Run(ctx context.Context, d driver.Driver, spec workload.Spec, opts Options) Result {
	if opts.System == "" {
		opts.System = d.Name()
	}
	if opts.Drain <= 0 {
		opts.Drain = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	res := Result{
		System: opts.System, Workload: spec.Workload, Spec: spec.Name, Pattern: string(spec.Pattern),
		Size: spec.Size, Run: opts.Run, Durability: d.Durability(spec),
		Producers: spec.Producers, Consumers: spec.Consumers, Subscriptions: spec.Subscriptions,
		Partitions: spec.Partitions, Rate: spec.Rate, Started: time.Now().UTC(),
	}
	bound := opts.Timeout
	if spec.Duration > 0 {
		bound = spec.Warmup + spec.Duration + 2*opts.Drain + time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()

	r := &run{spec: spec, opts: opts}
	r.msgs.New = func() any {
		m := &msg{r: r, buf: make([]byte, spec.Size)}
		m.done = m.acked
		return m
	}
	subs := spec.Subscriptions
	if spec.Pattern == workload.Stream {
		subs = 1
	}
	for range subs {
		r.subs = append(r.subs, new(idSet))
	}
	if err := r.execute(ctx, d, &res); err != nil {
		r.fail(err)
	}
	r.check(&res)
	if r.firstError != nil {
		res.Error = r.firstError.Error()
	} else {
		res.Error = countError(res.Counts)
	}
	res.OK = res.Error == ""
	return res
}

// countError says why the count check failed, or "" when it passed:
// nothing acknowledged, publishes failed, messages missing at a
// subscription, or received that were never acknowledged.
func countError(c Counts) string {
	var why []string
	if c.Acked == 0 {
		why = append(why, "no publish acknowledged")
	}
	if c.Failed > 0 {
		why = append(why, fmt.Sprintf("%d publishes failed", c.Failed))
	}
	if c.Missing > 0 {
		why = append(why, fmt.Sprintf("%d of %d deliveries missing", c.Missing, c.Expected))
	}
	if c.Unexpected > 0 {
		why = append(why, fmt.Sprintf("%d received but never acknowledged", c.Unexpected))
	}
	if len(why) == 0 {
		return ""
	}
	return "count check: " + strings.Join(why, ", ")
}

func (r *run) fail(err error) {
	r.errOnce.Do(func() { r.firstError = err })
}

func (r *run) execute(ctx context.Context, d driver.Driver, res *Result) error {
	b, err := d.Setup(ctx, r.spec, runID())
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := b.Teardown(tctx); err != nil {
			r.fail(fmt.Errorf("teardown: %w", err))
		}
	}()

	if r.spec.Pattern != workload.Stream {
		for sub := range r.spec.Subscriptions {
			for member := range r.spec.Consumers {
				c, err := b.Subscribe(ctx, sub, member, r.handler(sub))
				if err != nil {
					return fmt.Errorf("subscribe %d/%d: %w", sub, member, err)
				}
				defer c.Close()
			}
		}
	}
	var producers []driver.Producer
	for i := range r.spec.Producers {
		p, err := b.Producer(ctx, i)
		if err != nil {
			return fmt.Errorf("producer %d: %w", i, err)
		}
		defer p.Close()
		producers = append(producers, p)
	}

	r.start = time.Now().Add(time.Millisecond)
	r.warmEnd = r.start.Add(r.spec.Warmup)
	if r.spec.Duration > 0 {
		r.end = r.warmEnd.Add(r.spec.Duration)
	}
	stopProgress := r.progress()
	defer stopProgress()

	// The window opens at the end of the warm-up and, for a run sized by
	// a duration, closes at its end whatever is still in flight.
	snaps := make(chan snapshot, 2)
	go func() {
		time.Sleep(time.Until(r.warmEnd))
		snaps <- r.snap()
		if !r.end.IsZero() {
			time.Sleep(time.Until(r.end))
			snaps <- r.snap()
		}
	}()

	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	var wg sync.WaitGroup
	for i, p := range producers {
		wg.Go(func() {
			if err := r.produce(pctx, i, p); err != nil {
				r.fail(fmt.Errorf("producer %d: %w", i, err))
				pcancel()
			}
		})
	}
	wg.Wait()
	if r.firstError != nil {
		return nil
	}

	var s0, s1 snapshot
	if r.spec.Pattern == workload.Stream {
		s0 = <-snaps
		if !r.end.IsZero() {
			s1 = <-snaps
		} else {
			s1 = r.snap()
			s1.at = time.Unix(0, r.lastAck.Load())
		}
		res.Measured, res.PublishRate, res.BrokerCPUPerMsg = window(s0, s1, s1.acked-s0.acked)
		return r.replay(ctx, b, res)
	}

	drained := r.waitDelivered(ctx)
	s0 = <-snaps
	// The broker's CPU is shared out over the messages that made the
	// whole journey (one copy per subscription): at rate 0 a queue's
	// producers can outrun its consumers, and CPU per message published
	// would then leave out the consuming.
	subs := int64(r.spec.Subscriptions)
	if !r.end.IsZero() {
		s1 = <-snaps
		res.Measured, res.PublishRate, _ = window(s0, s1, s1.acked-s0.acked)
		_, res.DeliveryRate, _ = window(s0, s1, s1.recv-s0.recv)
		_, _, res.BrokerCPUPerMsg = window(s0, s1, (s1.recv-s0.recv)/subs)
	} else {
		// Sized by a count: publishing is measured up to its last
		// acknowledgement, delivery up to the last message received.
		s1 = r.snap()
		pub, recv := s1, s1
		pub.at, recv.at = time.Unix(0, r.lastAck.Load()), time.Unix(0, r.lastRecv.Load())
		res.Measured, res.PublishRate, _ = window(s0, pub, s1.acked-s0.acked)
		_, res.DeliveryRate, _ = window(s0, recv, s1.recv-s0.recv)
		_, _, res.BrokerCPUPerMsg = window(s0, s1, (s1.recv-s0.recv)/subs)
	}
	if !drained && ctx.Err() != nil {
		return fmt.Errorf("run bound reached: %w", ctx.Err())
	}
	return nil
}

// window turns two snapshots into the window's length, a rate of n
// messages, and the broker's CPU µs per message.
func window(s0, s1 snapshot, n int64) (secs, rate, cpuPerMsg float64) {
	secs = s1.at.Sub(s0.at).Seconds()
	if secs <= 0 || n <= 0 {
		return max(secs, 0), 0, 0
	}
	rate = float64(n) / secs
	if s1.cpu > s0.cpu {
		cpuPerMsg = float64((s1.cpu-s0.cpu)/time.Nanosecond) / 1000 / float64(n)
	}
	return secs, rate, cpuPerMsg
}

func (r *run) snap() snapshot {
	s := snapshot{at: time.Now(), acked: r.ackedN.Load(), recv: r.recvN.Load()}
	if r.opts.BrokerCPU != nil {
		if cpu, err := r.opts.BrokerCPU(); err == nil {
			s.cpu = cpu
		}
	}
	return s
}

// produce runs producer i until its share is sent, then flushes it.
func (r *run) produce(ctx context.Context, i int, p driver.Producer) error {
	spec := r.spec
	n := uint64(spec.Producers)
	ack := &ackHist{hist: newHist()}
	r.mu.Lock()
	r.ackHists = append(r.ackHists, ack.hist)
	r.mu.Unlock()

	// Sized by a message count: the warm-up's messages come on top.
	var share, measured int64
	var lastID uint64 = maxIDs
	if spec.Messages > 0 {
		share = spec.Messages / int64(n)
		if int64(i) < spec.Messages%int64(n) {
			share++
		}
		if spec.Rate > 0 {
			lastID = uint64(float64(spec.Rate)*spec.Warmup.Seconds()) + uint64(spec.Messages)
		}
	}
	for k := uint64(0); ; k++ {
		id := k*n + uint64(i)
		if id >= lastID {
			break
		}
		var sched time.Time
		if spec.Rate > 0 {
			// The schedule, not the send, is the message's time: a
			// stall delays every message behind it and each one counts
			// it (no coordinated omission).
			sched = r.start.Add(time.Duration(float64(id) * float64(time.Second) / float64(spec.Rate)))
			if !r.end.IsZero() && !sched.Before(r.end) {
				break
			}
			if d := time.Until(sched); d > 0 {
				time.Sleep(d)
			}
		} else {
			sched = time.Now()
			if !r.end.IsZero() && !sched.Before(r.end) {
				break
			}
			if spec.Messages > 0 && !sched.Before(r.warmEnd) {
				if measured == share {
					break
				}
				measured++
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		m := r.msgs.Get().(*msg)
		m.ack, m.id, m.sched = ack, id, sched
		putHeader(m.buf, id, sched)
		r.sent.add(id)
		r.sentN.Add(1)
		partition := int((k + uint64(i)) % uint64(spec.Partitions))
		// m is the driver's until its done: not touched after Publish.
		if err := p.Publish(ctx, partition, m.buf, m.done); err != nil {
			r.failed.add(id)
			r.failedN.Add(1)
			return fmt.Errorf("publish: %w", err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, r.opts.Drain)
	defer cancel()
	if err := p.Flush(fctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// handler counts and times what one consumer of subscription sub
// receives. The driver calls it from one goroutine at a time, and not
// after the consumer's Close, which returns before check reads hist: hist
// needs no lock.
func (r *run) handler(sub int) driver.Handler {
	hist := newHist()
	r.mu.Lock()
	r.hists = append(r.hists, hist)
	r.mu.Unlock()
	set := r.subs[sub]
	warmEnd := &r.warmEnd
	return func(p []byte) {
		now := time.Now()
		id, sched, ok := readHeader(p)
		if !ok {
			r.malformed.Add(1)
			return
		}
		r.recvN.Add(1)
		storeMax(&r.lastRecv, now.UnixNano())
		if set.add(id) {
			return // a redelivery: counted, not timed
		}
		if sched >= warmEnd.UnixNano() {
			record(hist, now.Sub(time.Unix(0, sched)))
		}
	}
}

// waitDelivered waits until every subscription received every message
// acknowledged as published, or Drain passes, or ctx ends.
func (r *run) waitDelivered(ctx context.Context) bool {
	deadline := time.Now().Add(r.opts.Drain)
	for {
		done := true
		for _, s := range r.subs {
			if s.unique.Load() < r.ackedN.Load() {
				done = false
				break
			}
		}
		if done {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// replay reads the stream back and times it.
func (r *run) replay(ctx context.Context, b driver.Bench, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Drain+r.spec.Duration+r.spec.Warmup)
	defer cancel()
	set := r.subs[0]
	s0 := r.snap()
	err := b.Replay(ctx, r.spec.Consumers, func(int) driver.Handler {
		return func(p []byte) {
			id, _, ok := readHeader(p)
			if !ok {
				r.malformed.Add(1)
				return
			}
			r.recvN.Add(1)
			set.add(id)
		}
	})
	s1 := r.snap()
	_, res.ReplayRate, res.BrokerCPUPerReplayed = window(s0, s1, s1.recv-s0.recv)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// check fills the counts and the latency summaries.
func (r *run) check(res *Result) {
	c := &res.Counts
	c.Sent, c.Acked, c.Failed = r.sentN.Load(), r.ackedN.Load(), r.failedN.Load()
	for _, s := range r.subs {
		c.Duplicates += s.dups.Load()
		var missing, expected int64
		for ci := range r.sent.chunks {
			chunk := r.sent.chunks[ci].Load()
			if chunk == nil {
				continue
			}
			for w, word := range chunk {
				for word != 0 {
					bit := uint64(bits.TrailingZeros64(word))
					word &^= 1 << bit
					id := uint64(ci)*chunkBits + uint64(w)*64 + bit
					if r.failed.has(id) {
						continue
					}
					expected++
					if !s.has(id) {
						missing++
					}
				}
			}
		}
		c.Expected += expected
		c.Missing += missing
		c.Received += expected - missing
		c.Unexpected += s.unique.Load() - (expected - missing)
	}
	if m := r.malformed.Load(); m > 0 {
		r.fail(fmt.Errorf("%d messages without the runner's header", m))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e2e, ack := newHist(), newHist()
	for _, h := range r.hists {
		e2e.Merge(h)
	}
	for _, h := range r.ackHists {
		ack.Merge(h)
	}
	res.Latency, res.AckLatency = summarize(e2e), summarize(ack)
}

func (r *run) progress() (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.opts.Progress(fmt.Sprintf("%s on %s, run %d: %.0fs, sent %d, acked %d, received %d",
					r.spec.Name, r.opts.System, r.opts.Run, time.Since(r.start).Seconds(),
					r.sentN.Load(), r.ackedN.Load(), r.recvN.Load()))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

var runSeq atomic.Int64

// runID names a run's resources: unique within the process and across
// processes sharing a broker, [a-z0-9] only.
func runID() string {
	return fmt.Sprintf("r%x%x", time.Now().UnixNano()&0xffffffffff, runSeq.Add(1))
}
