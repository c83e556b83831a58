package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/workflows"
)

// Exit codes, so a supervisor can tell a bad invocation from a runtime failure.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const (
	defaultTemporalAddress = "127.0.0.1:7233"
	defaultMetricsAddr     = "127.0.0.1:9464"
	// closeTimeout bounds releasing the activities' stores and audit log at shutdown.
	closeTimeout = 30 * time.Second
)

// options are the parsed command line.
type options struct {
	configPath       string
	region           string
	control          bool
	temporalAddress  string
	namespace        string
	stateDir         string
	scratchDir       string
	postgresAdminDSN string
	checkpointEvery  time.Duration
	gcGrace          time.Duration
	metricsAddr      string
	logLevel         string
	dialTimeout      time.Duration
	stopTimeout      time.Duration
	tuning           tuning
}

// tuning are the Temporal worker options an operator may set; zero leaves the SDK's default.
// They apply to the worker of every task queue the process polls, except the sticky cache,
// which the process shares.
type tuning struct {
	maxConcurrentActivities    int // worker.Options.MaxConcurrentActivityExecutionSize
	maxConcurrentWorkflowTasks int // worker.Options.MaxConcurrentWorkflowTaskExecutionSize
	workflowPollers            int // worker.Options.MaxConcurrentWorkflowTaskPollers
	activityPollers            int // worker.Options.MaxConcurrentActivityTaskPollers
	stickyCacheSize            int // worker.SetStickyWorkflowCacheSize
}

// apply sets the tuned fields of opts.
func (t tuning) apply(opts *worker.Options) {
	opts.MaxConcurrentActivityExecutionSize = t.maxConcurrentActivities
	opts.MaxConcurrentWorkflowTaskExecutionSize = t.maxConcurrentWorkflowTasks
	opts.MaxConcurrentWorkflowTaskPollers = t.workflowPollers
	opts.MaxConcurrentActivityTaskPollers = t.activityPollers
}

// validate rejects what the SDK would panic on or silently misread.
func (t tuning) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"--max-concurrent-activities", t.maxConcurrentActivities},
		{"--max-concurrent-workflow-tasks", t.maxConcurrentWorkflowTasks},
		{"--workflow-pollers", t.workflowPollers},
		{"--activity-pollers", t.activityPollers},
		{"--sticky-cache-size", t.stickyCacheSize},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %d (0 keeps the SDK's default)", errUsage, f.name, f.v)
		}
	}
	// With one workflow task slot or poller the SDK would only ever poll the sticky queue.
	if t.workflowPollers == 1 {
		return fmt.Errorf("%w: --workflow-pollers must be 0 (the SDK's default) or at least 2: one poller would only poll the sticky queue", errUsage)
	}
	if t.maxConcurrentWorkflowTasks == 1 {
		return fmt.Errorf("%w: --max-concurrent-workflow-tasks must be 0 (the SDK's default) or at least 2: one slot would only serve the sticky queue", errUsage)
	}
	return nil
}

// errUsage marks a mistake in how the worker was invoked.
var errUsage = errors.New("usage")

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("drflow-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "drflow configuration file (required)")
	fs.StringVar(&o.region, "region", "", "serve only this region: poll drflow-REGION and open only its stores and keys (default: every region and the control queue)")
	fs.BoolVar(&o.control, "control", false, "with --region, also poll the control queue \"drflow\" and run workflows")
	fs.StringVar(&o.temporalAddress, "temporal-address", envOr("TEMPORAL_ADDRESS", defaultTemporalAddress), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	fs.StringVar(&o.namespace, "namespace", "default", "Temporal namespace")
	fs.StringVar(&o.stateDir, "state-dir", "", "worker state (audit signing keys, drill scratch) (default: var/state next to the config file)")
	fs.StringVar(&o.scratchDir, "scratch-dir", "", "where drills restore directory datasets (default: STATE-DIR/scratch)")
	fs.StringVar(&o.postgresAdminDSN, "postgres-admin-dsn", os.Getenv("DRFLOW_POSTGRES_ADMIN_DSN"), "role that creates and drops PostgreSQL drill databases (env DRFLOW_POSTGRES_ADMIN_DSN; prefer the env var: flags show in ps)")
	fs.DurationVar(&o.checkpointEvery, "checkpoint-every", repo.DefaultCheckpointEvery, "least time between two checkpoints of a backup: a killed worker's backup resumes from the last one")
	fs.DurationVar(&o.gcGrace, "gc-grace", repo.DefaultGCGrace, "least time between retention's garbage collection condemning an unreferenced pack and deleting it: a backup or copy that started before the collection and still needs the pack rescues it meanwhile")
	fs.StringVar(&o.metricsAddr, "metrics-addr", defaultMetricsAddr, "Prometheus /metrics listen address; empty disables")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "how long to try to reach Temporal at start")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long running activities get to finish")
	fs.IntVar(&o.tuning.maxConcurrentActivities, "max-concurrent-activities", 0, "most activities running at once, per task queue (0: the SDK's default, 1000)")
	fs.IntVar(&o.tuning.maxConcurrentWorkflowTasks, "max-concurrent-workflow-tasks", 0, "most workflow tasks processed at once, per task queue (0: the SDK's default, 1000)")
	fs.IntVar(&o.tuning.workflowPollers, "workflow-pollers", 0, "workflow task pollers per task queue, at least 2 (0: the SDK's default, 2)")
	fs.IntVar(&o.tuning.activityPollers, "activity-pollers", 0, "activity task pollers per task queue (0: the SDK's default, 2)")
	fs.IntVar(&o.tuning.stickyCacheSize, "sticky-cache-size", 0, "workflows kept in memory between their tasks, for the whole process (0: the SDK's default, 10000)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q (flags go before arguments; this command takes none)", errUsage, fs.Arg(0))
	}
	if o.configPath == "" {
		return o, fmt.Errorf("%w: --config is required", errUsage)
	}
	if o.control && o.region == "" {
		return o, fmt.Errorf("%w: --control only applies with --region (without it the worker polls every queue)", errUsage)
	}
	if err := o.tuning.validate(); err != nil {
		return o, err
	}
	if o.stateDir == "" {
		o.stateDir = filepath.Join(filepath.Dir(o.configPath), "var", "state")
	}
	return o, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// taskQueues returns the queues the worker polls: the region's, or in single-machine mode
