package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/providers"
)

// errStopList ends a listing after its first object.
var errStopList = errors.New("stop listing")

// RunbookEvent is an audited step of a runbook run: a notice, an approval gate's outcome.
type RunbookEvent struct {
	Runbook   string `json:"runbook"`
	Step      string `json:"step"`
	Operation string `json:"operation"` // notify, approved, rejected, timed_out
	Outcome   string `json:"outcome"`   // ok, denied, failed
	Actor     string `json:"actor,omitempty"`
	Dataset   string `json:"dataset,omitempty"`
	Reason    string `json:"reason"`
}

// RecordRunbookEvent writes a runbook event to the audit trail and the log. It runs on the
// control queue; the event names the runbook, step and people, never data.
func (a *Activities) RecordRunbookEvent(ctx context.Context, ev RunbookEvent) error {
	if a.Audit == nil {
		return nonRetryable(ErrTypeNotServed, "this worker has no audit log")
	}
	outcome := ev.Outcome
	if outcome == "" {
		outcome = audit.OutcomeOK
	}
	e := audit.Event{Kind: audit.KindRunbook, Outcome: outcome, Actor: ev.Actor, Dataset: ev.Dataset,
		Operation: ev.Operation, Reason: fmt.Sprintf("runbook %s, step %s: %s", ev.Runbook, ev.Step, ev.Reason)}
	if e.Actor == "" {
		e.Actor = actor(ctx)
	}
	if err := audit.Validate(e); err != nil {
		return nonRetryable(ErrTypeInvalidInput, "runbook %s, step %s: %v", ev.Runbook, ev.Step, err)
	}
	if err := a.Audit.Record(ctx, e); err != nil {
		return err
	}
	a.logger().Info("runbook event", zap.String("runbook", ev.Runbook), zap.String("step", ev.Step),
		zap.String("operation", ev.Operation), zap.String("outcome", outcome), zap.String("reason", ev.Reason))
	return nil
}

// ApproverGroup answers the members of a configured approver group (control queue).
func (a *Activities) ApproverGroup(_ context.Context, group string) ([]string, error) {
	if a.Config == nil {
		return nil, nonRetryable(ErrTypeNotServed, "this worker has no configuration")
	}
	g, ok := a.Config.ApproverGroup(group)
	if !ok {
		var known []string
		for _, g := range a.Config.Approvers {
			known = append(known, g.Name)
		}
		return nil, nonRetryable(ErrTypeNotFound, "approver group %q is not configured (configured: %v)", group, known)
	}
	return slices.Clone(g.Members), nil
}

// LocationRegion answers the region of a location, whose queue serves it (control queue).
func (a *Activities) LocationRegion(_ context.Context, location string) (string, error) {
	if a.Config == nil {
		return "", nonRetryable(ErrTypeNotServed, "this worker has no configuration")
	}
	loc, ok := a.Config.Location(location)
	if !ok {
		return "", nonRetryable(ErrTypeNotFound, "location %q is not configured", location)
	}
	return loc.Region, nil
}

// LocationCheckResult is what CheckLocation found.
type LocationCheckResult struct {
	Location       string `json:"location"`
	OK             bool   `json:"ok"`
	Immutable      bool   `json:"immutable"`
	ServerEnforced bool   `json:"server_enforced"`
	// Error says why the location did not answer; the check itself does not fail then, so
	// that a wait can poll until it does.
	Error string `json:"error,omitempty"`
}

// locationCheckTimeout bounds one check, so that a location that hangs reads as down.
const locationCheckTimeout = 30 * time.Second

