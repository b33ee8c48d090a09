package engine

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/record"
)

// deliveryHook records what the fetch and delivery latency hooks are told.
type deliveryHook struct {
	mu        sync.Mutex
	published map[string]int // bytes stored, by topic
	fetched   map[string][2]int
	ages      map[string][]string // "age×n" by topic/kind
	calls     int                 // latency calls
}

func newDeliveryHook() *deliveryHook {
	return &deliveryHook{published: map[string]int{}, fetched: map[string][2]int{}, ages: map[string][]string{}}
}

func (h *deliveryHook) OnPublish(topic string, partition, messages, bytes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published[topic] += bytes
}

func (h *deliveryHook) OnFetch(topic, sub string, kind SubscriptionKind, messages, bytes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := fmt.Sprintf("%s/%s/%s", topic, sub, kind)
	f := h.fetched[k]
	h.fetched[k] = [2]int{f[0] + messages, f[1] + bytes}
}

func (h *deliveryHook) OnDeliveryLatency(topic string, kind SubscriptionKind, ages Ages) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	k := topic + "/" + string(kind)
	total := 0
	ages.Each(func(age time.Duration, n int) {
		h.ages[k] = append(h.ages[k], fmt.Sprintf("%v×%d", age, n))
		total += n
	})
	if total != ages.Count() {
		panic(fmt.Sprintf("ages told of %d messages, Count says %d", total, ages.Count()))
	}
}

func (h *deliveryHook) take() (map[string][2]int, map[string][]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, a, c := h.fetched, h.ages, h.calls
	h.fetched, h.ages, h.calls = map[string][2]int{}, map[string][]string{}, 0
	for _, v := range a {
		slices.Sort(v)
	}
	return f, a, c
}

