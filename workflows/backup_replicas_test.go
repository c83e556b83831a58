package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
)

// replicatedPlan is testPlan with two replicas: one at home, one abroad.
func replicatedPlan(mode config.ReplicationMode) activities.PlanResult {
	p := testPlan
	p.Replicas = []string{"eu-replica", "us-replica"}
	p.Replication = string(mode)
	return p
}

type testEnv = testsuite.TestWorkflowEnvironment

func TestBackupWorkflowReplicates(t *testing.T) {
	const copyTime = 4 * time.Minute
	tests := []struct {
		name       string
		mode       config.ReplicationMode
		wantStatus string
		// RPO: previous point 10m before t0; the backup takes 1m; a sync tier also waits
		// for the copies.
		wantRPO float64
		wantMet bool
	}{
		{"sync waits and counts the copies", config.ReplicationSync, ReplicaCopied, (11*time.Minute + copyTime).Seconds(), false},
		{"async starts the copies and does not wait", config.ReplicationAsync, ReplicaStarted, (11 * time.Minute).Seconds(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, sa := newEnv(t)
			env.RegisterWorkflow(ReplicateWorkflow)
			plan := replicatedPlan(tt.mode)
			// The sync case's objective is 14m: the copies push the exposure past it.
			plan.RPO = 14 * time.Minute
			const point = "20250102T031405.000Z-0a1b2c3d"
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan, nil).Once()
			env.OnActivity(a.Backup, mock.Anything, mock.Anything).After(time.Minute).Return(activities.BackupActivityResult{
				Point: point, DataAsOf: t0, PreviousPoint: testPoint, PreviousDataAsOf: t0.Add(-10 * time.Minute),
			}, nil).Once()
			env.OnActivity(a.PlanReplication, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.ReplicationPlanInput) (activities.ReplicationPlan, error) {
					jur, mode := "EU", "full"
					if in.Location == "us-replica" {
						jur, mode = "US", "encrypted"
					}
					return replicationPlan(in.Location, "r", jur, mode, ""), nil
				})
			var mu sync.Mutex // the test suite runs activities concurrently
			copied := map[string]int{}
			// An async backup completes before its copies run; the test suite stops there.
			env.OnActivity(a.Replicate, mock.Anything, mock.Anything).After(copyTime).Maybe().Return(
				func(_ context.Context, in activities.ReplicateActivityInput) (activities.ReplicateActivityResult, error) {
					mu.Lock()
					copied[in.Location]++
					mu.Unlock()
					assert.Equal(t, point, in.Point)
					return activities.ReplicateActivityResult{Location: in.Location, Mode: in.Mode, ObjectsCopied: 3, BytesCopied: 300}, nil
				})

			env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var res BackupResult
			require.NoError(t, env.GetWorkflowResult(&res))

			assert.Equal(t, string(tt.mode), res.Replication)
			require.Len(t, res.Replicas, 2)
			for i, loc := range plan.Replicas {
				r := res.Replicas[i]
				assert.Equal(t, loc, r.Location)
				assert.Equal(t, tt.wantStatus, r.Status)
				assert.Equal(t, ReplicateWorkflowID("orders", point, loc), r.WorkflowID)
			}
			if tt.mode == config.ReplicationSync {
				assert.Equal(t, map[string]int{"eu-replica": 1, "us-replica": 1}, copied)
				assert.Equal(t, config.CopyFull, res.Replicas[0].Mode)
				assert.Equal(t, config.CopyEncrypted, res.Replicas[1].Mode)
				assert.Equal(t, int64(300), res.Replicas[1].BytesCopied)
			}
			assert.InDelta(t, tt.wantRPO, res.RPOSeconds, 1)
			assert.Equal(t, tt.wantMet, res.RPOMet)
			assert.Equal(t, tt.wantMet, sa.met)
		})
	}
}

