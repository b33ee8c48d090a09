package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		addr string
		opts []client.Option
	}{
		{"", nil},
		{"ftp://x", nil},
		{"127.0.0.1:1", []client.Option{client.WithCredit(0)}},
		{"127.0.0.1:1", []client.Option{client.WithReconnectBackoff(time.Second, time.Millisecond)}},
		{"127.0.0.1:1", []client.Option{client.WithMaxOutstanding(0, 1)}},
		{"127.0.0.1:1", []client.Option{client.WithPublishLinger(-1)}},
		{"127.0.0.1:1", []client.Option{client.WithLogger(nil)}},
	} {
		if c, err := client.New(tc.addr, tc.opts...); err == nil {
			c.Close()
			t.Errorf("New(%q) with %d options: no error", tc.addr, len(tc.opts))
		}
	}
	c, err := client.New("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTopics(context.Background()); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if _, err := c.PublishAsync(context.Background(), "t", client.Message{}).Result(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("async after Close: %v, want ErrClosed", err)
	}
}

func TestAdmin(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 2, DedupWindow: time.Minute,
		Retention: client.Retention{MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if topic.GetName() != "orders" || len(topic.GetPartitions()) != 2 || topic.GetConfig().GetDedupWindow().AsDuration() != time.Minute {
		t.Fatalf("created %v", topic)
	}
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{}); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := c.CreateTopic(ctx, "bad name!", client.TopicConfig{}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad name: %v", err)
	}
	createTopic(t, c, "audit", 1)
	topics, err := c.ListTopics(ctx)
	if err != nil || len(topics) != 2 || topics[0].GetName() != "audit" {
		t.Fatalf("list: %v %v", topics, err)
	}
	fsync := "never"
	topic, err = c.AlterTopic(ctx, "orders", client.TopicChanges{Fsync: &fsync})
	if err != nil || topic.GetConfig().GetFsync() != "never" || topic.GetConfig().GetRetention().GetMaxAge().AsDuration() != time.Hour {
		t.Fatalf("alter: %v %v", topic, err)
	}
	if topic, err = c.AddPartitions(ctx, "orders", 3); err != nil || len(topic.GetPartitions()) != 3 {
		t.Fatalf("add partitions: %v %v", topic, err)
	}
	if _, err := c.DescribeTopic(ctx, "nope"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("describe unknown: %v", err)
	}

	sub, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{
		Kind: client.KindQueue, StartAt: client.StartEarliest, AckDeadline: 5 * time.Second, MaxDeliveries: 3})
	if err != nil || sub.GetConfig().GetMaxDeliveries() != 3 || sub.GetConfig().GetAckDeadline().AsDuration() != 5*time.Second {
		t.Fatalf("create subscription: %v %v", sub, err)
	}
	createSub(t, c, "orders", "analytics", client.SubscriptionConfig{Kind: client.KindStream})
	subs, err := c.ListSubscriptions(ctx, "orders")
	if err != nil || len(subs) != 2 || subs[0].GetName() != "analytics" {
		t.Fatalf("list subscriptions: %v %v", subs, err)
	}
	if _, err := c.Publish(ctx, "orders", values(5, "m")...); err != nil {
		t.Fatal(err)
	}
	sub, err = c.SeekSubscription(ctx, "orders", "analytics", client.AllPartitions, client.Earliest())
	if err != nil {
		t.Fatal(err)
	}
	var backlog int64
	for _, p := range sub.GetPartitions() {
		backlog += p.GetBacklog()
	}
	if backlog != 5 {
		t.Fatalf("backlog after seek to earliest: %d, want 5 (%v)", backlog, sub)
	}
	if sub, err = c.SeekSubscription(ctx, "orders", "analytics", 0, client.Latest()); err != nil || sub.GetPartitions()[0].GetBacklog() != 0 {
		t.Fatalf("seek partition 0 to latest: %v %v", sub, err)
	}
	if _, err := c.DescribeSubscription(ctx, "orders", "billing"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSubscription(ctx, "orders", "billing"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeSubscription(ctx, "orders", "billing"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("describe deleted subscription: %v", err)
	}
	if err := c.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeTopic(ctx, "orders"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("describe deleted topic: %v", err)
	}
}

func TestPublishSync(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "events", 3)
	at := time.UnixMilli(1_700_000_000_000).UTC()
	res, err := c.Publish(ctx, "events",
		client.Message{Key: []byte("user-1"), Value: []byte("a"), Timestamp: at,
			Headers: []client.Header{{Key: "h", Value: []byte("v")}}, ID: "id-1"},
		client.Message{Key: []byte("user-1"), Value: []byte("b")},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Partition != res[1].Partition || res[1].Offset != res[0].Offset+1 {
		t.Fatalf("same key: %+v", res)
	}
	again, err := c.Publish(ctx, "events", client.Message{Key: []byte("user-1"), Value: []byte("a"), ID: "id-1"})
	if err != nil || !again[0].Duplicate || again[0].Offset != res[0].Offset {
		t.Fatalf("duplicate id: %+v %v", again, err)
	}
	to, err := c.PublishTo(ctx, "events", 2, values(3, "p")...)
	if err != nil || to[0].Partition != 2 || to[2].Offset != to[0].Offset+2 {
		t.Fatalf("publish to: %+v %v", to, err)
	}
	r, err := c.Read(ctx, "events", res[0].Partition, client.AtOffset(res[0].Offset), client.ReadOptions{MaxMessages: 1})
	if err != nil || len(r.Messages) != 1 {
		t.Fatalf("read: %+v %v", r, err)
	}
	m := r.Messages[0]
	if string(m.Value) != "a" || string(m.Key) != "user-1" || m.ID != "id-1" || !m.Timestamp.Equal(at) ||
		m.Topic != "events" || len(m.Headers) != 1 {
		t.Fatalf("read back %+v", m)
	}
	if v, ok := m.Header("h"); !ok || string(v) != "v" {
		t.Fatalf("header: %q %v", v, ok)
	}
	if _, err := c.Publish(ctx, "nope", values(1, "x")...); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := c.PublishTo(ctx, "events", 7, values(1, "x")...); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown partition: %v", err)
	}
	big := client.Message{Value: bytes.Repeat([]byte("x"), 2<<20)}
	if _, err := c.Publish(ctx, "events", big); connect.CodeOf(err) != connect.CodeInvalidArgument && connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("message too large: %v", err)
	}
}

