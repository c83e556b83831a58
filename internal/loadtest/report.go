package loadtest

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

// Report is what a run measured.
type Report struct {
	Options Options
	Dir     string
	Cores   int

	Files                    int
	Bytes                    int64
	ChurnBytes               int64
	ChurnTicks               int
	ApplyTook                time.Duration
	Jitter                   time.Duration
	MeasureStart, MeasureEnd time.Time

	Machine        MachineUsage
	Worker, Server ProcUsage

	Backup ScheduleFigures
	// RunningAtEnd backups ran when the schedules were paused; RunningAfterDrain still ran
	// when the load test stopped waiting (-1: unknown).
	RunningAtEnd, RunningAfterDrain int64

	Runs RunFigures
	RPO  RPOFigures
	// OtherWorkflows counts drills, retention and replication runs (none expected).
	OtherWorkflows int

	// Histograms read from the /metrics endpoints over the measured window.
	WorkerHistograms []NamedHistogram
	ServerHistograms []NamedHistogram

	// Failures are hard failures: the run fails if there is any.
	Failures []string

	workerDied, serverDied bool // already in Failures
}

// RunFigures summarise the backup workflows.
type RunFigures struct {
	Total, Completed, Failed, Running, Other int
	// EndToEnd is close time minus the action's scheduled time (jitter included);
	// Duration close minus start.
	EndToEnd, Duration Durations
	// WorkflowTask and Activity are schedule-to-start latencies (from the histories);
	// ActivityRun start-to-close, by activity type.
	WorkflowTask Durations
	Activity     map[string]Durations
	ActivityRun  map[string]Durations
	BytesRead    int64
	BytesUp      int64
}

// RPOFigures summarise the datasets' data-loss exposure over the measured window.
type RPOFigures struct {
	Objective time.Duration
	// Worst is the distribution over datasets of each one's worst exposure (ExposureOf);
	// OverObjective counts datasets whose worst exposure exceeded the objective.
	Worst         Durations
	OverObjective int
	WorstDataset  string
	// MaxGap is the largest data_as_of gap between consecutive points of any dataset.
	MaxGap time.Duration
	// ProductMax is the largest rpo_seconds a backup workflow reported (the product's own
	// measure of the exposure each backup closed).
	ProductMax time.Duration
	// NoPoints counts datasets without a restore point in the window.
	NoPoints int
}

// NamedHistogram is a histogram of a /metrics endpoint, summarised.
type NamedHistogram struct {
	Name           string
	Count          float64
	P50, P99, Mean float64 // in the metric's unit (seconds)
}

