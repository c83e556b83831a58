package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/runbooks"
)

// outputs are an action's results, by field, as later steps reference them.
type outputs = map[string]runbooks.Value

// planned is a Plan activity's answer, kept for the run: routing does not change while a
// runbook runs, and asking once keeps the history short.
type planned = activities.PlanResult

// action runs an action step. With expect_error, the step succeeds only if the action fails
// with that error type.
func (r *runbookRun) action(ctx workflow.Context, s runbooks.Step) (outputs, error) {
	out, err := r.runAction(ctx, s, *s.Action)
	if s.ExpectError == "" {
		return out, err
	}
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"action %s succeeded, but the runbook expected it to fail with %s", s.Action.Name, s.ExpectError), ErrTypeUnexpectedSuccess, nil)
	case errors.As(err, &appErr) && appErr.Type() == s.ExpectError:
		return outputs{"error_type": runbooks.S(appErr.Type()), "error": runbooks.S(appErr.Message())}, nil
	case temporal.IsCanceledError(err):
		return nil, err
	}
	return nil, fmt.Errorf("expected %s, got: %w", s.ExpectError, err)
}

// runAction resolves an action's arguments and runs it with the step's retry and timeout.
func (r *runbookRun) runAction(ctx workflow.Context, s runbooks.Step, act runbooks.Action) (outputs, error) {
	args := actionArgs{}
	// In name order, so that the first bad argument named is the same on every replay.
	for _, name := range slices.Sorted(maps.Keys(act.Args)) {
		v := act.Args[name]
		resolved, err := r.substitute(v)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("argument %s: %v", name, err), ErrTypeInvalidInput, nil)
		}
		args[name] = resolved
	}
	x := actionRun{r: r, s: s, args: args}
	switch act.Name {
	case runbooks.ActionBackup, runbooks.ActionReplicate, runbooks.ActionDrill, runbooks.ActionRetention:
		return x.child(ctx, act.Name)
	case runbooks.ActionRestore, runbooks.ActionVerify, runbooks.ActionFindCleanPoint, runbooks.ActionPointExists:
		return x.pointAction(ctx, act.Name)
	case runbooks.ActionChooseFailover:
		return x.chooseFailover(ctx)
	case runbooks.ActionHoldPlace, runbooks.ActionHoldRelease, runbooks.ActionHoldReport:
		return x.holdAction(ctx, act.Name)
	case runbooks.ActionKeyRotate, runbooks.ActionKeyRevoke, runbooks.ActionKeyEscrow, runbooks.ActionKeyRecover, runbooks.ActionKeyRewrap:
		return x.keyAction(ctx, act.Name)
	case runbooks.ActionLocationCheck:
		return x.checkLocation(ctx)
	case runbooks.ActionNotify:
		return x.notify(ctx)
	case runbooks.ActionSchedulesPause, runbooks.ActionSchedulesResume:
		return x.schedules(ctx, act.Name == runbooks.ActionSchedulesPause)
	}
	return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("unknown action %q", act.Name), ErrTypeInvalidInput, nil)
}

// substitute resolves the references in a value against the run's parameters, the outputs of
// finished steps and the run itself.
func (r *runbookRun) substitute(v runbooks.Value) (runbooks.Value, error) {
	return runbooks.Substitute(v, func(ref runbooks.Ref) (runbooks.Value, bool) {
		switch ref.Scope {
		case "params":
			p, ok := r.params[ref.Name]
			return p, ok
		case "steps":
			i, ok := r.index[ref.Name]
			if !ok {
				return runbooks.Value{}, false
			}
			out, ok := r.state.Steps[i].Outputs[ref.Field]
			return out, ok
		case "run":
			switch ref.Name {
			case "requested_by":
				return runbooks.S(r.in.RequestedBy), true
			case "id":
				return runbooks.S(r.workflowID), true
			}
		}
		return runbooks.Value{}, false
	})
}

// actionArgs are an action's resolved arguments; the runbook was validated, so each has its
// declared type.
type actionArgs map[string]runbooks.Value

func (a actionArgs) str(name string) string { return a[name].Scalar }

func (a actionArgs) list(name string) []string { return valueList(a[name]) }

func (a actionArgs) boolean(name string) bool { b, _ := strconv.ParseBool(a[name].Scalar); return b }

func (a actionArgs) integer(name string) int { n, _ := strconv.Atoi(a[name].Scalar); return n }

func (a actionArgs) time(name string) time.Time {
	s := a[name].Scalar
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t
	}
	t, _ := time.Parse(time.DateOnly, s)
	return t
}

