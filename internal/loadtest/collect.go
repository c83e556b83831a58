package loadtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/sync/errgroup"

	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/workflows"
)

// parallelism bounds the load test's own concurrent calls to the server, so that measuring
// does not become the load.
const parallelism = 4

// Action is one schedule action: when the schedule meant to take it (including jitter) and
// when it did.
type Action struct {
	Schedule     string
	ScheduleTime time.Time
	ActualTime   time.Time
	WorkflowID   string
}

// Late is how long after its scheduled time the action was taken.
func (a Action) Late() time.Duration { return a.ActualTime.Sub(a.ScheduleTime) }

// scheduleTracker accumulates the actions of schedules across polls: a schedule's
// description holds only its last 10 actions, so it is read more often than that.
type scheduleTracker struct {
	mu      sync.Mutex
	actions map[string]map[int64]Action // schedule ID -> schedule time -> action
	info    map[string]client.ScheduleInfo
	errors  int
}

func newScheduleTracker() *scheduleTracker {
	return &scheduleTracker{actions: map[string]map[int64]Action{}, info: map[string]client.ScheduleInfo{}}
}

// poll describes every schedule in ids and records its recent actions and counters. A
// schedule that cannot be described (after one retry) is counted and skipped: the next poll
// still sees its last 10 actions.
func (t *scheduleTracker) poll(ctx context.Context, sc client.ScheduleClient, ids []string) error {
	var g errgroup.Group // no shared context: one failure must not cancel the others
	g.SetLimit(parallelism)
	for _, id := range ids {
		g.Go(func() error {
			var err error
			for range 2 {
				dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				var desc *client.ScheduleDescription
				desc, err = sc.GetHandle(dctx, id).Describe(dctx)
				cancel()
				if err == nil {
					t.record(id, desc.Info)
					return nil
				}
				if ctx.Err() != nil {
					break
				}
			}
			t.mu.Lock()
			t.errors++
			t.mu.Unlock()
			return fmt.Errorf("describe schedule %s: %w", id, err)
		})
	}
	return g.Wait()
}

func (t *scheduleTracker) record(id string, info client.ScheduleInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.info[id] = info
	m := t.actions[id]
	if m == nil {
		m = map[int64]Action{}
		t.actions[id] = m
	}
	for _, a := range info.RecentActions {
		act := Action{Schedule: id, ScheduleTime: a.ScheduleTime, ActualTime: a.ActualTime}
		if a.StartWorkflowResult != nil {
			act.WorkflowID = a.StartWorkflowResult.WorkflowID
		}
		m[a.ScheduleTime.UnixNano()] = act
	}
}

// ScheduleFigures are the counts of one kind of schedule over the measured window.
type ScheduleFigures struct {
	Schedules int
	// Expected is the number of nominal times over all schedules that fall after a
	// schedule's creation and whose fate was settled by the end of the window (their catch-up
	// window and jitter had passed); Taken the ones a workflow was started for, as its ID or
	// the schedule's recent actions tell.
	Expected, Taken int
	// Missing is Expected-Taken (never negative): actions due that were never taken,
	// whatever the reason.
	Missing int
	// From the schedules' own counters, over their whole life.
	MissedCatchup, SkippedOverlap, TotalActions int
	// Late is ActualTime-ScheduleTime of the counted actions that the schedules' descriptions
	// still listed (the last 10 of each).
	Late        Durations
	LateOver1s  int
	LateOver10s int
	DescribeErr int
}

// figures counts the actions of the schedules in ids (interval every) whose nominal time
// falls after the schedule's creation and at most end-settle. started holds, by schedule ID,
// the nominal times of the workflows the schedule started (from their IDs).
func (t *scheduleTracker) figures(ids []string, every, settle time.Duration, end time.Time, started map[string][]time.Time) (ScheduleFigures, []Action) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := ScheduleFigures{Schedules: len(ids), DescribeErr: t.errors}
	var late []time.Duration
	var counted []Action
	cutoff := end.Add(-settle)
	for _, id := range ids {
		info := t.info[id]
		f.MissedCatchup += info.NumActionsMissedCatchupWindow
		f.SkippedOverlap += info.NumActionsSkippedOverlap
		f.TotalActions += info.NumActions
		created := info.CreatedAt
		in := func(n time.Time) bool { return n.After(created) && !n.After(cutoff) }
		f.Expected += ExpectedActions(every, created, cutoff)
		taken := map[int64]bool{}
		for _, a := range t.actions[id] {
			n := Nominal(every, a.ScheduleTime)
			if !in(n) {
				continue
			}
			taken[n.UnixNano()] = true
			late = append(late, a.Late())
			counted = append(counted, a)
			if a.Late() > time.Second {
				f.LateOver1s++
			}
			if a.Late() > 10*time.Second {
				f.LateOver10s++
			}
		}
		for _, n := range started[id] {
			if in(n) {
				taken[Nominal(every, n).UnixNano()] = true
			}
		}
		f.Taken += len(taken)
	}
	f.Missing = max(0, f.Expected-f.Taken)
	f.Late = Summarize(late)
	return f, counted
}

