package engine

import "errors"

// Errors returned by the engine. Each is wrapped with detail (the topic's
// name, the limit); test them with errors.Is.
var (
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("engine: broker closed")
	// ErrUnknownTopic: no topic has that name.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrTopicExists: a topic of that name exists already.
	ErrTopicExists = errors.New("topic already exists")
	// ErrUnknownSubscription: the topic has no subscription of that name.
	ErrUnknownSubscription = errors.New("unknown subscription")
	// ErrSubscriptionExists: the topic has a subscription of that name.
	ErrSubscriptionExists = errors.New("subscription already exists")
	// ErrUnknownDelivery: an ack, nack or extend named a delivery that is not
	// in flight for that member (already acknowledged, or its deadline
	// passed and it was delivered again).
	ErrUnknownDelivery = errors.New("unknown delivery")
	// ErrMemberClosed: the member left or its subscription was deleted.
	ErrMemberClosed = errors.New("member closed")
	// ErrSlowConsumer: an ephemeral subscriber fell further behind than its
	// buffer and was cut off.
	ErrSlowConsumer = errors.New("slow consumer cut off")
	// ErrNotOwner: a stream member acted on a partition it does not own.
	ErrNotOwner = errors.New("partition not owned by this member")
	// ErrInvalidName: a topic name breaks the rules (1 to 249 characters of
	// A-Z a-z 0-9 . _ -, not "." or "..").
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidConfig: a setting is out of range.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrUnknownPartition: the partition does not exist.
	ErrUnknownPartition = errors.New("unknown partition")
	// ErrInvalidMessage: a message is malformed (a reserved header name).
	ErrInvalidMessage = errors.New("invalid message")
	// ErrMessageTooLarge: a message exceeds its topic's max_message_bytes.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrDiskFull: the disk is full; nothing was stored.
	ErrDiskFull = errors.New("disk full")
	// ErrOffsetOutOfRange: a read asked for an offset that is not stored.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrDataFolderGone: the data folder was deleted, moved or replaced
	// while the broker ran. Its open files belong to the old folder, and
	// whatever it created by name would land in the new one, so it stops
	// serving: every call fails with this error until it is restarted.
	ErrDataFolderGone = errors.New("data folder deleted, moved or replaced while the broker ran")
)
