package metrics

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferrymq/ferry/engine"
)

// Hooks counts engine events. It implements engine.PublishHook,
// engine.PublishLatencyHook, engine.FsyncHook, engine.DeliverHook,
// engine.FetchHook, engine.DeliveryLatencyHook, engine.AckHook,
// engine.DeadLetterHook, engine.RebalanceHook and engine.PurgeHook; hand
// it to engine.Open
// in Options.Hooks, and call Follow so its series follow the broker's
// topics and subscriptions (made at 0 when they are created, dropped when
// they are deleted).
//
// Labels are the topic, partition, subscription and subscription kind:
// their number is set by the operator's configuration, never by traffic
// or clients.
type Hooks struct {
	publishedMessages *prometheus.CounterVec
	publishedBytes    *prometheus.CounterVec
	deliveries        *prometheus.CounterVec
	deliveredBytes    *prometheus.CounterVec
	ephemeralMessages *prometheus.CounterVec
	ephemeralBytes    *prometheus.CounterVec
	redeliveries      *prometheus.CounterVec
	acks              *prometheus.CounterVec
	nacks             *prometheus.CounterVec
	deadLetters       *prometheus.CounterVec
	rebalances        *prometheus.CounterVec
	purged            *prometheus.CounterVec
	publishLatency    *prometheus.HistogramVec
	endToEnd          *ageHistogramVec
	fsyncLatency      prometheus.Histogram
	fsyncErrors       prometheus.Counter
	fetchedMessages   *prometheus.CounterVec
	fetchedBytes      *prometheus.CounterVec

	src atomic.Pointer[Source] // set by Follow

	mu           sync.Mutex
	fetchedDoors []string // the doors given a Fetched callback
}

var (
	_ engine.PublishHook         = (*Hooks)(nil)
	_ engine.PublishLatencyHook  = (*Hooks)(nil)
	_ engine.FsyncHook           = (*Hooks)(nil)
	_ engine.DeliverHook         = (*Hooks)(nil)
	_ engine.FetchHook           = (*Hooks)(nil)
	_ engine.DeliveryLatencyHook = (*Hooks)(nil)
	_ engine.AckHook             = (*Hooks)(nil)
	_ engine.DeadLetterHook      = (*Hooks)(nil)
	_ engine.RebalanceHook       = (*Hooks)(nil)
	_ engine.PurgeHook           = (*Hooks)(nil)
)

// latencyBuckets are the classic buckets of the latency histograms, for
// scrapers without native histograms: from a fast disk's fsync (a tenth of
// a millisecond) to a stalled one. Native histograms (exponential buckets,
// about 10% wide) are exported too, to scrapers that ask for protobuf.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}

// endToEndBuckets are the classic buckets of the end-to-end latency: from
// a millisecond (the precision of message timestamps) to an hour, as a
// message may wait long for a consumer.
var endToEndBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}

func histogramOpts(name, help string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Namespace: namespace, Name: name, Help: help,
		Buckets:                         latencyBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
	}
}

var _ prometheus.Collector = (*Hooks)(nil)