func TestPublishAsync(t *testing.T) {
	_, c := setup(t, client.WithPublishBatchMessages(100))
	ctx := testCtx(t)
	createTopic(t, c, "clicks", 4)
	const n = 5000
	futures := make([]*client.Future, n)
	for i := range n {
		if i%2 == 0 {
			futures[i] = c.PublishAsyncTo(ctx, "clicks", int32(i%4), client.Message{Value: fmt.Appendf(nil, "%d", i)})
		} else {
			futures[i] = c.PublishAsync(ctx, "clicks", client.Message{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	last := map[int32]int64{}
	lastByKey := map[string]int64{}
	for i, f := range futures {
		select {
		case <-f.Done():
		default:
			t.Fatalf("future %d not resolved after Flush", i)
		}
		p, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
		if i%2 == 0 {
			if p.Partition != int32(i%4) {
				t.Fatalf("future %d went to partition %d", i, p.Partition)
			}
			if o, ok := last[p.Partition]; ok && p.Offset <= o {
				t.Fatalf("partition %d: offset %d after %d", p.Partition, p.Offset, o)
			}
			last[p.Partition] = p.Offset
		} else {
			k := fmt.Sprintf("%d/k%d", p.Partition, i%7)
			if o, ok := lastByKey[k]; ok && p.Offset <= o {
				t.Fatalf("key %s: offset %d after %d", k, p.Offset, o)
			}
			lastByKey[k] = p.Offset
		}
	}
	topic, err := c.DescribeTopic(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range topic.GetPartitions() {
		total += p.GetEndOffset()
	}
	if total != n {
		t.Fatalf("stored %d messages, want %d", total, n)
	}

	// A batch the broker refuses fails its futures alone.
	bad := c.PublishAsync(ctx, "nope", client.Message{Value: []byte("x")})
	good := c.PublishAsync(ctx, "clicks", client.Message{Value: []byte("x")})
	if _, err := bad.Wait(ctx); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := good.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPublishAsyncConcurrent(t *testing.T) {
	_, c := setup(t, client.WithMaxOutstanding(300, 1<<20))
	ctx := testCtx(t)
	createTopic(t, c, "logs", 2)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			var fs []*client.Future
			for i := range 500 {
				fs = append(fs, c.PublishAsync(ctx, "logs", client.Message{Key: fmt.Appendf(nil, "g%d", g), Value: fmt.Appendf(nil, "%d", i)}))
			}
			var prev int64 = -1
			for _, f := range fs {
				p, err := f.Wait(ctx)
				if err != nil {
					errs <- err
					return
				}
				if p.Offset <= prev {
					errs <- fmt.Errorf("goroutine %d: offset %d after %d", g, p.Offset, prev)
					return
				}
				prev = p.Offset
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestPublishAsyncBackpressure(t *testing.T) {
	// A linger of an hour keeps messages outstanding until Flush.
	_, c := setup(t, client.WithPublishLinger(time.Hour), client.WithMaxOutstanding(3, 1<<20))
	ctx := testCtx(t)
	createTopic(t, c, "q", 1)
	var fs []*client.Future
	for i := range 3 {
		fs = append(fs, c.PublishAsync(ctx, "q", client.Message{Value: fmt.Appendf(nil, "%d", i)}))
	}
	// The fourth blocks until its context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := c.PublishAsync(short, "q", client.Message{Value: []byte("x")}).Result(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish past the limit: %v, want deadline exceeded", err)
	}
	cancel()
	// A blocked publish goes on once acknowledgements make room.
	blocked := make(chan *client.Future)
	go func() { blocked <- c.PublishAsync(ctx, "q", client.Message{Value: []byte("3")}) }()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if _, err := f.Result(); err != nil {
			t.Fatal(err)
		}
	}
	f := <-blocked
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := f.Result(); err != nil || p.Offset != 3 {
		t.Fatalf("blocked publish: %+v %v", p, err)
	}

	// Without blocking, the limit fails at once.
	_, c2 := setup(t, client.WithPublishLinger(time.Hour), client.WithMaxOutstanding(2, 1<<20), client.WithBlockOnFull(false))
	createTopic(t, c2, "q", 1)
	c2.PublishAsync(ctx, "q", client.Message{Value: []byte("a")})
	c2.PublishAsync(ctx, "q", client.Message{Value: []byte("b")})
	if _, err := c2.PublishAsync(ctx, "q", client.Message{Value: []byte("c")}).Result(); !errors.Is(err, client.ErrTooManyOutstanding) {
		t.Fatalf("non-blocking publish past the limit: %v", err)
	}
	// The byte limit counts too; one message larger than it passes alone.
	_, c3 := setup(t, client.WithPublishLinger(time.Hour), client.WithMaxOutstanding(100, 10), client.WithBlockOnFull(false))
	createTopic(t, c3, "q", 1)
	big := c3.PublishAsync(ctx, "q", client.Message{Value: bytes.Repeat([]byte("x"), 20)})
	if _, err := c3.PublishAsync(ctx, "q", client.Message{Value: []byte("y")}).Result(); !errors.Is(err, client.ErrTooManyOutstanding) {
		t.Fatalf("publish past the byte limit: %v", err)
	}
	// Close flushes.
	if err := c3.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := big.Result(); err != nil {
		t.Fatalf("message flushed by Close: %v", err)
	}
}

// Over HTTP/1.1, unary calls and server streams work; the publish stream
// cannot, and PublishAsync fails instead of retrying for ever.
func TestHTTP1(t *testing.T) {
	s, _ := setup(t)
	c := newClient(t, s, client.WithHTTPClient(&http.Client{Transport: &http.Transport{}}))
	ctx := testCtx(t)
	createTopic(t, c, "q", 1)
	createSub(t, c, "q", "s", client.SubscriptionConfig{Kind: client.KindQueue})
	q, err := c.ConsumeQueue(ctx, "q", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "q", client.Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if d, err := q.Next(ctx); err != nil || string(d.Message.Value) != "x" {
		t.Fatalf("consume over HTTP/1.1: %v %v", d, err)
	}
	if _, err := c.PublishAsync(ctx, "q", client.Message{Value: []byte("y")}).Wait(ctx); err == nil || !strings.Contains(err.Error(), "505") {
		t.Fatalf("async publish over HTTP/1.1: %v", err)
	}
}
