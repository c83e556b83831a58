package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/activities"
)

// While a backup runs, the progress query answers with the workflow's phase and the bytes done
// and ETA the activity signals.
func TestProgressQueryShowsActivityProgress(t *testing.T) {
	env, _ := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil).Once()
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).After(time.Hour).
		Return(activities.BackupActivityResult{Point: testPoint, DataAsOf: t0, BytesRead: 1000}, nil).Once()
	query := func() Progress {
		val, err := env.QueryWorkflow(ProgressQuery)
		require.NoError(t, err)
		var p Progress
		require.NoError(t, val.Get(&p))
		return p
	}
	var before, during Progress
	env.RegisterDelayedCallback(func() {
		before = query()
		env.SignalWorkflow(activities.ProgressSignal, activities.Progress{Phase: "backup", BytesDone: 250, BytesTotal: 1000, ETASeconds: 90})
	}, 10*time.Minute)
	env.RegisterDelayedCallback(func() { during = query() }, 20*time.Minute)

	env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, Progress{Phase: "backup", BytesTotal: -1, ETASeconds: -1}, before)
	assert.Equal(t, Progress{Phase: "backup", BytesDone: 250, BytesTotal: 1000, ETASeconds: 90}, during)
	// Once done, a late report does not move the figures back.
	env.SignalWorkflow(activities.ProgressSignal, activities.Progress{Phase: "backup", BytesDone: 1})
	assert.Equal(t, "done", query().Phase)
}