// scheduledRunTime splits the ID of a workflow started by a schedule into the action's
// workflow ID and the nominal time that the server appended ("-2006-01-02T15:04:05Z").
func scheduledRunTime(workflowID string) (prefix string, nominal time.Time, ok bool) {
	const layout = "2006-01-02T15:04:05Z"
	if len(workflowID) < len(layout)+2 || workflowID[len(workflowID)-len(layout)-1] != '-' {
		return "", time.Time{}, false
	}
	n, err := time.Parse(time.RFC3339, workflowID[len(workflowID)-len(layout):])
	if err != nil {
		return "", time.Time{}, false
	}
	return workflowID[:len(workflowID)-len(layout)-1], n, true
}

// startedBySchedule groups the nominal times of runs by the schedule that started them:
// drflow's schedule IDs equal their actions' workflow IDs.
func startedBySchedule(runs []Execution) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, r := range runs {
		if prefix, n, ok := scheduledRunTime(r.WorkflowID); ok {
			out[prefix] = append(out[prefix], n)
		}
	}
	return out
}

// allActions returns every action seen, by workflow ID.
func (t *scheduleTracker) allActions() map[string]Action {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Action{}
	for _, m := range t.actions {
		for _, a := range m {
			if a.WorkflowID != "" {
				out[a.WorkflowID] = a
			}
		}
	}
	return out
}

// scheduleIDs returns the IDs of the planned schedules of kind.
func scheduleIDs(plan []schedules.Schedule, kind string) []string {
	var ids []string
	for _, s := range plan {
		if kind == "" || s.Kind == kind {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// Execution is one workflow execution as its history tells it.
type Execution struct {
	WorkflowID, RunID string
	Status            enumspb.WorkflowExecutionStatus
	Start, Close      time.Time // Close is zero while it runs
	Failure           string
	// WorkflowTaskLatency is schedule-to-start of each workflow task.
	WorkflowTaskLatency []time.Duration
	// ActivityLatency is schedule-to-start of each activity attempt by activity type;
	// ActivityRun its start-to-close.
	ActivityLatency map[string][]time.Duration
	ActivityRun     map[string][]time.Duration
	Backup          *workflows.BackupResult
}

// AnalyzeHistory reads a workflow's history: task latencies from the scheduled and started
// events' times, the backup result from the completion event (decoded with dc).
//
//nolint:gocyclo // one case per history event type the load test measures
func AnalyzeHistory(events []*historypb.HistoryEvent, dc converter.DataConverter) Execution {
	r := Execution{ActivityLatency: map[string][]time.Duration{}, ActivityRun: map[string][]time.Duration{}}
	wftScheduled := map[int64]time.Time{}
	actScheduled := map[int64]time.Time{}
	actType := map[int64]string{}
	actStarted := map[int64]time.Time{} // by scheduled event ID
	for _, ev := range events {
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			r.Start = at
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			wftScheduled[ev.GetEventId()] = at
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if s, ok := wftScheduled[ev.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()]; ok {
				r.WorkflowTaskLatency = append(r.WorkflowTaskLatency, at.Sub(s))
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			actScheduled[ev.GetEventId()] = at
			actType[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			id := ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()
			if s, ok := actScheduled[id]; ok {
				r.ActivityLatency[actType[id]] = append(r.ActivityLatency[actType[id]], at.Sub(s))
				actStarted[id] = at
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			id := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			if s, ok := actStarted[id]; ok {
				r.ActivityRun[actType[id]] = append(r.ActivityRun[actType[id]], at.Sub(s))
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			r.Close = at
			r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
			if p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult(); p != nil && len(p.GetPayloads()) > 0 {
				var res workflows.BackupResult
				if err := dc.FromPayloads(p, &res); err == nil {
					r.Backup = &res
				}
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			r.Close = at
			r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_FAILED
			r.Failure = ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetMessage()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
			r.Close = at
			r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
			r.Close = at
			r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
			r.Failure = ev.GetWorkflowExecutionTerminatedEventAttributes().GetReason()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
			r.Close = at
			r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			r.Close = at
			r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
		}
	}
	if r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		r.Status = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	return r
}

// listRuns lists the executions matching query.
func listRuns(ctx context.Context, c client.Client, query string) ([]Execution, error) {
	var out []Execution
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: query, PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list workflows (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, Execution{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				RunID:      e.GetExecution().GetRunId(),
				Status:     e.GetStatus(),
			})
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

// readRuns fetches the history of each listed run and analyses it, decoding results with dc.
func readRuns(ctx context.Context, c client.Client, listed []Execution, dc converter.DataConverter) ([]Execution, error) {
	out := make([]Execution, len(listed))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelism)
	for i, l := range listed {
		g.Go(func() error {
			var events []*historypb.HistoryEvent
			it := c.GetWorkflowHistory(gctx, l.WorkflowID, l.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return fmt.Errorf("history of %s: %w", l.WorkflowID, err)
				}
				events = append(events, ev)
			}
			r := AnalyzeHistory(events, dc)
			r.WorkflowID, r.RunID = l.WorkflowID, l.RunID
			out[i] = r
			return nil
		})
	}
	return out, g.Wait()
}

// countRunning counts the running executions of a workflow type.
func countRunning(ctx context.Context, c client.Client, workflowType string) (int64, error) {
	resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: namespace,
		Query:     fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflowType),
	})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}
