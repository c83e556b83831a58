package runbooks

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/config"
)

// fieldErrors unwraps the problems a Parse, Validate or ResolveParams error joins.
func fieldErrors(t *testing.T, err error) []*config.FieldError {
	t.Helper()
	require.Error(t, err)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "want joined field errors, got %T: %v", err, err)
	var out []*config.FieldError
	for _, e := range joined.Unwrap() {
		var fe *config.FieldError
		require.True(t, errors.As(e, &fe), "want *config.FieldError, got %T: %v", e, e)
		out = append(out, fe)
	}
	return out
}

// wantOne asserts that err holds exactly one problem, at line and path, saying msg.
func wantOne(t *testing.T, err error, line int, path, msg string) {
	t.Helper()
	errs := fieldErrors(t, err)
	require.Len(t, errs, 1, "errors: %v", err)
	assert.Equal(t, line, errs[0].Line, "line of %v", errs[0])
	assert.Equal(t, path, errs[0].Path, "path of %v", errs[0])
	assert.Contains(t, errs[0].Msg, msg)
}

func readValid(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "valid.yaml"))
	require.NoError(t, err)
	return data
}

func TestParseValidExample(t *testing.T) {
	rb, err := Parse(readValid(t))
	require.NoError(t, err)

	assert.Equal(t, "legal-hold-drill", rb.Name)
	require.Len(t, rb.Params, 7)
	assert.Equal(t, Param{Name: "approvers", Type: TypeList, Default: &Value{List: []string{"alice", "bob", "carol"}, IsList: true}, Line: 16}, rb.Params[3])
	require.Len(t, rb.Steps, 8)

	place := rb.Steps[0]
	assert.Equal(t, 29, place.Line)
	assert.Equal(t, &Action{Name: ActionHoldPlace, Args: map[string]Value{
		"hold":         S("${params.hold}"),
		"dataset":      S("${params.dataset}"),
		"from":         S("${params.from}"),
		"points":       L("20250102T030405.000Z-0a1b2c3d"),
		"ongoing":      S("${params.ongoing}"),
		"reason":       S("case ${params.hold}, requested by ${run.requested_by}"),
		"requested_by": S("${run.requested_by}"),
	}}, place.Action)
	assert.Equal(t, 30*time.Minute, place.Timeout.D())
	assert.Equal(t, &Retry{MaxAttempts: 3, InitialInterval: Duration(10 * time.Second), MaxInterval: Duration(time.Minute)}, place.Retry)
	require.NotNil(t, place.Compensate)
	assert.Equal(t, "undo-place", place.Compensate.ID)
	assert.Equal(t, 42, place.Compensate.Line)

	check := rb.Steps[1]
	require.Len(t, check.Parallel, 3)
	assert.Equal(t, &Wait{Until: &Action{Name: ActionLocationCheck, Args: map[string]Value{"location": S("eu-primary")}}, Every: Duration(30 * time.Second)}, check.Parallel[1].Wait)
	assert.Len(t, check.Parallel[2].Parallel, 2)
	assert.Equal(t, "KeyRevoked", rb.Steps[2].ExpectError)
	assert.Equal(t, &Approval{Approvers: S("${params.approvers}"), Group: "legal", Min: 2, Timeout: Duration(72 * time.Hour),
		OnTimeout: OnTimeoutFail, Message: "Release hold ${params.hold}? Report ok: ${steps.report.ok}; ${steps.revoke-drill.error_type}"}, rb.Steps[4].Approval)
}

// The workflow receives the runbook as JSON: it must arrive unchanged and still valid.
func TestParseJSONRoundTrip(t *testing.T) {
	rb, err := Parse(readValid(t))
	require.NoError(t, err)
	data, err := json.Marshal(rb)
	require.NoError(t, err)
	var back Runbook
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, rb, back)
	assert.NoError(t, Validate(back, nil))
}