// actionRun is one action of one step.
type actionRun struct {
	r    *runbookRun
	s    runbooks.Step
	args actionArgs
}

// plan routes work on a dataset at a location (its primary when empty), once per run.
func (x actionRun) plan(ctx workflow.Context, dataset, location string) (planned, error) {
	key := dataset + idSeparator + location
	if p, ok := x.r.plans[key]; ok {
		return p, nil
	}
	var p planned
	err := workflow.ExecuteActivity(controlActivities(ctx), a.Plan, activities.PlanInput{Dataset: dataset, Location: location}).Get(ctx, &p)
	if err != nil {
		return p, err
	}
	x.r.plans[key] = p
	return p, nil
}

// data runs activities on region's queue with the step's retry and timeout.
func (x actionRun) data(ctx workflow.Context, region string) workflow.Context {
	opts := workflow.GetActivityOptions(dataActivities(ctx, region))
	x.override(&opts)
	return workflow.WithActivityOptions(ctx, opts)
}

// control runs activities on the control queue with the step's retry and timeout.
func (x actionRun) control(ctx workflow.Context) workflow.Context {
	opts := workflow.GetActivityOptions(controlActivities(ctx))
	x.override(&opts)
	return workflow.WithActivityOptions(ctx, opts)
}

func (x actionRun) override(opts *workflow.ActivityOptions) {
	if d := x.s.Timeout.D(); d > 0 {
		opts.ScheduleToCloseTimeout = d
		if opts.StartToCloseTimeout > d {
			opts.StartToCloseTimeout = d
		}
	}
	if rt := x.s.Retry; rt != nil {
		opts.RetryPolicy = x.retryPolicy(opts.RetryPolicy)
	}
}

func (x actionRun) retryPolicy(base *temporal.RetryPolicy) *temporal.RetryPolicy {
	p := *base
	rt := x.s.Retry
	if rt.MaxAttempts > 0 {
		p.MaximumAttempts = int32(rt.MaxAttempts)
	}
	if rt.InitialInterval > 0 {
		p.InitialInterval = rt.InitialInterval.D()
	}
	if rt.MaxInterval > 0 {
		p.MaximumInterval = rt.MaxInterval.D()
	}
	return &p
}

// childID names a child workflow of this run: the usual ID of its kind, then the run and
// the step, so a retried step does not start a second child and two runs never share one.
func (x actionRun) childID(base string) string {
	return base + idSeparator + x.r.workflowID + idSeparator + x.s.ID
}

func (x actionRun) childCtx(ctx workflow.Context, id, dataset, kind string) workflow.Context {
	opts := workflow.ChildWorkflowOptions{
		WorkflowID: id,
		TaskQueue:  ControlTaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SearchAttrDataset.ValueSet(x.r.in.label(dataset)),
			SearchAttrKind.ValueSet(kind),
		),
	}
	if d := x.s.Timeout.D(); d > 0 {
		opts.WorkflowExecutionTimeout = d
	}
	if x.s.Retry != nil {
		opts.RetryPolicy = x.retryPolicy(retryPolicy())
	}
	return workflow.WithChildOptions(ctx, opts)
}

