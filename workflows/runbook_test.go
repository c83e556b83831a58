package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/runbooks"
)

// runbookEnv is a test environment for RunbookWorkflow with the control activities every
// runbook uses mocked: Plan answers testPlan, events are collected.
type runbookEnv struct {
	*testsuite.TestWorkflowEnvironment
	events []activities.RunbookEvent
}

func newRunbookEnv(t *testing.T) *runbookEnv {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := &runbookEnv{TestWorkflowEnvironment: s.NewTestWorkflowEnvironment()}
	env.SetStartTime(t0)
	Register(env)
	env.RegisterActivity(&activities.Activities{})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Maybe()
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
			p := testPlan
			if in.Location != "" {
				p.Location = in.Location
			}
			return p, nil
		}).Maybe()
	env.OnActivity(a.RecordRunbookEvent, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ev activities.RunbookEvent) error {
			env.events = append(env.events, ev)
			return nil
		}).Maybe()
	return env
}

func parseRunbook(t *testing.T, yaml string) runbooks.Runbook {
	t.Helper()
	rb, err := runbooks.Parse([]byte(yaml))
	require.NoError(t, err)
	return rb
}

func (env *runbookEnv) run(rb runbooks.Runbook, params map[string]runbooks.Value) {
	env.ExecuteWorkflow(RunbookWorkflow, RunbookInput{Runbook: rb, Params: params, RequestedBy: "alice"})
}

func (env *runbookEnv) state(t *testing.T) RunbookState {
	t.Helper()
	v, err := env.QueryWorkflow(RunbookStateQuery)
	require.NoError(t, err)
	var st RunbookState
	require.NoError(t, v.Get(&st))
	return st
}

// vote sends an approval at delay and records how the validator answered.
type voteOutcome struct {
	rejected error
	accepted bool
	result   GateState
}

func (env *runbookEnv) vote(delay time.Duration, v ApprovalVote) *voteOutcome {
	out := &voteOutcome{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(ApproveUpdate, fmt.Sprintf("vote-%s-%s-%s", v.Gate, v.Approver, delay), &testsuite.TestUpdateCallback{
			OnAccept: func() { out.accepted = true },
			OnReject: func(err error) { out.rejected = err },
			OnComplete: func(r interface{}, err error) {
				if gs, ok := r.(GateState); ok {
					out.result = gs
				}
			},
		}, v)
	}, delay)
	return out
}

const holdRunbook = `
name: hold-and-release
params:
  - name: dataset
    type: dataset
steps:
  - id: place
    action: hold.place
    args:
      hold: case-7
      dataset: ${params.dataset}
      reason: litigation
      requested_by: ${run.requested_by}
    compensate:
      id: unplace
      action: notify
      args: {message: "undo placement of ${steps.place.hold}"}
  - id: approve
    approval:
      approvers: [alice, bob, carol]
      min: 1
      timeout: 1h
  - id: release
    action: hold.release
    args:
      hold: case-7
      dataset: ${params.dataset}
      reason: matter closed
      requested_by: ${run.requested_by}
      approved_by: ${steps.approve.approvers}
`

func mockHolds(env *runbookEnv) *activities.ReleaseHoldInput {
	released := &activities.ReleaseHoldInput{}
	env.OnActivity(a.PlaceHold, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PlaceHoldInput) (activities.PlaceHoldResult, error) {
			return activities.PlaceHoldResult{Hold: in.Hold, Points: []string{testPoint}, Objects: 7}, nil
		}).Maybe()
	env.OnActivity(a.ReleaseHold, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReleaseHoldInput) (activities.ReleaseHoldResult, error) {
			*released = in
			return activities.ReleaseHoldResult{Hold: in.Hold, ObjectsReleased: 7}, nil
		}).Maybe()
	return released
}

func TestRunbookApprovalGate(t *testing.T) {
	env := newRunbookEnv(t)
	released := mockHolds(env)
	self := env.vote(time.Minute, ApprovalVote{Gate: "approve", Approver: "alice"})
	stranger := env.vote(2*time.Minute, ApprovalVote{Gate: "approve", Approver: "mallory"})
	wrongGate := env.vote(3*time.Minute, ApprovalVote{Gate: "place", Approver: "bob"})
	var waiting RunbookState
	env.RegisterDelayedCallback(func() { waiting = env.state(t) }, 4*time.Minute)
	bob := env.vote(5*time.Minute, ApprovalVote{Gate: "approve", Approver: "bob"})

	env.run(parseRunbook(t, holdRunbook), map[string]runbooks.Value{"dataset": runbooks.S("orders")})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.ErrorContains(t, self.rejected, "alice started this run and cannot approve their own request")
	require.ErrorContains(t, stranger.rejected, "mallory is not an approver of gate approve")
	require.ErrorContains(t, wrongGate.rejected, `has no open approval gate "place"`)
	assert.False(t, self.accepted || stranger.accepted || wrongGate.accepted, "refused votes never enter history")
	require.NoError(t, bob.rejected)
	assert.Equal(t, GateState{Gate: "approve", Status: "approved", Approvals: []string{"bob"}, Needed: 1}, bob.result)

	gate, ok := waiting.Step("approve")
	require.True(t, ok)
	assert.Equal(t, StepWaiting, gate.Status)
	assert.Equal(t, []string{"bob", "carol"}, gate.WaitingFor, "the requester is not waited for")

	var res RunbookResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, RunCompleted, res.Status)
	assert.Equal(t, []string{"bob"}, released.ApprovedBy, "the release names who approved")
	assert.Equal(t, "alice", released.RequestedBy)
	comp, _ := res.Step("unplace")
	assert.Equal(t, StepSkipped, comp.Status, "no compensation on success")
	require.Len(t, env.events, 1)
	assert.Equal(t, "approved", env.events[0].Operation, "the gate's outcome is audited")
	assert.Contains(t, env.events[0].Reason, "1 of 1 approvals from bob")
}

