package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/runbooks"
)

// Error types of a runbook run's failures.
const (
	// ErrTypeStepFailed: a step failed; the message names the step and the innermost reason.
	ErrTypeStepFailed = "RunbookStepFailed"
	// ErrTypeStepTimedOut: a step ran past its timeout.
	ErrTypeStepTimedOut = "RunbookStepTimedOut"
	// ErrTypeApprovalRejected: an approver rejected a gate.
	ErrTypeApprovalRejected = "ApprovalRejected"
	// ErrTypeApprovalTimedOut: a gate closed without enough approvals and fails on timeout.
	ErrTypeApprovalTimedOut = "ApprovalTimedOut"
	// ErrTypeUnexpectedSuccess: an expect_error step's action succeeded.
	ErrTypeUnexpectedSuccess = "UnexpectedSuccess"
)

// RunbookWorkflow interprets a runbook: its steps run in order; a parallel step runs its
// branches together; an approval step waits for votes sent by ApproveUpdate; a wait step
// sleeps or polls a condition. When a step fails, or the run is cancelled, the compensations
// of the steps that completed run in reverse order (a saga), and the run fails (or ends
// cancelled) with the step's error.
//
// The run answers RunbookStateQuery with every step's status, shows the same as its current
// details, and is found in the Web UI by DrKind = "runbook" and DrRunbook.
func RunbookWorkflow(ctx workflow.Context, in RunbookInput) (RunbookResult, error) {
	if err := in.Validate(); err != nil {
		return RunbookResult{}, invalidInput(err)
	}
	r, err := startRunbook(ctx, in)
	if err != nil {
		return RunbookResult{}, err
	}
	runErr := r.sequence(ctx, in.Runbook.Steps)
	if runErr != nil {
		r.compensate(ctx, runErr)
	}
	r.finish(ctx, runErr)
	// A vote being handled when the run ends still gets its answer.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return RunbookResult{RunbookState: r.state, StartedAt: r.started, FinishedAt: workflow.Now(ctx), WorkflowID: r.workflowID}, runErr
}

// runbookRun is the state of one run. Steps are kept in runbook order in state.Steps; index
// finds them by ID.
type runbookRun struct {
	in         RunbookInput
	params     map[string]runbooks.Value
	state      RunbookState
	index      map[string]int
	gates      map[string]*gate
	saga       []runbooks.Step // completed steps with a compensation, in completion order
	plans      map[string]planned
	started    time.Time
	workflowID string
}

func startRunbook(ctx workflow.Context, in RunbookInput) (*runbookRun, error) {
	params, err := runbooks.ResolveParams(in.Runbook, in.Params)
	if err != nil {
		return nil, invalidInput(err)
	}
	r := &runbookRun{
		in:         in,
		params:     params,
		state:      RunbookState{Runbook: in.Runbook.Name, RequestedBy: in.RequestedBy, Status: RunRunning, Steps: []StepState{}},
		index:      map[string]int{},
		gates:      map[string]*gate{},
		plans:      map[string]planned{},
		started:    workflow.Now(ctx),
		workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
	}
	r.addSteps(in.Runbook.Steps, "")
	if err := workflow.SetQueryHandler(ctx, RunbookStateQuery, func() (RunbookState, error) { return r.state, nil }); err != nil {
		return nil, err
	}
	if err := r.registerApprovals(ctx); err != nil {
		return nil, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, r.searchAttributes()...); err != nil {
		return nil, err
	}
	r.details(ctx)
	return r, nil
}

// addSteps lists steps, their parallel branches and their compensations in runbook order.
func (r *runbookRun) addSteps(steps []runbooks.Step, parent string) {
	for _, s := range steps {
		st := StepState{ID: s.ID, Kind: s.Kind(), Parent: parent, Status: StepPending}
		if s.Action != nil {
			st.Action = s.Action.Name
		}
		r.index[s.ID] = len(r.state.Steps)
		r.state.Steps = append(r.state.Steps, st)
		r.addSteps(s.Parallel, s.ID)
		if c := s.Compensate; c != nil {
			id := compensationID(s)
			r.index[id] = len(r.state.Steps)
			r.state.Steps = append(r.state.Steps, StepState{ID: id, Kind: "compensation", Action: c.Action.Name, Parent: s.ID, Status: StepPending})
		}
	}
}

