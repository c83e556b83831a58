package workflows

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
)

// TestRetentionEndToEnd runs backups, retention and drills through a real Temporal dev server
// and real workers: with keep_last 1, the newest point is kept, a held point survives, the
// rest is pruned, and what remains restores and verifies.
func TestRetentionEndToEnd(t *testing.T) {
	const ds = "e2e-retention"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{ds}})
	d.Config.Tiers[0].Retention = config.Retention{KeepLast: 1}
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	startWorkers(t, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"))
	execute := func(id string, wf, in, out any) {
		t.Helper()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: ControlTaskQueue}, wf, in)
		require.NoError(t, err)
		require.NoError(t, run.Get(ctx, out))
	}

	// Three backups, each with content of its own.
	var points []string
	for i := range 3 {
		b := make([]byte, 300<<10)
		rand.New(rand.NewSource(int64(i))).Read(b)
		require.NoError(t, os.WriteFile(filepath.Join(d.Source, "changing.bin"), b, 0o600))
		var res BackupResult
		execute(BackupWorkflowID(ds), BackupWorkflow, BackupInput{Dataset: ds}, &res)
		points = append(points, res.RestorePoint)
	}
	require.NoError(t, acts.Stores["eu-primary"].SetLegalHold(ctx, repo.PointObjectKey(ds, points[0]), true))

	var res RetentionResult
	execute(RetentionWorkflowID(ds), RetentionWorkflow, RetentionInput{Dataset: ds}, &res)
	assert.Equal(t, RetentionResult{Dataset: ds, Kept: []string{points[2]}, Pruned: []string{points[1]},
		Held: []string{points[0]}}, res, "nothing is freed before the grace period")
	recordHistory(t, c, RetentionWorkflowID(ds), "", "RetentionWorkflow-held")

	val, err := c.QueryWorkflow(ctx, RetentionWorkflowID(ds), "", ProgressQuery)
	require.NoError(t, err)
	var p Progress
	require.NoError(t, val.Get(&p))
	assert.Equal(t, "done", p.Phase)

	for _, point := range []string{points[2], points[0]} {
		var drill DrillResult
		execute(DrillWorkflowID(ds), RestoreDrillWorkflow, DrillInput{Dataset: ds, RestorePoint: point}, &drill)
		assert.True(t, drill.Verified, point)
		assert.Equal(t, point, drill.RestorePoint)
		assert.Positive(t, drill.BytesRestored)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: DrillWorkflowID(ds), TaskQueue: ControlTaskQueue},
		RestoreDrillWorkflow, DrillInput{Dataset: ds, RestorePoint: points[1]})
	require.NoError(t, err)
	assert.ErrorContains(t, run.Get(ctx, nil), fmt.Sprintf("no restore point %s", points[1]), "the pruned point is gone")

	query := fmt.Sprintf(`DrDataset=%q AND DrKind=%q`, ds, KindRetention)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: srv.Namespace, Query: query})
		require.NoError(ct, err)
		require.Len(ct, resp.Executions, 1)
		assert.Equal(ct, RetentionWorkflowID(ds), resp.Executions[0].Execution.WorkflowId)
	}, 30*time.Second, 100*time.Millisecond)
}
