package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

func TestRunbookValidateCommand(t *testing.T) {
	cfg := exampleConfig(t)
	code, out, errOut := runCLI(t, "runbook", "validate", "legal-hold", "--config", cfg)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "runbook legal-hold is valid against "+cfg+": 6 steps (5 actions, 1 approval gates")

	broken := filepath.Join(t.TempDir(), "broken.yaml")
	require.NoError(t, os.WriteFile(broken, []byte(`name: broken
params:
  - name: ds
    type: dataset
steps:
  - id: one
    action: hold.place
    args: {hold: h, dataset: files, reason: r, requested_by: me, extra: 1}
  - id: one
    action: notfy
  - id: gate
    approval: {timeout: 1h}
  - id: undo
    action: notify
    args: {message: "${params.nope}"}
    compensate:
      id: c
      approval: {approvers: [a], timeout: 1h}
`), 0o644))
	code, out, errOut = runCLI(t, "runbook", "validate", broken, "--config", cfg)
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, out)
	for _, want := range []string{
		`line 8: steps[0] (one).args.extra: unknown argument "extra" of hold.place`,
		`line 9: steps[1] (one).id: step ID "one" is already used by steps[0] (one)`,
		`line 10: steps[1] (one).action: unknown action "notfy" (did you mean "notify"?)`,
		`line 12: steps[2] (gate).approval.approvers: is required unless a group is given`,
		`line 15: steps[3] (undo).args.message: ${params.nope}: unknown parameter`,
		`line 16: steps[3] (undo).compensate: a compensation must be an action step, not an approval step`,
	} {
		assert.Contains(t, errOut, want)
	}

	// Names are checked against the configuration once the structure is right.
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	require.NoError(t, os.WriteFile(unknown, []byte("name: unknown\nsteps:\n  - id: b\n    action: backup\n    args: {dataset: no-such-dataset}\n  - id: g\n    approval: {group: nobody, timeout: 1h}\n"), 0o644))
	code, _, errOut = runCLI(t, "runbook", "validate", unknown, "--config", cfg)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, `line 5: steps[0] (b).args.dataset: unknown dataset "no-such-dataset" (not in the configuration)`)
	assert.Contains(t, errOut, `line 7: steps[1] (g).approval.group: unknown approver group "nobody"`)
}

// cliStack is a dev server with an in-process worker over a test deployment.
type cliStack struct {
	d      testdeploy.Deployment
	acts   *activities.Activities
	common []string
}

func newCLIStack(t *testing.T) *cliStack {
	t.Helper()
	ctx := context.Background()
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{"files"}, Replicated: true, Replication: "sync"})
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c := srv.Client(t)
	testworker.Start(t, c, acts, workflows.ControlTaskQueue, workflows.RegionTaskQueue("eu-west-1"), workflows.RegionTaskQueue("eu-central-1"))
	return &cliStack{d: d, acts: acts, common: []string{"--config", d.ConfigPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace}}
}

func (s *cliStack) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, append(args, s.common...)...)
}

var runIDPattern = regexp.MustCompile(`started runbook \S+ as (\S+),`)

func startedRun(t *testing.T, out string) string {
	t.Helper()
	m := runIDPattern.FindStringSubmatch(out)
	require.Len(t, m, 2, out)
	return m[1]
}

// awaitStatus polls `runbook status` until its output matches.
func (s *cliStack) awaitStatus(t *testing.T, id, want string) string {
	t.Helper()
	var last string
	require.Eventually(t, func() bool {
		_, out, _ := s.run(t, "runbook", "status", id)
		last = out
		return strings.Contains(out, want)
	}, time.Minute, 200*time.Millisecond, "runbook status never showed %q", want)
	return last
}

