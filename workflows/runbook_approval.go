package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/runbooks"
)

// gate is an open or closed approval step.
type gate struct {
	id        string
	requester string   // may not vote
	allowed   []string // who may vote, in runbook order
	needed    int
	open      bool
	votes     []Vote
}

func (g *gate) approvals() []string {
	var out []string
	for _, v := range g.votes {
		if !v.Reject {
			out = append(out, v.Approver)
		}
	}
	return out
}

func (g *gate) rejectedBy() (Vote, bool) {
	for _, v := range g.votes {
		if v.Reject {
			return v, true
		}
	}
	return Vote{}, false
}

func (g *gate) decided() bool {
	_, rejected := g.rejectedBy()
	return rejected || len(g.approvals()) >= g.needed
}

func (g *gate) voted(who string) bool {
	return slices.ContainsFunc(g.votes, func(v Vote) bool { return v.Approver == who })
}

func (g *gate) waitingFor() []string {
	var out []string
	for _, a := range g.allowed {
		if a != g.requester && !g.voted(a) {
			out = append(out, a)
		}
	}
	return out
}

func (g *gate) state() GateState {
	st := GateState{Gate: g.id, Status: "open", Approvals: g.approvals(), Needed: g.needed}
	if st.Approvals == nil {
		st.Approvals = []string{}
	}
	if v, ok := g.rejectedBy(); ok {
		st.RejectedBy = v.Approver
	}
	switch {
	case st.RejectedBy != "":
		st.Status = "rejected"
	case len(st.Approvals) >= g.needed:
		st.Status = "approved"
	case !g.open:
		st.Status = "closed"
	}
	return st
}

// registerApprovals installs the ApproveUpdate handler. Its validator refuses, before
// anything enters history, a vote for a gate that is not open, by someone who is not one of
// the gate's approvers, by the run's requester, or by someone who already voted there.
func (r *runbookRun) registerApprovals(ctx workflow.Context) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, ApproveUpdate,
		func(ctx workflow.Context, v ApprovalVote) (GateState, error) {
			g := r.gates[v.Gate]
			g.votes = append(g.votes, Vote{Approver: v.Approver, Reject: v.Reject, Reason: v.Reason, At: workflow.Now(ctx)})
			st := r.at(g.id)
			st.Votes, st.WaitingFor = append([]Vote{}, g.votes...), g.waitingFor()
			r.details(ctx)
			return g.state(), nil
		},
		workflow.UpdateHandlerOptions{Validator: r.validateVote})
}

func (r *runbookRun) validateVote(v ApprovalVote) error {
	g, ok := r.gates[v.Gate]
	switch {
	case v.Gate == "":
		return fmt.Errorf("vote: gate is required (the ID of an approval step of runbook %s)", r.in.Runbook.Name)
	case !ok:
		return fmt.Errorf("vote: runbook %s has no open approval gate %q (open: %s)", r.in.Runbook.Name, v.Gate, r.openGates())
	case !g.open:
		return fmt.Errorf("vote: approval gate %s is closed (%s)", v.Gate, g.state().Status)
	case strings.TrimSpace(v.Approver) == "":
		return fmt.Errorf("vote: approver is required (who votes)")
	case v.Approver == r.in.RequestedBy:
		return fmt.Errorf("vote: %s started this run and cannot approve their own request at gate %s; another approver must", v.Approver, v.Gate)
	case !slices.Contains(g.allowed, v.Approver):
		return fmt.Errorf("vote: %s is not an approver of gate %s (approvers: %s)", v.Approver, v.Gate, strings.Join(g.allowed, ", "))
	case g.voted(v.Approver):
		return fmt.Errorf("vote: %s has already voted at gate %s", v.Approver, v.Gate)
	case v.Reject && strings.TrimSpace(v.Reason) == "":
		return fmt.Errorf("vote: a rejection at gate %s needs a reason", v.Gate)
	}
	return nil
}

func (r *runbookRun) openGates() string {
	var open []string
	for _, s := range r.state.Steps {
		if g, ok := r.gates[s.ID]; ok && g.open {
			open = append(open, s.ID)
		}
	}
	if len(open) == 0 {
		return "none"
	}
	return strings.Join(open, ", ")
}

