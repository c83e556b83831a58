package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDetailsShowFiguresAgainstObjectives(t *testing.T) {
	d := drillDetails(DrillResult{Dataset: "orders", Tier: 1, RestorePoint: testPoint, Location: "eu-primary", Target: "dir",
		RTOSeconds: 42.5, RTOObjectiveSeconds: 3600, RTOMet: true, RPOSeconds: 1200, RPOObjectiveSeconds: 900, Verified: true, BytesRestored: 10})
	for _, want := range []string{"orders", testPoint, "| RTO | 42.5s | 1h0m0s | met |", "| RPO | 20m0s | 15m0s | missed |", "verified"} {
		assert.Contains(t, d, want)
	}
	b := backupDetails(BackupResult{Dataset: "orders", Tier: 1, RestorePoint: testPoint, RPOObjectiveSeconds: 900,
		Replicas: []ReplicaResult{{Location: "us-dr", Status: ReplicaStarted}}})
	assert.Contains(t, b, "unknown (first restore point)")
	assert.Contains(t, b, "replica us-dr: started")
}
