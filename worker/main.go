// Command drflow-worker runs drflow's Temporal workers: the workflows (on any queue it polls)
// and the activities of the region(s) whose stores and keys it holds.
//
//	drflow-worker --config drflow.yaml                      # single machine: every queue
//	drflow-worker --config drflow.yaml --region eu-west-1   # one region's data plane
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
