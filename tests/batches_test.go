package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/storage/record"
)

// TestRecordBatchesSpendCredit: a Subscribe stream that asks for
// record_batches receives stored batches whose ranges count against its
// credit record by record, as messages would: with credit 7 over 50
// messages published in one batch it gets 7 records, then after a grant of
// 10, 10 more, in order, with keys, headers and ids intact.
func TestRecordBatchesSpendCredit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var msgs []*ferryv1.PublishMessage
	for i := range 50 {
		msgs = append(msgs, &ferryv1.PublishMessage{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i),
			Id: fmt.Sprint("id", i), Headers: []*ferryv1.Header{{Key: "h", Value: []byte("x")}}})
	}
	st, cons, id := subscribeRecordBatches(t, ctx, "rb", 7, msgs)
	next := int64(0)
	// receive takes responses until want records came, checking each.
	receive := func(want int64) {
		t.Helper()
		for next < want {
			if !st.Receive() {
				t.Fatalf("stream ended at %d: %v", next, st.Err())
			}
			if len(st.Msg().Messages) > 0 {
				t.Fatal("messages sent to a consumer that asked for record batches")
			}
			for _, rb := range st.Msg().Batches {
				if rb.FromOffset != next || rb.UntilOffset > want {
					t.Fatalf("batches [%d,%d), expected from %d and at most to %d", rb.FromOffset, rb.UntilOffset, next, want)
				}
				err := record.Split(rb.Data, func(h record.Header, batch []byte) error {
					return record.Records(batch, record.Limits{}, func(r record.Record) error {
						if r.Offset < rb.FromOffset || r.Offset >= rb.UntilOffset {
							return nil
						}
						if string(r.Value) != fmt.Sprint("v", r.Offset) || string(r.Key) != fmt.Sprint("k", r.Offset) ||
							len(r.Headers) != 2 || string(r.Headers[1].Value) != fmt.Sprint("id", r.Offset) {
							return fmt.Errorf("record %d: %q %q %v", r.Offset, r.Key, r.Value, r.Headers)
						}
						next = r.Offset + 1
						return nil
					})
				})
				if err != nil || next != rb.UntilOffset {
					t.Fatalf("decoded to %d of [%d,%d): %v", next, rb.FromOffset, rb.UntilOffset, err)
				}
			}
		}
	}
	// A response reaching past the credit fails receive.
	receive(7)
	if _, err := cons.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: id, Credit: 10})); err != nil {
		t.Fatal(err)
	}
	receive(17)
	// Exactly 17: a further grant of 1 brings record 17 alone.
	if _, err := cons.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: id, Credit: 1})); err != nil {
		t.Fatal(err)
	}
	receive(18)
}

// TestRecordBatchesSmallTakesGoDecoded: a take of a few records from a
// large stored batch (credit 5 against one batch of 1,000 records of 100
// bytes) comes decoded, as messages, not as the whole batch again and
// again; in order, every record once.
func TestRecordBatchesSmallTakesGoDecoded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var msgs []*ferryv1.PublishMessage
	for i := range 1000 {
		msgs = append(msgs, &ferryv1.PublishMessage{Value: fmt.Appendf(make([]byte, 0, 100), "%-100d", i)})
	}
	st, cons, id := subscribeRecordBatches(t, ctx, "big", 5, msgs)
	next := int64(0)
	for next < 1000 {
		if !st.Receive() {
			t.Fatalf("stream ended at %d: %v", next, st.Err())
		}
		if len(st.Msg().Batches) > 0 {
			t.Fatalf("at %d: a take of at most 5 records sent as a batch of 1,000", next)
		}
		for _, m := range st.Msg().Messages {
			if m.Offset != next {
				t.Fatalf("offset %d, expected %d", m.Offset, next)
			}
			next++
		}
		if _, err := cons.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: id, Credit: int32(len(st.Msg().Messages))})); err != nil {
			t.Fatal(err)
		}
	}
}

// subscribeRecordBatches starts a server, subscribes to a new topic with
// record batches and the given credit, publishes msgs to it in one batch,
// and returns the stream (past its first response), the consume client
// and the consumer id.
func subscribeRecordBatches(t *testing.T, ctx context.Context, topic string, credit int32, msgs []*ferryv1.PublishMessage) (
	*connect.ServerStreamForClient[ferryv1.SubscribeResponse], ferryv1connect.ConsumeServiceClient, string) {
	_, base := startServer(t)
	hc := h2cClient()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	cons := ferryv1connect.NewConsumeServiceClient(hc, base)
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: topic})); err != nil {
		t.Fatal(err)
	}
	st, err := cons.Subscribe(ctx, connect.NewRequest(&ferryv1.SubscribeRequest{Pattern: topic, Credit: credit, RecordBatches: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if !st.Receive() {
		t.Fatal(st.Err())
	}
	id := st.Msg().ConsumerId
	if _, err := pub.Publish(ctx, connect.NewRequest(&ferryv1.PublishRequest{Topic: topic, Messages: msgs})); err != nil {
		t.Fatal(err)
	}
	return st, cons, id
}
