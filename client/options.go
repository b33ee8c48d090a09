package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
)

// Option configures a Client. Options are applied in order by New, then
// the configuration is checked as a whole: New fails on a bad value.
type Option func(*config)

// Defaults of the Client's options.
const (
	DefaultPublishLinger          = 5 * time.Millisecond
	DefaultPublishBatchBytes      = 1 << 20
	DefaultPublishBatchMessages   = 1000
	DefaultMaxOutstandingMessages = 10_000
	DefaultMaxOutstandingBytes    = 64 << 20
	DefaultReconnectBackoffMin    = 100 * time.Millisecond
	DefaultReconnectBackoffMax    = 5 * time.Second
	DefaultCredit                 = 256
	DefaultCloseTimeout           = 10 * time.Second
	DefaultAutoCommitInterval     = time.Second
	// DefaultMaxRequestBytes is the broker's default max_request_bytes.
	DefaultMaxRequestBytes = 8 << 20
	// MaxCredit is the largest credit the broker accepts by default.
	MaxCredit = 10_000
)

type config struct {
	httpClient     *http.Client
	connectOpts    []connect.ClientOption
	logger         *slog.Logger
	compression    bool
	linger         time.Duration
	batchBytes     int
	batchMessages  int
	maxOutMessages int
	maxOutBytes    int64
	blockOnFull    bool
	autoID         bool
	backoffMin     time.Duration
	backoffMax     time.Duration
	credit         int
	closeTimeout   time.Duration
	maxRequest     int
}

func defaultConfig() config {
	return config{
		logger:         slog.New(slog.DiscardHandler),
		linger:         DefaultPublishLinger,
		batchBytes:     DefaultPublishBatchBytes,
		batchMessages:  DefaultPublishBatchMessages,
		maxOutMessages: DefaultMaxOutstandingMessages,
		maxOutBytes:    DefaultMaxOutstandingBytes,
		blockOnFull:    true,
		backoffMin:     DefaultReconnectBackoffMin,
		backoffMax:     DefaultReconnectBackoffMax,
		credit:         DefaultCredit,
		closeTimeout:   DefaultCloseTimeout,
		maxRequest:     DefaultMaxRequestBytes,
	}
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.logger != nil, "logger is nil")
	check(c.linger >= 0, "publish linger %v is negative", c.linger)
	check(c.batchBytes > 0, "publish batch bytes %d is not positive", c.batchBytes)
	check(c.batchMessages > 0, "publish batch messages %d is not positive", c.batchMessages)
	check(c.maxOutMessages > 0, "max outstanding messages %d is not positive", c.maxOutMessages)
	check(c.maxOutBytes > 0, "max outstanding bytes %d is not positive", c.maxOutBytes)
	check(c.backoffMin > 0 && c.backoffMin <= c.backoffMax,
		"reconnect backoff %v..%v: want 0 < min <= max", c.backoffMin, c.backoffMax)
	check(c.credit >= 1 && c.credit <= MaxCredit, "credit %d outside 1..%d", c.credit, MaxCredit)
	check(c.closeTimeout >= 0, "close timeout %v is negative", c.closeTimeout)
	check(c.maxRequest >= minMaxRequestBytes, "max request bytes %d is below %d", c.maxRequest, minMaxRequestBytes)
	if len(errs) > 0 {
		return fmt.Errorf("ferry client: %w", errors.Join(errs...))
	}
	return nil
}

// WithHTTPClient sets the HTTP client used for every call. Streaming
// (PublishAsync and the consumers) needs HTTP/2: for an http:// address the
// client's transport must speak unencrypted HTTP/2 (h2c), as the default
// one does. By default New builds a transport with h2c and HTTP/2 over TLS
// and keepalive pings, so a dead connection is noticed.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithConnectOptions adds Connect client options to every service client
// (interceptors, gRPC protocol, read limits...).
func WithConnectOptions(opts ...connect.ClientOption) Option {
	return func(c *config) { c.connectOpts = append(c.connectOpts, opts...) }
}

// WithLogger sets where the client logs reconnects and failures in the
// background; nothing is logged by default.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithCompression gzips requests and accepts gzipped responses. Off by
// default: message batches on a local network are cheaper sent as they are.
func WithCompression(on bool) Option { return func(c *config) { c.compression = on } }

