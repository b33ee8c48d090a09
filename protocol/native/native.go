// Package native is Ferry's own front door: the ferry.v1 API of api/ferry/v1,
// served with Connect, so gRPC, gRPC-Web and Connect clients, and plain JSON
// over HTTP (curl), all reach the engine.
//
// Consumers are server streams with credit-based flow control (see
// api/ferry/v1/consume.proto): a stream sends only what its credit allows,
// so a slow client holds the server's memory to its credit times the message
// size, and a client that stops reading altogether is cut off after
// Options.SendTimeout. Publish streams coalesce the batches that arrive
// while one is being stored into the next engine call, so a pipelining
// client gets one fsync for many batches.
package native

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/engine"
)

// Options are the native API's limits. Zero fields take the defaults.
type Options struct {
	// MaxRequestBytes bounds one request message (a publish batch): larger
	// ones fail with ResourceExhausted. Default 8 MiB.
	MaxRequestBytes int
	// MaxStreams bounds the streaming calls open at once (consumers and
	// publish streams); past it new ones fail with ResourceExhausted.
	// Default 1024.
	MaxStreams int
	// MaxCredit bounds a consumer's credit: the messages the server may send
	// it ahead of its processing. Default 10000.
	MaxCredit int
	// MaxWait bounds the wait of Receive and Read. Default 30s.
	MaxWait time.Duration
	// MaxReadBytes bounds the bytes one Read returns. Default 4 MiB.
	MaxReadBytes int
	// SendTimeout is how long sending one response of a stream may take
	// before the client is deemed gone and the stream is ended. Default 30s.
	SendTimeout time.Duration
	// Logger receives the service's operational messages.
	Logger *slog.Logger
	// OnError, when set, is called with the Connect code of each call that
	// ends in an error ("not_found", "invalid_argument", "canceled"...),
	// unary or streaming, a handler's panic included ("internal"). Calls
	// Connect refuses before a handler runs (a malformed unary request, say)
	// are not seen. It must not block.
	OnError func(code string)
}

// EnsureDefaults fills unset fields and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 8 << 20
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 1024
	}
	if o.MaxCredit <= 0 {
		o.MaxCredit = 10000
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.MaxReadBytes <= 0 {
		o.MaxReadBytes = 4 << 20
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Service serves the ferry.v1 API over one broker.
type Service struct {
	b    *engine.Broker
	opts Options
	log  *slog.Logger

	streams atomic.Int64 // streaming calls open now

	// drainCtx ends when the server shuts down (Drain): streams and long
	// polls end at once. drain is its Done channel.
	drainCtx context.Context
	drainNow context.CancelFunc
	drain    <-chan struct{}

	mu        sync.Mutex
	consumers map[string]*consumer
	// shared holds one queue member per subscription for Receive, the
	// stream-less consumption of plain HTTP clients.
	shared map[subKey]*engine.QueueMember

	deliveries deliveryEncoders // ConsumeQueue's record batches
}

type subKey struct{ topic, sub string }

// New returns the service over b.
func New(b *engine.Broker, opts Options) *Service {
	opts.EnsureDefaults()
	drainCtx, drainNow := context.WithCancel(context.Background())
	return &Service{
		b:         b,
		opts:      opts,
		log:       opts.Logger,
		drainCtx:  drainCtx,
		drainNow:  drainNow,
		drain:     drainCtx.Done(),
		consumers: map[string]*consumer{},
		shared:    map[subKey]*engine.QueueMember{},
	}
}

// Mount registers every ferry.v1 service on mux.
func (s *Service) Mount(mux *http.ServeMux) {
	var opts []connect.HandlerOption
	if s.opts.OnError != nil {
		// Outside the recover interceptor, so a panic counts as the
		// internal error it becomes.
		opts = append(opts, connect.WithInterceptors(errorReporter(s.opts.OnError)))
	}
	opts = append(opts,
		connect.WithReadMaxBytes(s.opts.MaxRequestBytes),
		connect.WithRecover(s.recover),
		connect.WithCodec(jsonCodec{}),
	)
	mount := func(path string, h http.Handler) { mux.Handle(path, withResponseController(h)) }
	mount(ferryv1connect.NewTopicServiceHandler(topics{s}, opts...))
	mount(ferryv1connect.NewSubscriptionServiceHandler(subscriptions{s}, opts...))
	mount(ferryv1connect.NewPublishServiceHandler(publisher{s}, opts...))
	mount(ferryv1connect.NewConsumeServiceHandler(consumers{s}, opts...))
	mount(ferryv1connect.NewReadServiceHandler(readers{s}, opts...))
}

// Drain ends every open stream: consumers get Unavailable, publish streams
// answer the batches they are storing and then end. Unary calls go on; the
// HTTP server's shutdown waits for them.
func (s *Service) Drain() {
	s.drainNow()
	s.mu.Lock()
	shared := s.shared
	s.shared = map[subKey]*engine.QueueMember{}
	s.mu.Unlock()
	for _, m := range shared {
		m.Leave()
	}
}

func (s *Service) draining() bool {
	select {
	case <-s.drain:
		return true
	default:
		return false
	}
}

var errShuttingDown = connect.NewError(connect.CodeUnavailable, fmt.Errorf("server shutting down"))

// openStream counts a streaming call against MaxStreams; release it with
// the returned function.
func (s *Service) openStream() (func(), error) {
	if s.draining() {
		return nil, errShuttingDown
	}
	if n := s.streams.Add(1); n > int64(s.opts.MaxStreams) {
		s.streams.Add(-1)
		return nil, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("too many streams open (limit %d)", s.opts.MaxStreams))
	}
	return func() { s.streams.Add(-1) }, nil
}

// recover turns a panic in a handler into Internal for that call alone.
func (s *Service) recover(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
	s.log.Error("panic in handler", "procedure", spec.Procedure, "panic", p)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error"))
}

// newID returns a random id for a consumer.
func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type rcKey struct{}

// withResponseController puts the response's controller in the request
// context, so a stream can set a deadline on each send.
func withResponseController(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), rcKey{}, http.NewResponseController(w))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// send runs one send of ctx's response with a write deadline of
// SendTimeout: a client that reads nothing for that long is cut off. The
// deadline is cleared afterwards, because an HTTP/2 write deadline left set
// resets the stream when it passes even if nothing is being written: an
// idle consumer would be cut off after SendTimeout of quiet.
func (s *Service) send(ctx context.Context, fn func() error) error {
	rc, _ := ctx.Value(rcKey{}).(*http.ResponseController)
	if rc != nil {
		rc.SetWriteDeadline(time.Now().Add(s.opts.SendTimeout))
	}
	err := fn()
	if rc != nil {
		rc.SetWriteDeadline(time.Time{})
	}
	return err
}

// waitBound clamps a requested wait to the server's limit.
func (s *Service) waitBound(d time.Duration) time.Duration {
	return min(max(d, 0), s.opts.MaxWait)
}
