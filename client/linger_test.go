package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/client"
)

// gatedPublisher hands the test every request of its publish streams as
// it arrives and acknowledges only what the test says, so that the test
// sees what the client sends while its batches await acknowledgement.
type gatedPublisher struct {
	ferryv1connect.UnimplementedPublishServiceHandler
	reqs chan gatedReq
	acks chan *ferryv1.PublishStreamResponse
	end  chan error // ends the current stream with the error

	mu      sync.Mutex
	streams int
	offset  int64
}

type gatedReq struct {
	stream int
	*ferryv1.PublishStreamRequest
}

func newGated(t *testing.T) (*gatedPublisher, string) {
	g := &gatedPublisher{
		reqs: make(chan gatedReq, 1000),
		acks: make(chan *ferryv1.PublishStreamResponse),
		end:  make(chan error),
	}
	path, h := ferryv1connect.NewPublishServiceHandler(g)
	return g, serveH2C(t, path, h)
}

func (g *gatedPublisher) PublishStream(ctx context.Context, stream *connect.BidiStream[ferryv1.PublishStreamRequest, ferryv1.PublishStreamResponse]) error {
	g.mu.Lock()
	g.streams++
	n := g.streams
	g.mu.Unlock()
	go func() {
		for {
			req, err := stream.Receive()
			if err != nil {
				return
			}
			g.reqs <- gatedReq{n, req}
		}
	}()
	for {
		select {
		case resp := <-g.acks:
			if err := stream.Send(resp); err != nil {
				return err
			}
		case err := <-g.end:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// next returns the next request the broker received, failing the test
// when none comes within a few seconds.
func (g *gatedPublisher) next(t *testing.T) gatedReq {
	t.Helper()
	select {
	case r := <-g.reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no request came")
		return gatedReq{}
	}
}

// none checks that the client sends nothing for a while.
func (g *gatedPublisher) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-g.reqs:
		t.Fatalf("request %d with %v sent, want it held back", r.Sequence, msgValues(r.PublishStreamRequest))
	case <-time.After(100 * time.Millisecond):
	}
}

// ack stores r: its messages get the next offsets.
func (g *gatedPublisher) ack(t *testing.T, r gatedReq) {
	t.Helper()
	resp := &ferryv1.PublishStreamResponse{Sequence: r.Sequence}
	g.mu.Lock()
	for range r.Messages {
		resp.Results = append(resp.Results, &ferryv1.Published{Partition: r.GetPartition(), Offset: g.offset})
		g.offset++
	}
	g.mu.Unlock()
	select {
	case g.acks <- resp:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream does not take the acknowledgement")
	}
}

func msgValues(r *ferryv1.PublishStreamRequest) []string {
	var out []string
	for _, m := range r.Messages {
		out = append(out, string(m.Value))
	}
	return out
}

func publishValues(ctx context.Context, c *client.Client, partition int32, vals ...string) []*client.Future {
	var fs []*client.Future
	for _, v := range vals {
		fs = append(fs, c.PublishAsyncTo(ctx, "t", partition, client.Message{Value: []byte(v)}))
	}
	return fs
}

func wantValues(t *testing.T, r gatedReq, want ...string) {
	t.Helper()
	if got := msgValues(r.PublishStreamRequest); !slices.Equal(got, want) {
		t.Fatalf("request %d (partition %d) carries %v, want %v", r.Sequence, r.GetPartition(), got, want)
	}
}

func resolved(t *testing.T, fs []*client.Future, want bool) {
	t.Helper()
	for i, f := range fs {
		select {
		case <-f.Done():
			if !want {
				t.Fatalf("future %d resolved before its batch was acknowledged", i)
			}
			if _, err := f.Result(); err != nil {
				t.Fatalf("future %d: %v", i, err)
			}
		default:
			if want {
				t.Fatalf("future %d not resolved", i)
			}
		}
	}
}

func waitAll(t *testing.T, fs []*client.Future) []client.Published {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := make([]client.Published, len(fs))
	for i, f := range fs {
		p, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
		out[i] = p
	}
	return out
}

// With linger 0 a message goes out at once when no batch of its
// partition awaits acknowledgement; the messages published meanwhile wait
// and go out together, in order, in the request sent once the
// acknowledgement comes.
func TestLingerZeroBatchesWhileInFlight(t *testing.T) {
	checkGoroutines(t)
	g, addr := newGated(t)
	c, err := client.New(addr, client.WithPublishLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)

	// Idle: sent at once, without a linger or a Flush.
	a := publishValues(ctx, c, 0, "a")
	r1 := g.next(t)
	wantValues(t, r1, "a")

	// A batch out: the next messages wait, unresolved.
	more := publishValues(ctx, c, 0, "b", "c", "d", "e")
	g.none(t)
	resolved(t, more, false)

	// Its acknowledgement sends all of them in one request.
	g.ack(t, r1)
	r2 := g.next(t)
	wantValues(t, r2, "b", "c", "d", "e")
	if r2.Sequence <= r1.Sequence {
		t.Fatalf("sequence %d after %d", r2.Sequence, r1.Sequence)
	}
	waitAll(t, a)
	resolved(t, more, false)

	// r2 out: "f" waits for its acknowledgement.
	last := publishValues(ctx, c, 0, "f")
	g.none(t)
	g.ack(t, r2)
	r3 := g.next(t)
	wantValues(t, r3, "f")
	g.ack(t, r3)

	all := slices.Concat(a, more, last)
	for i, p := range waitAll(t, all) {
		if p.Offset != int64(i) {
			t.Fatalf("message %d stored at offset %d", i, p.Offset)
		}
	}

	// Idle again: the next message goes out at once.
	idle := publishValues(ctx, c, 0, "g")
	r4 := g.next(t)
	wantValues(t, r4, "g")
	g.ack(t, r4)
	waitAll(t, idle)
	g.none(t)
}

// The window is per topic and partition: each gets a batch out at once,
// and each one's held messages go out in order when its own batch is
// acknowledged. A full batch does not wait for the window, and Flush sends
// what waits at once.
func TestLingerZeroWindowPerPartition(t *testing.T) {
	checkGoroutines(t)
	g, addr := newGated(t)
	c, err := client.New(addr, client.WithPublishLinger(0), client.WithPublishBatchMessages(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)

	var fs []*client.Future
	fs = append(fs, publishValues(ctx, c, 0, "0-0")...)
	fs = append(fs, publishValues(ctx, c, 1, "1-0")...)
	out := map[int32][]gatedReq{}
	for range 2 {
		r := g.next(t)
		out[r.GetPartition()] = append(out[r.GetPartition()], r)
	}
	for p := range int32(2) {
		if len(out[p]) != 1 {
			t.Fatalf("partition %d: %d requests at once, want 1", p, len(out[p]))
		}
		wantValues(t, out[p][0], fmt.Sprintf("%d-0", p))
	}
	// Both partitions have a batch out: two messages wait for partition
	// 0, and three (a full batch) go out for partition 1.
	fs = append(fs, publishValues(ctx, c, 0, "0-1", "0-2")...)
	fs = append(fs, publishValues(ctx, c, 1, "1-1", "1-2", "1-3")...)
	r := g.next(t)
	wantValues(t, r, "1-1", "1-2", "1-3")
	out[1] = append(out[1], r)
	g.none(t)

	// Partition 1's acknowledgements do not release partition 0's
	// messages; its own does.
	g.ack(t, out[1][0])
	g.none(t)
	g.ack(t, out[0][0])
	r = g.next(t)
	wantValues(t, r, "0-1", "0-2")
	out[0] = append(out[0], r)

	// A batch out for partition 0 again: Flush sends what waits at once.
	fs = append(fs, publishValues(ctx, c, 0, "0-3")...)
	g.none(t)
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(ctx) }()
	r = g.next(t)
	wantValues(t, r, "0-3")
	out[0] = append(out[0], r)
	for _, rs := range out {
		for _, r := range rs[1:] {
			g.ack(t, r)
		}
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	resolved(t, fs, true)
}

// With linger 0, the batch out when the stream fails is sent again on the
// next stream, first, and what waited behind it follows.
func TestLingerZeroResendsAfterReconnect(t *testing.T) {
	checkGoroutines(t)
	g, addr := newGated(t)
	c, err := client.New(addr, client.WithPublishLinger(0),
		client.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)

	fs := publishValues(ctx, c, 0, "a")
	r1 := g.next(t)
	fs = append(fs, publishValues(ctx, c, 0, "b", "c")...)
	g.none(t)
	g.end <- connect.NewError(connect.CodeUnavailable, errors.New("going away"))

	// The same batch again, on stream 2, then the held messages.
	s1 := g.next(t)
	if s1.stream != 2 || s1.Sequence != r1.Sequence {
		t.Fatalf("after the reconnect: stream %d sequence %d, want stream 2 sequence %d", s1.stream, s1.Sequence, r1.Sequence)
	}
	wantValues(t, s1, "a")
	g.none(t)
	resolved(t, fs, false)
	g.ack(t, s1)
	s2 := g.next(t)
	wantValues(t, s2, "b", "c")
	g.ack(t, s2)
	for i, p := range waitAll(t, fs) {
		if p.Offset != int64(i) {
			t.Fatalf("message %d stored at offset %d", i, p.Offset)
		}
	}
}

// A stream refused for good fails the batch out on it; the messages held
// back behind it go on the next stream.
func TestLingerZeroPermanentErrorKeepsHeld(t *testing.T) {
	checkGoroutines(t)
	g, addr := newGated(t)
	c, err := client.New(addr, client.WithPublishLinger(0),
		client.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)

	out := publishValues(ctx, c, 0, "a")
	g.next(t)
	held := publishValues(ctx, c, 0, "b")
	g.none(t)
	g.end <- connect.NewError(connect.CodePermissionDenied, errors.New("no"))
	for i, f := range out {
		if _, err := f.Wait(ctx); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("future %d: %v, want PermissionDenied", i, err)
		}
	}
	r := g.next(t)
	if r.stream != 2 {
		t.Fatalf("held message sent on stream %d, want 2", r.stream)
	}
	wantValues(t, r, "b")
	g.ack(t, r)
	waitAll(t, held)
}

// Against the broker, with linger 0 and publishers on several goroutines:
// every message is stored, in the order of the calls per partition and
// per key.
func TestLingerZeroOrder(t *testing.T) {
	_, c := setup(t, client.WithPublishLinger(0), client.WithPublishBatchMessages(50))
	ctx := testCtx(t)
	createTopic(t, c, "clicks", 3)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			var fs []*client.Future
			for i := range 2000 {
				if w%2 == 0 {
					fs = append(fs, c.PublishAsyncTo(ctx, "clicks", int32(w/2), client.Message{Value: fmt.Appendf(nil, "%d", i)}))
				} else {
					fs = append(fs, c.PublishAsync(ctx, "clicks", client.Message{Key: fmt.Appendf(nil, "w%d", w), Value: fmt.Appendf(nil, "%d", i)}))
				}
			}
			prev := client.Published{Offset: -1}
			for i, f := range fs {
				p, err := f.Wait(ctx)
				if err != nil {
					errs <- err
					return
				}
				if i > 0 && (p.Partition != prev.Partition || p.Offset <= prev.Offset) {
					errs <- fmt.Errorf("publisher %d: message %d at %d/%d after %d/%d", w, i, p.Partition, p.Offset, prev.Partition, prev.Offset)
					return
				}
				prev = p
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
