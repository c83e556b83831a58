package workflows

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/repo"
)

// fieldsOf returns the fields named by the InputErrors joined in err.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "Validate joins its errors: %v", err)
	var fields []string
	for _, e := range joined.Unwrap() {
		var ie *InputError
		require.True(t, errors.As(e, &ie), "not an *InputError: %v", e)
		assert.Contains(t, e.Error(), ie.Field+": ", "message names the field")
		fields = append(fields, ie.Field)
	}
	return fields
}

func TestExamplePointIDParses(t *testing.T) {
	_, err := repo.ParsePointID(examplePointID)
	require.NoError(t, err)
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", maxNameLen+1)
	tests := []struct {
		name       string
		give       interface{ Validate() error }
		wantFields []string
		wantMsg    string // a substring of the error, if set
	}{
		{"backup ok", BackupInput{Dataset: "orders"}, nil, ""},
		{"backup no dataset", BackupInput{}, []string{"dataset"}, "backup input: dataset: is required"},
		{"backup upper case", BackupInput{Dataset: "Orders"}, []string{"dataset"}, `lower-case letters`},
		{"backup leading dash", BackupInput{Dataset: "-orders"}, []string{"dataset"}, `start with a letter or digit; got "-orders"`},
		{"backup slash", BackupInput{Dataset: "a/b"}, []string{"dataset"}, `got "a/b"`},
		{"backup too long", BackupInput{Dataset: long}, []string{"dataset"}, "at most 63 characters; got 64"},

		{"replicate ok", ReplicateInput{Dataset: "orders", RestorePoint: examplePointID, Location: "us-replica"}, nil, ""},
		{"replicate empty", ReplicateInput{}, []string{"dataset", "restore_point", "location"}, "restore_point: is required"},
		{"replicate latest is not an ID", ReplicateInput{Dataset: "orders", RestorePoint: "latest", Location: "eu"}, []string{"restore_point"}, `must be a restore point ID such as ` + examplePointID + `; got "latest"`},
		{"replicate bad location", ReplicateInput{Dataset: "orders", RestorePoint: examplePointID, Location: "EU"}, []string{"location"}, `got "EU"`},

		{"drill minimal", DrillInput{Dataset: "orders"}, nil, ""},
		{"drill latest", DrillInput{Dataset: "orders", RestorePoint: RestorePointLatest}, nil, ""},
		{"drill random postgres", DrillInput{Dataset: "orders", RestorePoint: RestorePointRandom, Target: DrillTargetPostgres}, nil, ""},
		{"drill point id dir at location", DrillInput{Dataset: "orders", RestorePoint: examplePointID, Location: "eu-replica", Target: DrillTargetDir}, nil, ""},
		{"drill no dataset", DrillInput{RestorePoint: RestorePointLatest}, []string{"dataset"}, "drill input: dataset: is required"},
		{"drill bad point", DrillInput{Dataset: "orders", RestorePoint: "newest"}, []string{"restore_point"}, `must be "latest" (the default), "random" or a restore point ID`},
		{"drill bad target", DrillInput{Dataset: "orders", Target: "s3"}, []string{"target"}, `must be "dir" (the default) or "postgres"; got "s3"`},
		{"drill bad location", DrillInput{Dataset: "orders", Location: "eu replica"}, []string{"location"}, `got "eu replica"`},
		{"drill everything wrong", DrillInput{Dataset: "", RestorePoint: "x", Location: "_", Target: "y"}, []string{"dataset", "restore_point", "location", "target"}, ""},

		{"retention ok", RetentionInput{Dataset: "orders"}, nil, ""},
		{"retention no dataset", RetentionInput{}, []string{"dataset"}, "retention input: dataset: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			assert.Equal(t, tt.wantFields, fieldsOf(t, err))
			if tt.wantMsg != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestDrillInputWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		give DrillInput
		want DrillInput
	}{
		{"empty", DrillInput{Dataset: "orders"}, DrillInput{Dataset: "orders", RestorePoint: "latest", Target: "dir"}},
		{"kept", DrillInput{Dataset: "orders", RestorePoint: "random", Location: "eu", Target: "postgres"},
			DrillInput{Dataset: "orders", RestorePoint: "random", Location: "eu", Target: "postgres"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.give.WithDefaults()
			assert.Equal(t, tt.want, got)
			assert.NoError(t, got.Validate())
		})
	}
}

func TestDrillInputFromWebUIJSON(t *testing.T) {
	var in DrillInput
	require.NoError(t, json.Unmarshal([]byte(`{"dataset":"orders","restore_point":"random","location":"eu-replica","target":"postgres"}`), &in))
	assert.Equal(t, DrillInput{Dataset: "orders", RestorePoint: "random", Location: "eu-replica", Target: "postgres"}, in)

	b, err := json.Marshal(DrillInput{Dataset: "orders"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"dataset":"orders"}`, string(b), "optional fields are left out")
}

func TestDrillResultJSON(t *testing.T) {
	give := DrillResult{
		Dataset:             "orders",
		Tier:                1,
		RestorePoint:        examplePointID,
		DataAsOf:            t0,
		Location:            "eu-primary",
		Target:              DrillTargetDir,
		StartedAt:           t0.Add(time.Minute),
		FinishedAt:          t0.Add(3 * time.Minute),
		RPOSeconds:          60,
		RTOSeconds:          120.5,
		RPOObjectiveSeconds: 900,
		RTOObjectiveSeconds: 3600,
		RPOMet:              true,
		RTOMet:              true,
		Verified:            true,
		BytesRestored:       1 << 30,
		WorkflowID:          DrillWorkflowID("orders"),
	}
	b, err := json.Marshal(give)
	require.NoError(t, err)

	var fields map[string]any
	require.NoError(t, json.Unmarshal(b, &fields))
	// The CLI's --json output and dashboards read these names.
	want := map[string]any{
		"dataset":       "orders",
		"restore_point": examplePointID,
		"rpo_seconds":   60.0,
		"rto_seconds":   120.5,
		"rpo_met":       true,
		"rto_met":       true,
		"verified":      true,
		"workflow_id":   "drflow-drill-orders",
	}
	for k, v := range want {
		assert.Equal(t, v, fields[k], "field %q", k)
	}
	for k := range fields {
		assert.Equal(t, strings.ToLower(k), k, "field %q is snake_case", k)
	}

	var got DrillResult
	require.NoError(t, json.Unmarshal(b, &got))
	assert.True(t, give.DataAsOf.Equal(got.DataAsOf))
	got.DataAsOf, got.StartedAt, got.FinishedAt = give.DataAsOf, give.StartedAt, give.FinishedAt
	assert.Equal(t, give, got)
}

func TestProgressJSON(t *testing.T) {
	b, err := json.Marshal(Progress{Phase: "restore", BytesDone: 10, BytesTotal: -1, ETASeconds: -1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"phase":"restore","bytes_done":10,"bytes_total":-1,"eta_seconds":-1}`, string(b))
	assert.Equal(t, "progress", ProgressQuery)
}

func TestObjectivesMet(t *testing.T) {
	assert.True(t, DrillResult{RPOMet: true, RTOMet: true, Verified: true}.ObjectivesMet())
	assert.False(t, DrillResult{RPOMet: true, RTOMet: true}.ObjectivesMet(), "an unverified drill met nothing")
	assert.False(t, DrillResult{RPOMet: false, RTOMet: true, Verified: true}.ObjectivesMet())
	assert.True(t, BackupResult{RPOMet: true}.ObjectivesMet())
	assert.False(t, BackupResult{RPOKnown: false}.ObjectivesMet())
}