func compensationID(s runbooks.Step) string {
	if s.Compensate.ID != "" {
		return s.Compensate.ID
	}
	return s.ID + ".compensate"
}

// sequence runs steps one after the other and stops at the first failure.
func (r *runbookRun) sequence(ctx workflow.Context, steps []runbooks.Step) error {
	for _, s := range steps {
		if err := r.step(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step within its timeout and records its outcome.
func (r *runbookRun) step(ctx workflow.Context, s runbooks.Step) error {
	r.setStatus(ctx, s.ID, StepRunning, nil)
	out, err := r.withTimeout(ctx, s, func(ctx workflow.Context) (map[string]runbooks.Value, error) {
		switch {
		case s.Action != nil:
			return r.action(ctx, s)
		case s.Approval != nil:
			return r.approval(ctx, s)
		case s.Parallel != nil:
			return nil, r.parallel(ctx, s)
		default:
			return r.wait(ctx, s)
		}
	})
	if err != nil {
		status := StepFailed
		if temporal.IsCanceledError(err) {
			status = StepCancelled
		}
		r.setStatus(ctx, s.ID, status, err)
		return stepError(s, err)
	}
	r.at(s.ID).Outputs = out
	r.setStatus(ctx, s.ID, StepDone, nil)
	if s.Compensate != nil {
		r.saga = append(r.saga, s)
	}
	return nil
}

// withTimeout runs fn, failing the step if it has not finished within the step's timeout.
// The step's context is cancelled then, and the step is waited for, so that nothing of it
// runs on while compensations start.
func (r *runbookRun) withTimeout(ctx workflow.Context, s runbooks.Step, fn func(workflow.Context) (map[string]runbooks.Value, error)) (map[string]runbooks.Value, error) {
	if s.Timeout <= 0 {
		return fn(ctx)
	}
	sctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var (
		out  map[string]runbooks.Value
		err  error
		done bool
	)
	workflow.Go(sctx, func(c workflow.Context) {
		out, err = fn(c)
		done = true
	})
	finished, waitErr := workflow.AwaitWithTimeout(ctx, s.Timeout.D(), func() bool { return done })
	if finished {
		return out, err
	}
	cancel()
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return done })
	if waitErr != nil {
		return nil, waitErr // the run was cancelled
	}
	return nil, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("did not finish within its timeout of %s", s.Timeout.D()), ErrTypeStepTimedOut, nil)
}

// parallel runs a step's branches together. The first branch to fail cancels the others;
// the step fails once every branch has ended.
func (r *runbookRun) parallel(ctx workflow.Context, s runbooks.Step) error {
	bctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	var errs []error
	for _, branch := range s.Parallel {
		f, set := workflow.NewFuture(bctx)
		workflow.Go(bctx, func(c workflow.Context) { set.Set(nil, r.step(c, branch)) })
		sel.AddFuture(f, func(f workflow.Future) {
			if err := f.Get(ctx, nil); err != nil {
				errs = append(errs, err)
				cancel()
			}
		})
	}
	for range s.Parallel {
		sel.Select(ctx)
	}
	if len(errs) == 0 {
		return nil
	}
	// The first failure is the cause; the others are mostly its cancellations.
	return errs[0]
}

// wait sleeps for the step's duration, or polls its condition until it reports ok.
func (r *runbookRun) wait(ctx workflow.Context, s runbooks.Step) (map[string]runbooks.Value, error) {
	w := s.Wait
	if w.Until == nil {
		if err := workflow.Sleep(ctx, w.Duration.D()); err != nil {
			return nil, err
		}
		return map[string]runbooks.Value{"ok": runbooks.S("true")}, nil
	}
	every := w.Every.D()
	if every <= 0 {
		every = runbooks.DefaultWaitEvery
	}
	for {
		out, err := r.runAction(ctx, s, *w.Until)
		if err != nil {
			return nil, err
		}
		if out["ok"].Scalar == "true" {
			return out, nil
		}
		if err := workflow.Sleep(ctx, every); err != nil {
			return nil, err
		}
	}
}

