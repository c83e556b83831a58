// Command loadtest runs the drflow load test (internal/loadtest): many small directory
// datasets backed up on a short schedule by one drflow-worker against the Temporal dev
// server, and prints what one worker sustains. Run it from the repository:
//
//	go run ./internal/loadtest/cmd/loadtest -datasets 200 -duration 10m
//
// Extra worker flags (tuning) go after -worker-arg, once per flag, and extra dev server
// flags after -server-arg:
//
//	go run ./internal/loadtest/cmd/loadtest -worker-arg=--workflow-pollers=8 -worker-arg=--activity-pollers=8
//
// It exits 1 on a hard failure (a failed workflow, the worker or the server dying) and never
// on timings, 2 on a bad invocation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/drflow/drflow/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o loadtest.Options
	var workerArgs, serverArgs stringList
	quiet := false
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Datasets, "datasets", 200, "number of directory datasets")
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the schedules run before the figures are taken")
	fs.DurationVar(&o.Every, "every", time.Minute, "the tier's backup interval")
	fs.DurationVar(&o.RPO, "rpo", 0, "the tier's RPO (default 5 × -every)")
	fs.Float64Var(&o.Churn, "churn", 0.5, "share of datasets whose files change every interval (0 for none)")
	fs.StringVar(&o.Dir, "dir", "", "working directory, empty or missing (default: a temporary directory, removed after a run without failures)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (deployment, history, logs)")
	fs.StringVar(&o.TemporalBin, "temporal-bin", "", "Temporal CLI (default: installed by scripts/tools.sh)")
	fs.StringVar(&o.WorkerBin, "worker-bin", "", "drflow-worker binary (default: go build ./worker)")
	fs.Var(&workerArgs, "worker-arg", "extra drflow-worker flag, e.g. -worker-arg=--activity-pollers=8 (repeatable)")
	fs.Var(&serverArgs, "server-arg", "extra Temporal dev server flag (repeatable), e.g. -server-arg=--dynamic-config-value=worker.schedulerNamespaceStartWorkflowRPS=100")
	fs.DurationVar(&o.Jitter, "jitter", 0, "experiment: replace the backup schedules' jitter (default: the product's, backup_every/20)")
	fs.DurationVar(&o.Drain, "drain", 3*time.Minute, "how long to wait for running backups after the window")
	fs.BoolVar(&quiet, "q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.Churn == 0 {
		o.Churn = -1 // the package's zero value means its default
	}
	o.WorkerArgs, o.ServerArgs = workerArgs, serverArgs
	if !quiet {
		o.Progress = stderr
	}
	rep, err := loadtest.Run(ctx, o)
	if rep != nil && !rep.MeasureEnd.IsZero() {
		_ = rep.Write(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		if rep != nil && rep.Dir != "" {
			fmt.Fprintf(stderr, "loadtest: logs and history kept in %s\n", rep.Dir)
		}
		return 1
	}
	if rep.Failed() {
		if rep.Dir != "" {
			fmt.Fprintf(stderr, "loadtest: hard failures; logs and history kept in %s\n", rep.Dir)
		}
		return 1
	}
	return 0
}
