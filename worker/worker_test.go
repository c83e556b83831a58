package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/workflows"
)

// syncBuffer is a bytes.Buffer that run's goroutines and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeConfig writes a one-region configuration with the directory dataset "files" and
// returns its path.
func writeConfig(t *testing.T) string {
	t.Helper()
	return testdeploy.New(t, testdeploy.Options{}).ConfigPath
}

func TestRunUnreachableTemporal(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testservers.FreePort(t)) // nothing listens here
	var stderr syncBuffer
	start := time.Now()
	code := run(context.Background(), []string{
		"--config", writeConfig(t), "--temporal-address", addr, "--dial-timeout", "2s",
		"--metrics-addr", "", "--state-dir", t.TempDir(),
	}, io.Discard, &stderr)
	assert.NotEqual(t, exitOK, code)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, stderr.String(), "cannot reach Temporal at "+addr+" (is the server running? set --temporal-address)")
}

func TestRunBadInvocation(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("datasets: [\n"), 0o644))
	tests := []struct {
		name     string
		give     []string
		wantCode int
		wantErr  string
	}{
		{"no config", nil, exitUsage, "--config is required"},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, exitFailed, "load config:"},
		{"invalid config", []string{"--config", bad}, exitFailed, "is invalid"},
		{"unknown region", []string{"--config", writeConfig(t), "--region", "mars-1"}, exitUsage, `region "mars-1" is not in the configuration (known: eu-west-1)`},
		{"control without region", []string{"--config", "x.yaml", "--control"}, exitUsage, "--control only applies with --region"},
		{"bad log level", []string{"--config", "x.yaml", "--log-level", "loud"}, exitUsage, "--log-level"},
		{"stray argument", []string{"--config", "x.yaml", "extra"}, exitUsage, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr syncBuffer
			args := slices.Concat(tt.give, []string{"--metrics-addr", "", "--temporal-address", "127.0.0.1:1", "--dial-timeout", "1s"})
			code := run(context.Background(), args, io.Discard, &stderr)
			assert.Equal(t, tt.wantCode, code)
			assert.Contains(t, stderr.String(), tt.wantErr)
			assert.NotContains(t, stderr.String(), "cannot reach Temporal", "config errors come before dialing")
		})
	}
}

var activityCount = regexp.MustCompile(`(?m)^drflow_activities_total\{activity="[^"]+",outcome="success"\} (\d+)`)

func TestRunServesBackupAndDrill(t *testing.T) {
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testservers.FreePort(t))
	cfgPath := writeConfig(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{
			"--config", cfgPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace,
			"--metrics-addr", metricsAddr, "--state-dir", filepath.Join(t.TempDir(), "state"),
		}, io.Discard, &stderr)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", stderr.String())
		}
	}()

	c := srv.Client(t)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	bRun, err := c.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: workflows.BackupWorkflowID("files"), TaskQueue: workflows.ControlTaskQueue},
		workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"})
	require.NoError(t, err)
	var backup workflows.BackupResult
	require.NoError(t, bRun.Get(wctx, &backup))
	assert.NotEmpty(t, backup.RestorePoint)

	dRun, err := c.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: workflows.DrillWorkflowID("files"), TaskQueue: workflows.ControlTaskQueue},
		workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files"})
	require.NoError(t, err)
	var drill workflows.DrillResult
	require.NoError(t, dRun.Get(wctx, &drill))
	assert.True(t, drill.Verified)
	assert.Equal(t, backup.RestorePoint, drill.RestorePoint)

	body := scrape(t, "http://"+metricsAddr+"/metrics")
	assert.Contains(t, body, "\ndrflow_worker_up 1\n")
	var total int
	for _, m := range activityCount.FindAllStringSubmatch(body, -1) {
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		total += n
	}
	assert.Positive(t, total, "successful activity count in:\n%s", body)
	assert.Contains(t, body, "drflow_activity_seconds_bucket{")
	for _, re := range []string{
		`\ndrflow_backup_read_bytes_total\{dataset="files"\} [1-9]`,
		`\ndrflow_restored_bytes_total\{dataset="files"\} [1-9]`,
		`\ndrflow_last_restore_point_timestamp_seconds\{dataset="files"\} 1\.[0-9]+e\+09\n`,
		`\ndrflow_drill_rto_seconds\{dataset="files"\} [0-9]`,
		`\ndrflow_drill_rpo_seconds\{dataset="files"\} [0-9]`,
		`\ndrflow_objectives_met\{dataset="files",kind="drill"\} 1\n`,
		// The dataset's first backup has no previous point: RPO unknown, objectives not met.
		`\ndrflow_objectives_met\{dataset="files",kind="backup"\} 0\n`,
	} {
		assert.Regexp(t, re, body)
	}
	assert.NotContains(t, body, "drflow_backup_rpo_seconds{", "a first backup's RPO is unknown, not 0")

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitOK, code)
	case <-time.After(time.Minute):
		t.Fatal("run did not return after its context was cancelled")
	}
}

// scrape GETs url; the endpoint is up before any workflow can complete, so one GET suffices.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestParseOptionsTuning(t *testing.T) {
	o, err := parseOptions([]string{"--config", "x.yaml"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, tuning{}, o.tuning, "no flag keeps every SDK default")
	var untouched worker.Options
	o.tuning.apply(&untouched)
	assert.Equal(t, worker.Options{}, untouched)

	o, err = parseOptions([]string{"--config", "x.yaml",
		"--max-concurrent-activities", "300", "--max-concurrent-workflow-tasks", "50",
		"--workflow-pollers", "8", "--activity-pollers", "6", "--sticky-cache-size", "4000"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, tuning{maxConcurrentActivities: 300, maxConcurrentWorkflowTasks: 50,
		workflowPollers: 8, activityPollers: 6, stickyCacheSize: 4000}, o.tuning)
	opts := worker.Options{WorkerStopTimeout: time.Minute}
	o.tuning.apply(&opts)
	assert.Equal(t, worker.Options{
		WorkerStopTimeout:                      time.Minute,
		MaxConcurrentActivityExecutionSize:     300,
		MaxConcurrentWorkflowTaskExecutionSize: 50,
		MaxConcurrentWorkflowTaskPollers:       8,
		MaxConcurrentActivityTaskPollers:       6,
	}, opts)

	for _, tt := range []struct {
		give    []string
		wantErr string
	}{
		{[]string{"--workflow-pollers", "1"}, "--workflow-pollers must be 0 (the SDK's default) or at least 2"},
		{[]string{"--max-concurrent-workflow-tasks", "1"}, "--max-concurrent-workflow-tasks must be 0 (the SDK's default) or at least 2"},
		{[]string{"--activity-pollers", "-1"}, "--activity-pollers must not be negative"},
		{[]string{"--max-concurrent-activities", "-5"}, "--max-concurrent-activities must not be negative"},
		{[]string{"--sticky-cache-size", "-1"}, "--sticky-cache-size must not be negative"},
		{[]string{"--workflow-pollers", "many"}, "invalid value \"many\" for flag -workflow-pollers"},
	} {
		_, err := parseOptions(append([]string{"--config", "x.yaml"}, tt.give...), io.Discard)
		require.ErrorIs(t, err, errUsage, "%v", tt.give)
		assert.ErrorContains(t, err, tt.wantErr)
	}
}
