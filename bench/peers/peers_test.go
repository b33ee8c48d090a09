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
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.start(ctx, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Stop() })
			if !strings.HasPrefix(p.Addr, "127.0.0.1:") {
				t.Errorf("Addr %q, want loopback", p.Addr)
			}
			if _, err := p.CPU(); err != nil {
				t.Errorf("CPU: %v", err)
			}
			pid, dir := p.PID(), p.Dir
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d still there after Stop (kill 0: %v)", pid, err)
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