// CheckLocation opens a location afresh (as a worker of its region would) and lists it: ok
// when it answers. It runs on the location's region queue.
func (a *Activities) CheckLocation(ctx context.Context, location string) (LocationCheckResult, error) {
	if a.Config == nil {
		return LocationCheckResult{}, nonRetryable(ErrTypeNotServed, "this worker has no configuration")
	}
	loc, ok := a.Config.Location(location)
	if !ok {
		return LocationCheckResult{}, nonRetryable(ErrTypeNotFound, "location %q is not configured", location)
	}
	out := LocationCheckResult{Location: location}
	cctx, cancel := context.WithTimeout(ctx, locationCheckTimeout)
	defer cancel()
	st, err := stores.Open(cctx, loc)
	if err == nil {
		err = st.List(cctx, "datasets/", func(providers.ObjectInfo) error { return errStopList })
		if errors.Is(err, errStopList) {
			err = nil
		}
	}
	if err != nil {
		out.Error = err.Error()
		return out, nil
	}
	caps := st.Capabilities()
	out.OK, out.Immutable, out.ServerEnforced = true, caps.Immutable(), caps.ServerEnforced
	return out, nil
}

// SchedulesInput pauses or resumes the schedules of a dataset.
type SchedulesInput struct {
	Dataset string `json:"dataset"`
	Pause   bool   `json:"pause"`
	Note    string `json:"note,omitempty"`
}

// SchedulePauser pauses and resumes a dataset's schedules (internal/schedules.Pauser).
type SchedulePauser interface {
	SetPaused(ctx context.Context, dataset string, pause bool, note string) ([]string, error)
}

// SetSchedulesPaused pauses or resumes the dataset's drflow-managed schedules (control
// queue) and answers their IDs.
func (a *Activities) SetSchedulesPaused(ctx context.Context, in SchedulesInput) ([]string, error) {
	if a.Schedules == nil {
		return nil, nonRetryable(ErrTypeNotServed, "this worker has no Temporal client for schedules")
	}
	if _, ok := a.Config.Dataset(in.Dataset); !ok {
		return nil, nonRetryable(ErrTypeNotFound, "dataset %q is not configured", in.Dataset)
	}
	ids, err := a.Schedules.SetPaused(ctx, in.Dataset, in.Pause, in.Note)
	if err != nil {
		return nil, err
	}
	verb := "resumed"
	if in.Pause {
		verb = "paused"
	}
	a.logger().Info("schedules "+verb, zap.String("dataset", in.Dataset), zap.Strings("schedules", ids))
	return ids, nil
}

// FailoverCandidate is a replica that may serve a plaintext failover.
type FailoverCandidate struct {
	Location string `json:"location"`
	Region   string `json:"region"`
}

// FailoverCandidates are the replicas a failover of a dataset may restore from.
type FailoverCandidates struct {
	Dataset      string              `json:"dataset"`
	Jurisdiction string              `json:"jurisdiction"`
	Replicas     []FailoverCandidate `json:"replicas"`
	// Excluded names the replicas left out, and why.
	Excluded []string `json:"excluded"`
}

// PlanFailover lists the replicas of a dataset from which a region failover may restore
// plaintext (control queue): full copies inside the dataset's home jurisdiction. An encrypted
// or metadata copy abroad is never a candidate: restoring it would need the key to leave home
// or the plaintext to land outside it.
func (a *Activities) PlanFailover(_ context.Context, dataset string) (FailoverCandidates, error) {
	ds, _, err := a.lookup(dataset, "")
	if err != nil {
		return FailoverCandidates{}, err
	}
	pol, ok := a.Config.Policy(ds.Policy)
	if !ok {
		return FailoverCandidates{}, nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
	}
	out := FailoverCandidates{Dataset: ds.Name, Jurisdiction: pol.Home, Replicas: []FailoverCandidate{}, Excluded: []string{}}
	for _, name := range ds.Replicas {
		loc, ok := a.Config.Location(name)
		if !ok {
			continue
		}
		mode, _, _, _ := pol.Decide(loc.Jurisdiction)
		switch {
		case loc.Jurisdiction != pol.Home:
			out.Excluded = append(out.Excluded, fmt.Sprintf("%s: in %s, outside the home jurisdiction %s", name, loc.Jurisdiction, pol.Home))
		case mode != config.CopyFull:
			out.Excluded = append(out.Excluded, fmt.Sprintf("%s: holds a %s copy, not a full one", name, mode))
		default:
			out.Replicas = append(out.Replicas, FailoverCandidate{Location: name, Region: loc.Region})
		}
	}
	return out, nil
}