func TestLoad(t *testing.T) {
	rb, err := Load(filepath.Join("testdata", "valid.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "legal-hold-drill", rb.Name)

	_, err = Load(filepath.Join("testdata", "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: x\nsteps: []\n"), 0o600))
	_, err = Load(bad)
	require.Error(t, err)
	assert.Equal(t, "runbook "+bad+" is invalid:\nline 2: steps: a runbook needs at least one step", err.Error())
}

// Problems that stop the reading of a document before any field is looked at.
func TestParseDocumentErrors(t *testing.T) {
	nested := "name: x\nsteps:\n  - id: a\n    wait: {duration: 1s}\n"
	tests := []struct {
		name string
		give string
		want string
	}{
		{"empty", "", "runbook is empty"},
		{"only a comment", "# nothing\n", "runbook is empty"},
		{"syntax", "name: [x\n", "read YAML: yaml: line 1"},
		{"second document", nested + "---\nname: y\n", "line 5: a second document starts here"},
		{"too large", "name: x\ndescription: " + strings.Repeat("a", MaxSize) + "\n", "larger than 1048576 bytes"},
		{"alias bomb", aliasBomb(), "read YAML"},
		{"non-scalar key", nested + "    [x]: y\n", "read YAML: yaml: invalid map key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.give))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// aliasBomb is the billion-laughs document: each level repeats the one before ten times.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		b.WriteString(strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	return b.String()
}

// nestedParallel writes depth parallel steps, one inside the other, around a wait.
func nestedParallel(depth int) string {
	var b strings.Builder
	b.WriteString("name: x\nsteps:\n")
	indent := "  "
	for i := 0; i < depth; i++ {
		b.WriteString(indent + "- id: p" + string(rune('a'+i)) + "\n" + indent + "  parallel:\n")
		indent += "    "
	}
	b.WriteString(indent + "- id: w\n" + indent + "  wait: {duration: 1s}\n")
	return b.String()
}

func TestParseNesting(t *testing.T) {
	_, err := Parse([]byte(nestedParallel(MaxDepth)))
	require.NoError(t, err)

	// Depth 9: the ninth parallel step's branches (line 20) are one level too many.
	_, err = Parse([]byte(nestedParallel(MaxDepth + 1)))
	wantOne(t, err, 20, "steps[0] (pa).parallel[0] (pb).parallel[0] (pc).parallel[0] (pd).parallel[0] (pe).parallel[0] (pf).parallel[0] (pg).parallel[0] (ph).parallel[0] (pi).parallel",
		"nest more than 8 deep")
}

// TestParseErrors covers each problem the loader reports by itself, before Validate.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
		line int
		path string
		msg  string
	}{
		{"unknown top-level field", `name: x
steps:
  - id: a
    wait: {duration: 1s}
colour: red
`, 5, "colour", `unknown field "colour" (known: name, description, params, steps)`},
		{"unknown step field", `name: x
steps:
  - id: a
    wait: {duration: 1s}
    timout: 1m
`, 5, "steps[0] (a).timout", `did you mean "timeout"?`},
		{"field given twice", `name: x
steps:
  - id: a
    wait: {duration: 1s}
    timeout: 1m
    timeout: 2m
`, 6, "steps[0] (a).timeout", "field is given twice (first on line 5)"},
		{"list wanted", `name: x
steps:
  id: a
`, 3, "steps", "want a list, got a mapping"},
		{"mapping wanted", `name: x
steps:
  - id: a
    approval: yes
`, 4, "steps[0] (a).approval", `want a mapping of fields (key: value), got "yes"`},
		{"single value wanted", `name: [x]
steps:
  - id: a
    wait: {duration: 1s}
`, 1, "name", "want a single value, got a list"},
		{"args without action", `name: x
steps:
  - id: a
    wait: {duration: 1s}
    args: {message: hi}
`, 5, "steps[0] (a).args", "args belong to an action step"},
		{"args not a mapping", `name: x
steps:
  - id: a
    action: notify
    args: [hi]
`, 5, "steps[0] (a).args", "want a mapping of arguments"},
		{"list item not a value", `name: x
steps:
  - id: a
    action: key.recover
    args:
      dataset: d
      shares: [a, [b]]
`, 7, "steps[0] (a).args.shares[1]", "want a single value as a list item, got a list"},
		{"argument a mapping", `name: x
steps:
  - id: a
    action: notify
    args:
      message: {text: hi}
`, 6, "steps[0] (a).args.message", "want a value or a list of values, got a mapping"},
		{"bad duration", `name: x
steps:
  - id: a
    wait: {duration: 1s}
    timeout: 30
`, 5, "steps[0] (a).timeout", `invalid duration "30"`},
		{"zero duration", `name: x
steps:
  - id: a
    wait: {duration: 0s}
`, 4, "steps[0] (a).wait.duration", `must be positive, got "0s"`},
		{"negative duration", `name: x
steps:
  - id: a
    approval: {approvers: [a], timeout: -1h}
`, 4, "steps[0] (a).approval.timeout", `must be positive, got "-1h"`},
		{"min zero", `name: x
steps:
  - id: a
    approval:
      approvers: [a]
      min: 0
      timeout: 1h
`, 6, "steps[0] (a).approval.min", "must be at least 1, got 0"},
		{"min not a number", `name: x
steps:
  - id: a
    approval:
      approvers: [a]
      min: two
      timeout: 1h
`, 6, "steps[0] (a).approval.min", `want a whole number, got "two"`},
		{"max_attempts zero", `name: x
steps:
  - id: a
    action: notify
    args: {message: hi}
    retry: {max_attempts: 0}
`, 6, "steps[0] (a).retry.max_attempts", "must be at least 1, got 0"},
		{"compensation with compensate", `name: x
steps:
  - id: a
    action: notify
    args: {message: hi}
    compensate:
      id: b
      action: notify
      args: {message: undo}
      compensate:
        id: c
        action: notify
        args: {message: undo the undo}
`, 10, "steps[0] (a).compensate.compensate", "a compensation cannot have its own compensate"},
		{"merge key", `name: x
steps:
  - id: a
    action: notify
    args: &base {message: hi}
  - id: b
    action: notify
    args:
      <<: *base
`, 9, "steps[1] (b).args", "merge keys (<<) are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.give))
			wantOne(t, err, tt.line, tt.path, tt.msg)
		})
	}
}

