package runbooks

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuiltinRunbooksLoadAndRoundTrip(t *testing.T) {
	names := BuiltinNames()
	assert.Equal(t, []string{"hold-release", "key-revocation-drill", "legal-hold", "ransomware-recovery", "region-failover"}, names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rb, err := Builtin(name)
			require.NoError(t, err)
			assert.Equal(t, name, rb.Name, "the file name is the runbook's name")
			assert.NotEmpty(t, rb.Description)
			data, err := json.Marshal(rb)
			require.NoError(t, err)
			var back Runbook
			require.NoError(t, json.Unmarshal(data, &back))
			require.NoError(t, Validate(back, nil), "a runbook survives the trip through workflow history")
		})
	}
	_, err := Builtin("nope")
	assert.ErrorContains(t, err, `no built-in runbook "nope" (built-in: hold-release, key-revocation-drill`)
}

func TestListOutputsAreTyped(t *testing.T) {
	_, err := Parse([]byte(`
name: typed
steps:
  - id: place
    action: hold.place
    args: {hold: h, dataset: d, reason: r, requested_by: me}
  - id: tell
    action: notify
    args: {message: "held ${steps.place.points}"}
`))
	assert.ErrorContains(t, err, "line 9: steps[1] (tell).args.message: ${steps.place.points} is a list")
}

func TestREADMEListsEveryAction(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, a := range Actions() {
		row := "| `" + a.Name + "` | " + a.Description
		assert.True(t, strings.Contains(string(readme), row), "README's action table has no row %q", row)
	}
}
