package client_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
)

// TestQueueBatchesFields: deliveries that come as record batches carry
// every field of the message as published (key or none, headers, id,
// deliver-at, timestamp, partition, offset), their count and deadline, and
// an ID of their parts; a take that mixes redeliveries (lower offsets,
// counted twice) with new messages of several partitions decodes the same,
// and everything acknowledged by refs leaves nothing in flight.
func TestQueueBatchesFields(t *testing.T) {
	s := startServerWith(t, nil)
	ctx := testCtx(t)
	c := newClient(t, s)
	createTopic(t, c, "qf", 3)
	createSub(t, c, "qf", "w", client.SubscriptionConfig{Kind: client.KindQueue, AckDeadline: 500 * time.Millisecond})

	type where struct {
		p int32
		o int64
	}
	sent := map[where]client.Message{}
	ts := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli()).UTC()
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m := client.Message{Value: fmt.Appendf(nil, "v%d", i), Timestamp: ts.Add(time.Duration(i%7) * time.Second)}
			if i%4 != 0 {
				m.Key = fmt.Appendf(nil, "k%d", i)
			}
			if i%3 == 0 {
				m.Headers = []client.Header{{Key: "h", Value: fmt.Appendf(nil, "x%d", i)}, {Key: "e", Value: []byte{}}}
			}
			if i%5 == 0 {
				m.ID = fmt.Sprint("id-", i)
			}
			if i%6 == 0 {
				m.DeliverAt = time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli()).UTC()
			}
			ps, err := c.PublishTo(ctx, "qf", int32(i%3), m)
			if err != nil {
				t.Fatal(err)
			}
			sent[where{ps[0].Partition, ps[0].Offset}] = m
		}
	}
	publish(0, 60)

	q, err := c.ConsumeQueue(ctx, "qf", "w", client.WithSubscribeCredit(200))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	check := func(d *client.Delivery, count int32) {
		t.Helper()
		m, ok := sent[where{d.Message.Partition, d.Message.Offset}]
		if !ok {
			t.Fatalf("delivery of %d/%d was never published", d.Message.Partition, d.Message.Offset)
		}
		got := d.Message
		if got.Topic != "qf" || !bytes.Equal(got.Value, m.Value) || (got.Key == nil) != (m.Key == nil) || !bytes.Equal(got.Key, m.Key) ||
			got.ID != m.ID || !got.DeliverAt.Equal(m.DeliverAt) || !got.Timestamp.Equal(m.Timestamp) ||
			!slices.EqualFunc(got.Headers, m.Headers, func(a, b client.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
			t.Fatalf("delivery of %d/%d: %+v, published %+v", got.Partition, got.Offset, got, m)
		}
		if d.Count != count || d.ID != fmt.Sprintf("%d-%d-%d", got.Partition, got.Offset, count) ||
			d.Deadline.Before(time.Now()) || d.Deadline.After(time.Now().Add(time.Second)) {
			t.Fatalf("delivery of %d/%d: id %q count %d deadline %v, want count %d", got.Partition, got.Offset, d.ID, d.Count, d.Deadline, count)
		}
	}
	var first []*client.Delivery
	for range 60 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check(d, 1)
		first = append(first, d)
	}
	// Acknowledge every other one; the rest come again, with new messages.
	var ack []*client.Delivery
	for i, d := range first {
		if i%2 == 0 {
			ack = append(ack, d)
		}
	}
	if err := q.Ack(ctx, ack...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	publish(60, 90)
	again := map[where]bool{}
	var rest []*client.Delivery
	for range 30 + 30 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := where{d.Message.Partition, d.Message.Offset}
		if again[w] {
			t.Fatalf("%v delivered twice", w)
		}
		again[w] = true
		count := int32(1)
		if d.Message.Offset < 20 {
			count = 2
		}
		check(d, count)
		rest = append(rest, d)
	}
	if err := q.Ack(ctx, rest...); err != nil {
		t.Fatal(err)
	}
	info, err := c.DescribeSubscription(ctx, "qf", "w")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.GetPartitions() {
		if p.GetInFlight() != 0 || p.GetBacklog() != 0 {
			t.Fatalf("partition %d: %d in flight, backlog %d", p.GetPartition(), p.GetInFlight(), p.GetBacklog())
		}
	}
}