func TestHoldAndRunbookCommands(t *testing.T) {
	s := newCLIStack(t)
	code, _, errOut := s.run(t, "backup", "files", "--wait")
	require.Equal(t, exitOK, code, errOut)

	code, out, errOut := s.run(t, "hold", "place", "case-7", "--dataset", "files", "--reason", "matter 7", "--requested-by", "alice")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "runbook hold-place, requested by alice: completed")
	assert.Regexp(t, `place\s+action hold.place\s+done\s+.*objects=\d+`, out)

	code, out, errOut = runCLI(t, "hold", "list", "--dataset", "files", "--config", s.d.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `case-7\s+active\s+1\s+eu-primary,eu-replica,us-replica,ap-catalog\s+alice`, out)

	code, out, errOut = runCLI(t, "hold", "show", "case-7", "--dataset", "files", "--json", "--config", s.d.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	var rep holds.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Equal(t, holds.StateActive, rep.State)
	for _, l := range rep.Locations {
		require.NotEmpty(t, l.Points, l.Location)
		assert.Zero(t, l.Missing, l.Location)
		for _, ob := range l.Points[0].Objects {
			assert.True(t, ob.Present, "%s %s", l.Location, ob.Key)
			assert.True(t, ob.LegalHold, "local stores hold every object: %s %s", l.Location, ob.Key)
		}
	}
	code, out, _ = runCLI(t, "hold", "show", "case-7", "--dataset", "files", "--config", s.d.ConfigPath)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "legal hold case-7 of files: active")
	assert.Contains(t, out, "enforced by drflow's local adapter")

	// Release: started by alice, refused for alice and for a non-member, approved by bob.
	code, out, errOut = s.run(t, "hold", "release", "case-7", "--dataset", "files", "--reason", "closed", "--requested-by", "alice")
	require.Equal(t, exitOK, code, errOut)
	id := startedRun(t, out)
	status := s.awaitStatus(t, id, "waiting for approval")
	assert.Contains(t, status, "waiting for bob, carol")

	code, _, errOut = s.run(t, "runbook", "approve", id, "--gate", "approve", "--as", "alice")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "alice started this run and cannot approve their own request at gate approve")
	code, _, errOut = s.run(t, "runbook", "approve", id, "--gate", "approve", "--as", "dave")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "dave is not an approver of gate approve (approvers: alice, bob, carol)")
	code, out, errOut = s.run(t, "runbook", "approve", id, "--gate", "approve", "--as", "bob")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "vote of bob at gate approve of "+id+" accepted: gate approved (1 of 1 approvals: bob)")

	s.awaitStatus(t, id, "runbook hold-release, requested by alice: completed")
	code, out, _ = runCLI(t, "hold", "list", "--dataset", "files", "--config", s.d.ConfigPath)
	require.Equal(t, exitOK, code)
	assert.Regexp(t, `case-7\s+released`, out)

	code, out, _ = s.run(t, "runbook", "list")
	require.Equal(t, exitOK, code)
	for _, want := range []string{"legal-hold", "region-failover", "ransomware-recovery", "key-revocation-drill", id, "completed"} {
		assert.Contains(t, out, want)
	}

	// A rejection fails the run and says who rejected it and why.
	code, out, _ = s.run(t, "hold", "release", "case-7", "--dataset", "files", "--reason", "again", "--requested-by", "carol")
	require.Equal(t, exitOK, code)
	id = startedRun(t, out)
	s.awaitStatus(t, id, "waiting for approval")
	code, _, errOut = s.run(t, "runbook", "approve", id, "--gate", "approve", "--as", "bob", "--reject")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "a rejection at gate approve needs a reason")
	code, _, errOut = s.run(t, "runbook", "approve", id, "--gate", "approve", "--as", "bob", "--reject", "--reason", "already released")
	require.Equal(t, exitOK, code, errOut)
	out = s.awaitStatus(t, id, "requested by carol: failed")
	assert.Contains(t, out, "approval gate approve rejected by bob: already released")
}

func TestRunbookRunWaitFollowsSteps(t *testing.T) {
	s := newCLIStack(t)
	rb := filepath.Join(t.TempDir(), "notice.yaml")
	require.NoError(t, os.WriteFile(rb, []byte(`name: notice
params:
  - name: dataset
    type: dataset
  - name: people
    type: list
    default: [x]
steps:
  - id: check
    action: location.check
    args: {location: eu-replica}
  - id: tell
    action: notify
    args: {dataset: "${params.dataset}", message: "eu-replica answered: ${steps.check.ok}"}
`), 0o644))
	code, out, errOut := s.run(t, "runbook", "run", rb, "--param", "dataset=files", "--param", "people=a,b", "--as", "alice", "--wait")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "step check: done")
	assert.Contains(t, errOut, "step tell: done")
	assert.Contains(t, out, "runbook notice, requested by alice: completed")
	assert.Regexp(t, `check\s+action location.check\s+done\s+.*ok=true`, out)

	code, _, errOut = s.run(t, "runbook", "run", rb, "--param", "dataset=nope", "--as", "alice")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "dataset")
	code, _, errOut = s.run(t, "runbook", "run", rb, "--as", "alice")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "dataset")
}
