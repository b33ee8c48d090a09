package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/server"
)

// Regression tests of review findings: each says what went wrong before
// the fix it guards.

// startServerWith starts a broker whose configuration edit changes; it
// is shut down when the test ends.
func startServerWith(t *testing.T, edit func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.Fsync = "never"
	if edit != nil {
		edit(&cfg)
	}
	s, err := server.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

// waitShort waits for f's outcome for 5 seconds: every future of these
// tests resolves at once or after a couple of reconnects.
func waitShort(t *testing.T, ctx context.Context, what string, f *client.Future) (client.Published, error) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := f.Wait(wctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: future unresolved after 5s", what)
	}
	return res, err
}

// A message the topic accepts (max_message_bytes 16 MiB) but larger than
// the broker's max_request_bytes (8 MiB) used to end the publish stream
// with ResourceExhausted; the async publisher resent that batch for ever,
// so neither its future nor any later one (nor Flush, nor Close)
// resolved. It now fails at once, and the next message goes through.
func TestAsyncMessageOverRequestLimitFailsAtOnce(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s)
	ctx := testCtx(t)
	if _, err := c.CreateTopic(ctx, "big", client.TopicConfig{MaxMessageBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	big := c.PublishAsync(ctx, "big", client.Message{Value: bytes.Repeat([]byte("x"), 9<<20)})
	small := c.PublishAsync(ctx, "big", client.Message{Value: []byte("small")})
	select {
	case <-big.Done():
	default:
		t.Fatal("an oversized message's future is not failed at once")
	}
	_, err := waitShort(t, ctx, "big", big)
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "WithMaxRequestBytes") {
		t.Fatalf("big: %v, want InvalidArgument naming WithMaxRequestBytes", err)
	}
	if _, err := waitShort(t, ctx, "small", small); err != nil {
		t.Fatalf("small: %v", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// Messages that each fit in a request but together do not used to be
// batched together (the batch byte limit is the application's, here 32
// MiB) and refused for ever as above. Batches are now cut to fit
// WithMaxRequestBytes.
func TestAsyncBatchesFitRequestLimit(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s, client.WithPublishBatchBytes(32<<20), client.WithPublishLinger(time.Hour))
	ctx := testCtx(t)
	if _, err := c.CreateTopic(ctx, "big", client.TopicConfig{MaxMessageBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	var fs []*client.Future
	for i := range 5 {
		fs = append(fs, c.PublishAsyncTo(ctx, "big", 0, client.Message{Value: bytes.Repeat([]byte{byte('a' + i)}, 3<<20)}))
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Flush(fctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	for i, f := range fs {
		res, err := f.Result()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if res.Offset != int64(i) {
			t.Fatalf("message %d stored at offset %d", i, res.Offset)
		}
	}
}

// With WithMaxRequestBytes set above the broker's max_request_bytes the
// client cannot know a batch is too large; the broker ends the stream
// with ResourceExhausted each time it is sent. The batch now fails after
// the second refusal in a row instead of being resent for ever, and the
// publisher carries on with the next.
func TestAsyncBatchRefusedTwiceFails(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s, client.WithMaxRequestBytes(16<<20))
	ctx := testCtx(t)
	if _, err := c.CreateTopic(ctx, "big", client.TopicConfig{MaxMessageBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	big := c.PublishAsync(ctx, "big", client.Message{Value: bytes.Repeat([]byte("x"), 9<<20)})
	small := c.PublishAsync(ctx, "big", client.Message{Value: []byte("small")})
	if _, err := waitShort(t, ctx, "big", big); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("big: %v, want the broker's ResourceExhausted", err)
	}
	if _, err := waitShort(t, ctx, "small", small); err != nil {
		t.Fatalf("small: %v", err)
	}
}

// Publish fails before sending a request the broker would refuse for its
// size, and names the limit.
func TestPublishOverRequestLimit(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s)
	ctx := testCtx(t)
	if _, err := c.CreateTopic(ctx, "big", client.TopicConfig{MaxMessageBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	five := bytes.Repeat([]byte("x"), 5<<20)
	for _, msgs := range [][]client.Message{
		{{Value: bytes.Repeat([]byte("x"), 9<<20)}},
		{{Value: five}, {Value: five}},
	} {
		_, err := c.Publish(ctx, "big", msgs...)
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "WithMaxRequestBytes") {
			t.Fatalf("publish of %d messages: %v, want InvalidArgument naming WithMaxRequestBytes", len(msgs), err)
		}
	}
	if _, err := c.Publish(ctx, "big", client.Message{Value: five}); err != nil {
		t.Fatal(err)
	}
}

// SubscribeQueue used to prefetch 256 deliveries whatever its concurrency;
// those waiting in the client while a slow handler worked expired, were
// delivered again by the broker and were still handed to the handler: the
// work was done twice (here 57 handler calls for 20 messages, 50 of them
// past their deadline). With a credit sized to the handler (credit /
// concurrency × handler time well within the ack deadline, the rule the
// docs give) nothing expires: each message is handled once.
func TestSubscribeQueueSizedCreditKeepsDeadlines(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s)
	ctx := testCtx(t)
	createTopic(t, c, "pf", 1)
	createSub(t, c, "pf", "w", client.SubscriptionConfig{Kind: client.KindQueue, AckDeadline: time.Second})
	if _, err := c.Publish(ctx, "pf", values(20, "m")...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls, stale := 0, 0
	seen := map[string]int{}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := c.SubscribeQueue(rctx, "pf", "w", func(ctx context.Context, d *client.Delivery) error {
		mu.Lock()
		calls++
		seen[string(d.Message.Value)]++
		if time.Now().After(d.Deadline) {
			stale++
		}
		done := len(seen) == 20
		mu.Unlock()
		time.Sleep(150 * time.Millisecond)
		if done {
			cancel()
		}
		return nil
	}, client.WithSubscribeCredit(2))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 20 || stale != 0 {
		t.Fatalf("20 messages: %d handler calls, %d past their deadline", calls, stale)
	}
}

// With a large credit (the old default) deliveries still expire while
// they wait; the handler is no longer given them. Every message is still
// handled, once its redelivery comes round in time.
func TestSubscribeQueueSkipsExpiredDeliveries(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s)
	ctx := testCtx(t)
	createTopic(t, c, "pf", 1)
	createSub(t, c, "pf", "w", client.SubscriptionConfig{Kind: client.KindQueue, AckDeadline: time.Second})
	if _, err := c.Publish(ctx, "pf", values(20, "m")...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	stale := 0
	seen := map[string]int{}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := c.SubscribeQueue(rctx, "pf", "w", func(ctx context.Context, d *client.Delivery) error {
		mu.Lock()
		seen[string(d.Message.Value)]++
		// Some slack: the deadline may pass between the check in Next
		// and this one.
		if time.Now().After(d.Deadline.Add(20 * time.Millisecond)) {
			stale++
		}
		done := len(seen) == 20
		mu.Unlock()
		time.Sleep(150 * time.Millisecond)
		if done {
			cancel()
		}
		return nil
	}, client.WithSubscribeCredit(256))
	if err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Fatalf("the handler was given %d deliveries past their ack deadline", stale)
	}
	if len(seen) != 20 {
		t.Fatalf("%d of 20 messages handled", len(seen))
	}
}

// QueueConsumer.Next skips what expired in the client's buffer too, and
// hands out the broker's redeliveries instead.
func TestQueueNextSkipsExpiredDeliveries(t *testing.T) {
	s := startServerWith(t, nil)
	c := newClient(t, s)
	ctx := testCtx(t)
	createTopic(t, c, "pf", 1)
	createSub(t, c, "pf", "w", client.SubscriptionConfig{Kind: client.KindQueue, AckDeadline: time.Second})
	q, err := c.ConsumeQueue(ctx, "pf", "w", client.WithSubscribeCredit(10))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := c.Publish(ctx, "pf", values(10, "m")...); err != nil {
		t.Fatal(err)
	}
	first, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(first.Deadline) + 200*time.Millisecond) // the other 9 expire in the buffer
	if err := first.Ack(ctx); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("ack after the deadline: %v, want NotFound", err)
	}
	seen := map[string]bool{}
	for len(seen) < 10 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !time.Now().Before(d.Deadline) || d.Count < 2 {
			t.Fatalf("Next handed out %s, delivery %d, deadline %v ago", d.Message.Value, d.Count, time.Since(d.Deadline))
		}
		seen[string(d.Message.Value)] = true
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Acks of more deliveries than fit in one request go in several calls,
// each within WithMaxRequestBytes, so the broker never refuses one for its
// size (and applies each call's grant).
func TestAckSplitsToRequestLimit(t *testing.T) {
	s := startServerWith(t, nil)
	ctx := testCtx(t)
	var acks, oversized atomic.Int32
	const limit = 1024
	count := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().Procedure == ferryv1connect.ConsumeServiceAckProcedure {
				acks.Add(1)
				if proto.Size(req.Any().(proto.Message)) > limit {
					oversized.Add(1)
				}
			}
			return next(ctx, req)
		}
	})
	c := newClient(t, s, client.WithMaxRequestBytes(limit), client.WithConnectOptions(connect.WithInterceptors(count)))
	pub := newClient(t, s)
	createTopic(t, pub, "many", 1)
	createSub(t, pub, "many", "w", client.SubscriptionConfig{Kind: client.KindQueue})
	if _, err := pub.Publish(ctx, "many", values(300, "m")...); err != nil {
		t.Fatal(err)
	}
	q, err := c.ConsumeQueue(ctx, "many", "w", client.WithSubscribeCredit(300))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var ds []*client.Delivery
	for range 300 {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	if err := q.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if n := acks.Load(); n < 2 || oversized.Load() > 0 {
		t.Fatalf("300 acks in %d calls of at most %d bytes, %d of them larger", n, limit, oversized.Load())
	}
	sub, err := pub.DescribeSubscription(ctx, "many", "w")
	if err != nil {
		t.Fatal(err)
	}
	if n := sub.GetPartitions()[0].GetInFlight(); n != 0 {
		t.Fatalf("%d deliveries still in flight", n)
	}
}

// A queue consumer working on a delivery for longer than the broker's
// send_timeout (well within the ack deadline) while nothing else was sent
// on its stream used to lose the stream: the broker's write deadline was
// left set after each send, so HTTP/2 reset the idle stream, the ack
// failed (NotFound) and the message was delivered again. Fixed in the
// broker (protocol/native); this guards it through the client.
func TestQueueAckAfterIdleSendTimeout(t *testing.T) {
	s := startServerWith(t, func(c *server.Config) { c.SendTimeout = server.Duration{Duration: time.Second} })
	c := newClient(t, s)
	ctx := testCtx(t)
	createTopic(t, c, "jobs", 1)
	createSub(t, c, "jobs", "w", client.SubscriptionConfig{Kind: client.KindQueue, AckDeadline: time.Minute})
	q, err := c.ConsumeQueue(ctx, "jobs", "w")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := c.Publish(ctx, "jobs", client.Message{Value: []byte("job")}); err != nil {
		t.Fatal(err)
	}
	d, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the handler works: twice the send timeout
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("ack within the ack deadline failed: %v", err)
	}
}

// fakeSubscribe is a ConsumeService whose Subscribe streams end as the
// test says: stream n sends the consumer id, then the messages batches[n-1],
// then ends with ends[n-1] (or stays open when that is nil).
type fakeSubscribe struct {
	ferryv1connect.UnimplementedConsumeServiceHandler
	batches [][]string
	ends    []error
	mu      sync.Mutex
	streams int
	sent    chan int // stream n sent its messages
}

func (f *fakeSubscribe) Subscribe(ctx context.Context, req *connect.Request[ferryv1.SubscribeRequest], stream *connect.ServerStream[ferryv1.SubscribeResponse]) error {
	f.mu.Lock()
	f.streams++
	n := f.streams
	f.mu.Unlock()
	if err := stream.Send(&ferryv1.SubscribeResponse{ConsumerId: fmt.Sprint("c", n)}); err != nil {
		return err
	}
	if n > len(f.batches) {
		<-ctx.Done()
		return nil
	}
	resp := &ferryv1.SubscribeResponse{}
	for _, v := range f.batches[n-1] {
		resp.Messages = append(resp.Messages, &ferryv1.Message{Topic: "t", Value: []byte(v)})
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	f.sent <- n
	if f.ends[n-1] == nil {
		<-ctx.Done()
		return nil
	}
	return f.ends[n-1]
}

func (f *fakeSubscribe) Grant(context.Context, *connect.Request[ferryv1.GrantRequest]) (*connect.Response[ferryv1.GrantResponse], error) {
	return connect.NewResponse(&ferryv1.GrantResponse{}), nil
}

func serveFakeConsume(t *testing.T, f *fakeSubscribe) *client.Client {
	t.Helper()
	path, h := ferryv1connect.NewConsumeServiceHandler(f)
	addr := serveH2C(t, path, h)
	c, err := client.New(addr, client.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond), client.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// An ephemeral subscriber hands out what a stream received before it
// ended, but the messages left in the buffer used to be dropped as soon
// as the next stream was attached. They now all come out, in order,
// before the next stream's.
func TestEphemeralKeepsBufferedAcrossReattach(t *testing.T) {
	checkGoroutines(t)
	f := &fakeSubscribe{
		batches: [][]string{{"0", "1", "2", "3", "4"}, {"5", "6", "7"}},
		ends:    []error{connect.NewError(connect.CodeUnavailable, errors.New("restarting")), nil},
		sent:    make(chan int, 2),
	}
	c := serveFakeConsume(t, f)
	ctx := testCtx(t)
	e, err := c.ConsumeEphemeral(ctx, "t", client.WithSubscribeCredit(100))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-f.sent
	<-f.sent
	time.Sleep(100 * time.Millisecond) // the second stream is attached and its messages received
	var got []string
	for range 8 {
		m, err := e.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Value))
	}
	if s := strings.Join(got, ","); s != "0,1,2,3,4,5,6,7" {
		t.Fatalf("got %s", s)
	}
}

// An ephemeral subscriber ended for good (cut off for being slow) hands out
// what it received before the error.
func TestEphemeralHandsOutBufferedBeforeError(t *testing.T) {
	checkGoroutines(t)
	f := &fakeSubscribe{
		batches: [][]string{{"0", "1", "2"}},
		ends:    []error{connect.NewError(connect.CodeResourceExhausted, errors.New("too slow"))},
		sent:    make(chan int, 1),
	}
	c := serveFakeConsume(t, f)
	ctx := testCtx(t)
	e, err := c.ConsumeEphemeral(ctx, "t", client.WithSubscribeCredit(100))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-f.sent
	time.Sleep(100 * time.Millisecond) // the stream has ended
	var got []string
	for {
		m, err := e.Next(ctx)
		if err != nil {
			if connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Fatalf("after %v: %v", got, err)
			}
			break
		}
		got = append(got, string(m.Value))
	}
	if s := strings.Join(got, ","); s != "0,1,2" {
		t.Fatalf("got %s before the error", s)
	}
	if _, err := e.Next(ctx); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("then: %v", err)
	}
}

