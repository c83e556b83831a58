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

// A drill cancelled from the UI or CLI cancels its restore activity (which removes its scratch
// target: activities.TestDrillCancelledRemovesTarget) and is marked as not having met its
// objectives. (On a real server the workflow also waits for the activity to return; the SDK
// test environment reports the activity cancelled at once, so that part is not observable
// here.)
func TestRestoreDrillWorkflowCancelled(t *testing.T) {
	env, sa := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil).Once()
	env.OnActivity(a.Drill, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.DrillActivityInput) (activities.DrillActivityResult, error) {
			<-ctx.Done()
			return activities.DrillActivityResult{}, ctx.Err()
		}).Maybe() // the test environment may cancel it before it runs
	cancelWhenStarted(env, "Drill")

	env.ExecuteWorkflow(RestoreDrillWorkflow, DrillInput{Dataset: "orders"})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var canceled *temporal.CanceledError
	assert.ErrorAs(t, err, &canceled)
	assert.True(t, sa.hasMet)
	assert.False(t, sa.met)
}

// A cancelled backup cancels its activity (which keeps its checkpoint for the next run) and
// is not counted as having met its RPO.
func TestBackupWorkflowCancelled(t *testing.T) {
	env, sa := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil).Once()
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.BackupActivityInput) (activities.BackupActivityResult, error) {
			<-ctx.Done()
			return activities.BackupActivityResult{}, ctx.Err()
		}).Maybe()
	cancelWhenStarted(env, "Backup")

	env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	assert.ErrorAs(t, env.GetWorkflowError(), &canceled)
	assert.True(t, sa.hasMet)
	assert.False(t, sa.met)
}

// cancelWhenStarted cancels the workflow as soon as the activity named activityType starts.
func cancelWhenStarted(env *testEnv, activityType string) {
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == activityType {
			env.CancelWorkflow()
		}
	})
}
