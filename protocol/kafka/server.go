package kafka

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/internal/clock"
)

// Options configure the Kafka front door.
type Options struct {
	// AdvertisedAddr is the host:port that Metadata tells clients to
	// connect to; the listener's address when empty (with the machine's
	// host name when it listens on every interface).
	AdvertisedAddr string
	// MaxRequestBytes bounds one request; 100 MiB when 0 (Kafka's
	// socket.request.max.bytes).
	MaxRequestBytes int
	// AutoCreateTopics creates a topic that a Metadata request (with
	// allow_auto_topic_creation) or a Produce names and that does not exist,
	// as Kafka's auto.create.topics.enable.
	AutoCreateTopics bool
	// ProducerIdleTimeout is how long the broker remembers an idempotent
	// producer that produces nothing; 24h when 0 (Kafka's
	// producer.id.expiration.ms).
	ProducerIdleTimeout time.Duration
	// MaxProducers bounds the idempotent producers remembered; past it the
	// least recently used is forgotten. 50000 when 0.
	MaxProducers int
	// Logger receives connection errors; none when nil.
	Logger *slog.Logger
	// GroupInitialRebalanceDelay is how long an empty consumer group's
	// first rebalance waits for more members (Kafka's
	// group.initial.rebalance.delay.ms): 100ms when 0, none when negative.
	GroupInitialRebalanceDelay time.Duration
	// Clock drives the consumer groups' session and rebalance timers and
	// idempotent producers' expiry; the wall clock when nil.
	Clock clock.Clock
	// OnConnection, when set, is called with +1 when a connection is
	// accepted and -1 when it ends (for a gauge of open connections).
	// It must not block.
	OnConnection func(delta int)
	// OnRequestError, when set, is called with the Kafka name of each
	// non-zero error code a response carries ("UNKNOWN_TOPIC_OR_PARTITION"):
	// the top-level one and each topic's, partition's, group's, member's or
	// resource's. The names are kerr's, so there are a bounded few. It is
	// called from the connections' goroutines and must not block.
	OnRequestError func(code string)
	// OnFetched, when set, is told what each Fetch answered of a topic:
	// the records from the fetch offsets on, and the bytes of the record
	// batches (as stored). Once per topic and answer, never per record.
	OnFetched func(topic string, messages, bytes int)
}

// nodeID is this broker's id in Metadata: one broker leads every partition.
const nodeID = 0

// Server serves the Kafka protocol for one engine.
type Server struct {
	b      *engine.Broker
	opts   Options
	log    *slog.Logger
	groups *coordinator

	producers *producerTable // idempotent producers' sequences

	advertised struct {
		host string
		port int32
	}

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

// New returns a Kafka front door for b; Serve starts it on a listener.
func New(b *engine.Broker, opts Options) *Server {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 100 << 20
	}
	if opts.GroupInitialRebalanceDelay == 0 {
		opts.GroupInitialRebalanceDelay = defaultInitialRebalanceDelay
	}
	if opts.ProducerIdleTimeout <= 0 {
		opts.ProducerIdleTimeout = 24 * time.Hour
	}
	if opts.MaxProducers <= 0 {
		opts.MaxProducers = 50000
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, opts: opts, log: log, conns: map[*conn]struct{}{},
		groups:    newCoordinator(opts.Clock, max(opts.GroupInitialRebalanceDelay, 0)),
		producers: newProducerTable(opts.Clock, opts.ProducerIdleTimeout, opts.MaxProducers)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.advertise(ln.Addr()); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.connected(+1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.connected(-1)
		}()
	}
}

// connected reports a connection opened (+1) or ended (-1).
func (s *Server) connected(delta int) {
	if s.opts.OnConnection != nil {
		s.opts.OnConnection(delta)
	}
}

// advertise works out the address Metadata gives.
func (s *Server) advertise(addr net.Addr) error {
	hostport := s.opts.AdvertisedAddr
	if hostport == "" {
		hostport = addr.String()
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("kafka advertised address %q: %w", hostport, err)
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("kafka advertised address %q: bad port", hostport)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return fmt.Errorf("kafka advertised address: listening on every interface, and no host name: %w", err)
		}
	}
	s.advertised.host, s.advertised.port = host, int32(p)
	return nil
}

// Close stops accepting and ends every connection: each stops reading
// requests, answers those it has read (a produce placed in a log is
// answered once durable), within a few seconds for a client that does not
// read, and closes. It waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// The groups first: their timers stop, and requests waiting for a
	// rebalance are answered, so no handler holds its connection open.
	s.groups.close()
	s.cancel()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// api is one served API key: the versions served and its handler, which
// gets the decoded request and returns the response to send (nil for none:
// a Produce with acks 0).
type api struct {
	min, max int16
	handle   func(c *conn, req kmsg.Request) (kmsg.Response, error)
}

// apis lists what is served, by key. ApiVersions answers from it.
func (s *Server) apis() map[int16]api {
	return map[int16]api{
		kmsg.ApiVersions.Int16(): {0, 3, handleApiVersions},
		kmsg.Metadata.Int16():    {0, 12, handleMetadata},
		kmsg.Produce.Int16():     {3, 9, handleProduce},
		kmsg.Fetch.Int16():       {4, 12, handleFetch},
		kmsg.ListOffsets.Int16(): {1, 7, handleListOffsets},

		// Idempotent producers.
		kmsg.InitProducerID.Int16(): {0, 4, handleInitProducerID},

		// Consumer groups.
		kmsg.FindCoordinator.Int16(): {0, 4, handleFindCoordinator},
		kmsg.JoinGroup.Int16():       {0, 8, handleJoinGroup},
		kmsg.SyncGroup.Int16():       {0, 5, handleSyncGroup},
		kmsg.Heartbeat.Int16():       {0, 4, handleHeartbeat},
		kmsg.LeaveGroup.Int16():      {0, 5, handleLeaveGroup},
		kmsg.OffsetCommit.Int16():    {0, 8, handleOffsetCommit},
		kmsg.OffsetFetch.Int16():     {0, 8, handleOffsetFetch},
		kmsg.ListGroups.Int16():      {0, 4, handleListGroups},
		kmsg.DescribeGroups.Int16():  {0, 5, handleDescribeGroups},
		kmsg.DeleteGroups.Int16():    {0, 2, handleDeleteGroups},

		// Topic administration.
		kmsg.CreateTopics.Int16():     {0, 7, handleCreateTopics},
		kmsg.DeleteTopics.Int16():     {0, 5, handleDeleteTopics},
		kmsg.DescribeConfigs.Int16():  {0, 4, handleDescribeConfigs},
		kmsg.CreatePartitions.Int16(): {0, 3, handleCreatePartitions},
		kmsg.DescribeCluster.Int16():  {0, 1, handleDescribeCluster},
	}
}

// topicID is a topic's 16-byte id for the versions that carry one: a hash
// of its name and Ferry id, so it is the same on every call and differs for
// a topic deleted and created again.
func topicID(ti engine.TopicInfo) [16]byte {
	sum := sha256.Sum256([]byte(ti.Name + "\x00" + ti.ID))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}