// TestDeliveryHooks: stream, ephemeral and queue takes are told once per
// partition (stream, ephemeral) or take (queue) with the messages' ages by
// the broker's clock, negative ages as 0, and the stored bytes taken.
func TestDeliveryHooks(t *testing.T) {
	h := newDeliveryHook()
	t0 := time.UnixMilli(1_700_000_000_000)
	clk := clock.NewFake(t0)
	b := openBroker(t, t.TempDir(), Options{Clock: clk, Hooks: []Hook{h}, DefaultFsync: "never"})
	createTopic(t, b, "ev", TopicConfig{Partitions: 2})
	if _, err := b.CreateSubscription(bg, "ev", "g", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(bg, "ev", "q", SubscriptionConfig{Kind: KindQueue, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	eph, err := b.SubscribeEphemeral("ev", EphemeralOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eph.Close()

	// Partition 0: three messages in one call, stamped by the broker at t0.
	if _, err := b.PublishTo(bg, "ev", 0, Message{Value: []byte("a")}, Message{Value: []byte("bb")}, Message{Value: []byte("ccc")}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	// Partition 1: stamped by a publisher whose clock runs an hour ahead.
	if _, err := b.PublishTo(bg, "ev", 1, Message{Value: []byte("d"), Timestamp: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second) // t0+7s

	sm, err := b.JoinStream("ev", "g", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	bs, err := sm.FetchBatches(bg, 100, &sc)
	if err != nil || len(bs) != 2 {
		t.Fatalf("fetch batches: %d, %v", len(bs), err)
	}
	h.mu.Lock()
	stored := h.published["ev"]
	h.mu.Unlock()
	fetched, ages, calls := h.take()
	if got := fetched["ev/g/stream"]; got != [2]int{4, stored} {
		t.Errorf("stream fetch told %v, want 4 messages and the %d bytes stored", got, stored)
	}
	if want := []string{"0s×1", "7s×3"}; !slices.Equal(ages["ev/stream"], want) || calls != 2 {
		t.Errorf("stream ages %v in %d calls, want %v in 2 (one per partition)", ages["ev/stream"], calls, want)
	}

	ms, err := eph.Receive(bg, 100) // decoded, told the same way
	if err != nil || len(ms) != 4 {
		t.Fatalf("ephemeral receive: %d, %v", len(ms), err)
	}
	fetched, ages, _ = h.take()
	if got := fetched["ev//ephemeral"]; got != [2]int{4, stored} {
		t.Errorf("ephemeral told %v, want 4 messages and %d bytes", got, stored)
	}
	if want := []string{"0s×1", "7s×3"}; !slices.Equal(ages["ev/ephemeral"], want) {
		t.Errorf("ephemeral ages %v, want %v", ages["ev/ephemeral"], want)
	}

	// A queue tells each delivery's own age, once per take; no fetch.
	clk.Advance(time.Second) // t0+8s
	qm, err := b.JoinQueue("ev", "q")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := qm.Poll(100)
	if err != nil || len(ds) != 4 {
		t.Fatalf("queue poll: %d, %v", len(ds), err)
	}
	fetched, ages, calls = h.take()
	if len(fetched) != 0 {
		t.Errorf("queue deliveries told as fetches: %v", fetched)
	}
	if want := []string{"0s×1", "8s×3"}; !slices.Equal(ages["ev/queue"], want) || calls != 1 {
		t.Errorf("queue ages %v in %d calls, want %v in 1", ages["ev/queue"], calls, want)
	}
	// Nothing more to take: nothing told.
	if ds, _ := qm.Poll(100); len(ds) != 0 {
		t.Fatalf("second poll delivered %d", len(ds))
	}
	if _, _, calls := h.take(); calls != 0 {
		t.Errorf("an empty take told %d times", calls)
	}
}

// TestFetchHookSharesPartBatches: a take that ends inside a stored batch
// counts its share of the batch's bytes, and the rest comes with the next
// take, so the whole batch is counted once.
func TestFetchHookSharesPartBatches(t *testing.T) {
	h := newDeliveryHook()
	b := openBroker(t, t.TempDir(), Options{Hooks: []Hook{h}, DefaultFsync: "never"})
	createTopic(t, b, "ev", TopicConfig{})
	if _, err := b.CreateSubscription(bg, "ev", "g", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
		t.Fatal(err)
	}
	msgs := make([]Message, 4)
	for i := range msgs {
		msgs[i] = Message{Value: []byte("0123456789")}
	}
	publish(t, b, "ev", msgs...)
	h.mu.Lock()
	stored := h.published["ev"]
	h.mu.Unlock()
	sm, err := b.JoinStream("ev", "g", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if bs, err := sm.FetchBatches(bg, 1, nil); err != nil || bs[0].Count() != 1 {
		t.Fatalf("first take: %v, %v", bs, err)
	}
	first, _, _ := h.take()
	if got := first["ev/g/stream"]; got != [2]int{1, stored / 4} {
		t.Errorf("a quarter of the batch told as %v, want [1 %d]", got, stored/4)
	}
	if ms, err := sm.Fetch(bg, 10); err != nil || len(ms) != 3 {
		t.Fatalf("second take: %d, %v", len(ms), err)
	}
	rest, _, _ := h.take()
	if got := first["ev/g/stream"][1] + rest["ev/g/stream"][1]; got < stored-1 || got > stored {
		t.Errorf("the batch of %d bytes counted as %d over two takes", stored, got)
	}
}

// TestEphemeralKindCannotBeCreated: KindEphemeral names events only.
func TestEphemeralKindCannotBeCreated(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "ev", TopicConfig{})
	if _, err := b.CreateSubscription(bg, "ev", "e", SubscriptionConfig{Kind: KindEphemeral}); err == nil {
		t.Fatal("created a subscription of kind ephemeral")
	}
}

// takeCountingHook reads every age it is told, as metrics.Hooks does, and
// keeps nothing.
type takeCountingHook struct{ messages *int }

func (h takeCountingHook) OnFetch(topic, sub string, kind SubscriptionKind, messages, bytes int) {
	*h.messages += messages
}

func (h takeCountingHook) OnDeliveryLatency(topic string, kind SubscriptionKind, ages Ages) {
	ages.Each(func(_ time.Duration, n int) { *h.messages += n })
}

// TestTellingAllocatesNothingPerBatch: the hooks of a stream or ephemeral
// take are told from the stored batches' headers, read in place. A take
// of many small batches (a publish call each) costs no allocation per
// batch, or per take.
func TestTellingAllocatesNothingPerBatch(t *testing.T) {
	const batches = 64
	var data []byte
	for i := range batches {
		batch := record.Encode(record.Record{Timestamp: 1_700_000_000_000 + int64(i), Value: []byte("v")})
		record.SetBaseOffset(batch, int64(i))
		data = append(data, batch...)
	}
	told := 0
	b := &Broker{opts: Options{Clock: clock.NewFake(time.UnixMilli(1_700_000_001_000))},
		hooks: newHooks([]Hook{takeCountingHook{&told}})}
	allocs := testing.AllocsPerRun(50, func() {
		tell := takeTeller{b: b}
		tell.tell("ev", "g", KindStream, data, 3, batches)
	})
	if told != 2*(batches-3)*51 {
		t.Fatalf("hooks told of %d messages, want %d", told, 2*(batches-3)*51)
	}
	if allocs != 0 {
		t.Errorf("telling a take of %d batches allocated %v times", batches, allocs)
	}
}