// child runs backup, replicate, drill and retention as the workflows they already are.
func (x actionRun) child(ctx workflow.Context, name string) (outputs, error) {
	ds := x.args.str("dataset")
	switch name {
	case runbooks.ActionBackup:
		var res BackupResult
		id := x.childID(BackupWorkflowID(x.r.in.label(ds)))
		if err := workflow.ExecuteChildWorkflow(x.childCtx(ctx, id, ds, KindBackup), BackupWorkflow, BackupInput{Dataset: ds}).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"restore_point": runbooks.S(res.RestorePoint), "data_as_of": timeValue(res.DataAsOf),
			"rpo_seconds": floatValue(res.RPOSeconds), "workflow_id": runbooks.S(id)}, nil
	case runbooks.ActionReplicate:
		var res ReplicaResult
		in := ReplicateInput{Dataset: ds, RestorePoint: x.args.str("point"), Location: x.args.str("location"), Label: x.r.in.Labels[ds]}
		id := x.childID(ReplicateWorkflowID(in.label(), in.RestorePoint, in.Location))
		if err := workflow.ExecuteChildWorkflow(x.childCtx(ctx, id, ds, KindReplicate), ReplicateWorkflow, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"location": runbooks.S(res.Location), "mode": runbooks.S(string(res.Mode)),
			"bytes_copied": runbooks.S(strconv.FormatInt(res.BytesCopied, 10)), "workflow_id": runbooks.S(id)}, nil
	case runbooks.ActionDrill:
		var res DrillResult
		in := DrillInput{Dataset: ds, RestorePoint: x.args.str("point"), Location: x.args.str("location")}
		id := x.childID(DrillWorkflowID(x.r.in.label(ds)))
		if err := workflow.ExecuteChildWorkflow(x.childCtx(ctx, id, ds, KindDrill), RestoreDrillWorkflow, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"restore_point": runbooks.S(res.RestorePoint), "rto_seconds": floatValue(res.RTOSeconds),
			"rpo_seconds": floatValue(res.RPOSeconds), "verified": boolValue(res.Verified),
			"objectives_met": boolValue(res.ObjectivesMet()), "workflow_id": runbooks.S(id)}, nil
	default:
		var res RetentionResult
		id := x.childID(RetentionWorkflowID(x.r.in.label(ds)))
		if err := workflow.ExecuteChildWorkflow(x.childCtx(ctx, id, ds, KindRetention), RetentionWorkflow, RetentionInput{Dataset: ds}).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"kept": runbooks.L(res.Kept...), "pruned": runbooks.L(res.Pruned...), "held": runbooks.L(res.Held...)}, nil
	}
}

// pointAction runs restore, verify, the search for a clean point and the existence check on
// the queue of the location read.
func (x actionRun) pointAction(ctx workflow.Context, name string) (outputs, error) {
	ds, loc := x.args.str("dataset"), x.args.str("location")
	p, err := x.plan(ctx, ds, loc)
	if err != nil {
		return nil, err
	}
	actx := x.data(ctx, p.Region)
	point := x.args.str("point")
	switch name {
	case runbooks.ActionRestore:
		var res activities.RestoreToResult
		in := activities.RestoreToInput{Dataset: ds, Point: point, Location: p.Location, To: x.args.str("to")}
		if err := workflow.ExecuteActivity(actx, a.RestoreTo, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return x.restored(ctx, res), nil
	case runbooks.ActionVerify:
		var res activities.VerifyPointResult
		in := activities.VerifyPointInput{Dataset: ds, Point: point, Location: p.Location}
		if err := workflow.ExecuteActivity(actx, a.VerifyPoint, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"restore_point": runbooks.S(res.Point), "data_as_of": timeValue(res.DataAsOf), "verified": boolValue(res.Verified),
			"chunks": intValue(res.Chunks), "bytes": intValue(res.Bytes)}, nil
	case runbooks.ActionFindCleanPoint:
		var res activities.CleanPointResult
		in := activities.CleanPointInput{Dataset: ds, Location: p.Location, Max: x.args.integer("max")}
		if err := workflow.ExecuteActivity(actx, a.FindCleanPoint, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"restore_point": runbooks.S(res.Point), "data_as_of": timeValue(res.DataAsOf),
			"checked": intValue(int64(res.Checked)), "rejected": runbooks.L(res.Rejected...)}, nil
	default:
		var res activities.PointExistsResult
		in := activities.PointExistsInput{Dataset: ds, Location: p.Location, After: x.args.time("after")}
		if err := workflow.ExecuteActivity(actx, a.PointExists, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"ok": boolValue(res.OK), "restore_point": runbooks.S(res.Point)}, nil
	}
}

// restored reports a kept restore with the figures of the recovery it completes: RTO from
// the run's start (the incident a recovery runbook answers) to the verified restore, RPO
// from the point's data_as_of to that start. They go into the run's search attributes too,
// so a failover's figures are found like a drill's.
func (x actionRun) restored(ctx workflow.Context, res activities.RestoreToResult) outputs {
	m := DrillFigures(x.r.started, workflow.Now(ctx), res.DataAsOf, Objectives{})
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchAttrRPOSeconds.ValueSet(m.RPO.Seconds()), SearchAttrRTOSeconds.ValueSet(m.RTO.Seconds()))
	return outputs{"restore_point": runbooks.S(res.Point), "data_as_of": timeValue(res.DataAsOf), "location": runbooks.S(res.Location),
		"bytes": intValue(res.Bytes), "files": intValue(res.Entries), "rpo_seconds": floatValue(m.RPO.Seconds()),
		"rto_seconds": floatValue(m.RTO.Seconds())}
}

