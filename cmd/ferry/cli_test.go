package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/server"
)

// cliChildEnv makes the test binary run as the ferry command: the client
// commands are tested as the real binary, exit codes and all.
const cliChildEnv = "FERRY_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliChildEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// testBroker is a broker served in-process on an ephemeral port.
type testBroker struct {
	url    string
	topics ferryv1connect.TopicServiceClient
	pub    ferryv1connect.PublishServiceClient
	subs   ferryv1connect.SubscriptionServiceClient
}

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.Fsync = "never" // the tests are about the CLI, not the disk
	s, err := server.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	url := "http://" + s.Addr()
	hc := &http.Client{Transport: transport(url)}
	return &testBroker{
		url:    url,
		topics: ferryv1connect.NewTopicServiceClient(hc, url),
		pub:    ferryv1connect.NewPublishServiceClient(hc, url),
		subs:   ferryv1connect.NewSubscriptionServiceClient(hc, url),
	}
}

// result is what one run of ferry printed and its exit code.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("ferry %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cliTimeout bounds every run of the binary.
const cliTimeout = 30 * time.Second

// cmd returns the ferry command with args against b (via FERRY_SERVER),
// bounded by cliTimeout; stdin is given when not empty.
func (b *testBroker) cmd(t *testing.T, ctx context.Context, stdin string, args ...string) *exec.Cmd {
	t.Helper()
	c := exec.CommandContext(ctx, os.Args[0], args...)
	// Under -race a process that exits 0 sleeps a second for late race
	// reports; the child's races are reported all the same without it.
	c.Env = append(os.Environ(), cliChildEnv+"=1", "GORACE=atexit_sleep_ms=0")
	if b != nil {
		c.Env = append(c.Env, serverEnv+"="+b.url)
	}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	return c
}

// run runs ferry with args against b and returns what it printed.
func (b *testBroker) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	c := b.cmd(t, ctx, stdin, args...)
	return wait(c, args)
}

// wait runs c to its end. It may be called on any goroutine: a failure to
// run at all is exit code -1 with the reason on stderr.
func wait(c *exec.Cmd, args []string) result {
	var out, errOut bytes.Buffer
	c.Stdout = &out
	c.Stderr = &errOut
	err := c.Run()
	r := result{args: args, stdout: out.String(), stderr: errOut.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code = -1
		r.stderr += err.Error()
	}
	return r
}

// ok runs ferry and fails the test unless it exits 0.
func (b *testBroker) ok(t *testing.T, args ...string) result {
	t.Helper()
	r := b.run(t, "", args...)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	return r
}

// decode parses the single JSON value of r's stdout into v, strictly.
func decode(t *testing.T, r result, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v\ndecoding: %v", r, err)
	}
	if dec.More() {
		t.Fatalf("%v\nmore than one JSON value", r)
	}
}

// jsonLines parses r's stdout as one messageView a line.
func jsonLines(t *testing.T, r result) []messageView {
	t.Helper()
	var out []messageView
	for line := range strings.Lines(r.stdout) {
		var m messageView
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%v\nline %q: %v", r, line, err)
		}
		out = append(out, m)
	}
	return out
}

// lines splits output into its lines.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// publish stores values in topic directly over the API, each with its own
// timestamp when ts is given.
func (b *testBroker) publish(t *testing.T, topic string, ts []time.Time, values ...string) {
	t.Helper()
	req := &ferryv1.PublishRequest{Topic: topic}
	for i, v := range values {
		m := &ferryv1.PublishMessage{Value: []byte(v)}
		if ts != nil {
			m.Timestamp = timestamppb.New(ts[i])
		}
		req.Messages = append(req.Messages, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.pub.Publish(ctx, connect.NewRequest(req)); err != nil {
		t.Fatal(err)
	}
}

func (b *testBroker) describeSub(t *testing.T, topic, name string) *ferryv1.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.subs.DescribeSubscription(ctx, connect.NewRequest(&ferryv1.DescribeSubscriptionRequest{Topic: topic, Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetSubscription()
}

func backlog(s *ferryv1.Subscription) (backlog, inFlight int64) {
	for _, p := range s.GetPartitions() {
		backlog += p.GetBacklog()
		inFlight += int64(p.GetInFlight())
	}
	return backlog, inFlight
}
