package loadtest

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/workflows"
)

const exposition = `# HELP drflow_activity_seconds Duration of activity executions.
# TYPE drflow_activity_seconds histogram
drflow_activity_seconds_bucket{activity="Backup",outcome="success",le="0.1"} 10
drflow_activity_seconds_bucket{activity="Backup",outcome="success",le="0.5"} 60
drflow_activity_seconds_bucket{activity="Backup",outcome="success",le="1"} 90
drflow_activity_seconds_bucket{activity="Backup",outcome="success",le="+Inf"} 100
drflow_activity_seconds_sum{activity="Backup",outcome="success"} 42.5
drflow_activity_seconds_count{activity="Backup",outcome="success"} 100
drflow_activity_seconds_bucket{activity="Backup",outcome="error",le="0.1"} 0
drflow_activity_seconds_bucket{activity="Backup",outcome="error",le="0.5"} 0
drflow_activity_seconds_bucket{activity="Backup",outcome="error",le="1"} 0
drflow_activity_seconds_bucket{activity="Backup",outcome="error",le="+Inf"} 100
drflow_activity_seconds_sum{activity="Backup",outcome="error"} 500
drflow_activity_seconds_count{activity="Backup",outcome="error"} 100
drflow_activity_seconds_bucket{activity="Plan",outcome="success",le="0.1"} 7
drflow_activity_seconds_bucket{activity="Plan",outcome="success",le="+Inf"} 7
drflow_worker_up 1
weird{path="a \"quoted\" \\ value\nnext", empty=""} NaN 1712345678000
process_start_time_seconds 1.712345678e+09
`

func TestParseText(t *testing.T) {
	samples, err := ParseText(strings.NewReader(exposition))
	require.NoError(t, err)
	require.Len(t, samples, 17)
	assert.Equal(t, Sample{Name: "drflow_activity_seconds_bucket",
		Labels: map[string]string{"activity": "Backup", "outcome": "success", "le": "0.1"}, Value: 10}, samples[0])
	assert.Equal(t, "+Inf", samples[3].Labels["le"])
	assert.Equal(t, 100.0, samples[3].Value)

	weird := samples[15]
	assert.Equal(t, "weird", weird.Name)
	assert.Equal(t, "a \"quoted\" \\ value\nnext", weird.Labels["path"])
	assert.Equal(t, "", weird.Labels["empty"])
	assert.True(t, math.IsNaN(weird.Value))
	assert.InDelta(t, 1.712345678e9, samples[16].Value, 1)

	up, ok := Gauge(samples, "drflow_worker_up", nil)
	assert.True(t, ok)
	assert.Equal(t, 1.0, up)
	_, ok = Gauge(samples, "drflow_worker_down", nil)
	assert.False(t, ok)

	for _, bad := range []string{"novalue", `x{a="b} 1`, `x{a=b} 1`, "x notanumber"} {
		_, err := ParseText(strings.NewReader(bad + "\n"))
		assert.Error(t, err, bad)
	}
}

