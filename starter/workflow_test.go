package main

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

// writeFilesConfig writes a one-region configuration with datasets "files" and "more-files"
// and returns its path.
func writeFilesConfig(t *testing.T) string {
	t.Helper()
	return testdeploy.New(t, testdeploy.Options{Datasets: []string{"files", "more-files"}}).ConfigPath
}

// freeAddr returns a 127.0.0.1 address that nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestParseFlagsWithDataset(t *testing.T) {
	for _, args := range [][]string{
		{"files", "--wait"},
		{"--wait", "files"},
		{"--json", "files", "--wait"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		wait := fs.Bool("wait", false, "")
		fs.Bool("json", false, "")
		ds, err := parseFlagsWithDataset(fs, args)
		require.NoError(t, err, args)
		assert.Equal(t, "files", ds, args)
		assert.True(t, *wait, args)
	}
	for _, args := range [][]string{nil, {"--wait"}, {"files", "other"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		fs.Bool("wait", false, "")
		_, err := parseFlagsWithDataset(fs, args)
		assert.ErrorIs(t, err, errUsage, args)
	}
}

func TestWorkflowCommandsUnknownDataset(t *testing.T) {
	cfg := writeFilesConfig(t)
	for _, cmd := range []string{"backup", "drill"} {
		// Nothing listens at the address: a dial would fail with a different message.
		start := time.Now()
		code, out, errOut := runCLI(t, cmd, "nope", "--config", cfg, "--temporal-address", freeAddr(t))
		assert.Equal(t, exitFailed, code, cmd)
		assert.Empty(t, out, cmd)
		assert.Contains(t, errOut, `dataset "nope" is not in`, cmd)
		assert.Contains(t, errOut, "(known: files, more-files)", cmd)
		assert.NotContains(t, errOut, "cannot reach Temporal", cmd)
		assert.Less(t, time.Since(start), 2*time.Second, cmd)
	}
}

func TestWorkflowCommandsUsage(t *testing.T) {
	cfg := writeFilesConfig(t)
	code, _, errOut := runCLI(t, "backup", "--config", cfg)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "DATASET is required")

	code, _, errOut = runCLI(t, "drill", "files", "extra", "--config", cfg)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unexpected argument "extra"`)

	code, _, errOut = runCLI(t, "drill", "files", "--target", "tape", "--config", cfg)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "target")
}

func TestWorkflowCommandsUnreachableTemporal(t *testing.T) {
	cfg := writeFilesConfig(t)
	addr := freeAddr(t)
	for _, cmd := range []string{"backup", "drill"} {
		start := time.Now()
		code, out, errOut := runCLI(t, cmd, "files", "--config", cfg, "--temporal-address", addr, "--dial-timeout", "2s", "--wait")
		assert.Equal(t, exitFailed, code, cmd)
		assert.Empty(t, out, cmd)
		assert.Contains(t, errOut, "cannot reach Temporal at "+addr+" (is the server running? set --temporal-address or TEMPORAL_ADDRESS)", cmd)
		assert.Less(t, time.Since(start), 10*time.Second, cmd)
	}
}

func TestBackupAndDrillCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	path := writeFilesConfig(t)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	acts, err := activities.New(ctx, cfg, activities.Options{StateDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace, Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	testworker.Start(t, c, acts)

	common := []string{"--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace, "--wait", "--json"}

	code, out, errOut := runCLI(t, append([]string{"backup", "files"}, common...)...)
	require.Equal(t, exitOK, code, errOut)
	var backup workflows.BackupResult
	require.NoError(t, json.Unmarshal([]byte(out), &backup), out)
	assert.Equal(t, "files", backup.Dataset)
	assert.NotEmpty(t, backup.RestorePoint)
	assert.True(t, strings.HasPrefix(backup.WorkflowID, workflows.BackupWorkflowID("files")+"-"), backup.WorkflowID)
	assert.Contains(t, errOut, "started workflow "+backup.WorkflowID)
	assert.Contains(t, errOut, "/namespaces/"+srv.Namespace+"/workflows/"+backup.WorkflowID)

	// Flags before the dataset work too.
	code, out, errOut = runCLI(t, append(append([]string{"drill"}, common...), "files")...)
	require.Equal(t, exitOK, code, errOut)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw), out)
	for _, k := range []string{"dataset", "restore_point", "rpo_seconds", "rto_seconds", "rpo_met", "rto_met", "verified", "workflow_id"} {
		assert.Contains(t, raw, k)
	}
	var drill workflows.DrillResult
	require.NoError(t, json.Unmarshal([]byte(out), &drill), out)
	assert.Equal(t, "files", drill.Dataset)
	assert.True(t, drill.Verified)
	assert.Positive(t, drill.RPOSeconds)
	assert.Positive(t, drill.RTOSeconds)
	assert.NotEmpty(t, drill.WorkflowID)
	assert.True(t, strings.HasPrefix(drill.WorkflowID, workflows.DrillWorkflowID("files")+"-"), drill.WorkflowID)
	assert.Equal(t, backup.RestorePoint, drill.RestorePoint)

	// The human form states the objectives.
	code, out, errOut = runCLI(t, "drill", "files", "--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace, "--wait")
	// Within the same second this reuses the previous drill's ID, which Temporal allows
	// once that run has closed.
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "started workflow "+workflows.DrillWorkflowID("files")+"-")
	assert.Contains(t, out, "verified: yes")
	assert.Regexp(t, `RPO [0-9.]+s \(objective 900s\): met`, out)
	assert.Regexp(t, `RTO [0-9.]+s \(objective 3600s\): met`, out)
	assert.Contains(t, out, "objectives met")

	// A workflow that fails exits 1 and says why.
	code, _, errOut = runCLI(t, "drill", "files", "--point", "20250102T030405.000Z-0a1b2c3d",
		"--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace, "--wait")
	assert.Equal(t, exitFailed, code, errOut)
	assert.Regexp(t, `workflow drflow-drill-files-\S+ failed: `, errOut)

	// Without --wait the command returns once the workflow is started.
	code, out, errOut = runCLI(t, "backup", "more-files", "--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "started workflow "+workflows.BackupWorkflowID("more-files")+"-")
	id := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "started workflow "))
	var res workflows.BackupResult
	require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &res))
	assert.Equal(t, "more-files", res.Dataset)
}

// --wait prints the bytes done and ETA of the running data activity, from its heartbeat
// details: the workflow's progress query has its phase only.
func TestWaitPrintsHeartbeatProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	path := writeFilesConfig(t)
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace, Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	plan := func(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
		return activities.PlanResult{Dataset: in.Dataset, Location: "primary", Region: "eu-west-1", Tier: "tier1", TierLevel: 1,
			RPO: 15 * time.Minute, RTO: time.Hour}, nil
	}
	backup := func(ctx context.Context, _ activities.BackupActivityInput) (activities.BackupActivityResult, error) {
		activity.RecordHeartbeat(ctx, activities.Progress{Phase: "backup", BytesDone: 250, BytesTotal: 1000, ETASeconds: 90})
		// Long enough for --wait, which asks every second, to see it running.
		select {
		case <-ctx.Done():
			return activities.BackupActivityResult{}, ctx.Err()
		case <-time.After(3 * time.Second):
		}
		return activities.BackupActivityResult{Point: "20250102T030405.000Z-0a1b2c3d", DataAsOf: time.Now(), BytesRead: 1000}, nil
	}
	for _, q := range []string{workflows.ControlTaskQueue, workflows.RegionTaskQueue("eu-west-1")} {
		w := worker.New(c, q, worker.Options{})
		workflows.Register(w)
		w.RegisterActivityWithOptions(plan, activity.RegisterOptions{Name: "Plan"})
		w.RegisterActivityWithOptions(backup, activity.RegisterOptions{Name: "Backup"})
		w.RegisterActivityWithOptions(func(context.Context, activities.AuditRunInput) error { return nil }, activity.RegisterOptions{Name: "AuditRun"})
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}

	code, out, errOut := runCLI(t, "backup", "files", "--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace, "--wait")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "phase: backup (250/1000 bytes, ETA 90s)\n")
	assert.Contains(t, out, "read 1000 bytes")
	require.NoError(t, ctx.Err())
}