// approval opens a gate and waits until enough distinct approvers approve, one rejects, or
// the gate's timeout passes. Every outcome is audited.
func (r *runbookRun) approval(ctx workflow.Context, s runbooks.Step) (map[string]runbooks.Value, error) {
	ap := s.Approval
	allowed, err := r.approvers(ctx, s)
	if err != nil {
		return nil, err
	}
	needed := max(ap.Min, 1)
	if eligible := len(withoutRequester(allowed, r.in.RequestedBy)); eligible < needed {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"approval gate %s needs %d approvers other than the requester %s, but only %d may vote (%s)",
			s.ID, needed, r.in.RequestedBy, eligible, strings.Join(allowed, ", ")), ErrTypeInvalidInput, nil)
	}
	g := &gate{id: s.ID, requester: r.in.RequestedBy, allowed: allowed, needed: needed, open: true}
	r.gates[s.ID] = g
	st := r.at(s.ID)
	if ap.Message != "" {
		msg, err := r.substitute(runbooks.S(ap.Message))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("message: %v", err), ErrTypeInvalidInput, nil)
		}
		st.Message = msg.Scalar
	}
	st.WaitingFor = g.waitingFor()
	r.setStatus(ctx, s.ID, StepWaiting, nil)

	decided, err := workflow.AwaitWithTimeout(ctx, ap.Timeout.D(), g.decided)
	g.open = false
	st.WaitingFor = nil
	if err != nil {
		return nil, err
	}
	return r.closeGate(ctx, s, g, decided)
}

// closeGate audits a gate's outcome and turns it into the step's outputs or error.
func (r *runbookRun) closeGate(ctx workflow.Context, s runbooks.Step, g *gate, decided bool) (map[string]runbooks.Value, error) {
	out := map[string]runbooks.Value{
		"approvers": runbooks.L(g.approvals()...),
		"approved":  runbooks.S(strconv.FormatBool(decided && len(g.approvals()) >= g.needed)),
		"timed_out": runbooks.S(strconv.FormatBool(!decided)),
	}
	rejected, isRejected := g.rejectedBy()
	ev := activities.RunbookEvent{Runbook: r.in.Runbook.Name, Step: s.ID, Operation: "approved", Outcome: "ok",
		Actor: strings.Join(g.approvals(), ", "), Dataset: r.dataset(),
		Reason: fmt.Sprintf("approval gate %s: %d of %d approvals from %s", s.ID, len(g.approvals()), g.needed, strings.Join(g.approvals(), ", "))}
	var fail error
	switch {
	case isRejected:
		ev.Operation, ev.Outcome, ev.Actor = "rejected", "denied", rejected.Approver
		ev.Reason = fmt.Sprintf("approval gate %s rejected by %s: %s", s.ID, rejected.Approver, rejected.Reason)
		fail = temporal.NewNonRetryableApplicationError(ev.Reason, ErrTypeApprovalRejected, nil)
	case !decided:
		ev.Operation, ev.Outcome = "timed_out", "denied"
		ev.Reason = fmt.Sprintf("approval gate %s timed out after %s with %d of %d approvals; on timeout: %s",
			s.ID, s.Approval.Timeout.D(), len(g.approvals()), g.needed, onTimeout(s.Approval))
		if onTimeout(s.Approval) == runbooks.OnTimeoutFail {
			fail = temporal.NewNonRetryableApplicationError(ev.Reason, ErrTypeApprovalTimedOut, nil)
		}
	}
	if err := r.audit(ctx, ev); err != nil {
		return nil, err
	}
	return out, fail
}

func onTimeout(a *runbooks.Approval) string {
	if a.OnTimeout == "" {
		return runbooks.OnTimeoutFail
	}
	return a.OnTimeout
}

// approvers resolves who may vote at a gate: its listed approvers and the members of its
// configured group, in that order, without duplicates.
func (r *runbookRun) approvers(ctx workflow.Context, s runbooks.Step) ([]string, error) {
	var allowed []string
	if v := s.Approval.Approvers; v.IsList || v.Scalar != "" {
		resolved, err := r.substitute(v)
		if err != nil {
			return nil, err
		}
		allowed = append(allowed, valueList(resolved)...)
	}
	if s.Approval.Group != "" {
		var members []string
		err := workflow.ExecuteActivity(controlActivities(ctx), a.ApproverGroup, s.Approval.Group).Get(ctx, &members)
		if err != nil {
			return nil, err
		}
		allowed = append(allowed, members...)
	}
	var out []string
	for _, who := range allowed {
		if who = strings.TrimSpace(who); who != "" && !slices.Contains(out, who) {
			out = append(out, who)
		}
	}
	return out, nil
}

func withoutRequester(allowed []string, requester string) []string {
	var out []string
	for _, a := range allowed {
		if a != requester {
			out = append(out, a)
		}
	}
	return out
}

func valueList(v runbooks.Value) []string {
	if v.IsList {
		return v.List
	}
	if v.Scalar == "" {
		return nil
	}
	return []string{v.Scalar}
}
