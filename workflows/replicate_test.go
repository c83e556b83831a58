package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
)

func replicationPlan(dest, region, jur, mode, mech string) activities.ReplicationPlan {
	return activities.ReplicationPlan{Dataset: "orders", Source: "eu-primary", SourceRegion: "eu-west-1",
		Destination: dest, DestRegion: region, DestJurisdiction: jur, Home: "EU", Mode: mode, Mechanism: mech,
		Rule: "policy eu-gdpr rule for " + jur}
}

func TestReplicateWorkflowAllowed(t *testing.T) {
	tests := []struct {
		name string
		plan activities.ReplicationPlan
	}{
		{"full at home", replicationPlan("eu-replica", "eu-central-1", "EU", "full", "")},
		{"encrypted abroad", replicationPlan("us-replica", "us-east-1", "US", "encrypted", "scc")},
		{"metadata only", replicationPlan("ap-catalog", "ap-southeast-1", "APAC", "metadata", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, sa := newEnv(t)
			env.RegisterWorkflow(ReplicateWorkflow)
			env.OnActivity(a.PlanReplication, mock.Anything,
				activities.ReplicationPlanInput{Dataset: "orders", Location: tt.plan.Destination}).Return(tt.plan, nil).Once()
			var got activities.ReplicateActivityInput
			env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
				got = args.Get(1).(activities.ReplicateActivityInput)
			}).Return(activities.ReplicateActivityResult{Location: tt.plan.Destination, Jurisdiction: tt.plan.DestJurisdiction,
				Mode: tt.plan.Mode, ObjectsCopied: 5, BytesCopied: 1234}, nil).Once()
			var queue string
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				if info.ActivityType.Name == "Replicate" {
					queue = info.TaskQueue
				}
			})

			env.ExecuteWorkflow(ReplicateWorkflow, ReplicateInput{Dataset: "orders", RestorePoint: testPoint, Location: tt.plan.Destination})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var res ReplicaResult
			require.NoError(t, env.GetWorkflowResult(&res))

			assert.Equal(t, "drflow-eu-west-1", queue, "the copy runs on the source region's queue")
			assert.Equal(t, activities.ReplicateActivityInput{Dataset: "orders", Point: testPoint, Location: tt.plan.Destination,
				Mode: tt.plan.Mode, LegalBasis: tt.plan.Mechanism}, got)
			assert.Equal(t, ReplicaResult{Location: tt.plan.Destination, Jurisdiction: tt.plan.DestJurisdiction,
				Mode: config.CopyMode(tt.plan.Mode), ObjectsCopied: 5, BytesCopied: 1234}, res)
			assert.Equal(t, "orders", sa.dataset)
			assert.Equal(t, KindReplicate, sa.kind)
		})
	}
}

func TestReplicateWorkflowDenied(t *testing.T) {
	env, sa := newEnv(t)
	env.RegisterWorkflow(ReplicateWorkflow)
	plan := replicationPlan("cn-replica", "cn-north-1", "CN", string(config.CopyDenied), "")
	plan.Rule = "policy eu-gdpr has no rule for CN, so nothing may go there"
	env.OnActivity(a.PlanReplication, mock.Anything, mock.Anything).Return(plan, nil).Once()
	replicateCalls := 0
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Run(func(mock.Arguments) { replicateCalls++ }).
		Return(activities.ReplicateActivityResult{}, nil).Maybe()

	env.ExecuteWorkflow(ReplicateWorkflow, ReplicateInput{Dataset: "orders", RestorePoint: testPoint, Location: "cn-replica"})
	require.True(t, env.IsWorkflowCompleted())
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, activities.ErrTypePolicyDenied, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	for _, want := range []string{"orders", "cn-replica", "CN", plan.Rule} {
		assert.Contains(t, appErr.Error(), want)
	}
	assert.Zero(t, replicateCalls, "a denied copy is never scheduled")
	assert.Equal(t, KindReplicate, sa.kind)
}

func TestReplicateWorkflowInvalidInput(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterWorkflow(ReplicateWorkflow)
	env.ExecuteWorkflow(ReplicateWorkflow, ReplicateInput{Dataset: "orders", RestorePoint: "latest", Location: "eu-replica"})
	require.True(t, env.IsWorkflowCompleted())
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
}

func TestNonRetryableIncludesPolicyDenied(t *testing.T) {
	assert.Contains(t, retryPolicy().NonRetryableErrorTypes, activities.ErrTypePolicyDenied)
}
