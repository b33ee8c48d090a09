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

// TestRegressionPublishStreamKeyedThenPinnedOrder: one stream sends, to a
// 1-partition topic, a keyed batch (its key can only go to partition 0)
// and then a batch pinned to partition 0. Both are "to the same topic and
// partition", but the server groups them apart ({topic, keyed} vs
// {topic, 0}) and stores the groups concurrently, so the later batch may
// get the lower offset.
func TestRegressionPublishStreamKeyedThenPinnedOrder(t *testing.T) {
	_, base := startServer(t, func(c *server.Config) { c.Fsync = "always" })
	hc := h2cClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "ord"})); err != nil {
		t.Fatal(err)
	}
	st := pub.PublishStream(ctx)
	const pairs = 500
	zero := int32(0)
	go func() {
		for i := range pairs {
			st.Send(&ferryv1.PublishStreamRequest{Sequence: uint64(2 * i), Topic: "ord",
				Messages: []*ferryv1.PublishMessage{{Key: []byte("k"), Value: []byte("keyed")}}})
			st.Send(&ferryv1.PublishStreamRequest{Sequence: uint64(2*i + 1), Topic: "ord", Partition: &zero,
				Messages: []*ferryv1.PublishMessage{{Value: []byte("pinned")}}})
		}
		st.CloseRequest()
	}()
	offs := make([]int64, 2*pairs)
	for range 2 * pairs {
		r, err := st.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if r.Error != nil {
			t.Fatalf("seq %d: %v", r.Sequence, r.Error)
		}
		offs[r.Sequence] = r.Results[0].Offset
	}
	inv := 0
	for i := 0; i+1 < len(offs); i++ {
		if offs[i] > offs[i+1] {
			inv++
		}
	}
	if inv > 0 {
		t.Fatalf("%d of %d consecutive batches to partition 0 stored out of the order sent", inv, 2*pairs-1)
	}
}
