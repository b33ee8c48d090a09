// Package systems names the systems the benchmark compares and starts
// each: a fresh broker on 127.0.0.1 with its data in a temporary folder,
// and the driver connected to it.
//
//	ferry             Ferry at its default: fsync before ack
//	ferry-1s          Ferry with fsync every second (as Redis appendfsync everysec)
//	ferry-2m          Ferry with fsync every 2 minutes (as JetStream's default)
//	ferry-never       Ferry with no fsync (as NATS core and Redis Pub/Sub, which store nothing)
//	ferry-kafka       Ferry at its default (fsync before ack) through its Kafka
//	                  listener, driven by franz-go (acks=-1); stream and pub/sub
//	                  only: queue and latency need consumer groups (Supports)
//	nats              nats-server: core NATS for pub/sub, JetStream for queue and stream
//	redis             redis-server: Pub/Sub, and Streams for queue and stream
//	rabbitmq-quorum   rabbitmq-server: quorum queues for queue and latency, a
//	                  fanout exchange to transient queues for pub/sub, stream
//	                  queues for stream
//	rabbitmq-classic  rabbitmq-server: durable classic queues (persistent
//	                  messages) for queue and latency; pub/sub and stream as
//	                  rabbitmq-quorum (a classic queue cannot replay: streams
//	                  are RabbitMQ's log whichever queues one uses)
package systems

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/drivers/ferrydriver"
	"github.com/ferrymq/ferry/bench/drivers/kafkadriver"
	"github.com/ferrymq/ferry/bench/drivers/natsdriver"
	"github.com/ferrymq/ferry/bench/drivers/rabbitdriver"
	"github.com/ferrymq/ferry/bench/drivers/redisdriver"
	"github.com/ferrymq/ferry/bench/peers"
	"github.com/ferrymq/ferry/bench/workload"
	"github.com/ferrymq/ferry/server"
)

// ferryFsync is each Ferry system's fsync policy.
var ferryFsync = map[string]string{
	"ferry":       "always",
	"ferry-1s":    "interval:1s",
	"ferry-2m":    "interval:2m",
	"ferry-never": "never",
	"ferry-kafka": "always",
}

// kafkaDoor lists the Ferry systems driven through the Kafka listener.
var kafkaDoor = map[string]bool{"ferry-kafka": true}

// Names lists every system, in table order.
func Names() []string {
	return []string{"ferry", "ferry-1s", "ferry-2m", "ferry-never", "ferry-kafka", "nats", "redis", "rabbitmq-quorum", "rabbitmq-classic"}
}

// Known says whether name is a system.
func Known(name string) bool { return slices.Contains(Names(), name) }

// Supports says whether system name can run spec at all: nil, or an error
// wrapping driver.ErrUnsupported that says why not, known without
// starting the broker. Such a combination is skipped, not run and failed.
// (A driver may still refuse a spec in Setup; this is for what a system
// can never run.)
func Supports(name string, spec workload.Spec) error {
	if kafkaDoor[name] {
		return kafkadriver.Supports(spec)
	}
	return nil
}

// Env says how to start the brokers.
type Env struct {
	// FerryBin is a ferry binary (peers.BuildFerry): Ferry then runs as
	// a `ferry serve` child process, as the peers do, and its CPU is
	// measured. When empty Ferry runs in this process (server.Start):
	// quicker to start, used by the tests, but its CPU is not told
	// apart from the clients'.
	FerryBin string
}

// Instance is a started system.
type Instance struct {
	Name   string
	Driver driver.Driver
	// CPU returns the broker process's CPU time so far; nil when the
	// broker runs in this process.
	CPU func() (time.Duration, error)
	// Output is the broker's recent log output (child processes).
	Output func() string
	stop   []func() error
}

// Stop closes the driver and stops the broker, removing its data.
func (in *Instance) Stop() error {
	var errs []error
	for i := len(in.stop) - 1; i >= 0; i-- {
		errs = append(errs, in.stop[i]())
	}
	in.stop = nil
	return errors.Join(errs...)
}