// NewHooks makes the event counters and registers them on reg.
func NewHooks(reg prometheus.Registerer) *Hooks {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	h := &Hooks{
		publishedMessages: counter("published_messages_total",
			"Messages stored in a topic partition (dead letters included, in their dead-letter topic).", "topic", "partition"),
		publishedBytes: counter("published_bytes_total",
			"Bytes stored in a topic partition, as encoded record batches.", "topic", "partition"),
		deliveries: counter("subscription_deliveries_total",
			"Messages handed to members of a subscription: queue deliveries, redeliveries included, "+
				"and messages fetched by stream members (native consumers), fetched again after a rebalance or seek included.",
			"topic", "subscription"),
		deliveredBytes: counter("subscription_delivered_bytes_total",
			"Bytes of the messages handed to members of a subscription (queue deliveries, "+
				"messages fetched by stream members), as stored: their share of their record batches.", "topic", "subscription"),
		ephemeralMessages: counter("ephemeral_deliveries_total",
			"Messages of a topic handed to ephemeral subscribers, each subscriber's copy counted.", "topic"),
		ephemeralBytes: counter("ephemeral_delivered_bytes_total",
			"Bytes of the messages of a topic handed to ephemeral subscribers, as stored: their share of their record batches.", "topic"),
		redeliveries: counter("subscription_redeliveries_total",
			"Deliveries of a queue subscription that were not a message's first.", "topic", "subscription"),
		acks: counter("subscription_acks_total",
			"Deliveries of a queue subscription acknowledged.", "topic", "subscription"),
		nacks: counter("subscription_nacks_total",
			"Deliveries of a queue subscription given back (nacked).", "topic", "subscription"),
		deadLetters: counter("subscription_dead_letters_total",
			"Messages of a queue subscription moved to its dead-letter topic.", "topic", "subscription"),
		rebalances: counter("subscription_rebalances_total",
			"Membership changes of a stream subscription (consumer group).", "topic", "subscription"),
		purged: counter("subscription_purged_messages_total",
			"Messages dropped from a subscription's backlog by purges (a stream's lag skipped).", "topic", "subscription"),
		publishLatency: prometheus.NewHistogramVec(histogramOpts("publish_duration_seconds",
			"Seconds from a publish call to its messages being durable under the topic's fsync policy "+
				"(when the client is answered), successful publishes only."), []string{"topic"}),
		endToEnd: newAgeHistogramVec(prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "end_to_end_latency_seconds"),
			"Seconds from a message's timestamp (its publish time, by the publisher's clock if it set it; "+
				"0 when negative) to its delivery to a consumer, by the subscription kind (queue, stream, ephemeral).",
			[]string{"topic", "kind"}, nil), endToEndBuckets),
		fsyncLatency: prometheus.NewHistogram(histogramOpts("fsync_duration_seconds",
			"Seconds each fsync of partitions' appended data took (one covers every publish waiting on it).")),
		fsyncErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "fsync_errors_total",
			Help: "Fsyncs of partitions' appended data that failed."}),
		fetchedMessages: counter("fetched_messages_total",
			"Messages of a topic a front door answered to reads that name no subscription of the broker's: "+
				"Kafka Fetch requests (consumer groups' included), from each fetch offset on.", "topic", "door"),
		fetchedBytes: counter("fetched_bytes_total",
			"Bytes of the stored record batches a front door answered to those reads.", "topic", "door"),
	}
	reg.MustRegister(h)
	return h
}

// Follow makes the counters follow src's topics and subscriptions at each
// scrape: every partition's and subscription's counters exist from 0
// before their first event (an alert on increase() sees the first one),
// and those of deleted topics and subscriptions are dropped (Kafka clients
// create topics and groups at will). src is the broker the hooks are
// given to.
func (h *Hooks) Follow(src Source) { h.src.Store(&src) }

func (h *Hooks) collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, v := range append(h.topicVecs(), h.subscriptionVecs()...) {
		cs = append(cs, v)
	}
	for _, v := range append(h.ephemeralVecs(), h.fetchedVecs()...) {
		cs = append(cs, v)
	}
	return append(cs, h.publishLatency, h.endToEnd, h.fsyncLatency, h.fsyncErrors)
}

// Describe implements prometheus.Collector.
func (h *Hooks) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range h.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector. The counters are brought in
// line with the broker first, so a scrape sees the series it made.
func (h *Hooks) Collect(ch chan<- prometheus.Metric) {
	if src := h.src.Load(); src != nil {
		h.follow(*src)
	}
	for _, c := range h.collectors() {
		c.Collect(ch)
	}
}