func TestRunbookSecondVoteBySamePersonRefused(t *testing.T) {
	env := newRunbookEnv(t)
	mockHolds(env)
	rb := parseRunbook(t, holdRunbook)
	rb.Steps[1].Approval.Min = 2
	first := env.vote(time.Minute, ApprovalVote{Gate: "approve", Approver: "bob"})
	again := env.vote(2*time.Minute, ApprovalVote{Gate: "approve", Approver: "bob"})
	second := env.vote(3*time.Minute, ApprovalVote{Gate: "approve", Approver: "carol"})
	env.run(rb, map[string]runbooks.Value{"dataset": runbooks.S("orders")})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, first.rejected)
	require.ErrorContains(t, again.rejected, "bob has already voted at gate approve")
	require.NoError(t, second.rejected)
	assert.Equal(t, []string{"bob", "carol"}, second.result.Approvals)
}

func TestRunbookApprovalTimeout(t *testing.T) {
	tests := []struct {
		name      string
		onTimeout string
		wantErr   string
	}{
		{"fail", runbooks.OnTimeoutFail, "approval gate approve timed out after 1h0m0s with 0 of 1 approvals; on timeout: fail"},
		{"continue", runbooks.OnTimeoutContinue, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newRunbookEnv(t)
			released := mockHolds(env)
			rb := parseRunbook(t, holdRunbook)
			rb.Steps[1].Approval.OnTimeout = tt.onTimeout
			env.run(rb, map[string]runbooks.Value{"dataset": runbooks.S("orders")})
			require.True(t, env.IsWorkflowCompleted())
			st := env.state(t)
			gate, _ := st.Step("approve")
			if tt.wantErr != "" {
				appErr := applicationError(t, env.GetWorkflowError())
				assert.Equal(t, ErrTypeApprovalTimedOut, appErr.Type())
				assert.Contains(t, appErr.Message(), tt.wantErr)
				assert.Equal(t, StepFailed, gate.Status)
				place, _ := st.Step("place")
				assert.Equal(t, StepCompensated, place.Status, "the placement was compensated")
				undo, _ := st.Step("unplace")
				assert.Equal(t, StepDone, undo.Status)
				assert.Equal(t, runbooks.S("undo placement of case-7"), undo.Outputs["message"])
				assert.Empty(t, released.Hold, "nothing released")
				return
			}
			require.NoError(t, env.GetWorkflowError())
			assert.Equal(t, runbooks.S("true"), gate.Outputs["timed_out"])
			assert.Equal(t, runbooks.S("false"), gate.Outputs["approved"])
			assert.Equal(t, "case-7", released.Hold, "the run continued past the gate")
		})
	}
}

func TestRunbookRejectionCompensates(t *testing.T) {
	env := newRunbookEnv(t)
	mockHolds(env)
	noReason := env.vote(time.Minute, ApprovalVote{Gate: "approve", Approver: "bob", Reject: true})
	rejected := env.vote(2*time.Minute, ApprovalVote{Gate: "approve", Approver: "bob", Reject: true, Reason: "counsel says no"})
	env.run(parseRunbook(t, holdRunbook), map[string]runbooks.Value{"dataset": runbooks.S("orders")})
	require.ErrorContains(t, noReason.rejected, "a rejection at gate approve needs a reason")
	require.NoError(t, rejected.rejected)
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeApprovalRejected, appErr.Type())
	assert.Contains(t, appErr.Message(), "step approve: approval gate approve rejected by bob: counsel says no")
	st := env.state(t)
	assert.Equal(t, RunFailed, st.Status)
	place, _ := st.Step("place")
	assert.Equal(t, StepCompensated, place.Status)
}

func TestRunbookCancellationCompensates(t *testing.T) {
	env := newRunbookEnv(t)
	mockHolds(env)
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
	env.run(parseRunbook(t, holdRunbook), map[string]runbooks.Value{"dataset": runbooks.S("orders")})
	require.True(t, env.IsWorkflowCompleted())
	require.True(t, temporal.IsCanceledError(env.GetWorkflowError()), "got %v", env.GetWorkflowError())
	st := env.state(t)
	assert.Equal(t, RunCancelled, st.Status)
	gate, _ := st.Step("approve")
	assert.Equal(t, StepCancelled, gate.Status)
	place, _ := st.Step("place")
	assert.Equal(t, StepCompensated, place.Status, "a cancelled run undoes what it did")
	release, _ := st.Step("release")
	assert.Equal(t, StepSkipped, release.Status)
}

