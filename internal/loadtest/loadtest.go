// Package loadtest measures what one drflow worker sustains: it writes a deployment of many
// small directory datasets on a tier-1 tier with a short backup interval, starts the Temporal
// dev server and one real drflow-worker process, applies the schedules the way `drflow
// schedules apply` does, lets them run for a while, and reports the schedule actions that
// were missed or late, the worst RPO of each dataset, the worker's CPU and memory, and the
// Temporal task latencies.
//
// Only hard failures fail a run (a workflow that failed, the worker or the server dying);
// timings are reported, never asserted: they depend on the machine and on what else runs.
package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/workflows"
)

// Options tune a run. The zero value of a field means its default.
type Options struct {
	// Datasets is the number of directory datasets (default 200).
	Datasets int
	// Duration is how long the schedules run before the figures are taken (default 10m).
	Duration time.Duration
	// Every is the tier's backup interval (default 1m); RPO its objective (default 5×Every).
	Every, RPO time.Duration
	// Churn is the share of datasets whose files change every interval, 0 to 1 (default 0.5;
	// negative for none).
	Churn float64
	// Dir holds the deployment, the server's history and the logs: empty or missing. Default
	// a new temporary directory, removed after a run without failures unless Keep.
	Dir  string
	Keep bool
	// TemporalBin is the Temporal CLI (default: installed by scripts/tools.sh); WorkerBin
	// drflow-worker (default: built from ./worker). Both defaults need the repository.
	TemporalBin, WorkerBin string
	// WorkerArgs are appended to the worker's command line (tuning flags); ServerArgs to the
	// dev server's, e.g. --dynamic-config-value for the server's own scheduler worker.
	WorkerArgs, ServerArgs []string
	// SampleEvery is how often CPU and memory are read (default 5s); PollEvery how often the
	// schedules are described (default 5 intervals: they keep their last 10 actions, and a
	// description is a query that the server's scheduler worker answers, so not too often).
	SampleEvery, PollEvery time.Duration
	// Jitter, when positive, replaces the jitter the product derives for the backup
	// schedules (backup_every/20): an experiment in spreading their starts. It must be
	// shorter than Every.
	Jitter time.Duration
	// Drain bounds the wait for running backups after the schedules are paused (default 3m).
	Drain time.Duration
	// Progress receives one line per step (default: discarded).
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Datasets <= 0 {
		o.Datasets = 200
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	if o.RPO <= 0 {
		o.RPO = 5 * o.Every
	}
	if o.Churn == 0 {
		o.Churn = 0.5
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 5 * time.Second
	}
	if o.PollEvery <= 0 {
		o.PollEvery = max(5*o.Every, 30*time.Second)
	}
	if o.Drain <= 0 {
		o.Drain = 3 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Run performs one load test and returns its report. The error is for a run that could
// not be set up or measured; hard failures during the run (a failed workflow, a process that
// died) are in Report.Failures.
//
//nolint:gocyclo,funlen // the load test's phases in order (set-up, warm-up, measure, report); a test harness
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	o.defaults()
	if o.RPO <= o.Every {
		return nil, fmt.Errorf("rpo %s must be longer than the backup interval %s", o.RPO, o.Every)
	}
	if o.Jitter >= o.Every {
		return nil, fmt.Errorf("jitter %s must be shorter than the backup interval %s", o.Jitter, o.Every)
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(o.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	dir := o.Dir
	tempDir := dir == ""
	if tempDir {
		if dir, err = os.MkdirTemp("", "drflow-load-"); err != nil {
			return nil, err
		}
	} else if err := emptyDir(dir); err != nil {
		return nil, err
	}
	rep = &Report{Options: o, Dir: dir, Cores: runtime.NumCPU()}
	defer func() {
		if tempDir && !o.Keep && err == nil && len(rep.Failures) == 0 {
			_ = os.RemoveAll(dir)
			rep.Dir = ""
		}
	}()
	for _, sub := range []string{"bin", "logs", "tmp", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return rep, err
		}
	}

	say("writing %d datasets under %s", o.Datasets, dir)
	d, err := writeDeployment(dir, o.Datasets, o.Every, o.RPO)
	if err != nil {
		return rep, fmt.Errorf("write deployment: %w", err)
	}
	rep.Files, rep.Bytes = d.files, d.bytes

	temporalBin, workerBin := o.TemporalBin, o.WorkerBin
	if temporalBin == "" || workerBin == "" {
		root, err := repoRoot()
		if err != nil {
			return rep, err
		}
		if temporalBin == "" {
			say("installing the pinned Temporal CLI (scripts/tools.sh temporal)")
			if temporalBin, err = installTemporal(ctx, root); err != nil {
				return rep, err
			}
		}
		if workerBin == "" {
			say("building drflow-worker")
			if workerBin, err = buildWorker(ctx, root, filepath.Join(dir, "bin")); err != nil {
				return rep, err
			}
		}
	}

	say("starting the Temporal dev server %s", strings.Join(o.ServerArgs, " "))
	srv, err := startTemporal(ctx, temporalBin, filepath.Join(dir, "temporal.db"), filepath.Join(dir, "logs", "temporal.log"),
		workflows.SearchAttributeDefinitions(), o.ServerArgs)
	if err != nil {
		return rep, err
	}
	defer func() {
		if done, _ := srv.exited(); done {
			return // reported by measure or at the end of the run
		}
		if serr := srv.stop(30 * time.Second); serr != nil && !isSignalExit(serr) {
			rep.Failures = append(rep.Failures, fmt.Sprintf("temporal dev server: %v", serr))
		}
	}()

	metricsPort, err := freePort()
	if err != nil {
		return rep, err
	}
	workerMetrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	args := append([]string{
		"--config", d.configPath, "--temporal-address", srv.address, "--namespace", namespace,
		"--state-dir", filepath.Join(dir, "state"), "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort),
	}, o.WorkerArgs...)
	say("starting drflow-worker %s", strings.Join(o.WorkerArgs, " "))
	wrk, err := startProcess("drflow-worker", filepath.Join(dir, "logs", "worker.log"), workerBin, args...)
	if err != nil {
		return rep, err
	}
	workerStopped := false
	defer func() {
		if !workerStopped {
			_ = wrk.stop(30 * time.Second)
		}
	}()
	err = wrk.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		ms, err := fetchMetrics(ctx, workerMetrics)
		if err != nil {
			return err
		}
		if up, _ := Gauge(ms, "drflow_worker_up", nil); up != 1 {
			return errors.New("drflow_worker_up is not 1 yet")
		}
		return nil
	})
	if err != nil {
		return rep, err
	}

	// Payloads are sealed when the deployment has a payload keyring (the load test writes
	// none, but DRFLOW_CODEC_KEY_FILE may name one): read them as the worker writes them.
	dc := converter.GetDefaultDataConverter()
	if keyFile := d.cfg.PayloadKeyFile(); keyFile != "" {
		cdc, err := codec.Open(keyFile)
		if err != nil {
			return rep, err
		}
		dc = cdc.DataConverter()
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: srv.address, Namespace: namespace, Logger: quietLogger{}, DataConverter: dc})
	if err != nil {
		return rep, fmt.Errorf("dial temporal: %w", err)
	}
	defer c.Close()

	plan, err := schedules.Plan(d.cfg)
	if err != nil {
		return rep, err
	}
	if o.Jitter > 0 {
		for i := range plan {
			if plan[i].Kind == workflows.KindBackup {
				plan[i].Jitter = o.Jitter
			}
		}
	}
	say("applying %d schedules (backup, drill and retention of every dataset)", len(plan))
	applyStart := time.Now()
	if _, err := schedules.Apply(ctx, c, plan, schedules.Options{DataConverter: dc}); err != nil {
		return rep, fmt.Errorf("apply schedules: %w", err)
	}
	rep.ApplyTook = time.Since(applyStart)
	backupIDs := scheduleIDs(plan, workflows.KindBackup)
	jitter := time.Duration(0)
	for _, s := range plan {
		if s.Kind == workflows.KindBackup {
			jitter = max(jitter, s.Jitter)
		}
	}
	rep.Jitter = jitter

	// The measured window.
	sampler := NewSampler(map[string]int{"worker": wrk.pid(), "server": srv.pid()})
	tracker := newScheduleTracker()
	baseWorker, _ := fetchMetrics(ctx, workerMetrics)
	baseServer, _ := fetchMetrics(ctx, srv.metricsURL)
	rep.MeasureStart = time.Now()
	say("measuring for %s (until %s)", o.Duration, rep.MeasureStart.Add(o.Duration).Format("15:04:05"))
	sampler.Sample()
	if err := measure(ctx, o, d, c, wrk, srv, sampler, tracker, backupIDs, rep, say); err != nil {
		return rep, err
	}
	rep.MeasureEnd = time.Now()
	sampler.Sample()
	endWorker, werr := fetchAndKeep(ctx, workerMetrics, filepath.Join(dir, "logs", "worker-metrics.txt"))
	endServer, serr := fetchAndKeep(ctx, srv.metricsURL, filepath.Join(dir, "logs", "server-metrics.txt"))
	if werr == nil && baseWorker != nil {
		rep.WorkerHistograms = workerHistograms(baseWorker, endWorker)
	}
	if serr == nil && baseServer != nil {
		rep.ServerHistograms = serverHistograms(baseServer, endServer)
	}
	rep.Worker = UsageOf(sampler.Series("worker"))
	rep.Server = UsageOf(sampler.Series("server"))
	rep.Machine = MachineUsageOf(sampler.Machine())

	// Stop new actions, let running backups finish, then read the schedules' counters and
	// last actions from a server that is no longer busy.
	say("pausing every schedule; waiting up to %s for running backups", o.Drain)
	for _, id := range scheduleIDs(plan, "") {
		if err := c.ScheduleClient().GetHandle(ctx, id).Pause(ctx, client.SchedulePauseOptions{Note: "load test over"}); err != nil {
			say("pause %s: %v", id, err)
		}
	}
	rep.RunningAtEnd, rep.RunningAfterDrain = drain(ctx, c, o.Drain, wrk)
	say("describing the backup schedules")
	if err := tracker.poll(ctx, c.ScheduleClient(), backupIDs); err != nil {
		say("describing schedules at the end: %v", err)
	}

	say("reading the backup workflows' histories")
	listed, err := listRuns(ctx, c, fmt.Sprintf("WorkflowType = '%s'", schedules.BackupWorkflowType))
	if err != nil {
		return rep, err
	}
	// Only the slots whose catch-up window had passed by the end count: the pause decided
	// the fate of later ones.
	rep.Backup, _ = tracker.figures(backupIDs, o.Every, o.Every+jitter, rep.MeasureEnd, startedBySchedule(listed))
	runs, err := readRuns(ctx, c, listed, dc)
	if err != nil {
		return rep, err
	}
	others, err := listRuns(ctx, c, fmt.Sprintf("WorkflowType != '%s'", schedules.BackupWorkflowType))
	if err == nil {
		rep.OtherWorkflows = len(others)
	}
	rep.analyze(runs, tracker.allActions(), d.datasets)

	if done, exitErr := wrk.exited(); done {
		if !rep.workerDied {
			rep.Failures = append(rep.Failures, fmt.Sprintf("drflow-worker exited during the run: %v\n%s", exitErr, wrk.tailLog(2000)))
		}
	} else {
		workerStopped = true
		if err := wrk.stop(60 * time.Second); err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("drflow-worker did not stop cleanly: %v", err))
		}
	}
	if done, exitErr := srv.exited(); done && !rep.serverDied {
		rep.Failures = append(rep.Failures, fmt.Sprintf("temporal dev server exited during the run: %v", exitErr))
	}
	say("done")
	return rep, nil
}

