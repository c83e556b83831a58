package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/activities"
)

const (
	testPoint2 = "20250102T040405.000Z-0a1b2c3d"
	testPoint3 = "20250102T050405.000Z-0a1b2c3d"
)

func TestRetentionWorkflow(t *testing.T) {
	env, sa := newEnv(t)
	env.RegisterWorkflow(RetentionWorkflow)
	env.OnActivity(a.Plan, mock.Anything, activities.PlanInput{Dataset: "orders"}).Return(testPlan, nil).Once()
	var got activities.RetentionActivityInput
	env.OnActivity(a.Retention, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		got = args.Get(1).(activities.RetentionActivityInput)
	}).Return(activities.RetentionActivityResult{
		Location: "eu-primary", Kept: []string{testPoint3}, Pruned: []string{testPoint2},
		Held:           []activities.HeldPoint{{Point: testPoint, Reason: "legal hold"}},
		PacksCondemned: 2, PacksWaiting: 1, PacksDeleted: 3, ChunksCollected: 40, BytesFreed: 5 << 20,
	}, nil).Once()
	var queue string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "Retention" {
			queue = info.TaskQueue
		}
	})

	env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res RetentionResult
	require.NoError(t, env.GetWorkflowResult(&res))

	assert.Equal(t, "drflow-eu-west-1", queue, "retention runs on the primary's region queue")
	assert.Equal(t, activities.RetentionActivityInput{Dataset: "orders"}, got)
	assert.Equal(t, RetentionResult{Dataset: "orders", Kept: []string{testPoint3}, Pruned: []string{testPoint2},
		Held: []string{testPoint}, ChunksCollected: 40, BytesFreed: 5 << 20}, res)
	assert.Equal(t, "orders", sa.dataset)
	assert.Equal(t, KindRetention, sa.kind)
	assert.Equal(t, int64(1), sa.tier)
	assert.False(t, sa.hasRPO || sa.hasRTO || sa.hasMet, "retention measures no objective")

	val, err := env.QueryWorkflow(ProgressQuery)
	require.NoError(t, err)
	var p Progress
	require.NoError(t, val.Get(&p))
	assert.Equal(t, Progress{Phase: "done", BytesDone: 5 << 20, BytesTotal: 5 << 20}, p)
}

func TestRetentionWorkflowEmptyListsAreNotNull(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterWorkflow(RetentionWorkflow)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
	env.OnActivity(a.Retention, mock.Anything, mock.Anything).Return(activities.RetentionActivityResult{Location: "eu-primary"}, nil)
	env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
	require.NoError(t, env.GetWorkflowError())
	var res map[string]any
	require.NoError(t, env.GetWorkflowResult(&res))
	for _, k := range []string{"kept", "pruned", "held"} {
		assert.Equal(t, []any{}, res[k], k)
	}
}

func TestRetentionWorkflowRejectsInvalidInput(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterWorkflow(RetentionWorkflow)
	env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "no such/dataset"})
	appErr := applicationError(t, env.GetWorkflowError())
	assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
	assert.Contains(t, appErr.Error(), "retention input: dataset")
}

func TestRetentionWorkflowFailures(t *testing.T) {
	t.Run("non-retryable", func(t *testing.T) {
		env, _ := newEnv(t)
		env.RegisterWorkflow(RetentionWorkflow)
		env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
		env.OnActivity(a.Retention, mock.Anything, mock.Anything).
			Return(activities.RetentionActivityResult{}, temporal.NewNonRetryableApplicationError("unreadable manifest", activities.ErrTypeIntegrityFailure, nil)).Once()
		env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
		assert.Equal(t, activities.ErrTypeIntegrityFailure, applicationError(t, env.GetWorkflowError()).Type())
	})
	t.Run("transient is retried", func(t *testing.T) {
		env, _ := newEnv(t)
		env.RegisterWorkflow(RetentionWorkflow)
		env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
		env.OnActivity(a.Retention, mock.Anything, mock.Anything).
			Return(activities.RetentionActivityResult{}, errors.New("store unavailable")).Once()
		env.OnActivity(a.Retention, mock.Anything, mock.Anything).
			Return(activities.RetentionActivityResult{Kept: []string{testPoint}}, nil).Once()
		env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
		require.NoError(t, env.GetWorkflowError())
		var res RetentionResult
		require.NoError(t, env.GetWorkflowResult(&res))
		assert.Equal(t, []string{testPoint}, res.Kept)
	})
	t.Run("unknown dataset", func(t *testing.T) {
		env, _ := newEnv(t)
		env.RegisterWorkflow(RetentionWorkflow)
		env.OnActivity(a.Plan, mock.Anything, mock.Anything).
			Return(activities.PlanResult{}, temporal.NewNonRetryableApplicationError("dataset not configured", activities.ErrTypeNotFound, nil))
		env.ExecuteWorkflow(RetentionWorkflow, RetentionInput{Dataset: "orders"})
		assert.Equal(t, activities.ErrTypeNotFound, applicationError(t, env.GetWorkflowError()).Type())
	})
}