// WithPublishLinger is how long PublishAsync waits for more messages to
// fill a batch before sending it (default 5ms); Flush sends what waits at
// once.
//
// Zero waits for no timer: a message is sent at once when no batch of its
// topic and partition awaits the broker's acknowledgement, and otherwise
// joins the next batch, sent when that acknowledgement comes (or when the
// batch is full). At a low rate every message goes out on its own, at
// once; under load the batches grow with what comes in while the broker
// stores the previous one. Choose zero for latency; the default gives
// fuller batches when messages come in bursts. In the loopback benchmarks
// (docs/benchmarks.md) zero cut the median latency at 10,000 msgs/s from
// 5.3ms to 1.2ms, and the default gave about 7% more throughput.
func WithPublishLinger(d time.Duration) Option { return func(c *config) { c.linger = d } }

// WithPublishBatchBytes caps an async publish batch's message bytes (key,
// value, headers and id), default 1 MiB. A batch is sent when it is full.
// A batch is also never larger than WithMaxRequestBytes, encoded.
func WithPublishBatchBytes(n int) Option { return func(c *config) { c.batchBytes = n } }

// WithPublishBatchMessages caps an async publish batch's message count,
// default 1000.
func WithPublishBatchMessages(n int) Option { return func(c *config) { c.batchMessages = n } }

// WithMaxRequestBytes is the largest request the client sends, encoded
// (default 8 MiB, the broker's default max_request_bytes). It must not
// exceed the broker's max_request_bytes, which bounds one request message:
// the broker refuses a larger request, and over a publish stream that
// ends the whole stream.
//
// Async publish batches are cut to fit it; a message that cannot fit in a
// request on its own fails at once, its Future with InvalidArgument, as
// does a Publish call whose request would be larger (publish such
// messages in several calls). A topic may accept messages up to its
// max_message_bytes (up to 64 MiB): to publish messages over 8 MiB, raise
// the broker's max_request_bytes and this limit together. Acks of many
// deliveries are split into several calls to fit it.
func WithMaxRequestBytes(n int) Option { return func(c *config) { c.maxRequest = n } }

// minMaxRequestBytes is the least WithMaxRequestBytes accepted: room for a
// request's own fields besides its messages.
const minMaxRequestBytes = 1 << 10

// WithMaxOutstanding bounds the async publishes not yet acknowledged:
// messages (default 10,000) and their bytes (default 64 MiB). When the next
// message would pass either bound, PublishAsync blocks until acknowledgements
// make room, or fails with ErrTooManyOutstanding (WithBlockOnFull(false)).
// A single message larger than the byte bound is accepted when nothing else
// is outstanding.
func WithMaxOutstanding(messages int, bytes int64) Option {
	return func(c *config) { c.maxOutMessages, c.maxOutBytes = messages, bytes }
}

// WithBlockOnFull says what PublishAsync does at the outstanding limit:
// block until there is room or its context ends (true, the default), or
// return a Future failed with ErrTooManyOutstanding at once (false).
func WithBlockOnFull(block bool) Option { return func(c *config) { c.blockOnFull = block } }

// WithAutoMessageID gives every async published message without an ID a
// unique one. A batch resent after a reconnect is then stored once, thanks
// to the broker's deduplication window (2 minutes by default): exactly-once
// storage instead of at-least-once. The id is stored with the message
// (consumers see it as Message.ID). Off by default.
func WithAutoMessageID(on bool) Option { return func(c *config) { c.autoID = on } }

// WithReconnectBackoff bounds the wait between attempts to reattach a
// failed stream: it starts at min and doubles up to max (defaults 100ms and
// 5s), with jitter.
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// DefaultQueueCredit is the least default credit of SubscribeQueue (see
// SubscribeQueue).
const DefaultQueueCredit = 64

// WithCredit sets the default credit of consumers (see WithSubscribeCredit):
// how many messages the broker may send ahead of the application, default
// 256, at most 10,000. SubscribeQueue does not use it: its default is
// max(2 × concurrency, DefaultQueueCredit), so that deliveries do not wait
// in the client past their ack deadline.
func WithCredit(n int) Option { return func(c *config) { c.credit = n } }

// WithCloseTimeout bounds how long Close waits for async publishes to be
// acknowledged and stream consumers' last commits (default 10s).
func WithCloseTimeout(d time.Duration) Option { return func(c *config) { c.closeTimeout = d } }

