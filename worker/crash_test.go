package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/workflows"
)

// TestWorkerKilledMidBackupResumes kills the drflow-worker process with SIGKILL in the middle of
// a large backup. After a new worker starts, the same workflow completes: Temporal retries the
// activity once its heartbeat times out, the retry resumes from the backup's checkpoint instead
// of starting over, and the restore point verifies in a drill.
func TestWorkerKilledMidBackupResumes(t *testing.T) {
	const (
		files    = 24
		fileSize = 16 << 20 // incompressible: one 16 MiB pack per file, roughly
	)
	d := testdeploy.New(t, testdeploy.Options{Files: map[string]string{"small.txt": "hello\n"}})
	writeRandomFiles(t, filepath.Join(d.Source, "big"), files, fileSize)
	total := int64(files*fileSize + len("hello\n"))

	bin := filepath.Join(t.TempDir(), "drflow-worker")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "build drflow-worker")

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	startWorker := func(name string) *exec.Cmd {
		log, err := os.Create(filepath.Join(d.Root, name+".log"))
		require.NoError(t, err)
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("%s log (tail):\n%s", name, tail(string(b), 4000))
			}
			log.Close()
		})
		cmd := exec.Command(bin, "--config", d.ConfigPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace,
			"--state-dir", filepath.Join(d.Root, "state"), "--metrics-addr", "", "--checkpoint-every", "100ms")
		cmd.Stdout, cmd.Stderr = io.Discard, log
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := stores.Open(ctx, mustLocation(t, d, "eu-primary"))
	require.NoError(t, err)
	count := func(prefix string) int {
		n := 0
		require.NoError(t, st.List(ctx, prefix, func(providers.ObjectInfo) error { n++; return nil }))
		return n
	}

	first := startWorker("worker-1")
	c := srv.Client(t)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.BackupWorkflowID("files"), TaskQueue: workflows.ControlTaskQueue},
		workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"})
	require.NoError(t, err)

	// Kill once a checkpoint is stored and a few packs are durable: well into the backup, and
	// far from its end (about one pack per file).
	require.Eventually(t, func() bool {
		return count("datasets/files/checkpoints/") > 0 && count("datasets/files/index/") >= 4
	}, 2*time.Minute, 10*time.Millisecond, "the backup never checkpointed")
	require.NoError(t, first.Process.Signal(os.Kill))
	_ = first.Wait()
	packsAtKill := count("datasets/files/index/")
	require.Less(t, packsAtKill, files, "the backup finished before the worker was killed")
	require.Zero(t, count("datasets/files/points/"), "no restore point may exist yet")

	startWorker("worker-2")
	var res workflows.BackupResult
	require.NoError(t, run.Get(ctx, &res))
	assert.True(t, res.Resumed, "the retried backup resumed from its checkpoint")
	assert.Positive(t, res.BytesSkipped, "the resumed backup skipped what the checkpoint covered")
	assert.Less(t, res.BytesRead, total, "the resumed backup did not read everything again")
	assert.Equal(t, 1, count("datasets/files/points/"))

	// The history shows the first attempt lost to the kill: the activity ran twice.
	hist := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	attempts := 0
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt > 1 {
			attempts = int(a.Attempt)
		}
	}
	assert.GreaterOrEqual(t, attempts, 2, "the backup activity was retried after the kill")

	drill, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.DrillWorkflowID("files"), TaskQueue: workflows.ControlTaskQueue},
		workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files"})
	require.NoError(t, err)
	var dr workflows.DrillResult
	require.NoError(t, drill.Get(ctx, &dr))
	assert.True(t, dr.Verified)
	assert.Equal(t, res.RestorePoint, dr.RestorePoint)
	assert.Equal(t, total, dr.BytesRestored)
	t.Logf("killed after %d of ~%d packs; resumed attempt read %d of %d bytes, skipped %d; drill RTO %.1fs",
		packsAtKill, files, res.BytesRead, total, res.BytesSkipped, dr.RTOSeconds)
}

// writeRandomFiles writes n files of size incompressible bytes (a fixed seed: the same data
// every run) under dir.
func writeRandomFiles(t *testing.T, dir string, n, size int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	rng := rand.NewChaCha8([32]byte{'d', 'r', 'f', 'l', 'o', 'w'})
	buf := make([]byte, 1<<20)
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%03d", i)))
		require.NoError(t, err)
		for written := 0; written < size; written += len(buf) {
			_, _ = rng.Read(buf)
			_, err := f.Write(buf)
			require.NoError(t, err)
		}
		require.NoError(t, f.Close())
	}
}

func mustLocation(t *testing.T, d testdeploy.Deployment, name string) config.Location {
	t.Helper()
	loc, ok := d.Config.Location(name)
	require.True(t, ok, "location %s", name)
	return loc
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