const flowRunbook = `
name: flow
params:
  - name: dataset
    type: dataset
    default: orders
steps:
  - id: checks
    parallel:
      - id: verify-primary
        action: verify
        args: {dataset: "${params.dataset}"}
        compensate:
          id: verify-primary.compensate
          action: notify
          args: {message: "verified ${steps.verify-primary.restore_point}"}
      - id: slow
        wait: {duration: 2h}
  - id: after
    action: notify
    args: {message: never}
`

func TestRunbookParallelFailureCancelsSiblings(t *testing.T) {
	env := newRunbookEnv(t)
	rb := parseRunbook(t, flowRunbook)
	rb.Steps[0].Parallel = append(rb.Steps[0].Parallel, runbooks.Step{ID: "broken",
		Wait: &runbooks.Wait{Duration: runbooks.Duration(2 * time.Hour)}, Timeout: runbooks.Duration(10 * time.Minute)})
	env.OnActivity(a.VerifyPoint, mock.Anything, mock.Anything).Return(activities.VerifyPointResult{Point: testPoint, Verified: true}, nil)
	env.run(rb, nil)
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeStepTimedOut, appErr.Type())
	assert.Contains(t, appErr.Message(), "step checks: step broken: did not finish within its timeout of 10m0s")
	st := env.state(t)
	slow, _ := st.Step("slow")
	assert.Equal(t, StepCancelled, slow.Status, "the sibling wait was cancelled, not waited out")
	vp, _ := st.Step("verify-primary")
	assert.Equal(t, StepCompensated, vp.Status)
	comp, _ := st.Step("verify-primary.compensate")
	assert.Equal(t, runbooks.S("verified "+testPoint), comp.Outputs["message"])
	after, _ := st.Step("after")
	assert.Equal(t, StepSkipped, after.Status)
	assert.Less(t, env.Now().Sub(t0), time.Hour, "the failure ended the run without waiting 2h")
}

func TestRunbookStepTimeoutAndWaitUntil(t *testing.T) {
	env := newRunbookEnv(t)
	env.OnActivity(a.LocationRegion, mock.Anything, "eu-dr").Return("eu-central-1", nil)
	polls := 0
	env.OnActivity(a.CheckLocation, mock.Anything, "eu-dr").Return(
		func(context.Context, string) (activities.LocationCheckResult, error) {
			polls++
			return activities.LocationCheckResult{Location: "eu-dr", OK: polls >= 3}, nil
		})
	rb := parseRunbook(t, `
name: waits
steps:
  - id: up
    wait:
      until: {action: location.check, args: {location: eu-dr}}
      every: 1m
    timeout: 1h
  - id: too-slow
    wait: {duration: 3h}
    timeout: 1h
`)
	env.run(rb, nil)
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeStepTimedOut, appErr.Type())
	assert.Contains(t, appErr.Message(), "step too-slow: did not finish within its timeout of 1h0m0s")
	assert.Equal(t, 3, polls, "polled until the location answered")
	st := env.state(t)
	up, _ := st.Step("up")
	assert.Equal(t, StepDone, up.Status)
	assert.Equal(t, runbooks.S("true"), up.Outputs["ok"])
}

func TestRunbookExpectError(t *testing.T) {
	tests := []struct {
		name     string
		giveErr  error
		wantType string
	}{
		{"fails closed as expected", temporal.NewNonRetryableApplicationError("revoked", activities.ErrTypeKeyRevoked, nil), ""},
		{"succeeds unexpectedly", nil, ErrTypeUnexpectedSuccess},
		{"fails otherwise", temporal.NewNonRetryableApplicationError("no such point", activities.ErrTypeNotFound, nil), ErrTypeStepFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newRunbookEnv(t)
			env.OnActivity(a.VerifyPoint, mock.Anything, mock.Anything).Return(activities.VerifyPointResult{Point: testPoint}, tt.giveErr)
			env.run(parseRunbook(t, `
name: kill-switch
steps:
  - id: verify-fails
    action: verify
    args: {dataset: orders}
    expect_error: KeyRevoked
`), nil)
			if tt.wantType == "" {
				require.NoError(t, env.GetWorkflowError())
				st := env.state(t)
				s, _ := st.Step("verify-fails")
				assert.Equal(t, runbooks.S(activities.ErrTypeKeyRevoked), s.Outputs["error_type"])
				return
			}
			assert.Equal(t, tt.wantType, applicationError(t, env.GetWorkflowError()).Type())
		})
	}
}

func TestRunbookInputErrors(t *testing.T) {
	env := newRunbookEnv(t)
	env.ExecuteWorkflow(RunbookWorkflow, RunbookInput{Runbook: parseRunbook(t, holdRunbook)})
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
	assert.Contains(t, appErr.Message(), "requested_by: is required")

	env = newRunbookEnv(t)
	env.run(parseRunbook(t, holdRunbook), nil)
	appErr = applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
	assert.Contains(t, appErr.Message(), "dataset")
}
