package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/activities"
)

var retentionReplicaPlan = func() activities.PlanResult {
	p := testPlan
	p.Replicas = []string{"eu-replica", "us-replica", "ap-catalog"}
	p.Replication = "sync"
	return p
}()

// After the primary, retention runs at each replica, in configuration order, on the
// primary's region queue, and the result reports each location.
func TestRetentionWorkflowReplicas(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterWorkflow(RetentionWorkflow)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(retentionReplicaPlan, nil).Once()
	results := map[string]activities.RetentionActivityResult{
		"": {Location: "eu-primary", Kept: []string{testPoint3}, Pruned: []string{testPoint2, testPoint}, BytesFreed: 1000},
		"eu-replica": {Location: "eu-replica", Mode: "full", Kept: []string{testPoint3}, Pruned: []string{testPoint2},
			Held: []activities.HeldPoint{{Point: testPoint, Reason: "legal hold"}}, PacksCondemned: 2, BytesFreed: 700},
		"us-replica": {Location: "us-replica", Mode: "encrypted", Kept: []string{testPoint3}, Pruned: []string{testPoint2, testPoint},
			PacksCondemned: 3, BytesFreed: 50},
		"ap-catalog": {Location: "ap-catalog", Mode: "metadata", Kept: []string{testPoint3}, Pruned: []string{testPoint2},
			Held: []activities.HeldPoint{{Point: testPoint, Reason: "legal hold"}}},
	}
	var order []string
	env.OnActivity(a.Retention, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RetentionActivityInput) (activities.RetentionActivityResult, error) {
			order = append(order, in.Location)
			assert.Equal(t, "orders", in.Dataset)
			return results[in.Location], nil
		})
	queues := map[string]bool{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "Retention" {
			queues[info.TaskQueue] = true
		}
	})

	env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res RetentionResult
	require.NoError(t, env.GetWorkflowResult(&res))

	assert.Equal(t, []string{"", "eu-replica", "us-replica", "ap-catalog"}, order, "the primary first, then the replicas in order")
	assert.Equal(t, map[string]bool{"drflow-eu-west-1": true}, queues, "the home worker holds the replica stores")
	assert.Equal(t, RetentionResult{Dataset: "orders", Kept: []string{testPoint3}, Pruned: []string{testPoint2, testPoint},
		Held: []string{}, BytesFreed: 1000, Replicas: []ReplicaRetention{
			{Location: "eu-replica", Mode: "full", Kept: []string{testPoint3}, Pruned: []string{testPoint2}, Held: []string{testPoint},
				PacksCondemned: 2, BytesFreed: 700},
			{Location: "us-replica", Mode: "encrypted", Kept: []string{testPoint3}, Pruned: []string{testPoint2, testPoint},
				Held: []string{}, PacksCondemned: 3, BytesFreed: 50},
			{Location: "ap-catalog", Mode: "metadata", Kept: []string{testPoint3}, Pruned: []string{testPoint2}, Held: []string{testPoint}},
		}}, res)

	val, err := env.QueryWorkflow(ProgressQuery)
	require.NoError(t, err)
	var p Progress
	require.NoError(t, val.Get(&p))
	assert.Equal(t, int64(1750), p.BytesDone, "bytes freed at every location")
}

// A replica whose retention fails non-retryably fails the run, after the primary's and the
// earlier replicas' work is done; later replicas are not touched.
func TestRetentionWorkflowReplicaFailure(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterWorkflow(RetentionWorkflow)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(retentionReplicaPlan, nil).Once()
	env.OnActivity(a.Retention, mock.Anything, activities.RetentionActivityInput{Dataset: "orders"}).
		Return(activities.RetentionActivityResult{Location: "eu-primary"}, nil).Once()
	env.OnActivity(a.Retention, mock.Anything, activities.RetentionActivityInput{Dataset: "orders", Location: "eu-replica"}).
		Return(activities.RetentionActivityResult{}, temporal.NewNonRetryableApplicationError("unreadable manifest", activities.ErrTypeIntegrityFailure, nil)).Once()
	env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, activities.ErrTypeIntegrityFailure, appErr.Type())
	env.AssertExpectations(t)
}
