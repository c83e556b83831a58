package workflows

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
)

// TestEndToEnd runs a backup and a restore drill through a real Temporal dev server, with
// real workers polling the control and region queues and real activities on local stores.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	files := map[string]string{}
	for i, name := range []string{"a.txt", "sub/b.txt", "c.bin"} {
		files[name] = strings.Repeat(fmt.Sprintf("row %d\n", i), 5000)
	}
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{"e2e-files"}, Files: files})
	root, cfg := d.Root, d.Config

	acts, err := activities.New(ctx, cfg, activities.Options{StateDir: filepath.Join(root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	// One process serving every queue, as in the single-machine setup.
	startWorkers(t, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"))

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: BackupWorkflowID("e2e-files"), TaskQueue: ControlTaskQueue},
		BackupWorkflow, BackupInput{Dataset: "e2e-files"})
	require.NoError(t, err)
	var backup BackupResult
	require.NoError(t, run.Get(ctx, &backup))
	assert.NotEmpty(t, backup.RestorePoint)
	assert.False(t, backup.RPOKnown, "the first backup has no previous point")
	assert.Positive(t, backup.BytesRead)
	// Progress stays in the activity's heartbeats: nothing signals the workflow.
	_, signals := historyEvents(t, c, run.GetID(), run.GetRunID())
	assert.Zero(t, signals, "signals in the backup's history")

	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: DrillWorkflowID("e2e-files"), TaskQueue: ControlTaskQueue},
		RestoreDrillWorkflow, DrillInput{Dataset: "e2e-files"})
	require.NoError(t, err)
	var drill DrillResult
	require.NoError(t, run.Get(ctx, &drill))
	assert.True(t, drill.Verified)
	assert.Equal(t, backup.RestorePoint, drill.RestorePoint)
	assert.Equal(t, DrillWorkflowID("e2e-files"), drill.WorkflowID)
	assert.Positive(t, drill.RPOSeconds)
	assert.Less(t, drill.RPOSeconds, 120.0)
	assert.Positive(t, drill.RTOSeconds)
	assert.Less(t, drill.RTOSeconds, 120.0)
	assert.True(t, drill.ObjectivesMet())
	assert.Equal(t, int64(3*5000*6), drill.BytesRestored)
	recordHistory(t, c, run.GetID(), run.GetRunID(), "RestoreDrillWorkflow-latest")

	// The Web UI's "Current Details" come from the SDK's metadata query.
	meta, err := c.QueryWorkflow(ctx, drill.WorkflowID, "", "__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, meta.Get(&md))
	assert.Contains(t, md.GetCurrentDetails(), "**Restore drill of e2e-files**")
	assert.Contains(t, md.GetCurrentDetails(), "| RTO | ")

	val, err := c.QueryWorkflow(ctx, drill.WorkflowID, "", ProgressQuery)
	require.NoError(t, err)
	var p Progress
	require.NoError(t, val.Get(&p))
	assert.Equal(t, "done", p.Phase)

	// Visibility is eventually consistent: poll until the drill is indexed.
	query := `DrDataset="e2e-files" AND DrKind="drill"`
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: srv.Namespace, Query: query})
		require.NoError(ct, err)
		require.Len(ct, resp.Executions, 1)
		assert.Equal(ct, drill.WorkflowID, resp.Executions[0].Execution.WorkflowId)
		sa := resp.Executions[0].SearchAttributes.GetIndexedFields()
		assert.Contains(ct, sa, SearchAttrRTOSeconds.GetName())
		assert.Contains(ct, sa, SearchAttrObjectivesMet.GetName())
	}, 30*time.Second, 100*time.Millisecond)
}
