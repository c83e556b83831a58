package workflows

import (
	"fmt"
	"time"

	"github.com/drflow/drflow/runbooks"
)

// RunbookInput starts a runbook run. It carries the parsed runbook itself, not a file name,
// so the run is self-contained: it replays from its history alone, whatever happens to the
// file later.
type RunbookInput struct {
	Runbook runbooks.Runbook `json:"runbook"`
	// Params are the run's parameter values; parameters left out take their defaults.
	Params map[string]runbooks.Value `json:"params,omitempty"`
	// RequestedBy is who started the run. No approval gate of the run accepts their vote:
	// every gate needs someone else.
	RequestedBy string `json:"requested_by"`
	// Labels maps the datasets the run may touch to their labels in search attributes and
	// child workflow IDs (see activities.PlanResult.Label); a dataset not in it is named.
	// drflow's command line fills it in from the configuration.
	Labels map[string]string `json:"labels,omitempty"`
}

// label is dataset's label in this run.
func (in RunbookInput) label(dataset string) string { return labelOr(in.Labels[dataset], dataset) }

// Validate checks the runbook and the parameter values before any step runs.
func (in RunbookInput) Validate() error {
	v := validator{input: "runbook input"}
	if in.RequestedBy == "" {
		v.addf("requested_by", "is required: who starts the run (no approval gate accepts their own vote)")
	}
	if len(v.errs) > 0 {
		return v.err()
	}
	if err := runbooks.Validate(in.Runbook, nil); err != nil {
		v.addf("runbook", "%v", err)
		return v.err()
	}
	if _, err := runbooks.ResolveParams(in.Runbook, in.Params); err != nil {
		v.addf("params", "%v", err)
	}
	return v.err()
}

// ApproveUpdate is the name of the Workflow Update that casts a vote at an approval gate of a
// running runbook (`drflow runbook approve`, or the Web UI's Update form).
const ApproveUpdate = "approve"

// RunbookStateQuery is the name of the query that answers a run's RunbookState.
const RunbookStateQuery = "runbook_state"

// ApprovalVote is the argument of ApproveUpdate.
type ApprovalVote struct {
	// Gate is the ID of the approval step.
	Gate string `json:"gate"`
	// Approver is who votes; they must be one of the gate's approvers and not the run's
	// requester, and may vote once per gate.
	Approver string `json:"approver"`
	// Reject votes against; a rejection closes the gate and fails the step.
	Reject bool   `json:"reject,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// GateState is the answer to an accepted vote: where the gate stands.
type GateState struct {
	Gate      string   `json:"gate"`
	Status    string   `json:"status"`
	Approvals []string `json:"approvals"`
	Needed    int      `json:"needed"`
	// RejectedBy is set once someone rejected.
	RejectedBy string `json:"rejected_by,omitempty"`
}

// Statuses of a runbook run and of its steps.
const (
	StepPending      = "pending"
	StepRunning      = "running"
	StepWaiting      = "waiting for approval"
	StepDone         = "done"
	StepFailed       = "failed"
	StepSkipped      = "skipped"
	StepCompensating = "compensating"
	StepCompensated  = "compensated"
	StepCancelled    = "cancelled"

	RunRunning      = "running"
	RunCompleted    = "completed"
	RunFailed       = "failed"
	RunCompensating = "compensating"
	RunCancelled    = "cancelled"
)

// RunbookState is the answer to RunbookStateQuery and the heart of RunbookResult: every step,
// including parallel branches and compensations, in runbook order.
type RunbookState struct {
	Runbook     string      `json:"runbook"`
	RequestedBy string      `json:"requested_by"`
	Status      string      `json:"status"`
	Steps       []StepState `json:"steps"`
	Error       string      `json:"error,omitempty"`
}

// StepState is one step of a run.
type StepState struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // action, approval, parallel, wait, compensation
	// Action names the action of an action step or compensation.
	Action string `json:"action,omitempty"`
	// Parent is the parallel step of a branch, or the step a compensation undoes.
	Parent string `json:"parent,omitempty"`
	Status string `json:"status"`
	// Message is what an approval gate asks its approvers.
	Message string `json:"message,omitempty"`
	// WaitingFor lists who may still approve, while the gate is open.
	WaitingFor []string `json:"waiting_for,omitempty"`
	Votes      []Vote   `json:"votes,omitempty"`
	// Outputs are what later steps may reference as ${steps.ID.FIELD}.
	Outputs    map[string]runbooks.Value `json:"outputs,omitempty"`
	Error      string                    `json:"error,omitempty"`
	StartedAt  *time.Time                `json:"started_at,omitempty"`
	FinishedAt *time.Time                `json:"finished_at,omitempty"`
}

// Vote is one accepted vote at a gate.
type Vote struct {
	Approver string    `json:"approver"`
	Reject   bool      `json:"reject,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// RunbookResult is a finished run: its final state.
type RunbookResult struct {
	RunbookState
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	WorkflowID string    `json:"workflow_id"`
}

// Step returns the state of step id, or false.
func (s RunbookState) Step(id string) (StepState, bool) {
	for _, st := range s.Steps {
		if st.ID == id {
			return st, true
		}
	}
	return StepState{}, false
}

// RunbookWorkflowID is the ID of a run of the named runbook started at t: one run per
// runbook at a time is not a rule (two incidents may need the same runbook), so the start
// time keeps IDs apart.
func RunbookWorkflowID(runbook string, t time.Time) string {
	return fmt.Sprintf("%s%s-%s", runbookIDPrefix, runbook, t.UTC().Format("20060102T150405.000Z"))
}

const runbookIDPrefix = "drflow-runbook-"