// analyze fills Runs and RPO from the backup workflows' histories.
//
//nolint:gocyclo // one verdict per figure
func (r *Report) analyze(runs []Execution, actions map[string]Action, datasets []string) {
	f := RunFigures{Activity: map[string]Durations{}, ActivityRun: map[string]Durations{}}
	var e2e, dur, wft []time.Duration
	act, actRun := map[string][]time.Duration{}, map[string][]time.Duration{}
	points := map[string][]Point{}
	var productMax time.Duration
	for _, run := range runs {
		f.Total++
		switch run.Status {
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			f.Completed++
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			f.Running++
		case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
			enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
			f.Failed++
			if len(r.Failures) < 10 {
				r.Failures = append(r.Failures, fmt.Sprintf("workflow %s %s: %s", run.WorkflowID,
					strings.ToLower(strings.TrimPrefix(run.Status.String(), "WORKFLOW_EXECUTION_STATUS_")), run.Failure))
			}
		default:
			f.Other++
		}
		wft = append(wft, run.WorkflowTaskLatency...)
		for k, v := range run.ActivityLatency {
			act[k] = append(act[k], v...)
		}
		for k, v := range run.ActivityRun {
			actRun[k] = append(actRun[k], v...)
		}
		if !closed(run.Status) || run.Close.IsZero() {
			continue
		}
		dur = append(dur, run.Close.Sub(run.Start))
		if a, ok := actions[run.WorkflowID]; ok {
			e2e = append(e2e, run.Close.Sub(a.ScheduleTime))
		}
		if b := run.Backup; b != nil {
			f.BytesRead += b.BytesRead
			f.BytesUp += b.BytesUploaded
			if b.RPOKnown {
				productMax = max(productMax, seconds(b.RPOSeconds))
			}
			points[b.Dataset] = append(points[b.Dataset], Point{DataAsOf: b.DataAsOf, Durable: run.Close})
		}
	}
	if f.Failed > 10 {
		r.Failures = append(r.Failures, fmt.Sprintf("... %d failed workflows in all", f.Failed))
	}
	f.EndToEnd, f.Duration, f.WorkflowTask = Summarize(e2e), Summarize(dur), Summarize(wft)
	for k, v := range act {
		f.Activity[k] = Summarize(v)
	}
	for k, v := range actRun {
		f.ActivityRun[k] = Summarize(v)
	}
	r.Runs = f

	rpo := RPOFigures{Objective: r.Options.RPO, ProductMax: productMax}
	var worst []time.Duration
	var worstOf time.Duration
	for _, ds := range datasets {
		w := ExposureOf(points[ds], r.MeasureEnd)
		if w.Points == 0 {
			rpo.NoPoints++
			continue
		}
		worst = append(worst, w.Worst)
		if w.Worst > rpo.Objective {
			rpo.OverObjective++
		}
		if w.Worst > worstOf {
			worstOf, rpo.WorstDataset = w.Worst, ds
		}
		rpo.MaxGap = max(rpo.MaxGap, w.MaxGap)
	}
	rpo.Worst = Summarize(worst)
	r.RPO = rpo
}

// workerHistograms are the worker's activity durations over the window, by activity type.
func workerHistograms(base, end []Sample) []NamedHistogram {
	var out []NamedHistogram
	for _, activity := range activityTypes(end, "drflow_activity_seconds_bucket") {
		name := "drflow_activity_seconds{activity=" + activity + "}"
		out = append(out, deltaHistogram(name, base, end, "drflow_activity_seconds", map[string]string{"activity": activity}))
	}
	return out
}

// serverTimers are the dev server's histograms worth reporting, by the label that tells
// their series apart: how long tasks waited in matching per task queue (the server's own
// scheduler worker polls temporal_sys_per_ns_tq), and how long the frontend took to answer
// the calls workers and schedules make.
var serverTimers = []struct {
	metric string
	labels []string
}{
	{"task_schedule_to_start_latency", []string{"task_type", "taskqueue"}},
	{"syncmatch_latency", []string{"operation"}},
	{"asyncmatch_latency", []string{"operation"}},
	{"service_latency", []string{"operation"}},
	{"task_latency_queue", []string{"operation"}},
}

// serverHistograms are the dev server's task histograms over the window.
func serverHistograms(base, end []Sample) []NamedHistogram {
	var out []NamedHistogram
	for _, t := range serverTimers {
		for _, combo := range labelCombos(end, t.metric+"_bucket", t.labels) {
			if op, ok := combo["operation"]; ok && !interestingOperation(t.metric, op) {
				continue
			}
			parts := make([]string, len(t.labels))
			for i, l := range t.labels {
				parts[i] = l + "=" + combo[l]
			}
			h := deltaHistogram(t.metric+"{"+strings.Join(parts, ",")+"}", base, end, t.metric, combo)
			if h.Count > 0 {
				out = append(out, h)
			}
		}
	}
	return out
}

// interestingOperation keeps the frontend calls that workers and schedules make and the
// history tasks that hand workflow and activity tasks to matching.
func interestingOperation(metric, op string) bool {
	switch metric {
	case "service_latency":
		switch op {
		case "RespondWorkflowTaskCompleted", "RespondActivityTaskCompleted", "StartWorkflowExecution", "RecordActivityTaskHeartbeat":
			return true
		}
		return false
	case "task_latency_queue":
		return op == "TransferActiveTaskWorkflowTask" || op == "TransferActiveTaskActivity"
	}
	return true
}

