package engine

import "time"

// Hook receives engine events. A hook implements any of the event
// interfaces below (PublishHook, ...); the engine calls those it has. Hooks
// run on the engine's goroutines: keep them quick and never call back into
// the broker from one.
type Hook any

// PublishHook is told of every stored batch of messages.
type PublishHook interface {
	OnPublish(topic string, partition int, messages int, bytes int)
}

// PublishLatencyHook is told how long each successful publish took: from
// the call (Publish, PublishTo, PublishBatch, PublishBatchAsync) to its
// messages being durable under the topic's fsync policy, which is when a
// client is answered. A publish of duplicates only counts too.
type PublishLatencyHook interface {
	OnPublishLatency(topic string, took time.Duration)
}

// FsyncHook is told of every fsync of a partition's appended data: how
// long it took and its error (nil when it succeeded). Under the fsync
// policy "always" one fsync covers the appends of every publish waiting
// on it (group commit).
type FsyncHook interface {
	OnFsync(topic string, partition int, took time.Duration, err error)
}

// DeadLetterHook is told of messages moved to a dead-letter topic.
type DeadLetterHook interface {
	OnDeadLetter(topic, subscription string, messages int)
}

// RebalanceHook is told when a stream subscription's membership changes.
type RebalanceHook interface {
	OnRebalance(topic, subscription string, generation int64, members int)
}

// DeliverHook is told of queue deliveries: how many, how many of them
// were redeliveries (a count above 1), and their bytes as stored (each
// message's share of its record batch, as PublishHook counts bytes).
type DeliverHook interface {
	OnDeliver(topic, subscription string, deliveries, redeliveries, bytes int)
}

// FetchHook is told of messages handed to the members of stream
// subscriptions and to ephemeral subscribers (queue deliveries go to
// DeliverHook): once per take and partition, with how many messages and
// their share of the stored batches' bytes (see Ages for what a take is).
// sub is "" and kind KindEphemeral for an ephemeral subscription. A
// message fetched again (after a rebalance or a seek) counts again.
// Reads without a subscription (Read, the Kafka door's fetches) are not
// told.
type FetchHook interface {
	OnFetch(topic, sub string, kind SubscriptionKind, messages, bytes int)
}

// DeliveryLatencyHook is told how old delivered messages were when they
// were handed to a consumer: once per take of a queue member, and once per
// take and partition of a stream member or an ephemeral subscriber, never
// once per message. ages is valid during the call only.
type DeliveryLatencyHook interface {
	OnDeliveryLatency(topic string, kind SubscriptionKind, ages Ages)
}

// AckHook is told of acknowledged and negatively acknowledged queue
// deliveries.
type AckHook interface {
	OnAck(topic, subscription string, acked int)
	OnNack(topic, subscription string, nacked int)
}

// PurgeHook is told of each purge of a subscription (see
// Broker.PurgeSubscription): how many messages it dropped, 0 included.
type PurgeHook interface {
	OnPurge(topic, subscription string, kind SubscriptionKind, messages int64)
}

// hooks holds the hooks by event, found once at Open.
type hooks struct {
	publish    []PublishHook
	latency    []PublishLatencyHook
	fsync      []FsyncHook
	deadLetter []DeadLetterHook
	rebalance  []RebalanceHook
	deliver    []DeliverHook
	ack        []AckHook
	purge      []PurgeHook

	fetch           []FetchHook
	deliveryLatency []DeliveryLatencyHook
}

func newHooks(hs []Hook) hooks {
	var h hooks
	for _, x := range hs {
		if p, ok := x.(PublishHook); ok {
			h.publish = append(h.publish, p)
		}
		if l, ok := x.(PublishLatencyHook); ok {
			h.latency = append(h.latency, l)
		}
		if f, ok := x.(FsyncHook); ok {
			h.fsync = append(h.fsync, f)
		}
		if d, ok := x.(DeadLetterHook); ok {
			h.deadLetter = append(h.deadLetter, d)
		}
		if r, ok := x.(RebalanceHook); ok {
			h.rebalance = append(h.rebalance, r)
		}
		if d, ok := x.(DeliverHook); ok {
			h.deliver = append(h.deliver, d)
		}
		if a, ok := x.(AckHook); ok {
			h.ack = append(h.ack, a)
		}
		if p, ok := x.(PurgeHook); ok {
			h.purge = append(h.purge, p)
		}
		if f, ok := x.(FetchHook); ok {
			h.fetch = append(h.fetch, f)
		}
		if l, ok := x.(DeliveryLatencyHook); ok {
			h.deliveryLatency = append(h.deliveryLatency, l)
		}
	}
	return h
}
