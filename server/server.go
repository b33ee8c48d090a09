// Package server is Ferry's composition root: it opens the engine on the
// configured data folder and serves it on the network. Today that is the
// HTTP listener with the native API (protocol/native), /healthz, /readyz,
// /metrics (Prometheus, on a registry the server owns) and the web
// dashboard at / (web); the protocol front doors attach here.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/metrics"
	"github.com/ferrymq/ferry/protocol/kafka"
	"github.com/ferrymq/ferry/protocol/native"
	"github.com/ferrymq/ferry/web"
)

// Server is a running Ferry broker.
type Server struct {
	cfg    Config
	log    *slog.Logger
	broker *engine.Broker
	native *native.Service
	http   *http.Server
	ln     net.Listener
	done   chan error

	kafka     *kafka.Server // nil when off
	kafkaLn   net.Listener
	kafkaDone chan error
	ready     atomic.Bool
	registry  *prometheus.Registry
}

// Start opens the engine (recovering the data folder) and starts listening.
func Start(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	// The registry is the server's, not the process-wide default, so two
	// servers in one process (tests, embedding) never share series.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	hooks := metrics.NewHooks(reg)
	doors := metrics.NewDoors(reg)
	b, err := engine.Open(engine.Options{Dir: cfg.DataDir, Logger: logger, DefaultFsync: cfg.Fsync, Hooks: []engine.Hook{hooks}})
	if err != nil {
		return nil, fmt.Errorf("open data folder %s: %w", cfg.DataDir, err)
	}
	hooks.Follow(b)
	reg.MustRegister(metrics.NewCollector(b, cfg.DataDir, logger))
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	s := &Server{cfg: cfg, log: logger, broker: b, ln: ln, done: make(chan error, 1), kafkaDone: make(chan error, 1), registry: reg}
	if cfg.KafkaAddr != "off" {
		kln, err := net.Listen("tcp", cfg.KafkaAddr)
		if err != nil {
			ln.Close()
			b.Close()
			return nil, fmt.Errorf("kafka: listen on %s: %w", cfg.KafkaAddr, err)
		}
		s.kafkaLn = kln
		s.kafka = kafka.New(b, kafka.Options{
			AdvertisedAddr:   cfg.KafkaAdvertisedAddr,
			AutoCreateTopics: cfg.KafkaAutoCreateTopics,
			MaxRequestBytes:  cfg.KafkaMaxRequestBytes,
			Logger:           logger,
			OnConnection:     doors.Connection("kafka"),
			OnRequestError:   doors.RequestError("kafka"),
			OnFetched:        hooks.Fetched("kafka"),
		})
	}
	s.native = native.New(b, native.Options{
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxStreams:      cfg.MaxStreams,
		MaxCredit:       cfg.MaxCredit,
		SendTimeout:     cfg.SendTimeout.Duration,
		Logger:          logger,
		OnError:         doors.RequestError("http"),
	})
	mux := http.NewServeMux()
	s.native.Mount(mux)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// A series that fails is left out; the rest still reach Prometheus.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// The dashboard: every path the API and the handlers above leave.
	mux.Handle("/", web.Handler())
	// HTTP/1.1 and unencrypted HTTP/2 on one port, so gRPC clients and
	// curl both reach it.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.http = &http.Server{
		Handler:           mux,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnState:         countConns(doors.Connection("http")),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	kafkaAt := "off"
	if s.kafka != nil {
		go func() { s.kafkaDone <- s.kafka.Serve(s.kafkaLn) }()
		kafkaAt = s.KafkaAddr()
	}
	s.ready.Store(true)
	logger.Info("ferry started", "http", "http://"+s.Addr(), "kafka", kafkaAt, "data_dir", cfg.DataDir,
		"fsync", cfg.Fsync, "startup", time.Since(started).Round(time.Millisecond))
	return s, nil
}

// countConns is an http.Server's ConnState that reports each connection
// opened (+1) and ended (-1). A hijacked connection is the handler's from
// then on and gets no StateClosed, so it ends there.
func countConns(delta func(int)) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			delta(+1)
		case http.StateClosed, http.StateHijacked:
			delta(-1)
		}
	}
}

// Addr is the address the HTTP listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// KafkaAddr is the address the Kafka listener is bound to, "" when off.
func (s *Server) KafkaAddr() string {
	if s.kafkaLn == nil {
		return ""
	}
	return s.kafkaLn.Addr().String()
}

// Registry is the Prometheus registry /metrics serves; an embedding
// program may register its own collectors on it.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Broker is the engine the server serves.
func (s *Server) Broker() *engine.Broker { return s.broker }

// Shutdown stops the server gracefully: it stops accepting, lets requests in
// progress finish (until ctx ends), then flushes and closes the engine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.log.Info("shutting down")
	// Streams never end by themselves: end them first, so the HTTP
	// server's shutdown waits only for calls in progress (publishes).
	s.native.Drain()
	var errs []error
	if s.kafka != nil {
		// Kafka requests in progress are answered or cut; clients retry
		// (a produce not answered was not acknowledged).
		s.kafka.Close()
		if err := <-s.kafkaDone; err != nil {
			errs = append(errs, fmt.Errorf("kafka: %w", err))
		}
	}
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	if err := s.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("engine: %w", err))
	}
	if len(errs) == 0 {
		s.log.Info("stopped")
	}
	return errors.Join(errs...)
}

// healthz answers while the process is alive.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// readyz answers 200 once storage is open and recovered and the server
// accepts work, 503 while it shuts down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "shutting down")
		return
	}
	if err := s.broker.Check(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ready")
}