func deltaHistogram(label string, base, end []Sample, metric string, match map[string]string) NamedHistogram {
	e, _ := HistogramOf(end, metric, match)
	b, _ := HistogramOf(base, metric, match)
	h := e.Sub(b)
	return NamedHistogram{Name: label, Count: h.Total(), P50: h.Quantile(0.5), P99: h.Quantile(0.99), Mean: h.Mean()}
}

func activityTypes(samples []Sample, name string) []string {
	var out []string
	for _, c := range labelCombos(samples, name, []string{"activity"}) {
		out = append(out, c["activity"])
	}
	return out
}

// labelCombos lists the distinct combinations of labels among the samples of name that have
// all of them, sorted.
func labelCombos(samples []Sample, name string, labels []string) []map[string]string {
	seen := map[string]map[string]string{}
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		combo := map[string]string{}
		var key strings.Builder
		for _, l := range labels {
			v, ok := s.Labels[l]
			if !ok {
				combo = nil
				break
			}
			combo[l] = v
			key.WriteString(v + "\x00")
		}
		if combo != nil {
			seen[key.String()] = combo
		}
	}
	out := make([]map[string]string, 0, len(seen))
	for _, k := range sortedKeys(seen) {
		out = append(out, seen[k])
	}
	return out
}

// Failed says whether the run had a hard failure.
func (r *Report) Failed() bool { return len(r.Failures) > 0 }

