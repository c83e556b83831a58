package schedules

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// nextRuns is how many upcoming run times Status reports.
const nextRuns = 3

// Status is the state of one drflow schedule as the server reports it.
type Status struct {
	ID      string `json:"id"`
	Dataset string `json:"dataset"`
	Kind    string `json:"kind"`
	// Exists is false for a schedule the configuration asks for that apply has not created.
	Exists bool `json:"exists"`
	// InConfig is false for a drflow schedule whose dataset left the configuration; the next
	// apply deletes it.
	InConfig bool `json:"in_config"`
	// Managed is false when a schedule with a drflow ID exists but drflow did not create it.
	Managed bool `json:"managed"`

	Interval             string  `json:"interval,omitempty"` // e.g. "every 5m"
	IntervalSeconds      float64 `json:"interval_seconds,omitempty"`
	Overlap              string  `json:"overlap_policy,omitempty"` // Skip, BufferOne, ...
	CatchupWindowSeconds float64 `json:"catchup_window_seconds,omitempty"`
	Paused               bool    `json:"paused"`
	Note                 string  `json:"note,omitempty"`

	NextRuns []time.Time `json:"next_runs"`
	LastRun  *Run        `json:"last_run,omitempty"`
	// Actions is how many runs the schedule started; SkippedOverlap and MissedCatchup count
	// the runs it did not start, which show up as missed RPOs.
	Actions        int `json:"actions"`
	SkippedOverlap int `json:"skipped_overlap"`
	MissedCatchup  int `json:"missed_catchup_window"`
}

// Run is a run a schedule started.
type Run struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	WorkflowID  string    `json:"workflow_id"`
	RunID       string    `json:"run_id"`
	// Result is the workflow's status: Running, Completed, Failed, ... or "unknown" when
	// the server no longer has the run.
	Result string `json:"result"`
}

// Statuses describes the schedules want asks for and every other drflow-managed schedule in
// the namespace, sorted by ID.
func Statuses(ctx context.Context, c client.Client, want []Schedule, dc converter.DataConverter) ([]Status, error) {
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	sc := c.ScheduleClient()
	byID := map[string]*Status{}
	for _, s := range want {
		byID[s.ID] = &Status{ID: s.ID, Dataset: s.Dataset, Kind: s.Kind, InConfig: true}
	}
	managed, err := listManaged(ctx, sc, dc)
	if err != nil {
		return nil, err
	}
	for _, m := range managed {
		if _, ok := byID[m.id]; !ok {
			byID[m.id] = &Status{ID: m.id, Dataset: m.memo.Dataset, Kind: m.memo.Kind}
		}
	}

	out := make([]Status, 0, len(byID))
	var errs []error
	for _, st := range byID {
		if err := describe(ctx, c, st, dc); err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Exists || st.InConfig {
			out = append(out, *st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}

func describe(ctx context.Context, c client.Client, st *Status, dc converter.DataConverter) error {
	desc, err := c.ScheduleClient().GetHandle(ctx, st.ID).Describe(ctx)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("describe schedule %s: %w", st.ID, err)
	}
	st.Exists = true
	_, st.Managed = readManaged(desc.Memo, dc)
	sched := desc.Schedule
	if sched.Spec != nil {
		st.Interval = intervalsText(sched.Spec.Intervals)
		if len(sched.Spec.Intervals) == 1 {
			st.IntervalSeconds = sched.Spec.Intervals[0].Every.Seconds()
		}
	}
	if sched.Policy != nil {
		st.Overlap = sched.Policy.Overlap.String()
		st.CatchupWindowSeconds = sched.Policy.CatchupWindow.Seconds()
	}
	if sched.State != nil {
		st.Paused = sched.State.Paused
		st.Note = sched.State.Note
	}
	info := desc.Info
	st.NextRuns = info.NextActionTimes[:min(nextRuns, len(info.NextActionTimes))]
	st.Actions = info.NumActions
	st.SkippedOverlap = info.NumActionsSkippedOverlap
	st.MissedCatchup = info.NumActionsMissedCatchupWindow
	if last := latest(info.RecentActions); last != nil && last.StartWorkflowResult != nil {
		run := &Run{
			ScheduledAt: last.ScheduleTime,
			StartedAt:   last.ActualTime,
			WorkflowID:  last.StartWorkflowResult.WorkflowID,
			RunID:       last.StartWorkflowResult.FirstExecutionRunID,
			Result:      "unknown",
		}
		resp, err := c.DescribeWorkflowExecution(ctx, run.WorkflowID, run.RunID)
		if err == nil {
			run.Result = resp.GetWorkflowExecutionInfo().GetStatus().String()
		} else if !isNotFound(err) {
			return fmt.Errorf("describe last run %s of schedule %s: %w", run.WorkflowID, st.ID, err)
		}
		st.LastRun = run
	}
	return nil
}

func latest(actions []client.ScheduleActionResult) *client.ScheduleActionResult {
	var last *client.ScheduleActionResult
	for i := range actions {
		if last == nil || actions[i].ScheduleTime.After(last.ScheduleTime) {
			last = &actions[i]
		}
	}
	return last
}
