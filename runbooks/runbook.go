// Package runbooks holds drflow's runbooks as code: the document model of a runbook (a YAML
// file of parameters and steps), its loader and validator, the catalog of actions a step may
// run, and the built-in runbooks (legal hold, region failover, ransomware recovery, key
// revocation drill).
//
// A runbook is data, not code. The parsed Runbook and its parameter values are the input of
// workflows.RunbookWorkflow, which interprets it, so a run is self-contained and replays
// from its history alone. Nothing here depends on Temporal.
package runbooks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/drflow/drflow/internal/config"
)

// Runbook is a parsed runbook: what it is for, the parameters a run takes, and its steps,
// run in order.
type Runbook struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Params      []Param `json:"params,omitempty"`
	Steps       []Step  `json:"steps"`
}

// Param is one parameter of a runbook. A run gives a value for each parameter that has no
// default.
type Param struct {
	Name        string    `json:"name"`
	Type        ValueType `json:"type"`
	Description string    `json:"description,omitempty"`
	// Default is used when a run gives no value; nil makes the parameter required.
	Default *Value `json:"default,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// ValueType is the type of a parameter or action argument.
type ValueType string

// Value types. Scalars are written as YAML scalars; TypeList as a YAML sequence of scalars.
const (
	TypeString   ValueType = "string"
	TypeInt      ValueType = "int"
	TypeBool     ValueType = "bool"
	TypeDuration ValueType = "duration" // 90s, 15m, 4h, 7d
	TypeTime     ValueType = "time"     // RFC 3339 (2025-01-02T03:04:05Z) or a date (2025-01-02, midnight UTC)
	TypeDataset  ValueType = "dataset"  // a dataset of the configuration
	TypeLocation ValueType = "location" // a location of the configuration
	TypePoint    ValueType = "point"    // a restore point ID, or "latest"
	TypeList     ValueType = "list"     // a list of strings
)

// Step is one step of a runbook. Exactly one of Action, Approval, Parallel and Wait is set.
type Step struct {
	// ID names the step in state, outputs (${steps.ID.field}) and approvals; unique in the
	// runbook, compensations included.
	ID string `json:"id"`
	// Line is where the step starts in the file, for messages.
	Line int `json:"line,omitempty"`

	Action   *Action   `json:"action,omitempty"`
	Approval *Approval `json:"approval,omitempty"`
	Parallel []Step    `json:"parallel,omitempty"`
	Wait     *Wait     `json:"wait,omitempty"`

	// Timeout bounds the step (0: the action's own limits; an approval has its own timeout).
	Timeout Duration `json:"timeout,omitempty"`
	// Retry overrides the retry policy of an action.
	Retry *Retry `json:"retry,omitempty"`
	// Compensate is an action step run if a later step fails or the run is cancelled, after
	// this step completed: compensations run in reverse order of completion (a saga).
	Compensate *Step `json:"compensate,omitempty"`
	// ExpectError makes an action step succeed only if the action fails with this error type
	// (e.g. "KeyRevoked"), and fail if it succeeds: a drill proving that something fails
	// closed.
	ExpectError string `json:"expect_error,omitempty"`
}

// Kind is the kind of step: "action", "approval", "parallel", "wait" or "" if none is set.
func (s Step) Kind() string {
	switch {
	case s.Action != nil:
		return "action"
	case s.Approval != nil:
		return "approval"
	case s.Parallel != nil:
		return "parallel"
	case s.Wait != nil:
		return "wait"
	}
	return ""
}

// Action runs a registered action (see Actions) with arguments.
type Action struct {
	Name string           `json:"name"`
	Args map[string]Value `json:"args,omitempty"`
}

// Approval is a human gate: the run waits until Min distinct approvers from Approvers (or
// Group) approve, any one rejects, or Timeout passes.
type Approval struct {
	// Approvers names who may approve: a list of names, or a reference to a list parameter.
	Approvers Value `json:"approvers,omitzero"`
	// Group names an approver group of the configuration instead of (or besides) Approvers.
	Group string `json:"group,omitempty"`
	// Min is how many distinct approvers must approve (default 1).
	Min int `json:"min,omitempty"`
	// Timeout is how long the gate stays open; OnTimeout says what happens then.
	Timeout   Duration `json:"timeout"`
	OnTimeout string   `json:"on_timeout,omitempty"`
	// Message is what approvers are asked, with ${...} references.
	Message string `json:"message,omitempty"`
}

// Values of Approval.OnTimeout.
const (
	OnTimeoutFail     = "fail"     // the step fails (the default)
	OnTimeoutContinue = "continue" // the step succeeds without approval; its output says so
)

// Wait pauses the run for Duration, or until the Until action reports {"ok": true}, polling
// it Every (default DefaultWaitEvery) within the step's Timeout.
type Wait struct {
	Duration Duration `json:"duration,omitempty"`
	Until    *Action  `json:"until,omitempty"`
	Every    Duration `json:"every,omitempty"`
}

// DefaultWaitEvery is how often a wait polls its condition when it names no interval.
const DefaultWaitEvery = 30 * time.Second

// Retry overrides an action's retry policy.
type Retry struct {
	MaxAttempts     int      `json:"max_attempts,omitempty"`
	InitialInterval Duration `json:"initial_interval,omitempty"`
	MaxInterval     Duration `json:"max_interval,omitempty"`
}

// Value is a parameter or argument value as written: a scalar or a list of scalars. Scalars
// may hold references: ${params.NAME}, ${steps.ID.FIELD}, ${run.requested_by} and
// ${run.id}. A scalar that is exactly one reference to a list takes the list's value.
// It encodes in JSON as a string or an array of strings.
type Value struct {
	Scalar string
	List   []string
	IsList bool
}

// S is a scalar Value.
func S(s string) Value { return Value{Scalar: s} }

// L is a list Value.
func L(items ...string) Value { return Value{List: append([]string{}, items...), IsList: true} }

// MarshalJSON encodes a scalar as a JSON string and a list as an array of strings.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.IsList {
		if v.List == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(v.List)
	}
	return json.Marshal(v.Scalar)
}

// UnmarshalJSON decodes a JSON string or array of strings.
func (v *Value) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = Value{Scalar: s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("value must be a string or a list of strings: %s", b)
	}
	*v = Value{List: l, IsList: true}
	if v.List == nil {
		v.List = []string{}
	}
	return nil
}

// String renders the value for messages.
func (v Value) String() string {
	if v.IsList {
		return fmt.Sprintf("%q", v.List)
	}
	return v.Scalar
}

// Duration is a time.Duration that reads and writes as text ("15m", "7d" on input), so that
// runbooks read well in history and in the Web UI.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON encodes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON decodes a duration string (Go syntax, or with a day unit).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"15m\": %s", b)
	}
	v, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