// Start starts system name.
func Start(ctx context.Context, name string, env Env) (*Instance, error) {
	in := &Instance{Name: name, Output: func() string { return "" }}
	fail := func(err error) (*Instance, error) { return nil, errors.Join(err, in.Stop()) }
	var proc *peers.Process
	var err error
	switch fsync, isFerry := ferryFsync[name]; {
	case isFerry:
		var native, kafka string
		if native, kafka, proc, err = startFerry(ctx, in, env, fsync, kafkaDoor[name]); err != nil {
			return fail(err)
		}
		if kafkaDoor[name] {
			in.Driver, err = kafkadriver.New(ctx, kafkadriver.Config{Addr: "http://" + native, KafkaAddr: kafka, Fsync: fsync, Name: name})
		} else {
			in.Driver, err = ferrydriver.New(ferrydriver.Config{Addr: "http://" + native, Fsync: fsync, Name: name})
		}
	case name == "nats":
		if proc, err = peers.StartNATS(ctx, peers.Options{}); err != nil {
			return fail(err)
		}
		in.stop = append(in.stop, proc.Stop)
		in.Driver, err = natsdriver.New(natsdriver.Config{URL: "nats://" + proc.Addr})
	case name == "redis":
		if proc, err = peers.StartRedis(ctx, peers.Options{}); err != nil {
			return fail(err)
		}
		in.stop = append(in.stop, proc.Stop)
		in.Driver, err = redisdriver.New(redisdriver.Config{Addr: proc.Addr})
	case name == "rabbitmq-quorum" || name == "rabbitmq-classic":
		if proc, err = peers.StartRabbitMQ(ctx, peers.Options{}); err != nil {
			return fail(err)
		}
		in.stop = append(in.stop, proc.Stop)
		in.Driver, err = rabbitdriver.New(rabbitdriver.Config{
			URL: "amqp://guest:guest@" + proc.Addr + "/", Name: name, QueueType: strings.TrimPrefix(name, "rabbitmq-"),
		})
	default:
		return nil, fmt.Errorf("unknown system %q (known: %v)", name, Names())
	}
	if err != nil {
		return fail(err)
	}
	in.stop = append(in.stop, in.Driver.Close)
	if proc != nil {
		in.CPU, in.Output = proc.CPU, proc.Output
	}
	return in, nil
}

// startFerry starts Ferry with the given fsync default, as a child process
// when env gives a binary (proc), else in this process, its Kafka listener
// on a free port when kafka is set and off otherwise, and adds its stop to
// in. It returns the native API's and the Kafka listener's addresses.
func startFerry(ctx context.Context, in *Instance, env Env, fsync string, kafka bool) (native, kafkaAddr string, proc *peers.Process, err error) {
	if env.FerryBin != "" {
		proc, err = peers.StartFerry(ctx, env.FerryBin, peers.FerryConfig{Fsync: fsync, Kafka: kafka}, peers.Options{})
		if err != nil {
			return "", "", nil, err
		}
		in.stop = append(in.stop, proc.Stop)
		return proc.Addr, proc.KafkaAddr, proc, nil
	}
	dir, err := os.MkdirTemp("", "ferrybench-ferry-")
	if err != nil {
		return "", "", nil, err
	}
	in.stop = append(in.stop, func() error { return os.RemoveAll(dir) })
	cfg := server.Defaults()
	cfg.DataDir, cfg.HTTPAddr, cfg.Fsync = dir, "127.0.0.1:0", fsync
	cfg.KafkaAddr = "off"
	if kafka {
		cfg.KafkaAddr = "127.0.0.1:0"
	}
	s, err := server.Start(cfg, nil)
	if err != nil {
		return "", "", nil, err
	}
	in.stop = append(in.stop, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s.Shutdown(sctx)
	})
	return s.Addr(), s.KafkaAddr(), nil, nil
}

// Programs names the broker programs system name runs (for peers.Install).
func Programs(name string) []string {
	switch {
	case name == "nats":
		return []string{"nats-server"}
	case name == "redis":
		return []string{"redis-server"}
	case strings.HasPrefix(name, "rabbitmq"):
		return []string{"rabbitmq-server"}
	}
	return nil
}