// the control queue and every region's.
func taskQueues(cfg *config.Config, o options) ([]string, error) {
	if o.region != "" {
		if _, ok := cfg.JurisdictionOf(o.region); !ok {
			return nil, fmt.Errorf("%w: region %q is not in the configuration (known: %s)", errUsage, o.region, strings.Join(cfg.Regions(), ", "))
		}
		queues := []string{workflows.RegionTaskQueue(o.region)}
		if o.control {
			queues = append([]string{workflows.ControlTaskQueue}, queues...)
		}
		return queues, nil
	}
	queues := []string{workflows.ControlTaskQueue}
	for _, r := range cfg.Regions() {
		queues = append(queues, workflows.RegionTaskQueue(r))
	}
	return queues, nil
}

// run is the whole worker process; main only wires signals and the exit code. It returns
// when ctx is cancelled (exit 0, after a graceful stop) or on a fatal error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	_ = stdout // the worker writes only logs, to stderr
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "drflow-worker: %v\n", err)
		return exitUsage
	}
	if err := serve(ctx, o, stderr); err != nil {
		fmt.Fprintf(stderr, "drflow-worker: %v\n", err)
		if errors.Is(err, errUsage) {
			return exitUsage
		}
		return exitFailed
	}
	return exitOK
}

//nolint:gocyclo,funlen // the worker's start-up steps in order, each failing with its own message
func serve(ctx context.Context, o options, stderr io.Writer) (err error) {
	log, err := newLogger(stderr, o.logLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	defer func() { _ = log.Sync() }()

	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	queues, err := taskQueues(cfg, o)
	if err != nil {
		return err
	}

	m := newMetrics()
	fatal := make(chan error, 1)
	if o.metricsAddr != "" {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics endpoint (--metrics-addr): %w", err)
		}
		shutdown := m.serve(ln, fatal)
		defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()
		log.Info("serving metrics", zap.String("addr", ln.Addr().String()))
	}

	// Every payload this worker sends to Temporal (results, heartbeat details, query and
	// update answers) is sealed with the deployment's payload keyring, when it has one.
	dc := converter.GetDefaultDataConverter()
	if keyFile := cfg.PayloadKeyFile(); keyFile != "" {
		cdc, err := codec.Open(keyFile)
		if err != nil {
			return err
		}
		dc = cdc.DataConverter()
		log.Info("payload codec on", zap.String("active_key", cdc.ActiveKey()))
	}
	dialCtx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	c, err := client.DialContext(dialCtx, client.Options{
		HostPort:      o.temporalAddress,
		Namespace:     o.namespace,
		Logger:        newSDKLogger(log),
		DataConverter: dc,
		// Workflows report their RPO/RTO through it (workflows.Metric*).
		MetricsHandler: sdkMetrics{m: m},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("cannot reach Temporal at %s (is the server running? set --temporal-address): %w", o.temporalAddress, err)
	}
	defer c.Close()

	acts, err := activities.New(ctx, cfg, activities.Options{
		Region:           o.region,
		StateDir:         o.stateDir,
		ScratchDir:       o.scratchDir,
		PostgresAdminDSN: o.postgresAdminDSN,
		CheckpointEvery:  o.checkpointEvery,
		GCGrace:          o.gcGrace,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	acts.Schedules = schedules.Pauser{Client: c, Config: cfg}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if cerr := acts.Close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close activities: %w", cerr))
		}
	}()

	if o.tuning.stickyCacheSize > 0 {
		// Process-wide, and only before the first worker starts.
		worker.SetStickyWorkflowCacheSize(o.tuning.stickyCacheSize)
	}
	workers := make([]worker.Worker, 0, len(queues))
	defer func() {
		m.up.Set(0)
		stopAll(workers)
		log.Info("workers stopped")
	}()
	for _, q := range queues {
		wopts := worker.Options{
			Interceptors:      []interceptor.WorkerInterceptor{&activityMetrics{m: m}},
			WorkerStopTimeout: o.stopTimeout,
			OnFatalError:      func(err error) { report(fatal, fmt.Errorf("worker on task queue %s: %w", q, err)) },
		}
		o.tuning.apply(&wopts)
		w := worker.New(c, q, wopts)
		// Workflows run on any queue; the activities refuse work for regions they do not hold.
		workflows.Register(w)
		w.RegisterActivity(acts)
		if err := w.Start(); err != nil {
			return fmt.Errorf("start worker on task queue %s (namespace %s): %w", q, o.namespace, err)
		}
		workers = append(workers, w)
	}
	m.up.Set(1)
	log.Info("worker started",
		zap.Strings("task_queues", queues),
		zap.String("region", o.region),
		zap.String("temporal_address", o.temporalAddress),
		zap.String("namespace", o.namespace))

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-fatal:
		return err
	}
}

// report sends err unless an earlier fatal error is already waiting: the first one ends run.
func report(fatal chan<- error, err error) {
	select {
	case fatal <- err:
	default:
	}
}

// stopAll stops the workers concurrently, so shutdown takes one stop timeout, not one per queue.
func stopAll(workers []worker.Worker) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.Stop)
	}
	wg.Wait()
}
