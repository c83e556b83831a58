package runbooks

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/drflow/drflow/internal/config"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, every problem it reports
// must say something, and a runbook it accepts must reach the workflow unchanged (through
// JSON) and still pass Validate there.
func FuzzParse(f *testing.F) {
	f.Add(readValid(f))
	for _, seed := range []string{
		"",
		"---\n",
		pre,
		pre + "---\nname: y\n",
		"name: x\nsteps:\n  - id: a\n    wait: {duration: 1s}\n    timeout: 1m\n    timeout: 2m\n",
		"name: x\nsteps: &s\n  - id: a\n    parallel: *s\n",
		"a: &a [*a]\n",
		"name: x\nsteps:\n  - id: a\n    action: notify\n    args: &b {message: hi}\n  - id: b\n    action: notify\n    args: {<<: *b}\n",
		"name: x\nsteps:\n  - id: a\n    action: notify\n    args: {message: \"${steps.a.message} $${x} ${params\"}\n",
		"name: x\nparams: [{name: p, type: list, default: []}]\nsteps:\n  - {id: a, wait: {until: {action: point.exists, args: {dataset: d}}, every: 1s}, timeout: 9999999999d}\n",
		"name: x\nsteps:\n  - id: a\n    approval: {approvers: [\"\\xff\"], min: 1, timeout: 1h, on_timeout: continue}\n",
		"name: x\nsteps:\n  - id: a\n    action: key.rewrap\n    args: {dataset: d}\n    expect_error: KeyRevoked\n    compensate: {id: b, approval: {}}\n",
		nestedParallel(MaxDepth + 1),
		"? [a, b]\n: c\n",
		"name: !!binary aGVsbG8=\nsteps: []\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rb, err := Parse(data)
		if err != nil {
			var fe *config.FieldError
			if errors.As(err, &fe) && fe.Msg == "" {
				t.Fatalf("field error without a message: %#v", fe)
			}
			if !reflect.DeepEqual(rb, Runbook{}) {
				t.Fatalf("Parse returned a runbook with its error %v", err)
			}
			return
		}
		encoded, err := json.Marshal(rb)
		if err != nil {
			t.Fatalf("marshal an accepted runbook: %v", err)
		}
		var back Runbook
		if err := json.Unmarshal(encoded, &back); err != nil {
			t.Fatalf("unmarshal an accepted runbook: %v\n%s", err, encoded)
		}
		if !reflect.DeepEqual(rb, back) {
			t.Fatalf("JSON round trip changed the runbook:\n%#v\n%#v", rb, back)
		}
		if err := Validate(back, nil); err != nil {
			t.Fatalf("an accepted runbook does not validate after JSON: %v", err)
		}
	})
}
