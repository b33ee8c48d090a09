package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
)

// Client talks to one Ferry broker over its native API. It is safe for
// concurrent use; make one and share it. Close it when done.
type Client struct {
	cfg  config
	log  *slog.Logger
	base string

	topics  ferryv1connect.TopicServiceClient
	subs    ferryv1connect.SubscriptionServiceClient
	pub     ferryv1connect.PublishServiceClient
	consume ferryv1connect.ConsumeServiceClient
	reader  ferryv1connect.ReadServiceClient

	// transport is the transport New built, closed by Close; nil when the
	// user gave an HTTP client.
	transport *http.Transport

	// ctx ends when the client is closed; every background goroutine
	// watches it.
	ctx    context.Context
	cancel context.CancelFunc

	idPrefix string
	idSeq    atomic.Uint64

	mu        sync.Mutex
	closed    bool
	async     *asyncPublisher
	consumers map[closer]struct{}
}

// closer is a consumer the Client ends when it is closed.
type closer interface{ Close() error }

// New returns a Client for the broker at addr: a base URL
// ("http://127.0.0.1:8080", "https://ferry.example.com") or host:port
// (plain HTTP is assumed). No connection is made until the first call.
func New(addr string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, err := baseURL(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.logger, base: base, consumers: map[closer]struct{}{}}
	hc := cfg.httpClient
	if hc == nil {
		c.transport = newTransport()
		hc = &http.Client{Transport: c.transport}
	}
	copts := []connect.ClientOption{}
	if cfg.compression {
		copts = append(copts, connect.WithSendGzip())
	} else {
		// Connect asks for gzipped responses by default; a nil
		// decompressor takes gzip off the list.
		copts = append(copts, connect.WithAcceptCompression("gzip", nil, nil))
	}
	copts = append(copts, cfg.connectOpts...)
	c.topics = ferryv1connect.NewTopicServiceClient(hc, base, copts...)
	c.subs = ferryv1connect.NewSubscriptionServiceClient(hc, base, copts...)
	c.pub = ferryv1connect.NewPublishServiceClient(hc, base, copts...)
	c.consume = ferryv1connect.NewConsumeServiceClient(hc, base, copts...)
	c.reader = ferryv1connect.NewReadServiceClient(hc, base, copts...)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var b [8]byte
	_, _ = crand.Read(b[:])
	c.idPrefix = hex.EncodeToString(b[:]) + "-"
	return c, nil
}

func baseURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("ferry client: empty address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("ferry client: address %q: %w", addr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("ferry client: address %q: want http://host:port, https://host or host:port", addr)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// newTransport speaks HTTP/2 only: over TLS for https, unencrypted (h2c,
// prior knowledge) for http, so one TCP connection carries every call and
// bidirectional streams work. Pings notice a dead broker while a consumer
// only waits for messages.
func newTransport() *http.Transport {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP2(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	t.HTTP2 = &http.HTTP2Config{
		SendPingTimeout: 15 * time.Second,
		PingTimeout:     10 * time.Second,
		// Frames of up to 1 MiB instead of 16 KiB: a consume response of
		// a few hundred KiB goes in one frame and a few syscalls (fan-out
		// over loopback went about a quarter faster; 256 KiB gave 9% and
		// 3% less than 1 MiB to 1 and 4 subscribers, medians of 4 runs
		// in turn). The cost: on a slow link a large frame
		// delays the acks and grants behind it on the connection (a MiB
		// is 84 ms at 100 Mbit/s).
		MaxReadFrameSize: 1 << 20,
	}
	return t
}

// Close flushes async publishes (waiting up to WithCloseTimeout), fails
// those still unacknowledged with ErrClosed, closes every consumer (stream
// consumers commit what they processed), and stops the client's goroutines.
// Calls made after Close fail with ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	async := c.async
	consumers := make([]closer, 0, len(c.consumers))
	for k := range c.consumers {
		consumers = append(consumers, k)
	}
	c.mu.Unlock()

	var errs []error
	if async != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.closeTimeout)
		if err := async.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush async publishes: %w", err))
		}
		cancel()
	}
	for _, k := range consumers {
		if err := k.Close(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	c.cancel()
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// addConsumer registers a consumer to be closed by Close.
func (c *Client) addConsumer(k closer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.consumers[k] = struct{}{}
	return nil
}

func (c *Client) removeConsumer(k closer) {
	c.mu.Lock()
	delete(c.consumers, k)
	c.mu.Unlock()
}

// newMessageID returns an id unique to this client: a random prefix and a
// counter.
func (c *Client) newMessageID() string {
	return c.idPrefix + strconv.FormatUint(c.idSeq.Add(1), 36)
}

// backoff is an exponential delay with jitter between reconnect attempts.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (c *Client) newBackoff() backoff {
	return backoff{min: c.cfg.backoffMin, max: c.cfg.backoffMax}
}

// next returns the delay before the next attempt: between half and all of
// the current step, which doubles up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
