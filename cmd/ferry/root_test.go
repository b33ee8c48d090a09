package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runFerry runs the ferry command tree with args as a user would, and returns
// what it printed and the process exit code main would choose.
func runFerry(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), exitCode(err)
}

func TestRootHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"--help"}, {"help"}} {
		stdout, stderr, code := runFerry(t, args...)
		if code != exitOK {
			t.Errorf("ferry %q: exit code %d, want %d; stderr:\n%s", args, code, exitOK, stderr)
		}
		for _, want := range []string{"queues", "pub/sub", "streams", "Exit codes:", "version"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("ferry %q: help does not mention %q:\n%s", args, want, stdout)
			}
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"versio"}, `unknown command "versio" for "ferry"`},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"version", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"version", "extra"}, `unknown command "extra" for "ferry version"`},
	}
	for _, tt := range tests {
		stdout, stderr, code := runFerry(t, tt.args...)
		if code != exitUsage {
			t.Errorf("ferry %q: exit code %d, want %d", tt.args, code, exitUsage)
		}
		if !strings.Contains(stderr, tt.wantErr) || !strings.Contains(stderr, "--help") {
			t.Errorf("ferry %q: stderr = %q, want it to contain %q and a pointer to --help", tt.args, stderr, tt.wantErr)
		}
		if stdout != "" {
			t.Errorf("ferry %q: printed %q on stdout, want nothing", tt.args, stdout)
		}
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	_, stderr, _ := runFerry(t, "versoin")
	if !strings.Contains(stderr, "Did you mean this?\n\tversion") {
		t.Errorf("stderr = %q, want a suggestion of version", stderr)
	}
}

func TestCompletionIsAvailable(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runFerry(t, "completion", "bash")
	if code != exitOK || !strings.Contains(stdout, "bash completion") {
		t.Errorf("ferry completion bash: exit code %d, stdout starts %.60q, stderr %q", code, stdout, stderr)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	plain := errors.New("disk full")
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{plain, exitFailure},
		{&exitError{code: exitUsage, err: plain}, exitUsage},
		{&exitError{code: 7, err: plain}, 7},
		// A wrapped exitError keeps its code, so commands may add context.
		{fmt.Errorf("reading config: %w", &exitError{code: exitUsage, err: plain}), exitUsage},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestCommandGroup(t *testing.T) {
	t.Parallel()
	// A group shaped as `ferry log` with `ferry log inspect` will be.
	newThingsCmd := func() *cobra.Command {
		group := commandGroup(&cobra.Command{Use: "things", Short: "Work on things"})
		group.AddCommand(&cobra.Command{
			Use:  "list",
			Args: usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				cmd.Print("listed")
				return nil
			},
		})
		return group
	}
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"things"}, exitOK, "Available Commands:", ""},
		{[]string{"things", "list"}, exitOK, "listed", ""},
		{[]string{"things", "lst"}, exitUsage, "", "Did you mean this?\n\tlist"},
		{[]string{"things", "bogus"}, exitUsage, "", `unknown command "bogus" for "ferry things"`},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.AddCommand(newThingsCmd())
		root.SetArgs(tt.args)
		root.SetOut(&out)
		root.SetErr(&errOut)
		code := exitCode(root.Execute())
		if code != tt.code || !strings.Contains(out.String(), tt.inStdout) || !strings.Contains(errOut.String(), tt.inStderr) {
			t.Errorf("ferry %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tt.args, code, out.String(), errOut.String(), tt.code, tt.inStdout, tt.inStderr)
		}
	}
}
