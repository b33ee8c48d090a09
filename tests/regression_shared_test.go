package tests

// Regression tests for bugs a review of the native API found. Each test's
// comment says what went wrong before the fix, in the present tense of the
// review.

import (
	"net/http"
	"testing"
)

// TestRegressionSharedMemberAfterTopicRecreated: Receive's shared member is
// forgotten when the subscription is deleted with DeleteSubscription, but
// not when the topic (and so the subscription) is deleted with
// DeleteTopic. After the topic and subscription are recreated under the
// same names, the next Receive fails with failed_precondition although the
// subscription exists.
func TestRegressionSharedMemberAfterTopicRecreated(t *testing.T) {
	_, base := startServer(t)
	create := func() {
		mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "rt"})
		mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{"topic": "rt", "name": "w",
			"config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE"}})
	}
	create()
	mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{"topic": "rt", "subscription": "w"})
	mustCall(t, base, "ferry.v1.TopicService/DeleteTopic", map[string]any{"name": "rt"})
	create()
	mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "rt", "messages": []any{map[string]any{"text": "a"}}})
	status, out := call(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{"topic": "rt", "subscription": "w"})
	if status != http.StatusOK {
		t.Fatalf("Receive on the recreated subscription: %d %v", status, out)
	}
}
