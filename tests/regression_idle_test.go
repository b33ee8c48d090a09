package tests

// Regression tests for bugs a review of the native API found. Each test's
// comment says what went wrong before the fix, in the present tense of the
// review.

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/server"
)

// TestRegressionIdleStreamKilledBySendTimeout: over HTTP/2 a consume stream
// that is merely idle (nothing to send) for longer than send_timeout is
// reset by the write-deadline timer set before its last send.
func TestRegressionIdleStreamKilledBySendTimeout(t *testing.T) {
	_, base := startServer(t, func(c *server.Config) { c.SendTimeout = server.Duration{Duration: time.Second} })
	hc := h2cClient()
	ctx := context.Background()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	subs := ferryv1connect.NewSubscriptionServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	cons := ferryv1connect.NewConsumeServiceClient(hc, base)
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "idle"})); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.CreateSubscription(ctx, connect.NewRequest(&ferryv1.CreateSubscriptionRequest{Topic: "idle", Name: "w",
		Config: &ferryv1.SubscriptionConfig{Kind: ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE}})); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := cons.ConsumeQueue(sctx, connect.NewRequest(&ferryv1.ConsumeQueueRequest{Topic: "idle", Subscription: "w", Credit: 10}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Receive() {
		t.Fatal(st.Err())
	}
	time.Sleep(2500 * time.Millisecond) // idle, client reading
	if _, err := pub.Publish(ctx, connect.NewRequest(&ferryv1.PublishRequest{Topic: "idle",
		Messages: []*ferryv1.PublishMessage{{Value: []byte("x")}}})); err != nil {
		t.Fatal(err)
	}
	if !st.Receive() {
		t.Fatalf("idle stream ended though the client was reading all along: %v", st.Err())
	}
	if n := len(st.Msg().Deliveries); n != 1 {
		t.Fatalf("got %d deliveries", n)
	}
}

// TestRegressionIdleStreamHTTP1: the same idle consume stream, over HTTP/1.1
// with Connect's JSON framing (curl).
func TestRegressionIdleStreamHTTP1(t *testing.T) {
	_, base := startServer(t, func(c *server.Config) { c.SendTimeout = server.Duration{Duration: time.Second} })
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "idle1"})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{"topic": "idle1", "name": "w",
		"config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openStream(t, ctx, base, "ferry.v1.ConsumeService/ConsumeQueue", map[string]any{"topic": "idle1", "subscription": "w", "credit": 10})
	if _, err := st.next(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "idle1", "messages": []any{map[string]any{"text": "a"}}})
	m, err := st.next()
	if err != nil {
		t.Fatalf("idle HTTP/1.1 stream: %v", err)
	}
	t.Logf("got %v", m)
}
