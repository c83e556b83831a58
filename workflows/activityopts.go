package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
)

// a is the handle through which workflows name activities; the worker registers a real
// *activities.Activities under the same method names.
var a *activities.Activities

// Activity timeouts. Data activities heartbeat (repo reports progress every few tens of
// milliseconds, the SDK throttles it), so a lost worker is noticed within dataHeartbeat and
// the retry resumes from the backup's checkpoint; StartToClose only bounds a stuck attempt.
const (
	planTimeout       = time.Minute
	dataStartToClose  = 24 * time.Hour
	dataHeartbeat     = 30 * time.Second
	dataScheduleLimit = 7 * 24 * time.Hour
)

func retryPolicy() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        5 * time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Minute,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes(),
	}
}

// controlActivities runs configuration-only activities on the control task queue.
func controlActivities(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ControlTaskQueue,
		StartToCloseTimeout: planTimeout,
		RetryPolicy:         retryPolicy(),
	})
}

// dataActivities runs data activities on the task queue of region.
func dataActivities(ctx workflow.Context, region string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              RegionTaskQueue(region),
		ScheduleToCloseTimeout: dataScheduleLimit,
		StartToCloseTimeout:    dataStartToClose,
		HeartbeatTimeout:       dataHeartbeat,
		RetryPolicy:            retryPolicy(),
	})
}

// invalidInput is the workflow error of an input that fails Validate.
func invalidInput(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, err)
}

// objectivesOf turns a plan's tier into Objectives.
func objectivesOf(p activities.PlanResult) Objectives {
	return Objectives{RPO: p.RPO, RTO: p.RTO, Tier: p.TierLevel}
}

// progressState answers ProgressQuery with the phase the workflow is in and, once done, the
// bytes it moved. It records phase changes only: live bytes and ETA stay in the running data
// activity's heartbeat details (activities.Progress), which clients read from
// DescribeWorkflowExecution, so that a days-long activity adds no events to the history.
//
// It also keeps the workflow's current details (shown on its Web UI page while it runs, and by
// `temporal workflow metadata` at any time): the phase while running, the run's figures at
// the end.
type progressState struct {
	ctx   workflow.Context
	p     Progress
	final bool // details hold the run's figures
}

func newProgress(ctx workflow.Context) (*progressState, error) {
	s := &progressState{ctx: ctx, p: Progress{Phase: "plan", BytesTotal: -1, ETASeconds: -1}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return s.p, nil }); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *progressState) phase(p string) {
	s.p = Progress{Phase: p, BytesTotal: -1, ETASeconds: -1}
	workflow.SetCurrentDetails(s.ctx, fmt.Sprintf("In progress: **%s** since %s UTC (the running activity's heartbeat details have bytes done and ETA)",
		p, workflow.Now(s.ctx).UTC().Format(time.DateTime)))
}

// details sets the run's final figures (Markdown) as its current details.
func (s *progressState) details(markdown string) {
	s.final = true
	workflow.SetCurrentDetails(s.ctx, markdown)
}

func (s *progressState) done(bytes int64) {
	s.p = Progress{Phase: "done", BytesDone: bytes, BytesTotal: bytes, ETASeconds: 0}
	if !s.final {
		workflow.SetCurrentDetails(s.ctx, "Done: see the result.")
	}
}