// measure runs the schedules for o.Duration: it samples the processes, changes the
// datasets' files once per interval (half an interval after the backups start), describes
// the schedules, and stops early if the worker or the server dies.
//
//nolint:gocyclo // one sample per figure the load test reports
func measure(ctx context.Context, o Options, d *deployment, c client.Client, wrk *process, srv *temporalServer,
	sampler *Sampler, tracker *scheduleTracker, backupIDs []string, rep *Report, say func(string, ...any)) error {
	end := time.After(o.Duration)
	sample := time.NewTicker(o.SampleEvery)
	defer sample.Stop()
	poll := time.NewTicker(o.PollEvery)
	defer poll.Stop()
	status := time.NewTicker(time.Minute)
	defer status.Stop()
	// Churn mid-interval, away from the backups' start.
	now := time.Now()
	firstChurn := Nominal(o.Every, now).Add(o.Every / 2)
	if !firstChurn.After(now) {
		firstChurn = firstChurn.Add(o.Every)
	}
	churnTimer := time.NewTimer(time.Until(firstChurn))
	defer churnTimer.Stop()
	tick := 0
	var polls sync.WaitGroup
	var polling atomic.Bool
	defer polls.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end:
			return nil
		case <-wrk.done:
			rep.workerDied = true
			rep.Failures = append(rep.Failures, fmt.Sprintf("drflow-worker exited during the run: %v\n%s", wrk.err, wrk.tailLog(2000)))
			return nil
		case <-srv.done:
			rep.serverDied = true
			rep.Failures = append(rep.Failures, fmt.Sprintf("temporal dev server exited during the run: %v\n%s", srv.err, srv.tailLog(2000)))
			return nil
		case <-sample.C:
			sampler.Sample()
		case <-poll.C:
			// In the background, so that sampling and churn keep their pace while the
			// server answers; one poll at a time.
			if polling.CompareAndSwap(false, true) {
				polls.Go(func() {
					defer polling.Store(false)
					if err := tracker.poll(ctx, c.ScheduleClient(), backupIDs); err != nil {
						say("describing schedules: %v", err)
					}
				})
			}
		case <-churnTimer.C:
			if o.Churn > 0 {
				n, err := d.churn(tick, o.Churn, filepath.Join(d.root, "tmp"))
				if err != nil {
					return fmt.Errorf("change the datasets' files: %w", err)
				}
				rep.ChurnBytes += n
				rep.ChurnTicks++
			}
			tick++
			churnTimer.Reset(o.Every)
		case <-status.C:
			s := sampler.Series("worker")
			line := fmt.Sprintf("%s elapsed", time.Since(rep.MeasureStart).Round(time.Second))
			if len(s) >= 2 {
				u := UsageOf(s[max(0, len(s)-12):])
				line += fmt.Sprintf("; worker %.2f cores, RSS %s", u.Cores, mib(u.LastRSS))
			}
			if n, err := countRunning(ctx, c, schedules.BackupWorkflowType); err == nil {
				line += fmt.Sprintf("; %d backups running", n)
			}
			if m := sampler.Machine(); len(m) > 0 {
				line += fmt.Sprintf("; load %.2f", m[len(m)-1].Load1)
			}
			say("%s", line)
		}
	}
}