// follow makes the series of src's partitions and subscriptions and drops
// those of deleted ones. Only series that existed before the listing are
// dropped: one made by a hook meanwhile belongs to a topic or subscription
// the listing may not show yet. When the broker cannot be listed nothing
// is dropped (the Collector reports that).
func (h *Hooks) follow(src Source) {
	h.mu.Lock()
	doors := slices.Clone(h.fetchedDoors)
	h.mu.Unlock()
	hadTopics, hadSubs := h.seen()
	topics, err := src.ListTopics()
	if err != nil {
		return
	}
	liveTopics := map[string]bool{}
	liveSubs := map[[2]string]bool{}
	keepSubsOf := map[string]bool{} // topics whose subscriptions could not be listed
	for _, t := range topics {
		subs, err := src.ListSubscriptions(t.Name)
		if errors.Is(err, engine.ErrUnknownTopic) {
			continue // deleted since ListTopics
		}
		liveTopics[t.Name] = true
		h.publishLatency.WithLabelValues(t.Name)
		for _, v := range h.ephemeralVecs() {
			v.WithLabelValues(t.Name)
		}
		for _, door := range doors {
			for _, v := range h.fetchedVecs() {
				v.WithLabelValues(t.Name, door)
			}
		}
		for _, p := range t.Partitions {
			ps := strconv.Itoa(p.Partition)
			for _, v := range h.topicVecs() {
				v.WithLabelValues(t.Name, ps)
			}
		}
		if err != nil {
			keepSubsOf[t.Name] = true
			continue
		}
		for _, s := range subs {
			liveSubs[[2]string{t.Name, s.Name}] = true
			var vecs []*prometheus.CounterVec
			switch s.Config.Kind {
			case engine.KindQueue:
				vecs = h.queueVecs()
			case engine.KindStream:
				vecs = h.streamVecs()
			}
			for _, v := range vecs {
				v.WithLabelValues(t.Name, s.Name)
			}
			h.endToEnd.get(t.Name, string(s.Config.Kind))
		}
	}
	for t := range hadTopics {
		if !liveTopics[t] {
			for _, v := range append(h.topicVecs(), h.fetchedVecs()...) {
				v.DeletePartialMatch(prometheus.Labels{"topic": t})
			}
			h.publishLatency.DeleteLabelValues(t)
			for _, v := range h.ephemeralVecs() {
				v.DeleteLabelValues(t)
			}
			h.endToEnd.deleteTopic(t)
		}
	}
	for s := range hadSubs {
		if !liveSubs[s] && !keepSubsOf[s[0]] {
			for _, v := range h.subscriptionVecs() {
				v.DeleteLabelValues(s[0], s[1])
			}
		}
	}
}

// OnPublish implements engine.PublishHook.
func (h *Hooks) OnPublish(topic string, partition, messages, bytes int) {
	p := strconv.Itoa(partition)
	h.publishedMessages.WithLabelValues(topic, p).Add(float64(messages))
	h.publishedBytes.WithLabelValues(topic, p).Add(float64(bytes))
}

// OnPublishLatency implements engine.PublishLatencyHook.
func (h *Hooks) OnPublishLatency(topic string, took time.Duration) {
	h.publishLatency.WithLabelValues(topic).Observe(took.Seconds())
}

// OnFsync implements engine.FsyncHook.
func (h *Hooks) OnFsync(topic string, partition int, took time.Duration, err error) {
	if err != nil {
		h.fsyncErrors.Inc()
		return
	}
	h.fsyncLatency.Observe(took.Seconds())
}

// OnDeliver implements engine.DeliverHook.
func (h *Hooks) OnDeliver(topic, subscription string, deliveries, redeliveries, bytes int) {
	h.deliveries.WithLabelValues(topic, subscription).Add(float64(deliveries))
	h.deliveredBytes.WithLabelValues(topic, subscription).Add(float64(bytes))
	h.redeliveries.WithLabelValues(topic, subscription).Add(float64(redeliveries))
}

// OnFetch implements engine.FetchHook.
func (h *Hooks) OnFetch(topic, sub string, kind engine.SubscriptionKind, messages, bytes int) {
	if kind == engine.KindEphemeral {
		h.ephemeralMessages.WithLabelValues(topic).Add(float64(messages))
		h.ephemeralBytes.WithLabelValues(topic).Add(float64(bytes))
		return
	}
	h.deliveries.WithLabelValues(topic, sub).Add(float64(messages))
	h.deliveredBytes.WithLabelValues(topic, sub).Add(float64(bytes))
}

