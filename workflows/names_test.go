package workflows

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// validTemporalName applies the frontend's checks on task queue names and workflow IDs:
// non-empty, valid UTF-8, at most 1000 bytes (the default limit.maxIDLength), and not in the
// reserved "/_sys/" namespace.
func validTemporalName(s string) bool {
	return s != "" && utf8.ValidString(s) && len(s) <= 1000 && !strings.HasPrefix(s, "/_sys/")
}

func TestTaskQueues(t *testing.T) {
	longRegion := strings.Repeat("a", maxNameLen)
	tests := []struct {
		name string
		give string
		want string
	}{
		{"control", ControlTaskQueue, "drflow"},
		{"eu region", RegionTaskQueue("eu-west-1"), "drflow-eu-west-1"},
		{"us region", RegionTaskQueue("us-east-1"), "drflow-us-east-1"},
		{"longest region", RegionTaskQueue(longRegion), "drflow-" + longRegion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.give)
			assert.True(t, validTemporalName(tt.give), "%q is not a valid Temporal task queue name", tt.give)
		})
	}
	assert.NotEqual(t, RegionTaskQueue("eu-west-1"), RegionTaskQueue("eu-west-2"))
}

func TestWorkflowIDs(t *testing.T) {
	longName := strings.Repeat("x", maxNameLen)
	tests := []struct {
		name string
		give string
		want string
	}{
		{"backup", BackupWorkflowID("orders"), "drflow-backup-orders"},
		{"drill", DrillWorkflowID("orders"), "drflow-drill-orders"},
		{"retention", RetentionWorkflowID("orders"), "drflow-retention-orders"},
		{
			"replicate",
			ReplicateWorkflowID("orders", examplePointID, "us-replica"),
			"drflow-replicate-orders:" + examplePointID + ":us-replica",
		},
		{
			"longest replicate",
			ReplicateWorkflowID(longName, examplePointID, longName),
			"drflow-replicate-" + longName + ":" + examplePointID + ":" + longName,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.give)
			assert.True(t, validTemporalName(tt.give), "%q is not a valid Temporal workflow ID", tt.give)
		})
	}
}

func TestReplicateWorkflowIDUnambiguous(t *testing.T) {
	// Names may contain '-', so joining parts with '-' would let different copies share an ID.
	a := ReplicateWorkflowID("a-b", examplePointID, "c")
	b := ReplicateWorkflowID("a", examplePointID, "b-c")
	assert.NotEqual(t, a, b)
}

func TestWorkflowIDsDistinctByKind(t *testing.T) {
	ids := map[string]string{
		"backup":    BackupWorkflowID("orders"),
		"drill":     DrillWorkflowID("orders"),
		"replicate": ReplicateWorkflowID("orders", examplePointID, "eu"),
		"retention": RetentionWorkflowID("orders"),
	}
	seen := map[string]string{}
	for kind, id := range ids {
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share workflow ID %q", kind, other, id)
		}
		seen[id] = kind
	}
}
