package systems

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/peers"
	"github.com/ferrymq/ferry/bench/runner"
	"github.com/ferrymq/ferry/bench/workload"
)

// small shrinks a workload spec to a correctness run: a short warm-up and
// a count of messages instead of a duration.
func small(s workload.Spec) workload.Spec {
	s.Warmup = 100 * time.Millisecond
	s.Duration = 0
	s.Messages = 2000
	if s.Rate > 0 {
		s.Rate = 5000
	}
	return s
}

// TestDrivers runs every workload file, at every size, on each driver
// against a real broker, and checks that every message arrived, the counts
// match and latencies were measured. What a system cannot run (Supports)
// is skipped, as ferrybench skips it.
func TestDrivers(t *testing.T) {
	files, err := workload.LoadDir(filepath.Join("..", "workloads"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ferry", "ferry-kafka", "nats", "redis", "rabbitmq-quorum", "rabbitmq-classic"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			in, err := Start(ctx, name, Env{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := in.Stop(); err != nil {
					t.Errorf("stop %s: %v", name, err)
				}
			})
			for _, f := range files {
				for _, spec := range f.Specs() {
					t.Run(spec.Name, func(t *testing.T) {
						if err := Supports(name, spec); err != nil {
							t.Skip(err)
						}
						spec := small(spec)
						res := runner.Run(ctx, in.Driver, spec, runner.Options{Drain: 20 * time.Second, Timeout: time.Minute, BrokerCPU: in.CPU})
						c := res.Counts
						t.Logf("%s: publish %.0f/s, deliver %.0f/s, replay %.0f/s, e2e p99 %.2f ms, ack p99 %.2f ms, counts %+v",
							res.Spec, res.PublishRate, res.DeliveryRate, res.ReplayRate, res.Latency.P99, res.AckLatency.P99, c)
						if !res.OK {
							t.Fatalf("run failed: %s; counts %+v; broker output:\n%s", res.Error, c, in.Output())
						}
						subs := int64(spec.Subscriptions)
						if c.Failed != 0 || c.Acked != c.Sent || c.Expected != c.Acked*subs || c.Received != c.Expected {
							t.Errorf("counts do not match: %+v", c)
						}
						if c.Sent < spec.Messages {
							t.Errorf("sent %d, want at least %d", c.Sent, spec.Messages)
						}
						if res.AckLatency.Count == 0 {
							t.Errorf("no acknowledgement latency recorded")
						}
						if spec.Pattern == workload.Stream {
							if res.ReplayRate <= 0 {
								t.Errorf("replay rate %v", res.ReplayRate)
							}
						} else if res.Latency.Count == 0 || res.Latency.P50 <= 0 || res.DeliveryRate <= 0 {
							t.Errorf("latency %+v, delivery rate %v: want both measured", res.Latency, res.DeliveryRate)
						}
					})
				}
			}
		})
	}
}

// TestFerryChild runs Ferry as ferrybench does: a `ferry serve` child
// process (built with -race, which the module's own race tests leave in
// the build cache), whose CPU time the runner reads; for ferry-kafka with
// its Kafka listener on.
func TestFerryChild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ferry command")
	}
	ctx := context.Background()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := peers.FerryRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := peers.BuildFerry(ctx, root, t.TempDir(), "-race")
	if err != nil {
		t.Fatal(err)
	}
	files, err := workload.LoadDir(filepath.Join("..", "workloads"))
	if err != nil {
		t.Fatal(err)
	}
	// ferry-1s on the queue; ferry-kafka (its Kafka listener on a port
	// of its own) on the stream.
	for _, tc := range []struct{ system, workload, durability string }{
		{"ferry-1s", "queue-durable", "every 1s"},
		{"ferry-kafka", "stream-append-replay", "acks=-1"},
	} {
		t.Run(tc.system, func(t *testing.T) {
			in, err := Start(ctx, tc.system, Env{FerryBin: bin})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { in.Stop() })
			if in.CPU == nil {
				t.Fatal("no CPU reading for a child broker")
			}
			i := slices.IndexFunc(files, func(f workload.File) bool { return f.Name == tc.workload })
			if i < 0 {
				t.Fatalf("no %s workload in ../workloads", tc.workload)
			}
			spec := small(files[i].Specs()[0])
			res := runner.Run(ctx, in.Driver, spec, runner.Options{System: tc.system, Drain: 20 * time.Second, BrokerCPU: in.CPU})
			t.Logf("%s: publish %.0f/s, deliver %.0f/s, replay %.0f/s, broker CPU %.1f µs/msg, durability %q, counts %+v",
				res.Spec, res.PublishRate, res.DeliveryRate, res.ReplayRate, res.BrokerCPUPerMsg, res.Durability, res.Counts)
			if !res.OK || res.System != tc.system || !strings.Contains(res.Durability, tc.durability) {
				t.Fatalf("run: OK %v, error %q, system %q, durability %q; broker output:\n%s",
					res.OK, res.Error, res.System, res.Durability, in.Output())
			}
			if res.BrokerCPUPerMsg <= 0 {
				t.Errorf("broker CPU per message %v: the child's CPU was not read", res.BrokerCPUPerMsg)
			}
		})
	}
}

// TestSupports: ferry-kafka runs stream and pub/sub and refuses queue and
// latency (consumer groups); the other systems refuse nothing up front.
func TestSupports(t *testing.T) {
	files, err := workload.LoadDir(filepath.Join("..", "workloads"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		spec := f.Specs()[0]
		for _, name := range Names() {
			err := Supports(name, spec)
			want := name == "ferry-kafka" && spec.QueueLike()
			if (err != nil) != want || (err != nil && !errors.Is(err, driver.ErrUnsupported)) {
				t.Errorf("Supports(%s, %s) = %v, want unsupported: %v", name, spec.Name, err, want)
			}
		}
	}
}

// TestProgramsInstalled: every peer system names the programs it runs, and
// with them installed (scripts/test.sh installs them) Install has nothing
// to do. A wrong name would send Install to apt-get, and fail here.
func TestProgramsInstalled(t *testing.T) {
	for _, name := range Names() {
		progs := Programs(name)
		if strings.HasPrefix(name, "ferry") != (len(progs) == 0) {
			t.Errorf("%s: programs %v", name, progs)
		}
		for _, p := range progs {
			if _, err := peers.Find(p); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if err := peers.Install(progs...); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