// SubscribeOption configures one consumer (the Consume* and Subscribe*
// methods).
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	credit         int
	creditSet      bool // by WithSubscribeCredit
	concurrency    int
	autoCommit     time.Duration
	sessionTimeout time.Duration
	buffer         int64
	nackDelay      time.Duration
	onAssign       func(Assignment)
}

func (c *Client) subscribeConfig(opts []SubscribeOption) (subscribeConfig, error) {
	sc := subscribeConfig{
		credit:      c.cfg.credit,
		concurrency: 1,
		autoCommit:  DefaultAutoCommitInterval,
	}
	for _, o := range opts {
		o(&sc)
	}
	var errs []error
	if sc.credit < 1 || sc.credit > MaxCredit {
		errs = append(errs, fmt.Errorf("credit %d outside 1..%d", sc.credit, MaxCredit))
	}
	if sc.concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d is not positive", sc.concurrency))
	}
	if sc.sessionTimeout < 0 || sc.buffer < 0 || sc.nackDelay < 0 {
		errs = append(errs, errors.New("session timeout, buffer and nack delay must not be negative"))
	}
	if len(errs) > 0 {
		return sc, fmt.Errorf("ferry client: %w", errors.Join(errs...))
	}
	return sc, nil
}

// WithSubscribeCredit sets this consumer's credit: how many messages the
// broker may send before the client grants more. The client holds at most
// that many received messages the application has not taken yet; it grants
// credit back as the application takes them. Defaults to the Client's
// WithCredit, except for SubscribeQueue: max(2 × WithConcurrency,
// DefaultQueueCredit).
//
// The trade-off: a larger credit keeps the broker sending while the
// application works (fewer round trips, better throughput), a smaller one
// bounds how long received messages wait in the client. For a queue that
// matters: a delivery's ack deadline runs while it waits, and one whose
// deadline passes before the application takes it is skipped (see
// QueueConsumer.Next) and delivered again. Size a queue consumer's credit
// so that the application gets through it well within the ack deadline.
func WithSubscribeCredit(n int) SubscribeOption {
	return func(s *subscribeConfig) { s.credit, s.creditSet = n, true }
}

// WithConcurrency runs the handler of a Subscribe* method on n goroutines
// (default 1). Queue: any delivery to any goroutine. Stream and ephemeral:
// the messages of one partition always go to the same goroutine, in order.
func WithConcurrency(n int) SubscribeOption { return func(s *subscribeConfig) { s.concurrency = n } }

// WithAutoCommit sets how often a stream consumer commits the positions
// of the messages it processed (default every second); zero or negative
// turns automatic commits off (commit with StreamConsumer.Commit). With
// automatic commits on, the consumer also commits when its assignment
// changes (the partitions it keeps) and when it is closed.
//
// Progress on a partition the consumer loses in a rebalance is not
// committed after its last automatic commit: the broker hands the
// partition over before the consumer hears of it, and refuses commits
// for it from then on. Its new owner starts from the last commit, so up
// to one interval of messages is received again. A shorter interval
// narrows that window, at one Commit call per interval.
func WithAutoCommit(interval time.Duration) SubscribeOption {
	return func(s *subscribeConfig) { s.autoCommit = interval }
}

// WithSessionTimeout sets how long the group waits for a stream member
// whose connection is lost before giving its partitions to the others
// (the broker's default, 30s, when unset).
func WithSessionTimeout(d time.Duration) SubscribeOption {
	return func(s *subscribeConfig) { s.sessionTimeout = d }
}

// WithOnAssign calls f with a stream consumer's new assignment each time
// its partitions change. f runs on the goroutine that receives the stream:
// keep it short, and do not close the consumer from it.
func WithOnAssign(f func(Assignment)) SubscribeOption {
	return func(s *subscribeConfig) { s.onAssign = f }
}

// WithBuffer sets how many messages an ephemeral subscriber may fall behind
// on one partition before the broker cuts it off (broker default 10,000).
func WithBuffer(n int64) SubscribeOption { return func(s *subscribeConfig) { s.buffer = n } }

// WithNackDelay is the delay SubscribeQueue asks for when a handler fails
// (default: redeliver at once).
func WithNackDelay(d time.Duration) SubscribeOption {
	return func(s *subscribeConfig) { s.nackDelay = d }
}
