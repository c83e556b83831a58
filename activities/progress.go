package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/drflow/drflow/internal/repo"
)

// Progress is the heartbeat detail of the data activities, where `drflow backup --wait` and
// other clients read live figures (DescribeWorkflowExecution's pending activities). It has
// the fields of workflows.Progress (a conversion between the two is valid); this package
// cannot import workflows, which imports it.
type Progress struct {
	Phase      string  `json:"phase"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"` // -1 while unknown
	ETASeconds float64 `json:"eta_seconds"` // -1 while unknown
}

// heartbeater converts repo progress into heartbeats. repo calls it from one goroutine at a
// time, and the SDK throttles what reaches the server. Heartbeats never enter the workflow's
// history, so a days-long activity costs its workflow no events; clients read the last one
// from DescribeWorkflowExecution's pending activities.
type heartbeater struct {
	ctx        context.Context
	start      time.Time
	inActivity bool
}

func (a *Activities) newHeartbeater(ctx context.Context) *heartbeater {
	return &heartbeater{ctx: ctx, start: now(), inActivity: activity.IsActivity(ctx)}
}

func (h *heartbeater) report(p repo.Progress) {
	if !h.inActivity {
		return // called directly (tests, the CLI): nobody to heartbeat to
	}
	activity.RecordHeartbeat(h.ctx, progressOf(p, now().Sub(h.start)))
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