// compensate runs the compensations of completed steps, newest first, on a context that
// the run's cancellation does not reach. A failed compensation is recorded and the others
// still run.
func (r *runbookRun) compensate(ctx workflow.Context, cause error) {
	if len(r.saga) == 0 {
		return
	}
	r.state.Status = RunCompensating
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for i := len(r.saga) - 1; i >= 0; i-- {
		s := r.saga[i]
		id := compensationID(s)
		r.setStatus(dctx, s.ID, StepCompensating, nil)
		r.setStatus(dctx, id, StepRunning, nil)
		comp := *s.Compensate
		comp.ID = id
		out, err := r.withTimeout(dctx, comp, func(c workflow.Context) (map[string]runbooks.Value, error) {
			return r.runAction(c, comp, *comp.Action)
		})
		if err != nil {
			r.setStatus(dctx, id, StepFailed, err)
			r.setStatus(dctx, s.ID, StepDone, nil)
			workflow.GetLogger(ctx).Error("compensation failed", "step", s.ID, "compensation", id, "error", err)
			continue
		}
		r.at(id).Outputs = out
		r.setStatus(dctx, id, StepDone, nil)
		r.setStatus(dctx, s.ID, StepCompensated, nil)
	}
	workflow.GetLogger(ctx).Info("compensations done", "cause", cause)
}

// finish sets the run's final status and details.
func (r *runbookRun) finish(ctx workflow.Context, err error) {
	switch {
	case err == nil:
		r.state.Status = RunCompleted
	case temporal.IsCanceledError(err):
		r.state.Status = RunCancelled
	default:
		r.state.Status = RunFailed
	}
	if err != nil {
		r.state.Error = reason(err)
	}
	for i := range r.state.Steps {
		if r.state.Steps[i].Status == StepPending {
			r.state.Steps[i].Status = StepSkipped
		}
	}
	r.details(ctx)
}

// stepError names the failed step in the run's error, keeping a cancellation a
// cancellation so that the run ends as cancelled.
func stepError(s runbooks.Step, err error) error {
	if temporal.IsCanceledError(err) {
		return err
	}
	var appErr *temporal.ApplicationError
	typ := ErrTypeStepFailed
	if errors.As(err, &appErr) && isRunbookErrorType(appErr.Type()) {
		// Already names a step (a parallel branch, a timeout, a gate).
		if appErr.Type() != ErrTypeStepFailed {
			typ = appErr.Type()
		}
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %s: %s", s.ID, appErr.Message()), typ, nil)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %s (%s): %s", s.ID, describeStep(s), reason(err)), typ, err)
}

func isRunbookErrorType(t string) bool {
	switch t {
	case ErrTypeStepFailed, ErrTypeStepTimedOut, ErrTypeApprovalRejected, ErrTypeApprovalTimedOut, ErrTypeUnexpectedSuccess:
		return true
	}
	return false
}

func describeStep(s runbooks.Step) string {
	if s.Action != nil {
		return "action " + s.Action.Name
	}
	return s.Kind()
}

// at returns the state of step id.
func (r *runbookRun) at(id string) *StepState { return &r.state.Steps[r.index[id]] }

// setStatus records a step's new status (and error) and refreshes the current details.
func (r *runbookRun) setStatus(ctx workflow.Context, id, status string, err error) {
	st := r.at(id)
	now := workflow.Now(ctx)
	switch status {
	case StepRunning:
		st.StartedAt, st.FinishedAt, st.Error = &now, nil, ""
	case StepDone, StepFailed, StepCancelled, StepCompensated:
		st.FinishedAt = &now
	}
	if err != nil {
		st.Error = reason(err)
	}
	st.Status = status
	r.details(ctx)
}

func (r *runbookRun) searchAttributes() []temporal.SearchAttributeUpdate {
	updates := []temporal.SearchAttributeUpdate{
		SearchAttrKind.ValueSet(KindRunbook),
		SearchAttrRunbook.ValueSet(r.in.Runbook.Name),
	}
	for _, p := range r.in.Runbook.Params {
		if p.Type == runbooks.TypeDataset {
			if v := r.params[p.Name]; v.Scalar != "" {
				updates = append(updates, SearchAttrDataset.ValueSet(r.in.label(v.Scalar)))
				break
			}
		}
	}
	return updates
}