// chooseFailover asks the control plane which replicas may serve a plaintext failover (full
// copies inside the home jurisdiction), asks each replica's region for its newest point that
// verifies, and picks the newest of those.
func (x actionRun) chooseFailover(ctx workflow.Context) (outputs, error) {
	ds := x.args.str("dataset")
	var cands activities.FailoverCandidates
	if err := workflow.ExecuteActivity(x.control(ctx), a.PlanFailover, ds).Get(ctx, &cands); err != nil {
		return nil, err
	}
	var best activities.CleanPointResult
	var bestLoc string
	var tried []string
	for _, c := range cands.Replicas {
		var res activities.CleanPointResult
		in := activities.CleanPointInput{Dataset: ds, Location: c.Location, Max: 3}
		err := workflow.ExecuteActivity(x.data(ctx, c.Region), a.FindCleanPoint, in).Get(ctx, &res)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%s)", c.Location, reason(err)))
			workflow.GetLogger(ctx).Warn("failover candidate unusable", "location", c.Location, "error", err)
			continue
		}
		tried = append(tried, c.Location)
		if bestLoc == "" || res.DataAsOf.After(best.DataAsOf) {
			best, bestLoc = res, c.Location
		}
	}
	if bestLoc == "" {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"no replica of %s inside its home jurisdiction %s holds a restore point that verifies (tried: %v; excluded: %v)",
			ds, cands.Jurisdiction, tried, cands.Excluded), activities.ErrTypeNotFound, nil)
	}
	return outputs{"location": runbooks.S(bestLoc), "restore_point": runbooks.S(best.Point), "data_as_of": timeValue(best.DataAsOf),
		"candidates": runbooks.L(tried...)}, nil
}

// holdAction places, releases and reports holds on the home region's queue, whose worker
// opens the primary and every replica of the dataset.
func (x actionRun) holdAction(ctx workflow.Context, name string) (outputs, error) {
	ds := x.args.str("dataset")
	p, err := x.plan(ctx, ds, "")
	if err != nil {
		return nil, err
	}
	actx := x.data(ctx, p.Region)
	hold := x.args.str("hold")
	switch name {
	case runbooks.ActionHoldPlace:
		in := activities.PlaceHoldInput{Hold: hold, Dataset: ds, From: x.args.time("from"), To: x.args.time("to"),
			Points: x.args.list("points"), Ongoing: x.args.boolean("ongoing"), Reason: x.args.str("reason"),
			RequestedBy: x.args.str("requested_by")}
		var res activities.PlaceHoldResult
		if err := workflow.ExecuteActivity(actx, a.PlaceHold, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"hold": runbooks.S(res.Hold), "points": runbooks.L(res.Points...), "objects": intValue(int64(res.Objects)),
			"locations": runbooks.L(res.Locations...), "server_enforced": runbooks.L(res.ServerEnforced...),
			"drflow_enforced": runbooks.L(res.DrflowEnforced...)}, nil
	case runbooks.ActionHoldRelease:
		in := activities.ReleaseHoldInput{Hold: hold, Dataset: ds, Reason: x.args.str("reason"),
			RequestedBy: x.args.str("requested_by"), ApprovedBy: x.args.list("approved_by")}
		var res activities.ReleaseHoldResult
		if err := workflow.ExecuteActivity(actx, a.ReleaseHold, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"hold": runbooks.S(res.Hold), "objects_released": intValue(int64(res.ObjectsReleased)),
			"objects_still_held": intValue(int64(res.ObjectsStillHeld))}, nil
	default:
		var res activities.HoldReport
		in := activities.InspectHoldInput{Hold: hold, Dataset: ds, Verify: x.args.boolean("verify")}
		if err := workflow.ExecuteActivity(actx, a.InspectHold, in).Get(ctx, &res); err != nil {
			return nil, err
		}
		return outputs{"hold": runbooks.S(res.Hold), "points": runbooks.L(res.Points...), "objects": intValue(int64(res.Objects)),
			"held_objects": intValue(int64(res.HeldObjects)), "server_enforced": runbooks.L(res.ServerEnforced...),
			"drflow_enforced": runbooks.L(res.DrflowEnforced...), "verified": intValue(int64(res.Verified)), "ok": boolValue(res.OK)}, nil
	}
}