func TestHistogramQuantile(t *testing.T) {
	samples, err := ParseText(strings.NewReader(exposition))
	require.NoError(t, err)
	h, ok := HistogramOf(samples, "drflow_activity_seconds", map[string]string{"activity": "Backup", "outcome": "success"})
	require.True(t, ok)
	assert.Equal(t, []Bucket{{0.1, 10}, {0.5, 60}, {1, 90}, {math.Inf(1), 100}}, h.Buckets)
	assert.Equal(t, 100.0, h.Total())
	assert.InDelta(t, 0.425, h.Mean(), 1e-9)
	// Rank 50 lies in (0.1, 0.5], 40 of whose 50 observations come first: 0.1 + 0.4·40/50.
	assert.InDelta(t, 0.42, h.Quantile(0.5), 1e-9)
	// Rank 5 in the first bucket, interpolated from 0.
	assert.InDelta(t, 0.05, h.Quantile(0.05), 1e-9)
	// Rank 90 is exactly the top of (0.5, 1].
	assert.InDelta(t, 1.0, h.Quantile(0.9), 1e-9)
	// Rank 99 is in +Inf: the highest finite bound is the answer, as in Prometheus.
	assert.Equal(t, 1.0, h.Quantile(0.99))
	assert.True(t, math.IsNaN(h.Quantile(1.5)))

	// Without an outcome label both series are summed: the error series puts 100 more in +Inf.
	all, ok := HistogramOf(samples, "drflow_activity_seconds", map[string]string{"activity": "Backup"})
	require.True(t, ok)
	assert.Equal(t, 200.0, all.Total())
	assert.Equal(t, 542.5, all.Sum)
	assert.InDelta(t, 1.0, all.Quantile(0.5), 1e-9) // rank 100 is in +Inf: highest finite bound

	_, ok = HistogramOf(samples, "nope", nil)
	assert.False(t, ok)
	assert.True(t, math.IsNaN(Histogram{}.Quantile(0.5)))
	assert.True(t, math.IsNaN(Histogram{}.Mean()))
}

func TestHistogramSub(t *testing.T) {
	base := Histogram{Buckets: []Bucket{{0.1, 5}, {1, 8}, {math.Inf(1), 10}}, Sum: 3, Count: 10}
	end := Histogram{Buckets: []Bucket{{0.1, 5}, {1, 48}, {math.Inf(1), 50}}, Sum: 30, Count: 50}
	d := end.Sub(base)
	assert.Equal(t, []Bucket{{0.1, 0}, {1, 40}, {math.Inf(1), 40}}, d.Buckets)
	assert.Equal(t, 40.0, d.Total())
	assert.InDelta(t, 27.0/40, d.Mean(), 1e-9)
	// Nothing below 0.1 in the window, so the median is interpolated inside (0.1, 1].
	assert.InDelta(t, 0.1+0.9*20/40, d.Quantile(0.5), 1e-9)
	// A series that appeared during the window counts from zero.
	fresh := end.Sub(Histogram{})
	assert.Equal(t, end.Buckets, fresh.Buckets)
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(ds)
	assert.Equal(t, Durations{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond,
		Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}, s)
	assert.Equal(t, 100*time.Millisecond, ds[0], "the input is not sorted in place")
	assert.Equal(t, "p50 50.0ms  p90 90.0ms  p99 99.0ms  max 100.0ms  (n=100)", s.String())

	one := Summarize([]time.Duration{3 * time.Second})
	assert.Equal(t, 3*time.Second, one.P50)
	assert.Equal(t, 3*time.Second, one.P99)
	assert.Equal(t, "no samples", Summarize(nil).String())
	assert.Equal(t, "1m05.5s", short(65500*time.Millisecond))
	assert.Equal(t, "-2.00s", short(-2*time.Second))
}

func TestExpectedActionsAndNominal(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	// Created at 10:00:30, window to 10:05:00: nominal times 10:01 ... 10:05.
	assert.Equal(t, 5, ExpectedActions(time.Minute, at("2025-01-02T10:00:30Z"), at("2025-01-02T10:05:00Z")))
	// The creation instant itself is excluded, the end included.
	assert.Equal(t, 1, ExpectedActions(time.Minute, at("2025-01-02T10:00:00Z"), at("2025-01-02T10:01:00Z")))
	assert.Equal(t, 0, ExpectedActions(time.Minute, at("2025-01-02T10:00:01Z"), at("2025-01-02T10:00:59Z")))
	assert.Equal(t, 0, ExpectedActions(time.Minute, at("2025-01-02T10:05:00Z"), at("2025-01-02T10:00:00Z")))
	// Intervals align to the Unix epoch, not to the hour: 7m slots at 10:02 and 10:09 on
	// this day (10:00 is 5 mod 7 minutes after the epoch).
	assert.Equal(t, 2, ExpectedActions(7*time.Minute, at("2025-01-02T10:00:00Z"), at("2025-01-02T10:10:00Z")))

	assert.Equal(t, at("2025-01-02T10:03:00Z"), Nominal(time.Minute, at("2025-01-02T10:03:02.9Z")))
	assert.Equal(t, at("2025-01-02T10:03:00Z"), Nominal(time.Minute, at("2025-01-02T10:03:00Z")))
	assert.Equal(t, at("2025-01-02T10:02:00Z"), Nominal(7*time.Minute, at("2025-01-02T10:08:59Z")))
	assert.Equal(t, at("2025-01-02T10:09:00Z"), Nominal(7*time.Minute, at("2025-01-02T10:09:00Z")))
}