// Write prints the report as aligned text.
//
//nolint:funlen // one line per figure of the report
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	o := r.Options
	window := r.MeasureEnd.Sub(r.MeasureStart)
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-34s %s\n", name, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "drflow load test: %d directory datasets, one tier-1 tier (backup every %s, RPO %s), one worker, measured %s\n",
		o.Datasets, o.Every, o.RPO, window.Round(time.Second))
	fmt.Fprintf(&b, "  %-34s %s\n", "worker flags", orDefault(strings.Join(o.WorkerArgs, " "), "(defaults)"))
	fmt.Fprintf(&b, "  %-34s %s\n", "dev server flags", orDefault(strings.Join(o.ServerArgs, " "), "(defaults)"))
	fmt.Fprintf(&b, "  %-34s %s .. %s\n", "window", r.MeasureStart.Format(time.DateTime), r.MeasureEnd.Format("15:04:05"))
	if r.Dir != "" {
		line("directory (kept)", "%s", r.Dir)
	}

	b.WriteString("machine\n")
	line("cores", "%d", r.Cores)
	line("load average (1 min)", "start %.2f, max %.2f, end %.2f", r.Machine.LoadStart, r.Machine.LoadMax, r.Machine.LoadEnd)
	line("all cores busy", "%.0f%% (every process, not only this test)", 100*r.Machine.Busy)

	b.WriteString("data\n")
	line("source files", "%d files, %s in all", r.Files, mib(r.Bytes))
	line("changed between backups", "%.0f%% of datasets per interval: %s written in %d rounds", 100*max(0, o.Churn), mib(r.ChurnBytes), r.ChurnTicks)
	line("backed up", "%s read, %s uploaded (after dedup and compression)", mib(r.Runs.BytesRead), mib(r.Runs.BytesUp))

	f := r.Backup
	b.WriteString("schedule actions (backup schedules)\n")
	line("schedules applied", "%d backup of %d in all, in %s", f.Schedules, 3*o.Datasets, r.ApplyTook.Round(time.Millisecond))
	line("expected (slots settled by the end)", "%d", f.Expected)
	line("taken", "%d", f.Taken)
	line("missing (due, never taken)", "%d (%.1f%%)", f.Missing, percent(f.Missing, f.Expected))
	line("missed catch-up window (counter)", "%d", f.MissedCatchup)
	line("skipped overlap (counter)", "%d", f.SkippedOverlap)
	line("late: actual - scheduled", "%s", f.Late)
	line("late by more than 1s / 10s", "%d / %d", f.LateOver1s, f.LateOver10s)
	if o.Jitter > 0 {
		line("schedule jitter (overridden)", "up to %s (the product derives backup_every/20)", r.Jitter)
	} else {
		line("schedule jitter (by design)", "up to %s (backup_every/20)", r.Jitter)
	}
	if f.DescribeErr > 0 {
		line("describe errors", "%d", f.DescribeErr)
	}

	rf := r.Runs
	b.WriteString("backup workflows\n")
	line("runs", "%d: %d completed, %d failed, %d running", rf.Total, rf.Completed, rf.Failed, rf.Running)
	line("running when paused / after drain", "%d / %d", r.RunningAtEnd, r.RunningAfterDrain)
	line("scheduled -> closed (end to end)", "%s", rf.EndToEnd)
	line("started -> closed", "%s", rf.Duration)
	if r.OtherWorkflows > 0 {
		line("other workflows (drill, retention)", "%d", r.OtherWorkflows)
	}

	b.WriteString("Temporal task latency, schedule-to-start (from the histories)\n")
	line("workflow tasks", "%s", rf.WorkflowTask)
	for _, k := range sortedKeys(rf.Activity) {
		line("activity "+k, "%s", rf.Activity[k])
	}
	b.WriteString("activity run time, start-to-close (from the histories)\n")
	for _, k := range sortedKeys(rf.ActivityRun) {
		line("activity "+k, "%s", rf.ActivityRun[k])
	}

	p := r.RPO
	fmt.Fprintf(&b, "RPO (objective %s)\n", p.Objective)
	line("worst exposure per dataset", "%s", p.Worst)
	line("datasets over the objective", "%d of %d", p.OverObjective, o.Datasets)
	if p.WorstDataset != "" {
		line("worst dataset", "%s (%s)", p.WorstDataset, short(p.Worst.Max))
	}
	line("largest data_as_of gap", "%s", short(p.MaxGap))
	line("largest rpo_seconds reported", "%s", short(p.ProductMax))
	if p.NoPoints > 0 {
		line("datasets without a point", "%d", p.NoPoints)
	}

	b.WriteString("processes (over the window)\n")
	writeUsage := func(name string, u ProcUsage) {
		line(name+" CPU", "%.1fs = %.2f cores on average, %.2f at peak (%s samples)", u.CPU.Seconds(), u.Cores, u.PeakCores, o.SampleEvery)
		line(name+" memory", "peak RSS %s, at the end %s; threads up to %d", mib(u.PeakRSS), mib(u.LastRSS), u.PeakThreads)
	}
	writeUsage("drflow-worker", r.Worker)
	writeUsage("temporal dev server", r.Server)
	if n := float64(r.Runs.Completed); n > 0 && r.Worker.CPU > 0 {
		line("worker CPU per backup", "%s", short(time.Duration(float64(r.Worker.CPU)/n)))
	}

	if len(r.WorkerHistograms) > 0 {
		b.WriteString("worker /metrics histograms over the window (bucket estimates)\n")
		writeHists(&b, r.WorkerHistograms)
	}
	if len(r.ServerHistograms) > 0 {
		b.WriteString("dev server /metrics histograms over the window (bucket estimates)\n")
		writeHists(&b, r.ServerHistograms)
	}

	if len(r.Failures) > 0 {
		b.WriteString("HARD FAILURES\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "  - %s\n", f)
		}
	} else {
		b.WriteString("no hard failures\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeHists(b *strings.Builder, hs []NamedHistogram) {
	hs = slices.Clone(hs)
	sort.Slice(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
	for _, h := range hs {
		fmt.Fprintf(b, "  %-60s n=%-7.0f p50 %-9s p99 %-9s mean %s\n", h.Name, h.Count,
			histSeconds(h.P50), histSeconds(h.P99), histSeconds(h.Mean))
	}
}

func histSeconds(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return short(seconds(v))
}

func percent(part, whole int) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