// OnDeliveryLatency implements engine.DeliveryLatencyHook: one lock and
// one observation per age of the take, not per message.
func (h *Hooks) OnDeliveryLatency(topic string, kind engine.SubscriptionKind, ages engine.Ages) {
	hist := h.endToEnd.get(topic, string(kind))
	hist.mu.Lock()
	defer hist.mu.Unlock()
	ages.Each(func(age time.Duration, n int) { hist.observeLocked(age.Seconds(), uint64(n)) })
}

// OnAck implements engine.AckHook.
func (h *Hooks) OnAck(topic, subscription string, acked int) {
	h.acks.WithLabelValues(topic, subscription).Add(float64(acked))
}

// OnNack implements engine.AckHook.
func (h *Hooks) OnNack(topic, subscription string, nacked int) {
	h.nacks.WithLabelValues(topic, subscription).Add(float64(nacked))
}

// OnDeadLetter implements engine.DeadLetterHook.
func (h *Hooks) OnDeadLetter(topic, subscription string, messages int) {
	h.deadLetters.WithLabelValues(topic, subscription).Add(float64(messages))
}

// OnPurge implements engine.PurgeHook.
func (h *Hooks) OnPurge(topic, subscription string, kind engine.SubscriptionKind, messages int64) {
	h.purged.WithLabelValues(topic, subscription).Add(float64(messages))
}

// OnRebalance implements engine.RebalanceHook.
func (h *Hooks) OnRebalance(topic, subscription string, generation int64, members int) {
	h.rebalances.WithLabelValues(topic, subscription).Inc()
}

func (h *Hooks) topicVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{h.publishedMessages, h.publishedBytes}
}

func (h *Hooks) queueVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{h.deliveries, h.deliveredBytes, h.redeliveries, h.acks, h.nacks, h.deadLetters, h.purged}
}

func (h *Hooks) streamVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{h.deliveries, h.deliveredBytes, h.rebalances, h.purged}
}

func (h *Hooks) subscriptionVecs() []*prometheus.CounterVec {
	return append(h.queueVecs(), h.rebalances)
}

func (h *Hooks) fetchedVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{h.fetchedMessages, h.fetchedBytes}
}

// Fetched returns the callback a front door tells what it answered to
// reads that name no subscription of the broker's (the Kafka door's
// Fetch), per topic. The door's series exist from 0 for every topic from
// the next scrape on.
func (h *Hooks) Fetched(door string) func(topic string, messages, bytes int) {
	h.mu.Lock()
	h.fetchedDoors = append(h.fetchedDoors, door)
	h.mu.Unlock()
	return func(topic string, messages, bytes int) {
		h.fetchedMessages.WithLabelValues(topic, door).Add(float64(messages))
		h.fetchedBytes.WithLabelValues(topic, door).Add(float64(bytes))
	}
}

func (h *Hooks) ephemeralVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{h.ephemeralMessages, h.ephemeralBytes}
}

// seen lists the topics and subscriptions that have series now.
func (h *Hooks) seen() (topics map[string]bool, subs map[[2]string]bool) {
	topics, subs = map[string]bool{}, map[[2]string]bool{}
	read := func(vecs []*prometheus.CounterVec, each func(labels map[string]string)) {
		for _, v := range vecs {
			ch := make(chan prometheus.Metric, 64)
			go func() { v.Collect(ch); close(ch) }()
			for m := range ch {
				var pb dto.Metric
				if m.Write(&pb) != nil {
					continue
				}
				ls := map[string]string{}
				for _, lp := range pb.GetLabel() {
					ls[lp.GetName()] = lp.GetValue()
				}
				each(ls)
			}
		}
	}
	read(append(append(h.topicVecs(), h.ephemeralVecs()...), h.fetchedVecs()...), func(ls map[string]string) { topics[ls["topic"]] = true })
	for t := range h.endToEnd.topics() {
		topics[t] = true
	}
	read(h.subscriptionVecs(), func(ls map[string]string) { subs[[2]string{ls["topic"], ls["subscription"]}] = true })
	return topics, subs
}

// namespace prefixes every series Ferry exports.
const namespace = "ferry"