func TestExposureOf(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 10, 0, 0, 0, time.UTC)
	m := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	points := []Point{
		{DataAsOf: m(120), Durable: m(124)}, // out of order on purpose
		{DataAsOf: m(0), Durable: m(3)},
		{DataAsOf: m(60), Durable: m(62)},
		{DataAsOf: m(300), Durable: m(310)}, // after end: ignored
	}
	w := ExposureOf(points, m(200))
	assert.Equal(t, 3, w.Points)
	assert.Equal(t, 60*time.Second, w.MaxGap)
	// Exposures: 62-0 = 62s, 124-60 = 64s, and at the end 200-120 = 80s.
	assert.Equal(t, 80*time.Second, w.Worst)

	w = ExposureOf(points, m(130))
	assert.Equal(t, 64*time.Second, w.Worst)
	assert.Equal(t, RPOWindow{}, ExposureOf(nil, m(1)))
	assert.Equal(t, RPOWindow{Points: 1, Worst: 10 * time.Second}, ExposureOf(points[1:2], m(10)))
}

func TestProcParsing(t *testing.T) {
	stat := "4242 (drflow (worker) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 17 0 100 2000000 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	cpu, err := ParseProcStat(stat)
	require.NoError(t, err)
	assert.Equal(t, 18010*time.Millisecond, cpu) // (1234+567) ticks of 10ms
	_, err = ParseProcStat("4242 (short) S 1 2")
	assert.Error(t, err)

	status := "Name:\tdrflow-worker\nVmPeak:\t 2000000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t17\n"
	rss, hwm, threads, err := ParseProcStatus(status)
	require.NoError(t, err)
	assert.Equal(t, int64(100<<20), rss)
	assert.Equal(t, int64(200<<20), hwm)
	assert.Equal(t, 17, threads)
	_, _, _, err = ParseProcStatus("Name:\tx\n")
	assert.Error(t, err)

	l1, l5, l15, err := ParseLoadAvg("3.50 2.25 1.00 4/900 12345\n")
	require.NoError(t, err)
	assert.Equal(t, [3]float64{3.5, 2.25, 1}, [3]float64{l1, l5, l15})
	_, _, _, err = ParseLoadAvg("x")
	assert.Error(t, err)

	busy, total, err := ParseCPULine("cpu  100 5 50 800 45 0 10 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	require.NoError(t, err)
	assert.Equal(t, int64(165), busy)   // user nice system irq softirq steal
	assert.Equal(t, int64(1010), total) // guest is already in user

	// The sampler reads real processes: this one.
	s, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, s.RSS)
	assert.GreaterOrEqual(t, s.HWM, s.RSS)
}