func TestBackupWorkflowSyncReplicaFailure(t *testing.T) {
	tests := []struct {
		name      string
		replicate func(t *testing.T, env *testEnv)
		wantInMsg []string
	}{
		{
			name: "denied by policy",
			replicate: func(t *testing.T, env *testEnv) {
				env.OnActivity(a.PlanReplication, mock.Anything, mock.Anything).Return(
					func(_ context.Context, in activities.ReplicationPlanInput) (activities.ReplicationPlan, error) {
						if in.Location == "us-replica" {
							p := replicationPlan(in.Location, "us-east-1", "US", string(config.CopyDenied), "")
							p.Rule = "policy eu-gdpr allows nothing in US"
							return p, nil
						}
						return replicationPlan(in.Location, "eu-central-1", "EU", "full", ""), nil
					})
				env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(
					func(_ context.Context, in activities.ReplicateActivityInput) (activities.ReplicateActivityResult, error) {
						assert.NotEqual(t, "us-replica", in.Location, "a denied copy is never scheduled")
						return activities.ReplicateActivityResult{Mode: "full"}, nil
					})
			},
			wantInMsg: []string{"us-replica", "denied", "allows nothing in US"},
		},
		{
			name: "copy keeps failing non-retryably",
			replicate: func(t *testing.T, env *testEnv) {
				env.OnActivity(a.PlanReplication, mock.Anything, mock.Anything).Return(
					func(_ context.Context, in activities.ReplicationPlanInput) (activities.ReplicationPlan, error) {
						return replicationPlan(in.Location, "eu-central-1", "EU", "full", ""), nil
					})
				env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(
					func(_ context.Context, in activities.ReplicateActivityInput) (activities.ReplicateActivityResult, error) {
						if in.Location == "eu-replica" {
							return activities.ReplicateActivityResult{}, temporal.NewNonRetryableApplicationError("key revoked", activities.ErrTypeKeyRevoked, nil)
						}
						return activities.ReplicateActivityResult{Mode: "full"}, nil
					})
			},
			wantInMsg: []string{"eu-replica", "key revoked"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, sa := newEnv(t)
			env.RegisterWorkflow(ReplicateWorkflow)
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(replicatedPlan(config.ReplicationSync), nil).Once()
			env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(activities.BackupActivityResult{
				Point: testPoint, DataAsOf: t0, PreviousPoint: testPoint, PreviousDataAsOf: t0.Add(-time.Minute),
			}, nil).Once()
			tt.replicate(t, env)

			env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
			require.True(t, env.IsWorkflowCompleted())
			appErr := applicationError(t, env.GetWorkflowError())
			assert.Equal(t, ErrTypeReplicationFailed, appErr.Type())
			for _, want := range append(tt.wantInMsg, testPoint, "orders", "sync") {
				assert.Contains(t, appErr.Error(), want)
			}
			assert.True(t, sa.hasMet)
			assert.False(t, sa.met, "a backup whose required copy failed has not met its objectives")
		})
	}
}

func TestBackupWorkflowSyncReplicaRetriesTransientFailure(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterWorkflow(ReplicateWorkflow)
	plan := replicatedPlan(config.ReplicationSync)
	plan.Replicas = plan.Replicas[:1]
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan, nil).Once()
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(activities.BackupActivityResult{Point: testPoint, DataAsOf: t0}, nil).Once()
	env.OnActivity(a.PlanReplication, mock.Anything, mock.Anything).Return(replicationPlan("eu-replica", "eu-central-1", "EU", "full", ""), nil)
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(activities.ReplicateActivityResult{}, errors.New("store unavailable")).Once()
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(activities.ReplicateActivityResult{Location: "eu-replica", Mode: "full", BytesCopied: 7}, nil).Once()

	env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
	require.NoError(t, env.GetWorkflowError())
	var res BackupResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Len(t, res.Replicas, 1)
	assert.Equal(t, ReplicaCopied, res.Replicas[0].Status)
	assert.Equal(t, int64(7), res.Replicas[0].BytesCopied)
}
