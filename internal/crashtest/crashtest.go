// Package crashtest runs one of a test binary's own tests in a child
// process, lets it work, kills it with SIGKILL and hands back what it
// printed: the harness of every kill -9 test.
//
// The child test reads its instructions from the environment and skips
// itself when they are absent, so a plain `go test` run passes over it.
package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Child is a test of the running binary to run as a child process.
type Child struct {
	// Run is the -test.run pattern that selects the child test.
	Run string
	// Env holds KEY=VALUE pairs added to the child's environment.
	Env []string
}

// RunAndKill starts the child, waits (up to 10 s) for a line that started
// reports true for, lets the child run for d more, kills it with SIGKILL
// and returns every line it printed to standard output. A line beginning
// with "error" fails the test. The child is always reaped.
func (c Child) RunAndKill(t testing.TB, started func(line string) bool, d time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+c.Run, "-test.count=1")
	cmd.Env = append(os.Environ(), c.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out []string
	take := func(line string) bool {
		if strings.HasPrefix(line, "error") {
			t.Errorf("child: %s", line)
		}
		out = append(out, line)
		return started(line)
	}
	timeout := time.After(10 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited before it started: %s", stderr.String())
			}
			if take(line) {
				break wait
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start in 10 s: %s", stderr.String())
		}
	}
	time.Sleep(d)
	cmd.Process.Signal(syscall.SIGKILL)
	for line := range lines {
		take(line)
	}
	cmd.Wait()
	return out
}