func TestUsageOf(t *testing.T) {
	t0 := time.Now()
	samples := []ProcSample{
		{At: t0, CPU: 10 * time.Second, RSS: 50 << 20, HWM: 60 << 20, Threads: 10},
		{At: t0.Add(5 * time.Second), CPU: 15 * time.Second, RSS: 80 << 20, HWM: 80 << 20, Threads: 14},
		{At: t0.Add(10 * time.Second), CPU: 16 * time.Second, RSS: 70 << 20, HWM: 90 << 20, Threads: 12},
	}
	u := UsageOf(samples)
	assert.Equal(t, 6*time.Second, u.CPU)
	assert.InDelta(t, 0.6, u.Cores, 1e-9)
	assert.InDelta(t, 1.0, u.PeakCores, 1e-9)
	assert.Equal(t, int64(90<<20), u.PeakRSS)
	assert.Equal(t, int64(70<<20), u.LastRSS)
	assert.Equal(t, 14, u.PeakThreads)

	m := MachineUsageOf([]MachineSample{
		{Load1: 1.5, Busy: 100, Total: 1000},
		{Load1: 4.0, Busy: 400, Total: 1200},
		{Load1: 2.0, Busy: 700, Total: 1400},
	})
	assert.Equal(t, MachineUsage{LoadStart: 1.5, LoadMax: 4, LoadEnd: 2, Busy: 1.5}, m)
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func TestAnalyzeHistory(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 10, 0, 0, 0, time.UTC)
	at := func(ms int) *timestamppb.Timestamp { return ts(t0.Add(time.Duration(ms) * time.Millisecond)) }
	dc := converter.GetDefaultDataConverter()
	result, err := dc.ToPayloads(workflows.BackupResult{Dataset: "ds-001", DataAsOf: t0.Add(time.Second), RPOSeconds: 61, RPOKnown: true, BytesRead: 1234})
	require.NoError(t, err)
	ev := func(id int64, ms int, typ enumspb.EventType, attrs any) *historypb.HistoryEvent {
		e := &historypb.HistoryEvent{EventId: id, EventTime: at(ms), EventType: typ}
		switch a := attrs.(type) {
		case *historypb.WorkflowTaskStartedEventAttributes:
			e.Attributes = &historypb.HistoryEvent_WorkflowTaskStartedEventAttributes{WorkflowTaskStartedEventAttributes: a}
		case *historypb.ActivityTaskScheduledEventAttributes:
			e.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: a}
		case *historypb.ActivityTaskStartedEventAttributes:
			e.Attributes = &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: a}
		case *historypb.ActivityTaskCompletedEventAttributes:
			e.Attributes = &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: a}
		case *historypb.WorkflowExecutionCompletedEventAttributes:
			e.Attributes = &historypb.HistoryEvent_WorkflowExecutionCompletedEventAttributes{WorkflowExecutionCompletedEventAttributes: a}
		}
		return e
	}
	plan := &commonpb.ActivityType{Name: "Plan"}
	backup := &commonpb.ActivityType{Name: "Backup"}
	events := []*historypb.HistoryEvent{
		ev(1, 0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, nil),
		ev(2, 0, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, nil),
		ev(3, 40, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, &historypb.WorkflowTaskStartedEventAttributes{ScheduledEventId: 2}),
		ev(4, 50, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, nil),
		ev(5, 50, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, &historypb.ActivityTaskScheduledEventAttributes{ActivityType: plan}),
		ev(6, 60, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, &historypb.ActivityTaskStartedEventAttributes{ScheduledEventId: 5}),
		ev(7, 70, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: 5}),
		ev(8, 70, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, nil),
		ev(9, 90, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, &historypb.WorkflowTaskStartedEventAttributes{ScheduledEventId: 8}),
		ev(10, 95, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, nil),
		ev(11, 95, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, &historypb.ActivityTaskScheduledEventAttributes{ActivityType: backup}),
		ev(12, 395, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, &historypb.ActivityTaskStartedEventAttributes{ScheduledEventId: 11}),
		ev(13, 1395, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: 11}),
		ev(14, 1395, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, nil),
		ev(15, 1400, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, &historypb.WorkflowTaskStartedEventAttributes{ScheduledEventId: 14}),
		ev(16, 1410, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, nil),
		ev(17, 1410, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, &historypb.WorkflowExecutionCompletedEventAttributes{Result: result}),
	}
	r := AnalyzeHistory(events, dc)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, r.Status)
	assert.Equal(t, t0, r.Start)
	assert.Equal(t, t0.Add(1410*time.Millisecond), r.Close)
	assert.Equal(t, []time.Duration{40 * time.Millisecond, 20 * time.Millisecond, 5 * time.Millisecond}, r.WorkflowTaskLatency)
	assert.Equal(t, map[string][]time.Duration{"Plan": {10 * time.Millisecond}, "Backup": {300 * time.Millisecond}}, r.ActivityLatency)
	assert.Equal(t, map[string][]time.Duration{"Plan": {10 * time.Millisecond}, "Backup": {time.Second}}, r.ActivityRun)
	require.NotNil(t, r.Backup)
	assert.Equal(t, "ds-001", r.Backup.Dataset)
	assert.Equal(t, int64(1234), r.Backup.BytesRead)
	assert.True(t, r.Backup.DataAsOf.Equal(t0.Add(time.Second)))

	running := AnalyzeHistory(events[:12], dc)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, running.Status)
	assert.True(t, running.Close.IsZero())
	assert.Nil(t, running.Backup)
}

