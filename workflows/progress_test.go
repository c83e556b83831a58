package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/activities"
)

// The progress query answers with the workflow's phase while a backup runs (live bytes are in
// the activity's heartbeats, not in workflow state) and with the bytes read once done.
func TestProgressQueryShowsPhase(t *testing.T) {
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
	var during Progress
	env.RegisterDelayedCallback(func() { during = query() }, 10*time.Minute)

	env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, Progress{Phase: "backup", BytesTotal: -1, ETASeconds: -1}, during)
	assert.Equal(t, Progress{Phase: "done", BytesDone: 1000, BytesTotal: 1000}, query())
}
