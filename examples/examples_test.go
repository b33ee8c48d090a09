package examples_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/server"
)

// The examples are built (with -race when the test is) and run as their
// users would run them, against a broker on an ephemeral port.

func TestExamples(t *testing.T) {
	addr := "http://" + startServer(t).Addr()
	cases := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{name: "jobs", args: []string{"-server", addr}, want: []string{
			"summary: 50 jobs: 43 done (9 after a retry), 7 dead-lettered",
			"dead letter: job 49 after 3 deliveries (nacked)",
			"all 50 jobs accounted for",
		}},
		// chat finds the broker through FERRY_SERVER.
		{name: "chat", env: []string{"FERRY_SERVER=" + addr}, want: []string{
			"transcript seen by alice:",
			"every user saw all 12 messages, in the same order in each room",
		}},
		{name: "clicks", args: []string{"-server", addr}, want: []string{
			"published 2000 clicks",
			"rebuild from the log matches the live totals (2000 clicks, 40 users, each in one partition)",
			"top pages:",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe(tc.name), tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.name, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
				}
			}
		})
	}
}

// TestUnreachable: no broker, a clear message and exit code 1.
func TestUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe("jobs"), "-server", "http://127.0.0.1:1").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit code 1, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "jobs: create topic: unavailable") {
		t.Errorf("unexpected message:\n%s", out)
	}
}

// TestChatInteractive: bob listens, alice posts two lines from stdin.
func TestChatInteractive(t *testing.T) {
	addr := "http://" + startServer(t).Addr()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	bob := exec.CommandContext(ctx, exe("chat"), "-server", addr, "-user", "bob")
	bobIn, err := bob.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	bobOut, err := bob.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	bob.Stderr = os.Stderr
	if err := bob.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(bobOut)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "joined") {
		t.Fatalf("bob did not join: %q %v", lines.Text(), lines.Err())
	}

	alice := exec.CommandContext(ctx, exe("chat"), "-server", addr, "-user", "alice")
	alice.Stdin = strings.NewReader("hello bob\n#random over here\n")
	if out, err := alice.CombinedOutput(); err != nil {
		t.Fatalf("alice: %v\n%s", err, out)
	}
	for _, want := range []string{"[room.general] alice: hello bob", "[room.random] alice: over here"} {
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("bob saw %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	bobIn.Close() // end of input: bob leaves
	if err := bob.Wait(); err != nil {
		t.Fatalf("bob: %v", err)
	}
}

func startServer(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
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
	return s
}

// bin holds the examples' executables, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ferry-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// One go build for the three programs, with -race when the test has it.
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./jobs", "./chat", "./clicks")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	bin = dir
	return m.Run()
}

// exe is the path of an example's executable.
func exe(name string) string { return filepath.Join(bin, name) }
