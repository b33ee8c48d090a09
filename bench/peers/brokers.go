package peers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// StartNATS starts nats-server with JetStream, its store in the data
// folder. JetStream's defaults are kept: file storage synced to disk every
// 2 minutes (sync_interval), acknowledging a publish once it is written to
// the store's file (in the page cache).
func StartNATS(ctx context.Context, opts Options) (*Process, error) {
	return start(ctx, "nats-server", opts, func(port int, dir string) []string {
		return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "jetstream")}
	}, func(ctx context.Context, addr string) error {
		line, err := dialLine(ctx, addr, "")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("unexpected greeting %q", line)
		}
		return nil
	})
}

// StartRedis starts redis-server with the append-only file on and
// appendfsync everysec (the setting Redis recommends for durability: a
// crash loses up to about a second of acknowledged writes) and RDB
// snapshots off, so no background save forks during a run.
func StartRedis(ctx context.Context, opts Options) (*Process, error) {
	return start(ctx, "redis-server", opts, func(port int, dir string) []string {
		return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
			"--protected-mode", "no", "--daemonize", "no", "--logfile", ""}
	}, func(ctx context.Context, addr string) error {
		line, err := dialLine(ctx, addr, "PING\r\n")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+PONG") {
			return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
		}
		return nil
	})
}

// FerryConfig says how StartFerry runs `ferry serve`.
type FerryConfig struct {
	// Fsync is the default fsync policy of topics ("always", "never",
	// "interval:1s"); "always" when empty.
	Fsync string
	// Kafka opens the Kafka listener on a free loopback port
	// (Process.KafkaAddr); it is off (--kafka-addr off) otherwise.
	Kafka bool
}

// StartFerry starts `ferry serve` from the binary at bin (see BuildFerry):
// its native API on Process.Addr and, with cfg.Kafka, its Kafka listener
// on Process.KafkaAddr.
func StartFerry(ctx context.Context, bin string, cfg FerryConfig, opts Options) (*Process, error) {
	fsync := cfg.Fsync
	if fsync == "" {
		fsync = "always"
	}
	// The Kafka port is chosen with each attempt's HTTP port; a taken one
	// fails the start with "address already in use", which start tries
	// again.
	var kafkaAddr string
	var portErr error
	p, err := startBinary(ctx, bin, "ferry", opts, func(port int, dir string) []string {
		kafka := "off"
		if cfg.Kafka {
			kp, err := FreePort()
			for err == nil && kp == port {
				kp, err = FreePort()
			}
			if err != nil {
				portErr = err
			} else {
				kafkaAddr = "127.0.0.1:" + strconv.Itoa(kp)
				kafka = kafkaAddr
			}
		}
		return []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:" + strconv.Itoa(port),
			"--kafka-addr", kafka, "--fsync", fsync, "--log-level", "warn"}
	}, func(ctx context.Context, addr string) error {
		if err := ferryReady(ctx, addr); err != nil {
			return err
		}
		if cfg.Kafka && portErr == nil {
			// It listens before /readyz says ready; checked all the same.
			return dialOnly(ctx, kafkaAddr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if portErr != nil {
		return nil, errors.Join(fmt.Errorf("ferry: a port for the Kafka listener: %w", portErr), p.Stop())
	}
	p.KafkaAddr = kafkaAddr
	return p, nil
}

// ferryReady asks `ferry serve`'s /readyz.
func ferryReady(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// startBinary is start for a program given by its path.
func startBinary(ctx context.Context, bin, name string, opts Options, args func(int, string) []string, ready func(context.Context, string) error) (*Process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s binary: %w", name, err)
	}
	p, err := start(ctx, bin, opts, args, ready)
	if p != nil {
		p.Name = name
	}
	return p, err
}

// BuildFerry builds the ferry command of the Ferry module at root (the
// folder holding its go.mod) into dir, with extra go build flags, and
// returns the binary's path.
func BuildFerry(ctx context.Context, root, dir string, flags ...string) (string, error) {
	bin := filepath.Join(dir, "ferry")
	args := append([]string{"build", "-o", bin}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/ferry")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ferry in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// FerryRoot finds the Ferry module's folder from dir upwards (bench/ sits
// inside it).
func FerryRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/ferrymq/ferry\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no github.com/ferrymq/ferry go.mod above %s", dir)
		}
	}
}
