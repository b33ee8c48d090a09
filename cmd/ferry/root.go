package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of the ferry command. Scripts depend on them: keep them stable
// and keep the list in the root command's help in step.
const (
	exitOK       = 0
	exitFailure  = 1 // the command ran and failed
	exitUsage    = 2 // the command line was wrong: unknown command or flag, bad arguments
	exitNotFound = 3 // the broker has no such topic or subscription
)

// exitError carries the process exit code a failure should end with. Errors
// that are not an exitError end the process with exitFailure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a mistake in the command line of cmd, so that ferry
// exits with exitUsage and points the user at the help.
func usageError(cmd *cobra.Command, err error) error {
	return &exitError{
		code: exitUsage,
		err:  fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath()),
	}
}

// usageArgs wraps a cobra argument validator so that its complaints are
// usage errors. Every command sets Args through it.
func usageArgs(validate cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := validate(cmd, args); err != nil {
			return usageError(cmd, err)
		}
		return nil
	}
}

// exitCode is the process exit code for the error a command returned.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if ee, ok := errors.AsType[*exitError](err); ok {
		return ee.code
	}
	return exitFailure
}

const rootLong = `Ferry is one message broker for the three ways services talk asynchronously:

  queues    a task is handed off, stored safely and processed once by one of
            many workers; failures are retried, poison messages set aside
  pub/sub   one event fans out, live, to every interested subscriber
  streams   a durable, replayable, partitioned log that consumers rewind,
            catch up on and read in parallel

All three are built from topics (durable, partitioned logs) and subscriptions
(named consumer state on a topic), in one binary with its storage built in.

Exit codes:
  0  success
  1  the command failed
  2  usage error: unknown command or flag, or bad arguments
  3  the broker has no such topic or subscription`

// newRootCmd builds the ferry command tree. It returns a fresh tree on every
// call, holding no state between calls, so tests can run commands in parallel.
func newRootCmd() *cobra.Command {
	root := commandGroup(&cobra.Command{
		Use:   "ferry",
		Short: "Ferry: one broker for queues, pub/sub and streams",
		Long:  rootLong,
		// A failing command prints its error, not the whole usage text; usage
		// errors add a pointer to --help instead (see usageError).
		SilenceUsage: true,
	})
	root.SetFlagErrorFunc(usageError)

	// One constructor per subcommand, each in its own file.
	root.AddCommand(
		newServeCmd(),
		newVersionCmd(),
		newLogCmd(),
		newTopicCmd(), newSubCmd(), newPubCmd(), newConsumeCmd(), newTailCmd(), newReadCmd(),
	)
	return root
}

// commandGroup sets up cmd, a command that only holds subcommands (ferry,
// ferry log), to print its help when run alone and to reject an unknown
// subcommand as a usage error. Without this cobra prints the help and exits 0
// for `ferry log bogus`, and its unknown-command error for `ferry bogus` is
// untyped, so it would exit 1.
func commandGroup(cmd *cobra.Command) *cobra.Command {
	cmd.Args = usageArgs(unknownCommand)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cmd.Help()
	}
	// cobra sets this default only on its own unknown-command path, which
	// unknownCommand replaces.
	cmd.SuggestionsMinimumDistance = 2
	return cmd
}

// unknownCommand rejects any positional argument to a command group: there
// the only valid words are subcommand names, which cobra has already matched.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
}
