package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is what `ferry serve` runs with. Each field can be set in a TOML
// config file, overridden by a FERRY_* environment variable, overridden by a
// command-line flag.
type Config struct {
	// DataDir is the data folder; ./ferry-data by default.
	DataDir string `toml:"data_dir"`
	// HTTPAddr is where the native API, /healthz, /readyz and /metrics listen;
	// 127.0.0.1:8080 by default (use :8080 to listen on every interface).
	HTTPAddr string `toml:"http_addr"`
	// LogFormat is "text" (default) or "json".
	LogFormat string `toml:"log_format"`
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string `toml:"log_level"`
	// Fsync is the fsync policy of topics that name none: "always"
	// (default), "never" or "interval:DURATION".
	Fsync string `toml:"fsync"`
	// ShutdownTimeout bounds a graceful shutdown; 30s by default.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MaxRequestBytes bounds one native API request (a publish batch);
	// 8 MiB by default.
	MaxRequestBytes int `toml:"max_request_bytes"`
	// MaxStreams bounds the native API's streams open at once (consumers
	// and publish streams); 1024 by default.
	MaxStreams int `toml:"max_streams"`
	// MaxCredit bounds a consumer's credit, the messages sent ahead of its
	// processing; 10000 by default.
	MaxCredit int `toml:"max_credit"`
	// SendTimeout is how long a stream may wait on a client that does not
	// read before it ends the stream; 30s by default.
	SendTimeout Duration `toml:"send_timeout"`
	// KafkaAddr is where the Kafka front door listens; 127.0.0.1:9092 by
	// default, "off" for none.
	KafkaAddr string `toml:"kafka_addr"`
	// KafkaAdvertisedAddr is the host:port Kafka clients are told to
	// connect to; the listener's address when empty.
	KafkaAdvertisedAddr string `toml:"kafka_advertised_addr"`
	// KafkaAutoCreateTopics creates a topic a Kafka client names and that
	// does not exist (Kafka's auto.create.topics.enable); true by default.
	KafkaAutoCreateTopics bool `toml:"kafka_auto_create_topics"`
	// KafkaMaxRequestBytes bounds one Kafka request, and what a compressed
	// batch in it may inflate to; 100 MiB by default (Kafka's
	// socket.request.max.bytes).
	KafkaMaxRequestBytes int `toml:"kafka_max_request_bytes"`
}

// Duration is a time.Duration written as text ("30s") in the config file.
type Duration struct{ time.Duration }

// UnmarshalText reads a duration such as "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		DataDir:         "ferry-data",
		HTTPAddr:        "127.0.0.1:8080",
		LogFormat:       "text",
		LogLevel:        "info",
		Fsync:           "always",
		ShutdownTimeout: Duration{30 * time.Second},
		MaxRequestBytes: 8 << 20,
		MaxStreams:      1024,
		MaxCredit:       10000,
		SendTimeout:     Duration{30 * time.Second},

		KafkaAddr:             "127.0.0.1:9092",
		KafkaAutoCreateTopics: true,
		KafkaMaxRequestBytes:  100 << 20,
	}
}

// EnvPrefix starts the name of every environment variable Ferry reads.
const EnvPrefix = "FERRY_"

// envNames maps each setting to its environment variable.
var envNames = map[string]string{
	"data_dir":          "FERRY_DATA_DIR",
	"http_addr":         "FERRY_HTTP_ADDR",
	"log_format":        "FERRY_LOG_FORMAT",
	"log_level":         "FERRY_LOG_LEVEL",
	"fsync":             "FERRY_FSYNC",
	"shutdown_timeout":  "FERRY_SHUTDOWN_TIMEOUT",
	"max_request_bytes": "FERRY_MAX_REQUEST_BYTES",
	"max_streams":       "FERRY_MAX_STREAMS",
	"max_credit":        "FERRY_MAX_CREDIT",
	"send_timeout":      "FERRY_SEND_TIMEOUT",

	"kafka_addr":               "FERRY_KAFKA_ADDR",
	"kafka_advertised_addr":    "FERRY_KAFKA_ADVERTISED_ADDR",
	"kafka_auto_create_topics": "FERRY_KAFKA_AUTO_CREATE_TOPICS",
	"kafka_max_request_bytes":  "FERRY_KAFKA_MAX_REQUEST_BYTES",
}

// Load builds the configuration: defaults, then the config file (when path
// is not empty), then the environment (getenv, os.Getenv when nil), then
// flags (the settings given on the command line, by setting name).
func Load(path string, getenv func(string) string, flags map[string]string) (Config, error) {
	c := Defaults()
	if path != "" {
		md, err := toml.DecodeFile(path, &c)
		if err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
		if un := md.Undecoded(); len(un) > 0 {
			return c, fmt.Errorf("config file %s: unknown setting %q", path, un[0].String())
		}
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	for name, env := range envNames {
		if v := getenv(env); v != "" {
			if err := c.set(name, v); err != nil {
				return c, fmt.Errorf("%s: %w", env, err)
			}
		}
	}
	for name, v := range flags {
		if err := c.set(name, v); err != nil {
			return c, fmt.Errorf("--%s: %w", strings.ReplaceAll(name, "_", "-"), err)
		}
	}
	return c, c.Validate()
}

func (c *Config) set(name, v string) error {
	switch name {
	case "data_dir":
		c.DataDir = v
	case "http_addr":
		c.HTTPAddr = v
	case "log_format":
		c.LogFormat = v
	case "log_level":
		c.LogLevel = v
	case "fsync":
		c.Fsync = v
	case "shutdown_timeout":
		return c.ShutdownTimeout.UnmarshalText([]byte(v))
	case "send_timeout":
		return c.SendTimeout.UnmarshalText([]byte(v))
	case "max_request_bytes":
		return setInt(&c.MaxRequestBytes, v)
	case "max_streams":
		return setInt(&c.MaxStreams, v)
	case "max_credit":
		return setInt(&c.MaxCredit, v)
	case "kafka_addr":
		c.KafkaAddr = v
	case "kafka_advertised_addr":
		c.KafkaAdvertisedAddr = v
	case "kafka_auto_create_topics":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.KafkaAutoCreateTopics = b
	case "kafka_max_request_bytes":
		return setInt(&c.KafkaMaxRequestBytes, v)
	default:
		return fmt.Errorf("unknown setting %q", name)
	}
	return nil
}

func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}

// Validate reports the settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http_addr is empty"))
	}
	if c.KafkaAddr == "" {
		errs = append(errs, errors.New(`kafka_addr is empty (say "off" for no Kafka listener)`))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", c.LogFormat))
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownTimeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("shutdown_timeout %v must be positive", c.ShutdownTimeout.Duration))
	}
	if c.SendTimeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("send_timeout %v must be positive", c.SendTimeout.Duration))
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"max_request_bytes", c.MaxRequestBytes}, {"max_streams", c.MaxStreams}, {"max_credit", c.MaxCredit}, {"kafka_max_request_bytes", c.KafkaMaxRequestBytes}} {
		if l.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %d must be positive", l.name, l.v))
		}
	}
	return errors.Join(errs...)
}

func (c Config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// NewLogger returns the logger the configuration asks for, writing to w.
func (c Config) NewLogger(w interface{ Write([]byte) (int, error) }) *slog.Logger {
	lvl, _ := c.level()
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
