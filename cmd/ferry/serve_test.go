package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const serveChildEnv = "FERRY_TEST_SERVE_DIR"

// TestServeChild runs `ferry serve` as the real binary would, signals
// included; TestServeGracefulShutdown drives it.
func TestServeChild(t *testing.T) {
	dir := os.Getenv(serveChildEnv)
	if dir == "" {
		t.Skip("run by TestServeGracefulShutdown")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs([]string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0"})
	os.Exit(exitCode(root.ExecuteContext(ctx)))
}

var listening = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// TestServeGracefulShutdown starts `ferry serve`, checks it answers
// /healthz and /readyz, sends SIGTERM and checks it stops cleanly, exit 0.
func TestServeGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var base string
	var log []string
	for base == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited before listening: %v", log)
			}
			log = append(log, line)
			if m := listening.FindStringSubmatch(line); m != nil {
				base = m[1]
			}
		case <-ctx.Done():
			t.Fatalf("serve did not start: %v", log)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for line := range lines {
		log = append(log, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	all := strings.Join(log, "\n")
	if !strings.Contains(all, "shutting down") || !strings.Contains(all, "stopped") {
		t.Fatalf("no clean shutdown in the log:\n%s", all)
	}
}

func TestServeRejectsBadSettings(t *testing.T) {
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"serve", "--log-format", "xml", "--data-dir", t.TempDir()})
	if err := root.Execute(); exitCode(err) != exitUsage {
		t.Fatalf("bad log format: %v (exit %d)", err, exitCode(err))
	}
}