// keyAction runs key operations on the home region's queue, where the KEK lives.
func (x actionRun) keyAction(ctx workflow.Context, name string) (outputs, error) {
	ds := x.args.str("dataset")
	p, err := x.plan(ctx, ds, "")
	if err != nil {
		return nil, err
	}
	in := activities.KeyOpInput{Dataset: ds, Key: x.args.str("key"), Reason: x.args.str("reason"),
		Threshold: x.args.integer("threshold"), Holders: x.args.list("holders"), Dir: x.args.str("dir"), Shares: x.args.list("shares")}
	var res activities.KeyOpResult
	var fn any
	switch name {
	case runbooks.ActionKeyRotate:
		fn = a.RotateKey
	case runbooks.ActionKeyRevoke:
		fn = a.RevokeKEK
	case runbooks.ActionKeyEscrow:
		fn = a.EscrowKEK
	case runbooks.ActionKeyRecover:
		fn = a.RecoverKEK
	default:
		fn = a.RewrapKeys
	}
	if err := workflow.ExecuteActivity(x.data(ctx, p.Region), fn, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	return outputs{"key_id": runbooks.S(res.KeyID), "version": intValue(int64(res.Version)), "epoch": intValue(int64(res.Epoch)),
		"rewrapped": intValue(int64(res.Rewrapped)), "held": intValue(int64(len(res.Held))), "files": runbooks.L(res.Files...)}, nil
}

// checkLocation checks a location from a worker of its region.
func (x actionRun) checkLocation(ctx workflow.Context) (outputs, error) {
	loc := x.args.str("location")
	var region string
	if err := workflow.ExecuteActivity(x.control(ctx), a.LocationRegion, loc).Get(ctx, &region); err != nil {
		return nil, err
	}
	var res activities.LocationCheckResult
	if err := workflow.ExecuteActivity(x.data(ctx, region), a.CheckLocation, loc).Get(ctx, &res); err != nil {
		return nil, err
	}
	return outputs{"ok": boolValue(res.OK), "immutable": boolValue(res.Immutable), "server_enforced": boolValue(res.ServerEnforced),
		"error": runbooks.S(res.Error)}, nil
}

// notify is a log line and an audit event.
func (x actionRun) notify(ctx workflow.Context) (outputs, error) {
	msg := x.args.str("message")
	sev := x.args.str("severity")
	if sev == "" {
		sev = "info"
	}
	ev := activities.RunbookEvent{Runbook: x.r.in.Runbook.Name, Step: x.s.ID, Operation: "notify", Outcome: "ok",
		Actor: x.r.in.RequestedBy, Dataset: x.args.str("dataset"), Reason: sev + ": " + msg}
	if err := workflow.ExecuteActivity(x.control(ctx), a.RecordRunbookEvent, ev).Get(ctx, nil); err != nil {
		return nil, err
	}
	workflow.GetLogger(ctx).Info("runbook notice", "runbook", x.r.in.Runbook.Name, "step", x.s.ID, "severity", sev, "message", msg)
	return outputs{"message": runbooks.S(msg)}, nil
}

// schedules pauses or resumes the dataset's drflow-managed schedules.
func (x actionRun) schedules(ctx workflow.Context, pause bool) (outputs, error) {
	in := activities.SchedulesInput{Dataset: x.args.str("dataset"), Pause: pause, Note: x.args.str("note")}
	if in.Note == "" {
		in.Note = fmt.Sprintf("runbook %s (%s), step %s", x.r.in.Runbook.Name, x.r.workflowID, x.s.ID)
	}
	var ids []string
	if err := workflow.ExecuteActivity(x.control(ctx), a.SetSchedulesPaused, in).Get(ctx, &ids); err != nil {
		return nil, err
	}
	return outputs{"schedules": runbooks.L(ids...)}, nil
}

// audit records a runbook event on the control queue.
func (r *runbookRun) audit(ctx workflow.Context, ev activities.RunbookEvent) error {
	return workflow.ExecuteActivity(controlActivities(ctx), a.RecordRunbookEvent, ev).Get(ctx, nil)
}

// dataset is the run's first dataset parameter, for audit events; "" if none.
func (r *runbookRun) dataset() string {
	for _, p := range r.in.Runbook.Params {
		if p.Type == runbooks.TypeDataset {
			return r.params[p.Name].Scalar
		}
	}
	return ""
}

func timeValue(t time.Time) runbooks.Value { return runbooks.S(t.UTC().Format(time.RFC3339Nano)) }
func floatValue(f float64) runbooks.Value  { return runbooks.S(strconv.FormatFloat(f, 'f', 3, 64)) }
func intValue(n int64) runbooks.Value      { return runbooks.S(strconv.FormatInt(n, 10)) }
func boolValue(b bool) runbooks.Value      { return runbooks.S(strconv.FormatBool(b)) }
