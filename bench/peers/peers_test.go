package peers

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFindMissing(t *testing.T) {
	_, err := Find("no-such-broker-ferrybench")
	if err == nil || !strings.Contains(err.Error(), "apt-get install no-such-broker-ferrybench") {
		t.Fatalf("Find of a missing program: %v, want a clear error naming the package", err)
	}
}

func TestStartStop(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		start func(context.Context, Options) (*Process, error)
	}{
		{"nats-server", StartNATS},
		{"redis-server", StartRedis},
		{"rabbitmq-server", StartRabbitMQ},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			p, err := tc.start(ctx, Options{})
			if err != nil {
				t.Fatal(err)
			}
			started := time.Since(t0)
			t.Cleanup(func() { p.Stop() })
			if !strings.HasPrefix(p.Addr, "127.0.0.1:") {
				t.Errorf("Addr %q, want loopback", p.Addr)
			}
			if _, err := p.CPU(); err != nil {
				t.Errorf("CPU: %v", err)
			}
			pid, dir := p.PID(), p.Dir
			// Every process it started, in its group or not (Erlang's
			// port programs, RabbitMQ's epmd), goes with it.
			others := descendants(pid)
			if p.helper != nil {
				others = append(others, append(descendants(p.helper.PID()), self(t, p.helper.PID()))...)
			}
			t0 = time.Now()
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			t.Logf("started in %v, stopped in %v", started.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d still there after Stop (kill 0: %v)", pid, err)
			}
			for _, o := range others {
				if !o.gone() {
					t.Errorf("process %d (started by %s) still there after Stop", o.pid, tc.name)
				}
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("data folder %s still there after Stop", dir)
			}
			if err := p.Stop(); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

// self is process pid as descendants lists them.
func self(t *testing.T, pid int) proc {
	t.Helper()
	_, _, start, ok := procStat(pid)
	if !ok {
		t.Fatalf("no /proc entry for %d", pid)
	}
	return proc{pid, start}
}

func TestProcessCPU(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("50 ms of busy loop did not show: CPU %v then %v", before, after)
	}
}
