package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
)

const (
	// e2eMarker is in every source file; no byte outside the home jurisdiction may hold it.
	e2eMarker = "PLAINTEXT-MARKER-e2e-51c9"
	// e2eSecretName is a source file name; names are customer data too.
	e2eSecretName = "patient-records-jane-doe.csv"
)

// TestReplicationEndToEnd runs a sync-tier backup through a real dev server that replicates
// the new point to a full copy at home, a ciphertext-only copy in the US and a metadata-only
// entry in APAC, then inspects every byte each location holds; a copy to CN, which the policy
// does not allow, is denied, audited and moves nothing.
func TestReplicationEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	files := map[string]string{}
	for i, name := range []string{"a.txt", "sub/b.txt", e2eSecretName} {
		files[name] = strings.Repeat(fmt.Sprintf("%s row %d\n", e2eMarker, i), 4000)
	}
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{"files"}, Files: files, Replicated: true, Replication: "sync"})
	root, cfg, storeDir := d.Root, d.Config, d.StoreDir

	acts, err := activities.New(ctx, cfg, activities.Options{StateDir: filepath.Join(root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c := srv.Client(t)
	startWorkers(t, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"), RegionTaskQueue("eu-central-1"))

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: BackupWorkflowID("files"), TaskQueue: ControlTaskQueue},
		BackupWorkflow, BackupInput{Dataset: "files"})
	require.NoError(t, err)
	var backup BackupResult
	require.NoError(t, run.Get(ctx, &backup))
	require.Len(t, backup.Replicas, 3)
	wantModes := map[string]config.CopyMode{"eu-replica": config.CopyFull, "us-replica": config.CopyEncrypted, "ap-catalog": config.CopyMetadata}
	for _, r := range backup.Replicas {
		assert.Equal(t, ReplicaCopied, r.Status, r.Location)
		assert.Equal(t, wantModes[r.Location], r.Mode, r.Location)
		assert.Positive(t, r.ObjectsCopied, r.Location)
		assert.Equal(t, ReplicateWorkflowID("files", backup.RestorePoint, r.Location), r.WorkflowID)
	}
	assert.Equal(t, "sync", backup.Replication)
	recordHistory(t, c, run.GetID(), run.GetRunID(), "BackupWorkflow-sync-replicas")
	recordHistory(t, c, backup.Replicas[1].WorkflowID, "", "ReplicateWorkflow-encrypted")

	// Outside EU: not one byte of plaintext, not one file name, in any object or key.
	for _, loc := range []string{"us-replica", "ap-catalog"} {
		n := 0
		walkFiles(t, storeDir(loc), func(path string, data []byte) {
			n++
			assert.NotContains(t, path, e2eSecretName, loc)
			assert.False(t, bytes.Contains(data, []byte(e2eMarker)), "%s: %s holds plaintext", loc, path)
			assert.False(t, bytes.Contains(data, []byte(e2eSecretName)), "%s: %s holds a file name", loc, path)
		})
		assert.Positive(t, n, "%s holds nothing", loc)
	}
	var catalog []string
	walkFiles(t, storeDir("ap-catalog"), func(path string, _ []byte) {
		// The local store keeps each object as <key>@data beside its <key>@meta.
		if strings.Contains(filepath.ToSlash(path), "/catalog/") && strings.HasSuffix(path, "@data") {
			catalog = append(catalog, path)
		}
	})
	assert.Len(t, catalog, 1, "a metadata-only location holds the catalog entry")
	walkFiles(t, storeDir("ap-catalog"), func(path string, _ []byte) {
		assert.NotContains(t, filepath.ToSlash(path), "/packs/", "no chunk data in a metadata-only location")
	})

	// The full copy at home restores and verifies.
	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: DrillWorkflowID("files"), TaskQueue: ControlTaskQueue},
		RestoreDrillWorkflow, DrillInput{Dataset: "files", Location: "eu-replica"})
	require.NoError(t, err)
	var drill DrillResult
	require.NoError(t, run.Get(ctx, &drill))
	assert.True(t, drill.Verified)
	assert.Equal(t, "eu-replica", drill.Location)
	assert.Equal(t, backup.RestorePoint, drill.RestorePoint)
	recordHistory(t, c, run.GetID(), run.GetRunID(), "RestoreDrillWorkflow-replica")

	// A copy to CN is denied before anything is scheduled, and audited.
	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ReplicateWorkflowID("files", backup.RestorePoint, "cn-replica"),
		TaskQueue: ControlTaskQueue}, ReplicateWorkflow, ReplicateInput{Dataset: "files", RestorePoint: backup.RestorePoint, Location: "cn-replica"})
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, activities.ErrTypePolicyDenied, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	for _, want := range []string{"files", "cn-replica", "CN"} {
		assert.Contains(t, appErr.Error(), want)
	}
	recordHistory(t, c, run.GetID(), run.GetRunID(), "ReplicateWorkflow-denied")
	walkFiles(t, filepath.Join(storeDir("cn-replica"), "objects"), func(path string, _ []byte) { t.Errorf("denied location holds %s", path) })

	log, ok := acts.Audit.(*audit.Log)
	require.True(t, ok, "the worker's recorder is its audit log")
	require.NoError(t, log.Flush(ctx))
	decisions := map[string]string{} // destination -> outcome of the last policy decision
	_, err = audit.Verify(ctx, acts.Stores["eu-primary"], "eu-west-1", log.PublicKey(), audit.WithEntries(func(e audit.Entry) error {
		if e.Event.Kind == audit.KindPolicy {
			decisions[e.Event.Destination] = e.Event.Outcome
			assert.NotContains(t, e.Event.Reason, e2eSecretName)
		}
		return nil
	}))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"eu-replica": audit.OutcomeOK, "us-replica": audit.OutcomeOK,
		"ap-catalog": audit.OutcomeOK, "cn-replica": audit.OutcomeDenied}, decisions)

	// The runs are findable by their search attributes with the Temporal CLI, as an SRE
	// would in a terminal.
	cli := testservers.Tool(t, "temporal")
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		out, err := exec.CommandContext(ctx, cli, "workflow", "list", "--address", srv.Address, "--namespace", srv.Namespace,
			"--query", `DrDataset="files" AND DrKind="replicate" AND ExecutionStatus="Completed"`, "--output", "json").Output()
		require.NoError(ct, err)
		var runs []struct {
			Execution struct {
				WorkflowID string `json:"workflowId"`
			} `json:"execution"`
		}
		require.NoError(ct, json.Unmarshal(out, &runs), "%s", out)
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.Execution.WorkflowID)
		}
		assert.ElementsMatch(ct, []string{backup.Replicas[0].WorkflowID, backup.Replicas[1].WorkflowID, backup.Replicas[2].WorkflowID}, ids)
	}, 30*time.Second, 200*time.Millisecond)
}

// walkFiles calls fn with every regular file under dir and its content.
func walkFiles(t *testing.T, dir string, fn func(path string, data []byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fn(path, data)
		return nil
	})
	require.NoError(t, err)
}