func TestScheduleFigures(t *testing.T) {
	created := time.Date(2025, 1, 2, 10, 0, 20, 0, time.UTC)
	slot := func(id string, m int, late time.Duration) client.ScheduleActionResult {
		sched := created.Truncate(time.Minute).Add(time.Duration(m)*time.Minute + 2*time.Second) // 2s of jitter
		return client.ScheduleActionResult{ScheduleTime: sched, ActualTime: sched.Add(late),
			StartWorkflowResult: &client.ScheduleWorkflowExecution{WorkflowID: id + "-" + sched.Format(time.TimeOnly)}}
	}
	tr := newScheduleTracker()
	// Schedule a took every action; its description is read twice with overlapping windows.
	tr.record("a", client.ScheduleInfo{CreatedAt: created, NumActions: 2, RecentActions: []client.ScheduleActionResult{
		slot("a", 1, 100*time.Millisecond), slot("a", 2, 200*time.Millisecond)}})
	tr.record("a", client.ScheduleInfo{CreatedAt: created, NumActions: 4, RecentActions: []client.ScheduleActionResult{
		slot("a", 2, 200*time.Millisecond), slot("a", 3, 2*time.Second), slot("a", 4, 20*time.Second)}})
	// Schedule b missed minute 2 (its catch-up window passed) and 4.
	tr.record("b", client.ScheduleInfo{CreatedAt: created, NumActions: 2, NumActionsMissedCatchupWindow: 1,
		RecentActions: []client.ScheduleActionResult{slot("b", 1, 0), slot("b", 3, 0)}})

	// The window ends at 10:04:02: minute 4's slot (10:04) is in, as end-settle = 10:04:00.
	end := created.Truncate(time.Minute).Add(4*time.Minute + 2*time.Second)
	f, counted := tr.figures([]string{"a", "b"}, time.Minute, 2*time.Second, end, nil)
	assert.Equal(t, 8, f.Expected)
	assert.Equal(t, 6, f.Taken)
	assert.Equal(t, 2, f.Missing)
	assert.Equal(t, 1, f.MissedCatchup)
	assert.Equal(t, 6, f.TotalActions)
	assert.Equal(t, 2, f.LateOver1s)
	assert.Equal(t, 1, f.LateOver10s)
	assert.Equal(t, 20*time.Second, f.Late.Max)
	assert.Equal(t, 100*time.Millisecond, f.Late.P50) // 0, 0, 100ms, 200ms, 2s, 20s
	assert.Len(t, counted, 6)

	// A shorter window counts fewer slots, and actions after it are not taken "in" it.
	f, _ = tr.figures([]string{"a", "b"}, time.Minute, 2*time.Second, end.Add(-time.Minute), nil)
	assert.Equal(t, 6, f.Expected)
	assert.Equal(t, 5, f.Taken)
	assert.Len(t, tr.allActions(), 6, "every action seen, by workflow ID, whatever the window")

	// A workflow that the descriptions no longer list still counts as taken, once: b's
	// minute-4 run is known from its ID only; a's minute-1 run from both.
	minute := func(m int) time.Time { return created.Truncate(time.Minute).Add(time.Duration(m) * time.Minute) }
	f, _ = tr.figures([]string{"a", "b"}, time.Minute, 2*time.Second, end,
		map[string][]time.Time{"b": {minute(4)}, "a": {minute(1)}, "c": {minute(2)}})
	assert.Equal(t, 8, f.Expected)
	assert.Equal(t, 7, f.Taken)
	assert.Equal(t, 1, f.Missing)
	assert.Equal(t, 6, f.Late.N, "lateness only from the descriptions")
}

