package main

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

func TestStatusUnreachableTemporal(t *testing.T) {
	d := testdeploy.New(t, testdeploy.Options{})
	addr := freeAddr(t)
	start := time.Now()
	code, out, errOut := runCLI(t, "status", "--config", d.ConfigPath, "--temporal-address", addr, "--dial-timeout", "2s")
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "drflow status: cannot reach Temporal at "+addr+" (is the server running? set --temporal-address or TEMPORAL_ADDRESS)")
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestStatusCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{"files", "idle"}})
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace, Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	testworker.Start(t, c, acts)
	run := func(id string, wfn, in, out any) {
		t.Helper()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: workflows.ControlTaskQueue, WorkflowExecutionTimeout: time.Minute,
		}, wfn, in)
		require.NoError(t, err)
		require.NoError(t, r.Get(ctx, out))
	}
	// The first backup has no previous point (RPO unknown); the second measures one.
	var first, second workflows.BackupResult
	run("status-backup-1", workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"}, &first)
	run("status-backup-2", workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"}, &second)
	require.True(t, second.RPOMet)
	var drill workflows.DrillResult
	run("status-drill-1", workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files"}, &drill)
	require.True(t, drill.ObjectivesMet())

	args := []string{"status", "--config", d.ConfigPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace}
	var rep statusReport
	// Visibility follows the runs' completion shortly after.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		code, out, errOut := runCLI(t, append(args, "--json")...)
		require.Equal(ct, exitOK, code, errOut)
		rep = statusReport{}
		require.NoError(ct, json.Unmarshal([]byte(out), &rep), out)
		require.Len(ct, rep.Datasets, 2)
		files := rep.Datasets[0]
		require.NotNil(ct, files.Backup.Latest)
		require.Equal(ct, "status-backup-2", files.Backup.Latest.WorkflowID)
		require.NotNil(ct, files.Backup.Latest.RPOSeconds)
		require.NotNil(ct, files.Drill.Latest)
		require.NotNil(ct, files.Drill.Latest.RTOSeconds)
	}, time.Minute, 200*time.Millisecond)

	assert.Equal(t, srv.Address, rep.Temporal)
	files := rep.Datasets[0]
	assert.Equal(t, "files", files.Dataset)
	assert.Equal(t, "tier1", files.Tier)
	assert.Equal(t, 1, files.TierLevel)
	assert.Equal(t, float64(900), files.RPOObjectiveSeconds)
	assert.Equal(t, float64(3600), files.RTOObjectiveSeconds)
	b := files.Backup.Latest
	assert.Equal(t, "Completed", b.Status)
	assert.InDelta(t, second.RPOSeconds, *b.RPOSeconds, 1e-9)
	assert.Equal(t, "met", b.RPO)
	assert.Equal(t, "met", b.Objectives)
	assert.Empty(t, b.RTO)
	assert.Empty(t, files.Backup.Running)
	dr := files.Drill.Latest
	assert.Equal(t, "status-drill-1", dr.WorkflowID)
	assert.InDelta(t, drill.RPOSeconds, *dr.RPOSeconds, 1e-9)
	assert.InDelta(t, drill.RTOSeconds, *dr.RTOSeconds, 1e-9)
	assert.Equal(t, "met", dr.RPO)
	assert.Equal(t, "met", dr.RTO)
	assert.Equal(t, "met", dr.Objectives)
	require.NotNil(t, files.NewestPoint, files.StoreNote)
	assert.Equal(t, second.RestorePoint, files.NewestPoint.ID)
	assert.Equal(t, "met", files.NewestPoint.RPO)
	assert.Positive(t, files.NewestPoint.AgeSeconds)
	assert.Equal(t, "met", files.Objectives)

	idle := rep.Datasets[1]
	assert.Equal(t, "idle", idle.Dataset)
	assert.Nil(t, idle.Backup.Latest)
	assert.Nil(t, idle.Drill.Latest)
	assert.Nil(t, idle.NewestPoint)
	assert.Equal(t, "unknown", idle.Objectives)

	code, out, errOut := runCLI(t, args...)
	require.Equal(t, exitOK, code, errOut)
	t.Log(out)
	assert.Contains(t, out, "files (tier tier1: RPO 15m0s, RTO 1h0m0s): objectives met")
	assert.Regexp(t, `last backup +\S+Z completed: RPO [0-9.]+s met; objectives met \(status-backup-2\)\n`, out)
	assert.Regexp(t, `last drill +\S+Z completed: RPO [0-9.]+s met, RTO [0-9.]+s met; objectives met \(status-drill-1\)\n`, out)
	assert.Regexp(t, `newest point +`+second.RestorePoint+`, data as of \S+Z, age [0-9hms]+: met\n`, out)
	assert.Contains(t, out, "idle (tier tier1: RPO 15m0s, RTO 1h0m0s): objectives unknown")
	assert.Regexp(t, `last backup +none finished\n`, out)
	assert.Contains(t, out, "none in idle's primary location yet")

	// A primary location this machine cannot read: status says so and rests on Temporal.
	require.NoError(t, os.Rename(d.StoreRoot, d.StoreRoot+".elsewhere"))
	t.Cleanup(func() { _ = os.Rename(d.StoreRoot+".elsewhere", d.StoreRoot) })
	code, out, errOut = runCLI(t, args...)
	require.Equal(t, exitOK, code, errOut)
	t.Log(out)
	assert.Contains(t, out, "primary location eu-primary not read ("+d.StoreRoot+" is not on this machine); status rests on Temporal's records alone")
	assert.Contains(t, out, "files (tier tier1: RPO 15m0s, RTO 1h0m0s): objectives met")
	assert.NoDirExists(t, d.StoreRoot, "status does not create a store")
}
