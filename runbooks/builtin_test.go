package runbooks

import (
	"encoding/json"
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