func TestScheduledRunTime(t *testing.T) {
	prefix, n, ok := scheduledRunTime("drflow-backup-ds-007-2025-01-02T10:03:00Z")
	require.True(t, ok)
	assert.Equal(t, "drflow-backup-ds-007", prefix)
	assert.Equal(t, time.Date(2025, 1, 2, 10, 3, 0, 0, time.UTC), n)
	for _, id := range []string{"drflow-backup-ds-007", "x2025-01-02T10:03:00Z", "drflow-backup-a-2025-01-02T10:03:00+01:00", "-2025-13-02T10:03:00Z"} {
		_, _, ok := scheduledRunTime(id)
		assert.False(t, ok, id)
	}
	got := startedBySchedule([]Execution{
		{WorkflowID: "drflow-backup-ds-1-2025-01-02T10:03:00Z"}, {WorkflowID: "drflow-backup-ds-1-2025-01-02T10:04:00Z"},
		{WorkflowID: "drflow-backup-ds-1"}, // started by hand
	})
	assert.Equal(t, map[string][]time.Time{"drflow-backup-ds-1": {
		time.Date(2025, 1, 2, 10, 3, 0, 0, time.UTC), time.Date(2025, 1, 2, 10, 4, 0, 0, time.UTC)}}, got)
}

func TestAnalyzeAndWrite(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 10, 0, 0, 0, time.UTC)
	s := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	backup := func(ds string, asOf, closeAt int, rpo float64) Execution {
		return Execution{
			WorkflowID: ds + "-" + s(asOf).Format(time.TimeOnly), Status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
			Start: s(asOf), Close: s(closeAt),
			WorkflowTaskLatency: []time.Duration{10 * time.Millisecond},
			ActivityLatency:     map[string][]time.Duration{"Backup": {time.Duration(closeAt-asOf) * 100 * time.Millisecond}},
			Backup:              &workflows.BackupResult{Dataset: ds, DataAsOf: s(asOf), RPOSeconds: rpo, RPOKnown: rpo > 0, BytesRead: 100, BytesUploaded: 10},
		}
	}
	runs := []Execution{
		backup("ds-000", 60, 62, 0), backup("ds-000", 120, 125, 65), backup("ds-000", 180, 181, 61),
		backup("ds-001", 60, 61, 0), backup("ds-001", 400, 402, 342), // a long gap: over a 5m RPO
		{WorkflowID: "ds-002-x", Status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, Start: s(60), Close: s(70), Failure: "boom"},
		{WorkflowID: "ds-002-y", Status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, Start: s(120)},
	}
	actions := map[string]Action{runs[1].WorkflowID: {ScheduleTime: s(119), ActualTime: s(120)}}
	r := &Report{Options: Options{Datasets: 3, Every: time.Minute, RPO: 5 * time.Minute, SampleEvery: 5 * time.Second},
		MeasureStart: s(30), MeasureEnd: s(420)}
	r.analyze(runs, actions, []string{"ds-000", "ds-001", "ds-002"})

	assert.Equal(t, RunFigures{Total: 7, Completed: 5, Failed: 1, Running: 1}, RunFigures{Total: r.Runs.Total,
		Completed: r.Runs.Completed, Failed: r.Runs.Failed, Running: r.Runs.Running})
	assert.Equal(t, int64(500), r.Runs.BytesRead)
	assert.Equal(t, 1, r.Runs.EndToEnd.N)
	assert.Equal(t, 6*time.Second, r.Runs.EndToEnd.Max)
	assert.Equal(t, 6, r.Runs.Duration.N) // the failed run counts; the running one does not
	assert.Equal(t, 500*time.Millisecond, r.Runs.Activity["Backup"].Max)
	require.Len(t, r.Failures, 1)
	assert.Contains(t, r.Failures[0], "ds-002-x failed: boom")
	// ds-000: exposures 62, 65, 61 and 420-180 = 240s; ds-001: 402-60 = 342s, then 20s.
	assert.Equal(t, 1, r.RPO.NoPoints)
	assert.Equal(t, 2, r.RPO.Worst.N)
	assert.Equal(t, 342*time.Second, r.RPO.Worst.Max)
	assert.Equal(t, "ds-001", r.RPO.WorstDataset)
	assert.Equal(t, 1, r.RPO.OverObjective)
	assert.Equal(t, 340*time.Second, r.RPO.MaxGap)
	assert.Equal(t, 342*time.Second, r.RPO.ProductMax)
	assert.True(t, r.Failed())

	var out bytes.Buffer
	require.NoError(t, r.Write(&out))
	text := out.String()
	for _, want := range []string{
		"drflow load test: 3 directory datasets",
		"runs                               7: 5 completed, 1 failed, 1 running",
		"datasets over the objective        1 of 3",
		"worst dataset                      ds-001 (5m42.0s)",
		"HARD FAILURES",
	} {
		assert.Contains(t, text, want)
	}
}

