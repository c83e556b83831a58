package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/workflows"
)

// procDeploy is drflow as an operator runs it, for the trials that kill or restart
// processes: the Temporal dev server, one real drflow-worker process serving every region,
// and the drflow command line for reading the stores back. The deployment is the replicated
// one of internal/testdeploy: an EU primary, a full EU replica, an encrypted US replica and a
// metadata-only APAC catalog.
type procDeploy struct {
	t      *testing.T
	d      testdeploy.Deployment
	srv    *testservers.TemporalServer
	c      client.Client
	worker string // drflow-worker binary
	cli    string // drflow binary
	// keepLast is the tier's retention: the newest keepLast points survive pruning.
	keepLast int
	// gcGrace is every worker's --gc-grace.
	gcGrace time.Duration

	mu      sync.Mutex
	proc    *exec.Cmd
	started int // worker processes started so far
}

// procDeployOptions tune newProcDeploy.
type procDeployOptions struct {
	// Dataset names the one dataset.
	Dataset string
	// KeepLast is the tier's retention (keep_last).
	KeepLast int
	// GCGrace is the worker's --gc-grace: how soon GC deletes a condemned pack.
	GCGrace time.Duration
}

func newProcDeploy(t *testing.T, opts procDeployOptions) *procDeploy {
	t.Helper()
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{opts.Dataset}, Replicated: true, Replication: "sync",
		Files: map[string]string{"README": "chaos trial tree\n"}})
	// The tier keeps the newest KeepLast points, so that retention prunes and GC collects
	// while backups, copies and drills run.
	cfg, err := os.ReadFile(d.ConfigPath)
	require.NoError(t, err)
	tier := "backup_every: 5m, replication: sync}"
	require.Contains(t, string(cfg), tier)
	cfg = bytes.Replace(cfg, []byte(tier), []byte(fmt.Sprintf("backup_every: 5m, replication: sync, retention: {keep_last: %d}}", opts.KeepLast)), 1)
	require.NoError(t, os.WriteFile(d.ConfigPath, cfg, 0o644))

	p := &procDeploy{
		t:        t,
		d:        d,
		srv:      testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()}),
		worker:   testservers.GoBinary(t, "./worker"),
		cli:      testservers.GoBinary(t, "./starter"),
		keepLast: opts.KeepLast,
		gcGrace:  opts.GCGrace,
	}
	p.c = p.srv.Client(t)
	t.Cleanup(p.stopWorker)
	p.startWorker()
	return p
}

// startWorker starts a drflow-worker process serving every region.
func (p *procDeploy) startWorker() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started++
	logPath := filepath.Join(p.d.Root, fmt.Sprintf("worker-%d.log", p.started))
	log, err := os.Create(logPath)
	require.NoError(p.t, err)
	cmd := exec.Command(p.worker, "--config", p.d.ConfigPath, "--temporal-address", p.srv.Address, "--namespace", p.srv.Namespace,
		"--state-dir", p.stateDir(), "--metrics-addr", "", "--checkpoint-every", "100ms", "--gc-grace", p.gcGrace.String(),
		"--log-level", "warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(p.t, cmd.Start())
	_ = log.Close()
	p.proc = cmd
	p.t.Cleanup(func() {
		if p.t.Failed() {
			b, _ := os.ReadFile(logPath)
			p.t.Logf("%s (tail):\n%s", filepath.Base(logPath), tailString(string(b), 3000))
		}
	})
}

// killWorker SIGKILLs the worker process: no shutdown, no last heartbeat, no flushed file.
func (p *procDeploy) killWorker() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return
	}
	_ = p.proc.Process.Signal(syscall.SIGKILL)
	_ = p.proc.Wait()
	p.proc = nil
}

// stopWorker stops the worker gracefully (SIGTERM), as an operator's restart does.
func (p *procDeploy) stopWorker() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return
	}
	_ = p.proc.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = p.proc.Process.Kill()
		<-done
	}
	p.proc = nil
}

func (p *procDeploy) stateDir() string { return filepath.Join(p.d.Root, "state") }

// drflow runs the command line and decodes its JSON output into out.
func (p *procDeploy) drflow(ctx context.Context, out any, args ...string) error {
	cmd := exec.CommandContext(ctx, p.cli, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = p.d.Root
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("drflow %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("drflow %s: decode output: %w\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return nil
}

// cliPoint is one row of `drflow points --json`.
type cliPoint struct {
	ID        string    `json:"id"`
	DataAsOf  time.Time `json:"data_as_of"`
	Bytes     int64     `json:"bytes"`
	LegalHold bool      `json:"legal_hold"`
}

// points lists the dataset's restore points at a location, oldest first.
func (p *procDeploy) points(ctx context.Context, dataset, location string) ([]cliPoint, error) {
	var rep struct {
		Points []cliPoint `json:"points"`
	}
	err := p.drflow(ctx, &rep, "points", dataset, "--config", p.d.ConfigPath, "--state-dir", p.stateDir(), "--location", location, "--json")
	return rep.Points, err
}

// cliVerify is the part of `drflow verify --json` the trials read.
type cliVerify struct {
	OK           bool              `json:"ok"`
	BytesChecked int64             `json:"bytes_checked"`
	Failures     []json.RawMessage `json:"failures"`
}

// verify checks one point at a location fully: every chunk and every file hash.
func (p *procDeploy) verify(ctx context.Context, dataset, location, point string) (cliVerify, error) {
	var rep cliVerify
	err := p.drflow(ctx, &rep, "verify", dataset, "--config", p.d.ConfigPath, "--state-dir", p.stateDir(), "--location", location,
		"--point", point, "--json")
	if err != nil && rep.Failures != nil {
		return rep, nil // verify exits 1 on failures and still prints its report
	}
	return rep, err
}

// hold reads a legal hold back from every location.
func (p *procDeploy) hold(ctx context.Context, dataset, name string) (holds.Report, error) {
	var rep holds.Report
	err := p.drflow(ctx, &rep, "hold", "show", name, "--dataset", dataset, "--config", p.d.ConfigPath, "--json")
	return rep, err
}

// start starts a workflow on the control queue.
func (p *procDeploy) start(ctx context.Context, id string, wf, in any) (client.WorkflowRun, error) {
	return p.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, wf, in)
}

// rewriteFiles gives each named file of dir new incompressible content of size bytes,
// drawn from rng so that a trial's data is reproducible.
func rewriteFiles(t *testing.T, dir string, rng *rand.Rand, names []string, size int) {
	t.Helper()
	buf := make([]byte, size)
	for _, name := range names {
		for i := 0; i < len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, buf, 0o644))
	}
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