// drain waits up to limit for running backup workflows to finish, and returns how many ran
// when it started and when it gave up (0 if all finished).
func drain(ctx context.Context, c client.Client, limit time.Duration, wrk *process) (atStart, atEnd int64) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	first := true
	for {
		n, err := countRunning(ctx, c, schedules.BackupWorkflowType)
		if err != nil {
			return atStart, -1
		}
		if first {
			atStart, first = n, false
		}
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return atStart, n
		}
		if done, _ := wrk.exited(); done {
			return atStart, n
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return atStart, n
		}
	}
}

// fetchAndKeep reads a Prometheus endpoint and keeps what it served in path.
func fetchAndKeep(ctx context.Context, url, path string) ([]Sample, error) {
	raw, err := fetchRaw(ctx, url)
	if err != nil {
		return nil, err
	}
	_ = os.WriteFile(path, raw, 0o644)
	return ParseText(bytes.NewReader(raw))
}

// isSignalExit says whether err is the exit of a process that ended on SIGTERM or SIGKILL,
// as a stopped server does.
func isSignalExit(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "signal: terminated") || strings.Contains(err.Error(), "signal: killed"))
}

// emptyDir creates dir, or checks that it is empty.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("directory %s is not empty", dir)
	}
	return nil
}

// closed reports whether status is final.
func closed(s enumspb.WorkflowExecutionStatus) bool {
	return s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && s != enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
}
