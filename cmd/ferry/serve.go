package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrymq/ferry/server"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker",
		Long: `Run the Ferry broker: open (or create) the data folder, recover it, and serve.

The HTTP listener serves the native API (ferry.v1 over Connect, gRPC and
gRPC-Web, with JSON or protobuf; HTTP/1.1 and unencrypted HTTP/2), /healthz
(the process is alive) and /readyz (storage is open and recovered, the broker
accepts work). The Kafka listener (--kafka-addr, 127.0.0.1:9092 by default)
serves Kafka clients (docs/kafka.md). The other protocol front doors are
being built (see the README's status table).

Settings come from, in rising order of precedence: the defaults, a TOML
config file (--config or FERRY_CONFIG), FERRY_* environment variables, and
the flags below. The config file uses the flag names with underscores:

  data_dir = "/var/lib/ferry"
  http_addr = ":8080"
  log_format = "json"
  fsync = "always"
  shutdown_timeout = "30s"
  max_request_bytes = 8388608
  kafka_addr = ":9092"
  kafka_advertised_addr = "broker1.example.com:9092"

SIGINT or SIGTERM shuts down gracefully (stop accepting, finish what is in
progress, flush, close); a second signal exits at once.`,
		Example: `  ferry serve
  ferry serve --data-dir /var/lib/ferry --http-addr :8080 --log-format json
  FERRY_DATA_DIR=/tmp/ferry ferry serve`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := map[string]string{}
			for _, name := range []string{"data-dir", "http-addr", "log-format", "log-level", "fsync", "shutdown-timeout",
				"max-request-bytes", "max-streams", "max-credit", "send-timeout",
				"kafka-addr", "kafka-advertised-addr", "kafka-auto-create-topics", "kafka-max-request-bytes"} {
				if f := cmd.Flags().Lookup(name); f.Changed {
					flags[underscore(name)] = f.Value.String()
				}
			}
			if configFile == "" {
				configFile = os.Getenv("FERRY_CONFIG")
			}
			cfg, err := server.Load(configFile, os.Getenv, flags)
			if err != nil {
				return usageError(cmd, err)
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	d := server.Defaults()
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "TOML config file (env FERRY_CONFIG)")
	f.String("data-dir", d.DataDir, "data folder (env FERRY_DATA_DIR)")
	f.String("http-addr", d.HTTPAddr, "HTTP listener: native API, /healthz, /readyz (env FERRY_HTTP_ADDR)")
	f.String("log-format", d.LogFormat, "text or json (env FERRY_LOG_FORMAT)")
	f.String("log-level", d.LogLevel, "debug, info, warn or error (env FERRY_LOG_LEVEL)")
	f.String("fsync", d.Fsync, "default fsync policy of topics: always, never or interval:DURATION (env FERRY_FSYNC)")
	f.String("shutdown-timeout", d.ShutdownTimeout.String(), "how long a graceful shutdown may take (env FERRY_SHUTDOWN_TIMEOUT)")
	f.Int("max-request-bytes", d.MaxRequestBytes, "largest native API request, a publish batch (env FERRY_MAX_REQUEST_BYTES)")
	f.Int("max-streams", d.MaxStreams, "native API streams open at once (env FERRY_MAX_STREAMS)")
	f.Int("max-credit", d.MaxCredit, "largest credit of one consumer, messages sent ahead (env FERRY_MAX_CREDIT)")
	f.String("send-timeout", d.SendTimeout.String(), "end a stream whose client reads nothing for this long (env FERRY_SEND_TIMEOUT)")
	f.String("kafka-addr", d.KafkaAddr, `Kafka listener, or "off" (env FERRY_KAFKA_ADDR)`)
	f.String("kafka-advertised-addr", d.KafkaAdvertisedAddr, "host:port Kafka clients are told to connect to; the listener's when empty (env FERRY_KAFKA_ADVERTISED_ADDR)")
	f.Bool("kafka-auto-create-topics", d.KafkaAutoCreateTopics, "create a topic a Kafka client names that does not exist (env FERRY_KAFKA_AUTO_CREATE_TOPICS)")
	f.Int("kafka-max-request-bytes", d.KafkaMaxRequestBytes, "largest Kafka request, and what a compressed batch may inflate to (env FERRY_KAFKA_MAX_REQUEST_BYTES)")
	return cmd
}

func underscore(flag string) string {
	b := []byte(flag)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// serve runs the broker until ctx ends (the first SIGINT or SIGTERM), then
// shuts it down gracefully; a second signal during shutdown exits at once.
func serve(ctx context.Context, cfg server.Config, logOut interface{ Write([]byte) (int, error) }) error {
	logger := cfg.NewLogger(logOut)
	s, err := server.Start(cfg, logger)
	if err != nil {
		return err
	}
	kafkaAt := ""
	if a := s.KafkaAddr(); a != "" {
		kafkaAt = ", Kafka clients on " + a
	}
	fmt.Fprintf(logOut, "ferry is listening on http://%s%s (data in %s); Ctrl-C stops it\n", s.Addr(), kafkaAt, cfg.DataDir)
	<-ctx.Done()

	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		<-again
		logger.Error("second signal: exiting without finishing the shutdown")
		os.Exit(exitFailure)
	}()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.Duration)
	defer cancel()
	return s.Shutdown(sctx)
}
