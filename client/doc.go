// Package client is the Go SDK of Ferry: it publishes to and consumes from
// a Ferry broker over its native API (ferry.v1 over Connect, binary
// protobuf on HTTP/2).
//
// # A short tour
//
// Make one Client and share it; it is safe for concurrent use:
//
//	c, err := client.New("127.0.0.1:8080", client.WithLogger(slog.Default()))
//	defer c.Close()
//
// Administer topics and subscriptions with Go values; descriptions come
// back as the API's messages (ferryv1.Topic, ferryv1.Subscription):
//
//	c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 4, Retention: client.Retention{MaxAge: 7 * 24 * time.Hour}})
//	c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{Kind: client.KindQueue})
//
// Publish waits for the broker's acknowledgement (the message is on disk);
// PublishAsync batches in the background and returns a Future:
//
//	res, err := c.Publish(ctx, "orders", client.Message{Key: []byte("user-1"), Value: body})
//	f := c.PublishAsync(ctx, "orders", client.Message{Value: body})
//	c.Flush(ctx) // or f.Wait(ctx)
//
// Consume a subscription by its kind, with a handler (the Subscribe*
// methods block until ctx ends) or by pulling (the Consume* methods return
// a consumer with Next and a range-over-func iterator):
//
//	// A work queue: each message to one worker, acked when the handler returns nil.
//	c.SubscribeQueue(ctx, "orders", "billing", func(ctx context.Context, d *client.Delivery) error { ... },
//		client.WithConcurrency(8))
//	// A consumer group: partitions split among members, offsets committed.
//	c.SubscribeStream(ctx, "orders", "analytics", func(ctx context.Context, m *client.Message) error { ... })
//	// Live fan-out by pattern, nothing stored.
//	c.SubscribeEphemeral(ctx, "orders.>", func(ctx context.Context, m *client.Message) error { ... })
//
// Replay any partition without a subscription:
//
//	for m, err := range c.Replay(ctx, "orders", 0, client.AtTime(yesterday), client.ReadOptions{}) { ... }
//
// # Errors
//
// The broker's errors are *connect.Error values: test them with
// connect.CodeOf (NotFound for an unknown topic or subscription,
// AlreadyExists, InvalidArgument, FailedPrecondition, OutOfRange,
// ResourceExhausted). The client's own are ErrClosed and
// ErrTooManyOutstanding.
//
// # Flow control
//
// Every consumer has a credit (WithCredit, WithSubscribeCredit, default
// 256; SubscribeQueue's default is max(2 × concurrency, 64)): the broker
// sends at most that many messages ahead of the application. The client
// owes credit back for each message the application takes and pays it
// back in the grant field of the next Ack, Nack or Commit, or with a Grant
// call once half the credit is owed. So no more than the credit ever
// waits in the client, and a consumer that keeps up is never starved. A
// queue's max_in_flight bounds on top of that the deliveries a consumer
// holds unacknowledged.
//
// A queue delivery's ack deadline runs from when the broker sends it, so
// deliveries sent ahead may expire before the application gets to them:
// the queue consumer skips those (the broker delivers them again) rather
// than do their work twice. Keep a queue consumer's credit to what it
// gets through well within the ack deadline.
//
// Requests are bounded too: WithMaxRequestBytes (default 8 MiB) must not
// exceed the broker's max_request_bytes. Async publish batches are cut to
// fit it, and a message too large for one request fails at once.
//
// # Failures
//
// A consumer whose stream fails with a retryable error (Unavailable, a
// broken connection, the broker restarting) attaches again after a backoff
// (WithReconnectBackoff). A queue consumer's unacknowledged deliveries are
// delivered again by the broker; a stream member rejoins and resumes from
// the committed offsets; an ephemeral subscription starts again from
// "now". Errors that will not go away by retrying (NotFound,
// InvalidArgument, PermissionDenied, FailedPrecondition when the
// subscription was deleted, ResourceExhausted for an ephemeral subscriber
// cut off for being slow) end the consumer with that error.
//
// A rebalance moves partitions between stream members; the broker lets go
// of a partition before its old owner hears that it lost it, so the old
// owner cannot commit its last progress there: the new owner receives
// again what was processed since the last commit, up to one auto-commit
// interval (WithAutoCommit) of messages of each partition moved.
//
// Async publishing is at-least-once: batches not acknowledged when the
// publish stream fails are sent again on the next one. Give messages IDs,
// or turn on WithAutoMessageID, and the broker's deduplication window
// stores each once.
//
// # Transport
//
// Streams need HTTP/2. By default the client speaks HTTP/2 only: h2c
// (unencrypted, prior knowledge) for http:// addresses and HTTP/2 over TLS
// for https://. Responses are not compressed unless WithCompression.
package client