func TestHistogramsOverTheWindow(t *testing.T) {
	base, err := ParseText(strings.NewReader(`drflow_activity_seconds_bucket{activity="Backup",outcome="success",le="0.1"} 10
drflow_activity_seconds_bucket{activity="Backup",outcome="success",le="+Inf"} 10
drflow_activity_seconds_sum{activity="Backup",outcome="success"} 0.5
drflow_activity_seconds_count{activity="Backup",outcome="success"} 10
`))
	require.NoError(t, err)
	end, err := ParseText(strings.NewReader(exposition))
	require.NoError(t, err)
	hs := workerHistograms(base, end)
	require.Len(t, hs, 2)
	assert.Equal(t, "drflow_activity_seconds{activity=Backup}", hs[0].Name)
	// Both outcomes, minus the 10 fast ones before the window: 190 observations.
	assert.Equal(t, 190.0, hs[0].Count)
	assert.Equal(t, "drflow_activity_seconds{activity=Plan}", hs[1].Name)
	assert.Equal(t, 7.0, hs[1].Count)

	server, err := ParseText(strings.NewReader(`task_schedule_to_start_latency_bucket{task_type="Activity",taskqueue="drflow",partition="__normal__",le="0.01"} 3
task_schedule_to_start_latency_bucket{task_type="Activity",taskqueue="drflow",partition="__normal__",le="+Inf"} 4
task_schedule_to_start_latency_bucket{task_type="Workflow",taskqueue="drflow",partition="__normal__",le="0.01"} 0
task_schedule_to_start_latency_bucket{task_type="Workflow",taskqueue="drflow",partition="__normal__",le="+Inf"} 0
task_schedule_to_start_latency_bucket{task_type="Workflow",taskqueue="temporal_sys_per_ns_tq",partition="__normal__",le="1"} 1
task_schedule_to_start_latency_bucket{task_type="Workflow",taskqueue="temporal_sys_per_ns_tq",partition="__normal__",le="+Inf"} 2
task_schedule_to_start_latency_bucket{task_type="Workflow",taskqueue="temporal_sys_per_ns_tq",partition="__sticky__",le="1"} 3
task_schedule_to_start_latency_bucket{task_type="Workflow",taskqueue="temporal_sys_per_ns_tq",partition="__sticky__",le="+Inf"} 3
service_latency_bucket{operation="DescribeNamespace",le="+Inf"} 4
service_latency_bucket{operation="StartWorkflowExecution",le="0.1"} 2
service_latency_bucket{operation="StartWorkflowExecution",le="+Inf"} 2
`))
	require.NoError(t, err)
	sh := serverHistograms(nil, server)
	names := make([]string, len(sh))
	for i, h := range sh {
		names[i] = h.Name
	}
	// Empty series and operations nobody asked about are left out; partitions are summed.
	assert.Equal(t, []string{
		"task_schedule_to_start_latency{task_type=Activity,taskqueue=drflow}",
		"task_schedule_to_start_latency{task_type=Workflow,taskqueue=temporal_sys_per_ns_tq}",
		"service_latency{operation=StartWorkflowExecution}",
	}, names)
	assert.InDelta(t, 0.01*2/3.0, sh[0].P50, 1e-9)
	assert.Equal(t, 5.0, sh[1].Count)
	assert.InDelta(t, 0.625, sh[1].P50, 1e-9) // rank 2.5 of 4 in (0, 1]
	assert.Equal(t, 1.0, sh[1].P99)           // in +Inf: the highest finite bound
}