// TestSubscribeQueueWorkersShareOneResponse: the deliveries of one
// response reach every worker. A consume stream hands a response to the
// application as one slice; a worker that found nothing waited for the next
// slice while another worker took this one's first delivery and left the
// rest in the session, so the workers ran one at a time. Here 4 handlers
// must all be running at once, on 4 deliveries sent in one response.
func TestSubscribeQueueWorkersShareOneResponse(t *testing.T) {
	_, c := setup(t)
	ctx := testCtx(t)
	createTopic(t, c, "w", 1)
	createSub(t, c, "w", "s", client.SubscriptionConfig{Kind: client.KindQueue, StartAt: client.StartEarliest})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var running atomic.Int32
	all := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- c.SubscribeQueue(runCtx, "w", "s", func(ctx context.Context, d *client.Delivery) error {
			if running.Add(1) == 4 {
				close(all)
			}
			select {
			case <-all:
				return nil
			case <-time.After(5 * time.Second):
				return nil
			}
		}, client.WithConcurrency(4), client.WithSubscribeCredit(16))
	}()
	// Let the workers wait first, then publish the 4 at once: the broker
	// sends them in one response.
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Publish(ctx, "w", values(4, "m")...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(4 * time.Second):
		t.Fatalf("only %d of 4 handlers ran at once on deliveries of one response", running.Load())
	}
	stop()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}
