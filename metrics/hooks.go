package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/engine"
)

// Hooks counts engine events. It implements engine.PublishHook,
// engine.DeliverHook, engine.AckHook, engine.DeadLetterHook and
// engine.RebalanceHook; hand it to engine.Open in Options.Hooks.
//
// Labels are the topic, partition and subscription: their number is set by
// the operator's configuration, never by traffic or clients.
type Hooks struct {
	publishedMessages *prometheus.CounterVec
	publishedBytes    *prometheus.CounterVec
	deliveries        *prometheus.CounterVec
	redeliveries      *prometheus.CounterVec
	acks              *prometheus.CounterVec
	nacks             *prometheus.CounterVec
	deadLetters       *prometheus.CounterVec
	rebalances        *prometheus.CounterVec
}

var (
	_ engine.PublishHook    = (*Hooks)(nil)
	_ engine.DeliverHook    = (*Hooks)(nil)
	_ engine.AckHook        = (*Hooks)(nil)
	_ engine.DeadLetterHook = (*Hooks)(nil)
	_ engine.RebalanceHook  = (*Hooks)(nil)
)

// NewHooks makes the event counters and registers them on reg.
func NewHooks(reg prometheus.Registerer) *Hooks {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	return &Hooks{
		publishedMessages: counter("published_messages_total",
			"Messages stored in a topic partition (dead letters included, in their dead-letter topic).", "topic", "partition"),
		publishedBytes: counter("published_bytes_total",
			"Bytes stored in a topic partition, as encoded record batches.", "topic", "partition"),
		deliveries: counter("subscription_deliveries_total",
			"Messages handed to members of a queue subscription, redeliveries included.", "topic", "subscription"),
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
	}
}

// OnPublish implements engine.PublishHook.
func (h *Hooks) OnPublish(topic string, partition, messages, bytes int) {
	p := strconv.Itoa(partition)
	h.publishedMessages.WithLabelValues(topic, p).Add(float64(messages))
	h.publishedBytes.WithLabelValues(topic, p).Add(float64(bytes))
}

// OnDeliver implements engine.DeliverHook.
func (h *Hooks) OnDeliver(topic, subscription string, deliveries, redeliveries int) {
	h.deliveries.WithLabelValues(topic, subscription).Add(float64(deliveries))
	h.redeliveries.WithLabelValues(topic, subscription).Add(float64(redeliveries))
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

// OnRebalance implements engine.RebalanceHook.
func (h *Hooks) OnRebalance(topic, subscription string, generation int64, members int) {
	h.rebalances.WithLabelValues(topic, subscription).Inc()
}

// namespace prefixes every series Ferry exports.
const namespace = "ferry"
