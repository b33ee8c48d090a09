// Command ferry is the Ferry message broker: one binary for queues,
// publish-subscribe and streams, with its storage built in.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Commands watch ctx so that Ctrl-C or a SIGTERM from a supervisor ends
	// them cleanly instead of killing the process mid-write.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}
