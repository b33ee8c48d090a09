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
)

// TestRegressionCommitInvalidAppliesGrant: consume.proto says a grant is not
// applied when the call fails with invalid_argument. Commit applies the
// grant first and then fails with invalid_argument for an offset past the
// end: the credit is raised all the same (and the Go client, following
// the rule, gives the grant back and grants it again).
func TestRegressionCommitInvalidAppliesGrant(t *testing.T) {
	_, base := startServer(t)
	hc := h2cClient()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	subs := ferryv1connect.NewSubscriptionServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	cons := ferryv1connect.NewConsumeServiceClient(hc, base)
	topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "g"}))
	subs.CreateSubscription(ctx, connect.NewRequest(&ferryv1.CreateSubscriptionRequest{Topic: "g", Name: "s",
		Config: &ferryv1.SubscriptionConfig{Kind: ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM, StartAt: ferryv1.StartPosition_START_POSITION_EARLIEST}}))
	var msgs []*ferryv1.PublishMessage
	for range 3 {
		msgs = append(msgs, &ferryv1.PublishMessage{Value: []byte("m")})
	}
	if _, err := pub.Publish(ctx, connect.NewRequest(&ferryv1.PublishRequest{Topic: "g", Messages: msgs})); err != nil {
		t.Fatal(err)
	}
	st, err := cons.ConsumeStream(ctx, connect.NewRequest(&ferryv1.ConsumeStreamRequest{Topic: "g", Subscription: "s", Credit: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Receive()
	id := st.Msg().ConsumerId
	got := 0
	for got < 1 && st.Receive() {
		got += len(st.Msg().Messages)
	}
	_, err = cons.Commit(ctx, connect.NewRequest(&ferryv1.CommitRequest{ConsumerId: id, Offsets: map[int32]int64{0: 1000}, Grant: 1}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("commit past the end: %v", err)
	}
	// Credit should still be 0: nothing more may arrive.
	more := make(chan int, 1)
	go func() {
		for st.Receive() {
			if n := len(st.Msg().Messages); n > 0 {
				more <- n
				return
			}
		}
	}()
	select {
	case n := <-more:
		t.Fatalf("the server sent %d more message(s) after a Commit that failed with invalid_argument: its grant was applied", n)
	case <-time.After(1500 * time.Millisecond):
	}
}
