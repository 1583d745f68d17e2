// Command bottlecap is the host-level budget control plane for bot-bottle:
// the daemon, its command-line client, the dashboard and the metering proxy.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Signals are installed before anything slow starts (containerd's rule):
	// the first SIGINT/SIGTERM cancels ctx, and serve shuts down in order.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	os.Exit(m.Run(ctx, os.Args[1:]))
}