func TestDeployment(t *testing.T) {
	root := t.TempDir()
	d, err := writeDeployment(root, 12, time.Minute, 5*time.Minute)
	require.NoError(t, err)
	require.Len(t, d.cfg.Datasets, 12)
	assert.Equal(t, "ds-011", d.cfg.Datasets[11].Name)
	assert.Equal(t, filepath.Join(root, "data", "ds-011"), d.cfg.Datasets[11].Source.Path)
	tier, ok := d.cfg.Tier(tierName)
	require.True(t, ok)
	assert.Equal(t, time.Minute, tier.BackupEvery)
	assert.Equal(t, 5*time.Minute, tier.RPO)
	// Six files for datasets 0 and 10 (a large one each), five for the others.
	assert.Equal(t, 2*6+10*5, d.files)
	assert.Greater(t, d.bytes, int64(2<<20))

	// The product derives 1m backup schedules that buffer one overlapping run.
	plan, err := schedules.Plan(d.cfg)
	require.NoError(t, err)
	require.Len(t, plan, 36)
	ids := scheduleIDs(plan, workflows.KindBackup)
	require.Len(t, ids, 12)
	for _, s := range plan {
		if s.Kind == workflows.KindBackup {
			assert.Equal(t, time.Minute, s.Every)
			assert.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, s.Overlap)
			assert.Equal(t, 3*time.Second, s.Jitter)
		}
	}

	// Churn changes the hot files of about half the datasets, and a different half next time.
	tmp := t.TempDir()
	before := hotContents(t, d)
	n, err := d.churn(0, 0.5, tmp)
	require.NoError(t, err)
	after := hotContents(t, d)
	changed := 0
	for i := range before {
		if before[i] != after[i] {
			changed++
			assert.True(t, changes(i, 0, 0.5), "dataset %d changed at tick 0", i)
		}
	}
	// A 16 KiB state file and a journal line of about 1 KiB each.
	assert.GreaterOrEqual(t, n, int64(changed)*(16<<10+1000))
	assert.LessOrEqual(t, n, int64(changed)*(16<<10+1100))
	assert.Positive(t, changed)
	assert.Less(t, changed, 12)
	entries, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, entries, "no temporary file is left behind")

	_, err = writeDeployment(t.TempDir(), 2, 5*time.Minute, 5*time.Minute)
	assert.ErrorContains(t, err, "backup_every")
}

func hotContents(t *testing.T, d *deployment) []string {
	t.Helper()
	var out []string
	for _, src := range d.sources {
		b, err := os.ReadFile(filepath.Join(src, hotDir, hotFile))
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

func TestChangesShare(t *testing.T) {
	for _, share := range []float64{0.1, 0.5, 0.9} {
		n := 0
		for i := range 1000 {
			if changes(i, 3, share) {
				n++
			}
		}
		assert.InDelta(t, share*1000, n, 60, "share %.1f", share)
	}
	assert.False(t, changes(5, 1, 0))
	assert.True(t, changes(5, 1, 1))
	// Different ticks pick different datasets.
	same := 0
	for i := range 200 {
		if changes(i, 0, 0.5) == changes(i, 1, 0.5) {
			same++
		}
	}
	assert.Less(t, same, 200)
}
