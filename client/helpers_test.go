package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/server"
)

// startServer starts a broker on dir at addr ("127.0.0.1:0" for any
// port), retrying the listen briefly when a fixed address is still held by
// a server just shut down. It is shut down when the test ends.
func startServer(t testing.TB, dir, addr string) *server.Server {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.HTTPAddr = addr
	cfg.KafkaAddr = "off"
	cfg.Fsync = "never"
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := server.Start(cfg, nil)
		if err == nil {
			t.Cleanup(func() { shutdown(t, s) })
			return s
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("start server: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the port is freed by the kernel, not by us
	}
}

var (
	stoppedMu sync.Mutex
	stopped   = map[*server.Server]bool{}
)

// shutdown stops s once, however often it is called.
func shutdown(t testing.TB, s *server.Server) {
	stoppedMu.Lock()
	done := stopped[s]
	stopped[s] = true
	stoppedMu.Unlock()
	if done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// newClient returns a client of s, closed when the test ends.
func newClient(t testing.TB, s *server.Server, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{
		client.WithReconnectBackoff(10*time.Millisecond, 200*time.Millisecond),
		client.WithLogger(testLogger()),
	}, opts...)
	c, err := client.New("http://"+s.Addr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testLogger() *slog.Logger {
	if os.Getenv("FERRY_CLIENT_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// setup starts a server and a client, and checks that no goroutine is
// left over once both are closed.
func setup(t *testing.T, opts ...client.Option) (*server.Server, *client.Client) {
	checkGoroutines(t)
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	return s, newClient(t, s, opts...)
}

// checkGoroutines fails the test when, after every other cleanup ran, the
// number of goroutines does not settle back to what it was.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var after int
		ok := eventually(5*time.Second, func() bool {
			after = runtime.NumGoroutine()
			return after <= before
		})
		if !ok {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("goroutines: %d before, %d after\n%s", before, after, buf[:n])
		}
	})
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !eventually(15*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t testing.TB, c *client.Client, name string, partitions int32) {
	t.Helper()
	if _, err := c.CreateTopic(testCtx(t), name, client.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

func createSub(t testing.TB, c *client.Client, topic, name string, cfg client.SubscriptionConfig) {
	t.Helper()
	if _, err := c.CreateSubscription(testCtx(t), topic, name, cfg); err != nil {
		t.Fatalf("create subscription %s/%s: %v", topic, name, err)
	}
}

func values(n int, prefix string) []client.Message {
	out := make([]client.Message, n)
	for i := range out {
		out[i] = client.Message{Value: fmt.Appendf(nil, "%s%d", prefix, i)}
	}
	return out
}
