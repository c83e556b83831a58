package workflows

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/bench"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/runbooks"
)

// benchDeployment is a dev server, in-process workers and a dataset "files" of size bytes
// (bench.DefaultMix) on the local store, with one restore point already written.
func benchDeployment(b *testing.B, size int64) (client.Client, BackupResult) {
	b.Helper()
	d := testdeploy.New(b, testdeploy.Options{Files: map[string]string{"README": "bench\n"}})
	if _, err := bench.Generate(filepath.Join(d.Source, "data"), size, bench.DefaultMix, 1); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zap.NewNop()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = acts.Close(context.Background()) })
	srv := testservers.Temporal(b, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c := srv.Client(b)
	startWorkers(b, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"))
	var first BackupResult
	runWorkflow(b, c, BackupWorkflowID("files")+"-0", BackupWorkflow, BackupInput{Dataset: "files"}, &first)
	return c, first
}

func runWorkflow(b *testing.B, c client.Client, id string, wf, in, out any) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: ControlTaskQueue}, wf, in)
	require.NoError(b, err)
	require.NoError(b, run.Get(ctx, out))
}

// benchSize is DRFLOW_BENCH_SIZE in MiB, or def.
func benchSize(b *testing.B, def int64) int64 {
	if s := os.Getenv("DRFLOW_BENCH_SIZE_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(b, err, "DRFLOW_BENCH_SIZE_MIB")
		return n << 20
	}
	return def
}

// BenchmarkNoChangeBackupThroughTemporal measures the end-to-end latency of a backup whose
// data has not changed, through a real dev server: workflow start, plan, the backup activity
// on the region queue (walk, hash, dedup everything, write the manifest) and the result.
//
//	go test -run '^$' -bench NoChangeBackup -benchtime 10x ./workflows/
func BenchmarkNoChangeBackupThroughTemporal(b *testing.B) {
	size := benchSize(b, 64<<20)
	c, _ := benchDeployment(b, size)
	b.ResetTimer()
	for i := range b.N {
		var res BackupResult
		runWorkflow(b, c, fmt.Sprintf("%s-%d", BackupWorkflowID("files"), i+1), BackupWorkflow, BackupInput{Dataset: "files"}, &res)
		if res.BytesUploaded > 1<<20 {
			b.Fatalf("a no-change backup uploaded %d bytes", res.BytesUploaded)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/backup")
	b.ReportMetric(float64(size>>20), "dataset_MiB")
}

// BenchmarkDrillThroughTemporal measures the RTO a restore drill reports for a dataset of
// DRFLOW_BENCH_SIZE_MIB (default 1024) on the local store: restore into a scratch directory and
// verify, measured by the workflow.
//
//	go test -run '^$' -bench DrillThroughTemporal -benchtime 3x ./workflows/
func BenchmarkDrillThroughTemporal(b *testing.B) {
	size := benchSize(b, 1<<30)
	c, backup := benchDeployment(b, size)
	b.ResetTimer()
	var rto float64
	for i := range b.N {
		var res DrillResult
		runWorkflow(b, c, fmt.Sprintf("%s-%d", DrillWorkflowID("files"), i), RestoreDrillWorkflow, DrillInput{Dataset: "files"}, &res)
		if !res.Verified || res.RestorePoint != backup.RestorePoint {
			b.Fatalf("drill not verified or wrong point: %+v", res)
		}
		rto += res.RTOSeconds
	}
	b.ReportMetric(rto/float64(b.N), "rto_seconds")
	b.ReportMetric(float64(size>>20)/(rto/float64(b.N)), "MiB/s")
}

// BenchmarkRegionFailoverRunbook measures a region-failover runbook run for a dataset of
// DRFLOW_BENCH_SIZE_MIB (default 1024) replicated to a full copy at home (sync tier): choose
// the newest point that verifies on the replica, approve (an approver answers as soon as the
// gate opens), restore into the failover target, verified. It reports the run's wall time and
// the RTO the runbook measured (run start to verified restore, the approval included).
//
//	go test -run '^$' -bench RegionFailoverRunbook -benchtime 1x ./workflows/
func BenchmarkRegionFailoverRunbook(b *testing.B) {
	size := benchSize(b, 1<<30)
	d := testdeploy.New(b, testdeploy.Options{Files: map[string]string{"README": "bench\n"}, Replicated: true, Replication: "sync"})
	if _, err := bench.Generate(filepath.Join(d.Source, "data"), size, bench.DefaultMix, 1); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zap.NewNop()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = acts.Close(context.Background()) })
	srv := testservers.Temporal(b, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c := srv.Client(b)
	startWorkers(b, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"), RegionTaskQueue("eu-central-1"))
	var backup BackupResult
	runWorkflow(b, c, BackupWorkflowID("files"), BackupWorkflow, BackupInput{Dataset: "files"}, &backup)
	rb, err := runbooks.Builtin("region-failover")
	require.NoError(b, err)

	b.ResetTimer()
	var wall, rto float64
	for i := range b.N {
		target := filepath.Join(d.Root, fmt.Sprintf("failover-%d", i))
		start := time.Now()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("failover-%d", i), TaskQueue: ControlTaskQueue},
			RunbookWorkflow, RunbookInput{Runbook: rb, RequestedBy: "alice",
				Params: map[string]runbooks.Value{"dataset": runbooks.S("files"), "target": runbooks.S(target)}})
		require.NoError(b, err)
		approveWhenOpen(b, c, run, "approve", "dave")
		var res RunbookResult
		require.NoError(b, run.Get(ctx, &res))
		wall += time.Since(start).Seconds()
		restore, _ := res.Step("restore")
		s, err := strconv.ParseFloat(restore.Outputs["rto_seconds"].Scalar, 64)
		require.NoError(b, err)
		rto += s
		b.StopTimer()
		require.NoError(b, os.RemoveAll(target))
		b.StartTimer()
	}
	b.ReportMetric(wall/float64(b.N), "run_seconds")
	b.ReportMetric(rto/float64(b.N), "rto_seconds")
	b.ReportMetric(float64(size>>20), "dataset_MiB")
}

// approveWhenOpen votes at gate as soon as it is open (polling the run's state every 10 ms,
// bounded by a minute).
func approveWhenOpen(b *testing.B, c client.Client, run client.WorkflowRun, gate, approver string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	deadline := time.Now().Add(time.Hour)
	for time.Now().Before(deadline) {
		v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), RunbookStateQuery)
		require.NoError(b, err)
		var st RunbookState
		require.NoError(b, v.Get(&st))
		if g, _ := st.Step(gate); g.Status == StepWaiting {
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), RunID: run.GetRunID(),
				UpdateName: ApproveUpdate, Args: []any{ApprovalVote{Gate: gate, Approver: approver}}, WaitForStage: client.WorkflowUpdateStageCompleted})
			require.NoError(b, err)
			require.NoError(b, h.Get(ctx, nil))
			return
		}
		if st.Status != RunRunning {
			b.Fatalf("run ended before gate %s opened: %s", gate, st.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("gate %s never opened", gate)
}
