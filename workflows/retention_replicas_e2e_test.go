package workflows

import (
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
)

// backdateCondemned moves the condemnation time of every condemned pack of ds in st back by
// d, as if d had passed: the activities run GC with the default grace period (one hour).
func backdateCondemned(t *testing.T, st providers.Store, ds string, d time.Duration) int {
	t.Helper()
	ctx := context.Background()
	prefix := "datasets/" + ds + "/condemned/"
	var keys []string
	require.NoError(t, st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}))
	packs := 0
	for _, key := range keys {
		rc, err := st.Get(ctx, key, providers.GetOptions{})
		require.NoError(t, err)
		var list map[string]any
		require.NoError(t, json.NewDecoder(rc).Decode(&list))
		require.NoError(t, rc.Close())
		for _, p := range list["packs"].([]any) {
			pack := p.(map[string]any)
			since, err := time.Parse(time.RFC3339Nano, pack["since"].(string))
			require.NoError(t, err)
			pack["since"] = since.Add(-d)
			packs++
		}
		body, err := json.Marshal(list)
		require.NoError(t, err)
		_, err = st.Put(ctx, key, strings.NewReader(string(body)), providers.PutOptions{})
		require.NoError(t, err)
	}
	return packs
}

// TestRetentionReplicasEndToEnd runs sync-tier backups that replicate to a full copy at home,
// a ciphertext-only copy in the US and a catalog entry in APAC, then retention with keep_last
// 1 through a real dev server: every location keeps the newest point, the replica with a
// legal hold keeps the held point too, the rest is pruned everywhere (catalog entries
// included), a second run past the grace period frees the pruned points' bytes at each
// location, and drills from the full replica verify the points it kept.
func TestRetentionReplicasEndToEnd(t *testing.T) {
	const ds = "e2e-retention-replicas"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{ds}, Replicated: true, Replication: "sync"})
	d.Config.Tiers[0].Retention = config.Retention{KeepLast: 1}
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c := srv.Client(t)
	startWorkers(t, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"), RegionTaskQueue("eu-central-1"))
	execute := func(id string, wf, in, out any) string {
		t.Helper()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: ControlTaskQueue}, wf, in)
		require.NoError(t, err)
		require.NoError(t, run.Get(ctx, out))
		return run.GetRunID()
	}

	var points []string
	for i := range 3 {
		b := make([]byte, 300<<10)
		rand.New(rand.NewSource(int64(40 + i))).Read(b)
		require.NoError(t, os.WriteFile(filepath.Join(d.Source, "changing.bin"), b, 0o600))
		var res BackupResult
		execute(BackupWorkflowID(ds), BackupWorkflow, BackupInput{Dataset: ds}, &res)
		require.Len(t, res.Replicas, 3)
		for _, r := range res.Replicas {
			require.Equal(t, ReplicaCopied, r.Status, r.Location)
		}
		points = append(points, res.RestorePoint)
	}
	require.NoError(t, acts.Stores["eu-replica"].SetLegalHold(ctx, repo.PointObjectKey(ds, points[0]), true))

	var res RetentionResult
	runID := execute(RetentionWorkflowID(ds), RetentionWorkflow, RetentionInput{Dataset: ds}, &res)
	recordHistory(t, c, RetentionWorkflowID(ds), runID, "RetentionWorkflow-replicas")
	assert.Equal(t, []string{points[2]}, res.Kept)
	assert.Equal(t, points[:2], res.Pruned)
	assert.Empty(t, res.Held)
	require.Len(t, res.Replicas, 3)
	want := []ReplicaRetention{
		{Location: "eu-replica", Mode: "full", Kept: points[2:], Pruned: points[1:2], Held: points[:1]},
		{Location: "us-replica", Mode: "encrypted", Kept: points[2:], Pruned: points[:2], Held: []string{}},
		{Location: "ap-catalog", Mode: "metadata", Kept: points[2:], Pruned: points[:2], Held: []string{}},
	}
	for i, r := range res.Replicas {
		w := want[i]
		if w.Mode != "metadata" {
			assert.Positive(t, r.PacksCondemned, r.Location)
			w.PacksCondemned = r.PacksCondemned
		}
		assert.Equal(t, w, r, "nothing is freed before the grace period")
	}
	catalog, err := repo.CatalogPoints(ctx, acts.Stores["ap-catalog"], ds)
	require.NoError(t, err)
	require.Len(t, catalog, 1)
	assert.Equal(t, points[2], catalog[0].ID, "the catalog is pruned too")

	// The grace period passes.
	for _, loc := range []string{"eu-primary", "eu-replica", "us-replica"} {
		assert.Positive(t, backdateCondemned(t, acts.Stores[loc], ds, 2*time.Hour), loc)
	}
	var again RetentionResult
	execute(RetentionWorkflowID(ds), RetentionWorkflow, RetentionInput{Dataset: ds}, &again)
	assert.Positive(t, again.BytesFreed, "the primary frees the pruned points' packs")
	require.Len(t, again.Replicas, 3)
	for _, r := range again.Replicas[:2] {
		assert.Empty(t, r.Pruned, r.Location)
		assert.Positive(t, r.BytesFreed, "%s frees the pruned points' packs", r.Location)
	}
	assert.Equal(t, points[:1], again.Replicas[0].Held, "a hold is reported every time")
	assert.Zero(t, again.Replicas[2].BytesFreed, "a catalog has no packs")

	for _, point := range []string{points[2], points[0]} {
		var drill DrillResult
		execute(DrillWorkflowID(ds), RestoreDrillWorkflow, DrillInput{Dataset: ds, RestorePoint: point, Location: "eu-replica"}, &drill)
		assert.True(t, drill.Verified, point)
		assert.Equal(t, point, drill.RestorePoint)
		assert.Positive(t, drill.BytesRestored)
	}
}
