package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/storage/record"
)

// TestQueueDeliveryBatches drives ConsumeQueue with record_batches through
// the raw API: deliveries come as DeliveryBatch columns (records at their
// offsets, with keys, headers, ids and counts), spend the credit record by
// record, skip what is acknowledged already, and are acknowledged by refs.
// A malformed refs column is refused whole (InvalidArgument, nothing
// acknowledged); a ref with a stale count is NotFound while the others in
// its call are acknowledged.
func TestQueueDeliveryBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, base := startServer(t)
	hc := h2cClient()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	subs := ferryv1connect.NewSubscriptionServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	cons := ferryv1connect.NewConsumeServiceClient(hc, base)
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "qb"})); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.CreateSubscription(ctx, connect.NewRequest(&ferryv1.CreateSubscriptionRequest{Topic: "qb", Name: "w",
		Config: &ferryv1.SubscriptionConfig{Kind: ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE}})); err != nil {
		t.Fatal(err)
	}
	var msgs []*ferryv1.PublishMessage
	for i := range 20 {
		msgs = append(msgs, &ferryv1.PublishMessage{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i),
			Id: fmt.Sprint("id", i), Headers: []*ferryv1.Header{{Key: "h", Value: []byte("x")}}})
	}
	if _, err := pub.Publish(ctx, connect.NewRequest(&ferryv1.PublishRequest{Topic: "qb", Messages: msgs})); err != nil {
		t.Fatal(err)
	}

	// delivered is one received delivery: its offset and count.
	type delivered struct{ offset, count int64 }
	// take receives responses until want deliveries came, checking each.
	take := func(st *connect.ServerStreamForClient[ferryv1.ConsumeQueueResponse], want int) []delivered {
		t.Helper()
		var got []delivered
		for len(got) < want {
			if !st.Receive() {
				t.Fatalf("stream ended after %d deliveries: %v", len(got), st.Err())
			}
			if len(st.Msg().Deliveries) > 0 {
				t.Fatal("deliveries sent to a consumer that asked for record batches")
			}
			for _, b := range st.Msg().Batches {
				if b.Topic != "qb" || b.Partition != 0 || b.Deadline == nil || !b.Deadline.AsTime().After(time.Now()) {
					t.Fatalf("batch of %s/%d, deadline %v", b.Topic, b.Partition, b.Deadline)
				}
				i := 0
				err := record.Split(b.Records, func(h record.Header, batch []byte) error {
					return record.Records(batch, record.Limits{}, func(r record.Record) error {
						if string(r.Value) != fmt.Sprint("v", r.Offset) || string(r.Key) != fmt.Sprint("k", r.Offset) ||
							len(r.Headers) != 2 || string(r.Headers[1].Value) != fmt.Sprint("id", r.Offset) {
							return fmt.Errorf("record %d: %q %q %v", r.Offset, r.Key, r.Value, r.Headers)
						}
						got = append(got, delivered{r.Offset, int64(b.Counts[i])})
						i++
						return nil
					})
				})
				if err != nil || i != len(b.Counts) {
					t.Fatalf("%d records for %d counts: %v", i, len(b.Counts), err)
				}
			}
		}
		if len(got) != want {
			t.Fatalf("%d deliveries, credit %d", len(got), want)
		}
		return got
	}
	open := func(credit int32) (*connect.ServerStreamForClient[ferryv1.ConsumeQueueResponse], string, context.CancelFunc) {
		sctx, stop := context.WithCancel(ctx)
		st, err := cons.ConsumeQueue(sctx, connect.NewRequest(&ferryv1.ConsumeQueueRequest{Topic: "qb", Subscription: "w", Credit: credit, RecordBatches: true}))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Receive() {
			t.Fatal(st.Err())
		}
		return st, st.Msg().ConsumerId, func() { stop(); st.Close() }
	}

	st, id, stop := open(8)
	first := take(st, 8)
	for i, d := range first {
		if d.offset != int64(i) || d.count != 1 {
			t.Fatalf("delivery %d: offset %d count %d", i, d.offset, d.count)
		}
	}
	// Columns of different lengths: refused whole.
	_, err := cons.Ack(ctx, connect.NewRequest(&ferryv1.AckRequest{ConsumerId: id,
		Refs: []*ferryv1.DeliveryRefs{{Partition: 0, Offsets: []int64{0, 1}, Counts: []int32{1}}}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("mismatched refs: %v", err)
	}
	// Acknowledge the even offsets, one of them with a stale count: that
	// one is NotFound, the others are done.
	ack := &ferryv1.DeliveryRefs{Partition: 0}
	for _, d := range first {
		if d.offset%2 == 0 {
			c := int32(d.count)
			if d.offset == 4 {
				c = 2
			}
			ack.Offsets, ack.Counts = append(ack.Offsets, d.offset), append(ack.Counts, c)
		}
	}
	_, err = cons.Ack(ctx, connect.NewRequest(&ferryv1.AckRequest{ConsumerId: id, Refs: []*ferryv1.DeliveryRefs{ack}, Grant: 4}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound {
		t.Fatalf("ack with a stale count: %v", err)
	}
	// The grant of 4 applies: the next 4 messages come.
	next := take(st, 4)
	for i, d := range next {
		if d.offset != int64(8+i) || d.count != 1 {
			t.Fatalf("after the grant, delivery %d: offset %d count %d", i, d.offset, d.count)
		}
	}
	stop()

	// A new consumer gets everything not acknowledged, the first 8's odd
	// offsets and 4 again, counted twice, before the rest: offsets ascend
	// within a batch but are not dense.
	st, _, stop = open(100)
	defer stop()
	again := take(st, 20-3)
	want := []int64{1, 3, 4, 5, 7, 8, 9, 10, 11}
	for i, o := range want {
		if again[i].offset != o || again[i].count != 2 {
			t.Fatalf("redelivery %d: %+v, expected offset %d count 2 (all: %v)", i, again[i], o, again)
		}
	}
	for i, d := range again[len(want):] {
		if d.offset != int64(12+i) || d.count != 1 {
			t.Fatalf("new delivery %d: %+v", i, d)
		}
	}
}
