package runbooks

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/config"
)

// pre is the start of most runbooks below: two parameters and one step, eleven lines, so a
// case's own steps start on line 12.
const pre = `name: x
params:
  - name: d
    type: dataset
  - name: who
    type: list
    default: [a, b]
steps:
  - id: first
    action: notify
    args: {message: hi}
`

// TestParseValidationErrors covers each check of Validate through Parse, which gives every
// problem its line.
func TestParseValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
		line int
		path string
		msg  string
	}{
		// Names and IDs.
		{"bad runbook name", "name: Legal Hold\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 1, "name", `"Legal Hold" may contain only lower-case letters`},
		{"no steps", "name: x\nsteps: []\n", 2, "steps", "a runbook needs at least one step"},
		{"bad step ID", pre + "  - id: Second\n    wait: {duration: 1s}\n", 12, "steps[1].id", `"Second" may contain only`},
		{"missing step ID", pre + "  - wait: {duration: 1s}\n", 12, "steps[1].id", "is required"},
		{"duplicate step ID", pre + "  - id: first\n    wait: {duration: 1s}\n", 12, "steps[1] (first).id",
			`step ID "first" is already used by steps[0] (first)`},
		{"duplicate ID in a branch", pre + "  - id: p\n    parallel:\n      - id: first\n        wait: {duration: 1s}\n", 14,
			"steps[1] (p).parallel[0] (first).id", "already used by steps[0] (first)"},
		{"duplicate ID of a compensation", pre + "  - id: s\n    action: notify\n    args: {message: hi}\n    compensate: {id: first, action: notify, args: {message: undo}}\n", 15,
			"steps[1] (s).compensate.id", "already used by steps[0] (first)"},

		// Parameters.
		{"duplicate parameter", "name: x\nparams:\n  - name: d\n    type: string\n  - name: d\n    type: int\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 5,
			"params[1] (d).name", `another parameter is already called "d"`},
		{"missing parameter type", "name: x\nparams:\n  - name: n\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 3, "params[0] (n).type", "is required (one of string, int, bool"},
		{"unknown parameter type", "name: x\nparams:\n  - name: n\n    type: text\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 4, "params[0] (n).type", `unknown type "text"`},
		{"bad parameter name", "name: x\nparams:\n  - name: Data\n    type: string\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 3, "params[0].name", `"Data" may contain only`},
		{"default of the wrong type", "name: x\nparams:\n  - name: n\n    type: int\n    default: ten\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 5,
			"params[0] (n).default", `want a whole number (type int), got "ten"`},
		{"default duration", "name: x\nparams:\n  - name: n\n    type: duration\n    default: soon\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 5,
			"params[0] (n).default", "want a duration such as 15m, 4h or 7d (type duration)"},
		{"default list for a scalar", "name: x\nparams:\n  - name: n\n    type: string\n    default: [a]\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 5,
			"params[0] (n).default", "want a single value of type string, got a list"},
		{"default with a reference", "name: x\nparams:\n  - name: n\n    type: string\n    default: ${run.id}\nsteps:\n  - id: a\n    wait: {duration: 1s}\n", 5,
			"params[0] (n).default", "a default is used as written and cannot hold references"},

		// Kinds of step.
		{"step without a kind", pre + "  - id: s\n    timeout: 1m\n", 12, "steps[1] (s)", "a step needs one of action, approval, parallel or wait"},
		{"step with two kinds", pre + "  - id: s\n    action: notify\n    args: {message: hi}\n    wait: {duration: 1s}\n", 12, "steps[1] (s)", "this one has action and wait"},
		{"empty parallel", pre + "  - id: p\n    parallel: []\n", 13, "steps[1] (p).parallel", "is empty: a parallel step needs at least one branch"},

		// Actions and arguments.
		{"unknown action, near", pre + "  - id: s\n    action: hold.plase\n", 13, "steps[1] (s).action", `unknown action "hold.plase" (did you mean "hold.place"?)`},
		{"unknown action, far", pre + "  - id: s\n    action: dance\n", 13, "steps[1] (s).action", `unknown action "dance" (known: backup, drill, hold.place`},
		{"empty action", pre + "  - id: s\n    action: \"\"\n", 13, "steps[1] (s).action", "is required: the name of an action (backup, drill"},
		{"unknown argument", pre + "  - id: s\n    action: notify\n    args: {message: hi, colour: red}\n", 14, "steps[1] (s).args.colour",
			`unknown argument "colour" of notify (known: message, dataset, severity)`},
		{"unknown argument, near", pre + "  - id: s\n    action: notify\n    args:\n      message: hi\n      severty: high\n", 16, "steps[1] (s).args.severty", `did you mean "severity"?`},
		{"missing argument", pre + "  - id: s\n    action: hold.report\n    args: {hold: h}\n", 14, "steps[1] (s).args.dataset", "is required by hold.report: a dataset of the configuration"},
		{"missing arguments mapping", pre + "  - id: s\n    action: notify\n", 12, "steps[1] (s).args.message", "is required by notify"},
		{"int literal", pre + "  - id: s\n    action: verify.newest_clean\n    args: {dataset: d, max: ten}\n", 14, "steps[1] (s).args.max",
			`want a whole number (type int), got "ten"`},
		{"bool literal", pre + "  - id: s\n    action: hold.place\n    args: {hold: h, dataset: d, reason: r, requested_by: me, ongoing: maybe}\n", 14,
			"steps[1] (s).args.ongoing", `want true or false (type bool), got "maybe"`},
		{"time literal", pre + "  - id: s\n    action: hold.place\n    args: {hold: h, dataset: d, reason: r, requested_by: me, from: yesterday}\n", 14,
			"steps[1] (s).args.from", `want a time in RFC 3339 (2025-01-02T03:04:05Z) or a date (2025-01-02) (type time), got "yesterday"`},
		{"point literal", pre + "  - id: s\n    action: drill\n    args: {dataset: d, point: last}\n", 14, "steps[1] (s).args.point",
			`want a restore point ID such as 20250102T030405.000Z-0a1b2c3d or "latest" (type point), got "last"`},
		{"dataset literal", pre + "  - id: s\n    action: notify\n    args: {message: hi, dataset: Customers}\n", 14, "steps[1] (s).args.dataset",
			`want a dataset name (type dataset), got "Customers"`},
		{"location literal", pre + "  - id: s\n    action: location.check\n    args: {location: EU 1}\n", 14, "steps[1] (s).args.location",
			`want a location name (type location), got "EU 1"`},
		{"scalar for a list", pre + "  - id: s\n    action: key.recover\n    args: {dataset: d, shares: a.txt}\n", 14, "steps[1] (s).args.shares",
			`want a list (type list), got "a.txt"`},
		{"list for a scalar", pre + "  - id: s\n    action: notify\n    args: {message: [a, b]}\n", 14, "steps[1] (s).args.message",
			"want a single value of type string, got a list"},
		{"text for a list", pre + "  - id: s\n    action: key.recover\n    args: {dataset: d, shares: \"dir/${params.d}\"}\n", 14, "steps[1] (s).args.shares",
			`want a list, got text "dir/${params.d}"`},

		// References.
		{"unknown parameter", pre + "  - id: s\n    action: notify\n    args: {message: \"${params.nope}\"}\n", 14, "steps[1] (s).args.message",
			"${params.nope}: unknown parameter (it takes d, who)"},
		{"malformed reference", pre + "  - id: s\n    action: notify\n    args: {message: \"${params}\"}\n", 14, "steps[1] (s).args.message",
			`malformed reference "${params}": want ${params.NAME}`},
		{"unclosed reference", pre + "  - id: s\n    action: notify\n    args: {message: \"hi ${params.d\"}\n", 14, "steps[1] (s).args.message",
			`reference "${params.d" has no closing }`},
		{"unknown scope", pre + "  - id: s\n    action: notify\n    args: {message: \"${env.HOME}\"}\n", 14, "steps[1] (s).args.message",
			"a reference starts with params., steps. or run."},
		{"unknown run field", pre + "  - id: s\n    action: notify\n    args: {message: \"${run.user}\"}\n", 14, "steps[1] (s).args.message",
			"${run.user}: unknown run field (known: id, requested_by)"},
		{"unknown step", pre + "  - id: s\n    action: notify\n    args: {message: \"${steps.frist.message}\"}\n", 14, "steps[1] (s).args.message",
			`${steps.frist.message}: no step has ID "frist" (did you mean "first"?)`},
		{"later step", pre + "  - id: s\n    action: notify\n    args: {message: \"${steps.t.message}\"}\n  - id: t\n    action: notify\n    args: {message: hi}\n", 14,
			"steps[1] (s).args.message", `${steps.t.message}: step "t" does not run before this one`},
		{"the step itself", pre + "  - id: s\n    action: notify\n    args: {message: \"${steps.s.message}\"}\n", 14,
			"steps[1] (s).args.message", `step "s" does not run before this one`},
		{"parallel sibling", pre + "  - id: p\n    parallel:\n      - id: a\n        wait: {duration: 1s}\n      - id: b\n        action: notify\n        args: {message: \"${steps.a.ok}\"}\n", 18,
			"steps[1] (p).parallel[1] (b).args.message", `step "a" does not run before this one`},
		{"a compensation", pre + "  - id: s\n    action: notify\n    args: {message: hi}\n    compensate: {id: undo, action: notify, args: {message: undo}}\n  - id: t\n    action: notify\n    args: {message: \"${steps.undo.message}\"}\n", 18,
			"steps[2] (t).args.message", `step "undo" is a compensation; no step reads its outputs`},
		{"unknown output", pre + "  - id: s\n    action: notify\n    args: {message: \"${steps.first.text}\"}\n", 14, "steps[1] (s).args.message",
			`${steps.first.text}: step "first" has no output "text" (outputs: message)`},
		{"output of a parallel step", pre + "  - id: p\n    parallel:\n      - id: a\n        wait: {duration: 1s}\n  - id: s\n    action: notify\n    args: {message: \"${steps.p.ok}\"}\n", 18,
			"steps[2] (s).args.message", `step "p" has no output "ok" (it has none; read the outputs of its branches)`},
		{"output of an expected error", pre + "  - id: s\n    action: key.rewrap\n    args: {dataset: d}\n    expect_error: KeyRevoked\n  - id: t\n    action: notify\n    args: {message: \"${steps.s.rewrapped}\"}\n", 18,
			"steps[2] (t).args.message", `has no output "rewrapped" (outputs: error_type, error)`},
		{"list parameter for a scalar", pre + "  - id: s\n    action: notify\n    args: {message: \"${params.who}\"}\n", 14, "steps[1] (s).args.message",
			"want a single value of type string, but ${params.who} is a list"},
		{"scalar parameter for a list", pre + "  - id: s\n    action: key.recover\n    args: {dataset: d, shares: \"${params.d}\"}\n", 14, "steps[1] (s).args.shares",
			"want a list, but ${params.d} is a single value (type dataset)"},
		{"bool output for a list", pre + "  - id: g\n    approval: {approvers: [a], timeout: 1h}\n  - id: s\n    action: hold.release\n    args: {hold: h, dataset: d, reason: r, requested_by: me, approved_by: \"${steps.g.approved}\"}\n", 16,
			"steps[2] (s).args.approved_by", "want a list, but ${steps.g.approved} is a single value (type bool)"},
		{"list in text", pre + "  - id: s\n    action: notify\n    args: {message: \"ask ${params.who}\"}\n", 14, "steps[1] (s).args.message",
			"${params.who} is a list; only a value that is exactly this reference can take a list"},
		{"list in a list item", pre + "  - id: s\n    action: key.recover\n    args: {dataset: d, shares: [a, \"${params.who}\"]}\n", 14, "steps[1] (s).args.shares[1]",
			"${params.who} is a list"},
		{"reference in a message", pre + "  - id: g\n    approval: {approvers: [a], timeout: 1h, message: \"${params.nope}?\"}\n", 13, "steps[1] (g).approval.message",
			"${params.nope}: unknown parameter"},

		// Approvals.
		{"no approvers", pre + "  - id: g\n    approval:\n      timeout: 1h\n", 13, "steps[1] (g).approval.approvers", "is required unless a group is given"},
		{"min above approvers", pre + "  - id: g\n    approval:\n      approvers: [a, b, a]\n      min: 3\n      timeout: 1h\n", 15, "steps[1] (g).approval.min",
			"needs 3 approvers, but only 2 are listed"},
		{"approval timeout missing", pre + "  - id: g\n    approval:\n      approvers: [a]\n", 13, "steps[1] (g).approval.timeout", "is required: how long the gate stays open"},
		{"on_timeout", pre + "  - id: g\n    approval:\n      approvers: [a]\n      timeout: 1h\n      on_timeout: approve\n", 16, "steps[1] (g).approval.on_timeout",
			`want fail or continue, got "approve"`},
		{"approvers a single name", pre + "  - id: g\n    approval:\n      approvers: alice\n      timeout: 1h\n", 14, "steps[1] (g).approval.approvers",
			`want a list (type list), got "alice"`},
		{"approvers a scalar parameter", pre + "  - id: g\n    approval:\n      approvers: ${params.d}\n      timeout: 1h\n", 14, "steps[1] (g).approval.approvers",
			"want a list, but ${params.d} is a single value"},
		{"bad group", pre + "  - id: g\n    approval:\n      group: Legal Team\n      timeout: 1h\n", 14, "steps[1] (g).approval.group", `"Legal Team" may contain only`},

		// Waits.
		{"wait without duration or until", pre + "  - id: w\n    wait: {every: 10s}\n", 13, "steps[1] (w).wait.duration", "is required unless until is given"},
		{"wait with both", pre + "  - id: w\n    wait:\n      duration: 1m\n      until: {action: location.check, args: {location: l}}\n    timeout: 1h\n", 15,
			"steps[1] (w).wait.until", "cannot be given with duration"},
		{"until not a condition", pre + "  - id: w\n    wait:\n      until: {action: notify, args: {message: hi}}\n    timeout: 1h\n", 14,
			"steps[1] (w).wait.until.action", "notify cannot be waited on: until takes a condition action (location.check, point.exists)"},
		{"until without timeout", pre + "  - id: w\n    wait:\n      until: {action: location.check, args: {location: l}}\n", 12,
			"steps[1] (w).timeout", "is required for a wait with until"},
		{"until with a bad argument", pre + "  - id: w\n    wait:\n      until: {action: point.exists, args: {dataset: d, after: soon}}\n    timeout: 1h\n", 14,
			"steps[1] (w).wait.until.args.after", `want a time in RFC 3339`},
		{"every without until", pre + "  - id: w\n    wait: {duration: 1m, every: 10s}\n", 13, "steps[1] (w).wait.every", "applies only to a wait with until"},

		// Options and compensations.
		{"retry on a wait", pre + "  - id: w\n    wait: {duration: 1m}\n    retry: {max_attempts: 2}\n", 14, "steps[1] (w).retry", "applies only to action steps"},
		{"expect_error on an approval", pre + "  - id: g\n    approval: {approvers: [a], timeout: 1h}\n    expect_error: Denied\n", 14, "steps[1] (g).expect_error", "applies only to action steps"},
		{"bad expect_error", pre + "  - id: s\n    action: key.rewrap\n    args: {dataset: d}\n    expect_error: key revoked\n", 15, "steps[1] (s).expect_error",
			`want an error type such as KeyRevoked, got "key revoked"`},
		{"retry intervals reversed", pre + "  - id: s\n    action: notify\n    args: {message: hi}\n    retry: {initial_interval: 1m, max_interval: 10s}\n", 15,
			"steps[1] (s).retry.initial_interval", "is longer than max_interval (10s)"},
		{"compensation not an action", pre + "  - id: s\n    action: notify\n    args: {message: hi}\n    compensate:\n      id: undo\n      approval: {approvers: [a], timeout: 1h}\n", 15,
			"steps[1] (s).compensate", "a compensation must be an action step, not an approval step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.give))
			wantOne(t, err, tt.line, tt.path, tt.msg)
		})
	}
}

type fakeCatalog struct{ datasets, locations, groups []string }

func (c fakeCatalog) HasDataset(name string) bool       { return slices.Contains(c.datasets, name) }
func (c fakeCatalog) HasLocation(name string) bool      { return slices.Contains(c.locations, name) }
func (c fakeCatalog) HasApproverGroup(name string) bool { return slices.Contains(c.groups, name) }

func TestValidateCatalog(t *testing.T) {
	rb, err := Parse(readValid(t))
	require.NoError(t, err)
	full := fakeCatalog{datasets: []string{"customers"}, locations: []string{"eu-primary", "eu-secondary"}, groups: []string{"legal"}}
	require.NoError(t, Validate(rb, full))

	// The valid example through JSON, as the workflow sees it: problems carry the line of
	// their step.
	data, err := json.Marshal(rb)
	require.NoError(t, err)
	var fromJSON Runbook
	require.NoError(t, json.Unmarshal(data, &fromJSON))

	errs := fieldErrors(t, Validate(fromJSON, fakeCatalog{}))
	var got []string
	for _, fe := range errs {
		got = append(got, fe.Error())
	}
	assert.Equal(t, []string{
		`line 55: steps[1] (check).parallel[1] (reachable).wait.until.args.location: unknown location "eu-primary" (not in the configuration)`,
		`line 67: steps[2] (revoke-drill).args.dataset: unknown dataset "customers" (not in the configuration)`,
		`line 74: steps[4] (approve).approval.group: unknown approver group "legal" (not in the configuration)`,
		`line 95: steps[7] (verify).args.location: unknown location "eu-secondary" (not in the configuration)`,
	}, got)

	// A default must name a dataset of the configuration too.
	rb, err = Parse([]byte("name: x\nparams:\n  - name: d\n    type: dataset\n    default: orders\nsteps:\n  - id: a\n    wait: {duration: 1s}\n"))
	require.NoError(t, err)
	wantOne(t, Validate(rb, full), 3, "params[0] (d).default", `unknown dataset "orders" (not in the configuration)`)
}

func TestConfigCatalog(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "examples", "drflow.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Datasets)
	require.NotEmpty(t, cfg.Locations)

	cat := ConfigCatalog(cfg)
	assert.True(t, cat.HasDataset(cfg.Datasets[0].Name))
	assert.False(t, cat.HasDataset(cfg.Locations[0].Name))
	assert.True(t, cat.HasLocation(cfg.Locations[0].Name))
	assert.False(t, cat.HasLocation(cfg.Datasets[0].Name))
	for _, g := range cfg.Approvers {
		assert.True(t, cat.HasApproverGroup(g.Name), g.Name)
	}
	assert.False(t, cat.HasApproverGroup("no-such-group"))
}

// Validate also receives runbooks built in code or decoded from JSON, which can hold what the
// YAML loader refuses by itself. Without lines, problems have none.
func TestValidateModel(t *testing.T) {
	notify := func(id string) Step {
		return Step{ID: id, Action: &Action{Name: ActionNotify, Args: map[string]Value{"message": S("hi")}}}
	}
	nested := notify("leaf")
	for i := 0; i < MaxDepth+1; i++ {
		nested = Step{ID: "p" + string(rune('a'+i)), Parallel: []Step{nested}}
	}
	inner := notify("undo2")
	withComp := notify("undo")
	withComp.Compensate = &inner

	tests := []struct {
		name string
		give Step
		path string
		msg  string
	}{
		{"negative timeout", Step{ID: "s", Wait: &Wait{Duration: Duration(1)}, Timeout: -1}, "steps[1] (s).timeout", "must be positive"},
		{"negative wait", Step{ID: "s", Wait: &Wait{Duration: -1}}, "steps[1] (s).wait.duration", "must be positive"},
		{"negative every", Step{ID: "s", Wait: &Wait{Until: &Action{Name: ActionLocationCheck, Args: map[string]Value{"location": S("l")}}, Every: -1}, Timeout: 1},
			"steps[1] (s).wait.every", "must be positive"},
		{"negative min", Step{ID: "s", Approval: &Approval{Approvers: L("a"), Min: -1, Timeout: 1}}, "steps[1] (s).approval.min", "must be at least 1"},
		{"negative approval timeout", Step{ID: "s", Approval: &Approval{Approvers: L("a"), Timeout: -1}}, "steps[1] (s).approval.timeout", "must be positive"},
		{"negative attempts", Step{ID: "s", Action: notify("s").Action, Retry: &Retry{MaxAttempts: -1}}, "steps[1] (s).retry.max_attempts", "must be at least 1"},
		{"negative interval", Step{ID: "s", Action: notify("s").Action, Retry: &Retry{MaxInterval: -1}}, "steps[1] (s).retry.max_interval", "must be positive"},
		{"compensation of a compensation", Step{ID: "s", Action: notify("s").Action, Compensate: &withComp}, "steps[1] (s).compensate.compensate",
			"a compensation cannot have its own compensate"},
		{"compensation without a kind", Step{ID: "s", Action: notify("s").Action, Compensate: &Step{ID: "undo"}}, "steps[1] (s).compensate",
			"a compensation is an action step"},
		{"nested too deep", nested, "steps[1] (pi).parallel[0] (ph).parallel[0] (pg).parallel[0] (pf).parallel[0] (pe).parallel[0] (pd).parallel[0] (pc).parallel[0] (pb).parallel[0] (pa).parallel",
			"parallel steps nest more than 8 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := Runbook{Name: "x", Steps: []Step{notify("first"), tt.give}}
			wantOne(t, Validate(rb, nil), 0, tt.path, tt.msg)

			// With the line of its step, a problem names it.
			rb.Steps[1].Line = 42
			wantOne(t, Validate(rb, nil), 42, tt.path, tt.msg)
		})
	}
}
