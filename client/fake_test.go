package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/client"
)

// fakePublisher is a PublishService whose streams do what the test says,
// to drive the async publisher through failures the real broker shows
// only by chance.
type fakePublisher struct {
	ferryv1connect.UnimplementedPublishServiceHandler
	mu      sync.Mutex
	streams int
	seen    []uint64 // sequences received, over every stream
	offset  int64
	// onStream says what stream n (from 1) does with each batch: ack it,
	// or end the stream with an error before answering.
	onStream func(n int, req *ferryv1.PublishStreamRequest) error
}

func (f *fakePublisher) PublishStream(ctx context.Context, stream *connect.BidiStream[ferryv1.PublishStreamRequest, ferryv1.PublishStreamResponse]) error {
	f.mu.Lock()
	f.streams++
	n := f.streams
	f.mu.Unlock()
	for {
		req, err := stream.Receive()
		if err != nil {
			return nil
		}
		f.mu.Lock()
		f.seen = append(f.seen, req.Sequence)
		on := f.onStream
		f.mu.Unlock()
		if err := on(n, req); err != nil {
			return err
		}
		resp := &ferryv1.PublishStreamResponse{Sequence: req.Sequence}
		f.mu.Lock()
		for range req.Messages {
			resp.Results = append(resp.Results, &ferryv1.Published{Offset: f.offset})
			f.offset++
		}
		f.mu.Unlock()
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func serveFake(t *testing.T, f *fakePublisher) string {
	t.Helper()
	path, h := ferryv1connect.NewPublishServiceHandler(f)
	return serveH2C(t, path, h)
}

// serveH2C serves a Connect handler (path and handler) over h2c until
// the test ends, and returns its address.
func serveH2C(t *testing.T, path string, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(path, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestAsyncResendsUnacknowledged(t *testing.T) {
	checkGoroutines(t)
	f := &fakePublisher{onStream: func(n int, req *ferryv1.PublishStreamRequest) error {
		if n == 1 {
			return connect.NewError(connect.CodeUnavailable, errors.New("going away"))
		}
		return nil
	}}
	c, err := client.New(serveFake(t, f), client.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond),
		client.WithPublishLinger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	a := c.PublishAsync(ctx, "t", client.Message{Value: []byte("a")})
	b := c.PublishAsyncTo(ctx, "t", 1, client.Message{Value: []byte("b")})
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, fu := range []*client.Future{a, b} {
		if _, err := fu.Result(); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams != 2 || len(f.seen) < 3 || slices.Index(f.seen[1:], f.seen[0]) < 0 {
		t.Fatalf("%d streams, sequences %v: want the first batch sent again on the second stream", f.streams, f.seen)
	}
}

func TestAsyncFailsOnPermanentStreamError(t *testing.T) {
	checkGoroutines(t)
	f := &fakePublisher{onStream: func(int, *ferryv1.PublishStreamRequest) error {
		return connect.NewError(connect.CodePermissionDenied, errors.New("no"))
	}}
	c, err := client.New(serveFake(t, f), client.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	if _, err := c.PublishAsync(ctx, "t", client.Message{Value: []byte("a")}).Wait(ctx); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("future: %v, want PermissionDenied", err)
	}
	// The next message tries a new stream.
	f.mu.Lock()
	f.onStream = func(int, *ferryv1.PublishStreamRequest) error { return nil }
	f.mu.Unlock()
	if _, err := c.PublishAsync(ctx, "t", client.Message{Value: []byte("b")}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCloseGivesUpAfterTimeout(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	c, err := client.New(addr, client.WithCloseTimeout(50*time.Millisecond),
		client.WithReconnectBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	fu := c.PublishAsync(context.Background(), "t", client.Message{Value: []byte("a")})
	if err := c.Close(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if _, err := fu.Result(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("future: %v, want ErrClosed", err)
	}
}
