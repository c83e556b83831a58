package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/drflow/drflow/internal/repo"
)

// Progress is the heartbeat detail of the data activities. It has the fields of
// workflows.Progress (a conversion between the two is valid); this package cannot import
// workflows, which imports it.
type Progress struct {
	Phase      string  `json:"phase"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"` // -1 while unknown
	ETASeconds float64 `json:"eta_seconds"` // -1 while unknown
}

// ProgressSignal is the signal by which data activities report their Progress to the workflow
// that runs them, so that its progress query answers with bytes done and an ETA (a workflow
// cannot read its activities' heartbeats). workflows.ProgressQuery serves it.
const ProgressSignal = "drflow-progress"

// DefaultProgressEvery is how often a data activity signals its progress: rarely enough that a
// day-long backup adds a few thousand small events to its history, often enough for a person
// watching. Activities shorter than this send none.
const DefaultProgressEvery = 15 * time.Second

// ProgressReporter delivers a data activity's progress to its workflow; the worker's is a
// Temporal client's SignalWorkflow with ProgressSignal.
type ProgressReporter func(ctx context.Context, workflowID, runID string, p Progress) error

// heartbeater converts repo progress into heartbeats, and once per ProgressEvery into a
// progress signal to the workflow. repo calls it from one goroutine at a time, and the SDK
// throttles what reaches the server.
type heartbeater struct {
	ctx   context.Context
	start time.Time

	inActivity bool
	signal     ProgressReporter // nil: heartbeats only
	every      time.Duration
	lastSignal time.Time // the activity's start until the first signal
}

func (a *Activities) newHeartbeater(ctx context.Context) *heartbeater {
	h := &heartbeater{ctx: ctx, start: now(), every: a.ProgressEvery}
	h.lastSignal = h.start
	if activity.IsActivity(ctx) {
		h.inActivity, h.signal = true, a.ReportProgress
	}
	if h.every <= 0 {
		h.every = DefaultProgressEvery
	}
	return h
}

func (h *heartbeater) report(p repo.Progress) {
	if !h.inActivity {
		return // called directly (tests, the CLI): nobody to heartbeat to
	}
	pr := progressOf(p, now().Sub(h.start))
	activity.RecordHeartbeat(h.ctx, pr)
	if h.signal == nil || p.Phase == repo.PhaseDone {
		return
	}
	// One per interval, the first after one interval: a short activity, whose workflow
	// moves on before anyone could read its progress, costs no signal (and no workflow task).
	t := now()
	if t.Sub(h.lastSignal) < h.every {
		return
	}
	h.lastSignal = t
	info := activity.GetInfo(h.ctx)
	sctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	// Progress is informational: a lost signal only delays the next figure.
	if err := h.signal(sctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, pr); err != nil {
		activity.GetLogger(h.ctx).Debug("progress signal not delivered", "error", err)
	}
}

// progressOf estimates the time left from the average rate so far.
func progressOf(p repo.Progress, elapsed time.Duration) Progress {
	out := Progress{Phase: p.Phase, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, ETASeconds: -1}
	if p.BytesTotal < 0 {
		out.BytesTotal = -1
	}
	if p.BytesTotal > 0 && p.BytesDone > 0 && elapsed > 0 {
		rate := float64(p.BytesDone) / elapsed.Seconds()
		out.ETASeconds = max(float64(p.BytesTotal-p.BytesDone)/rate, 0)
	}
	return out
}