// The example in README.md is what people copy: it must stay valid.
func TestREADMEExample(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(data), "```yaml\n")
	require.True(t, ok, "README.md has a yaml block")
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	_, err = Parse([]byte(example))
	assert.NoError(t, err)
}

// Aliases let a small document expand into a large one; the loader must refuse or finish
// quickly, whatever is repeated.
func TestParseBoundsAliasedWork(t *testing.T) {
	// Steps: ten times more on each level, 10^4 in all. The padding keeps the share of nodes
	// that come from aliases below what yaml.v3 refuses by itself.
	var steps strings.Builder
	steps.WriteString("name: x\nparams: [{name: pad, type: list, default: [" + strings.Repeat("x, ", 2000) + "x]}]\nsteps:\n  - &l0 {id: a, action: notify, args: {message: \"${steps.nope.x}\"}}\n")
	for i := 1; i <= 4; i++ {
		prev := "*l" + string(rune('0'+i-1))
		steps.WriteString("  - &l" + string(rune('0'+i)) + " {id: p" + string(rune('0'+i)) + ", parallel: [" + strings.Repeat(prev+", ", 9) + prev + "]}\n")
	}
	// Text: one long value with many references, repeated by every step.
	var text strings.Builder
	text.WriteString("name: x\nsteps:\n  - {id: a, action: notify, args: {message: &m \"" + strings.Repeat("${steps.nope.x}", 250) + "\"}}\n")
	for i := 0; i < 900; i++ {
		text.WriteString("  - {id: s" + strconv.Itoa(i) + ", action: notify, args: {message: *m}}\n")
	}
	big := strings.Replace(text.String(), strings.Repeat("${steps.nope.x}", 250), strings.Repeat("x", 60000), 1)

	tests := []struct {
		name string
		give string
		want string
	}{
		{"steps", steps.String(), "runbook has more than 1000 steps"},
		{"text", big, "document is too large or too deeply aliased"},
		{"references", text.String(), "too many problems: only the first 100 are shown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(tt.give))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			t.Logf("%d bytes refused in %v", len(tt.give), time.Since(start))
		})
	}
}

// Validate receives runbooks from JSON too, which has no aliases but may be long.
func TestValidateBoundsSteps(t *testing.T) {
	rb := Runbook{Name: "x"}
	for i := 0; i <= MaxSteps; i++ {
		rb.Steps = append(rb.Steps, Step{ID: "s" + strconv.Itoa(i), Wait: &Wait{Duration: 1}})
	}
	wantOne(t, Validate(rb, nil), 0, "steps", "a runbook has at most 1000 steps")
	rb.Steps = rb.Steps[:MaxSteps]
	assert.NoError(t, Validate(rb, nil))
}
