package workflows

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
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
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/runbooks"
)

// runbookStack is a replicated test deployment (EU primary and full replica, US encrypted
// copy, APAC catalog) served by one in-process worker on a real dev server.
type runbookStack struct {
	d    testdeploy.Deployment
	acts *activities.Activities
	c    client.Client
	ctx  context.Context
}

func newRunbookStack(t *testing.T, files map[string]string) *runbookStack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	if files == nil {
		files = map[string]string{}
		for i, name := range []string{"a.txt", "sub/b.txt", "c.bin"} {
			files[name] = strings.Repeat(fmt.Sprintf("runbook row %d\n", i), 3000)
		}
	}
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{"files"}, Files: files, Replicated: true, Replication: "sync"})
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c := srv.Client(t)
	acts.Schedules = schedulePauser{c: c}
	startWorkers(t, c, acts, ControlTaskQueue, RegionTaskQueue("eu-west-1"), RegionTaskQueue("eu-central-1"))
	return &runbookStack{d: d, acts: acts, c: c, ctx: ctx}
}

// schedulePauser pauses the backup schedule of a dataset by its ID; internal/schedules does
// the same for every schedule of a dataset but cannot be imported here (it imports this
// package).
type schedulePauser struct{ c client.Client }

func (p schedulePauser) SetPaused(ctx context.Context, dataset string, pause bool, note string) ([]string, error) {
	h := p.c.ScheduleClient().GetHandle(ctx, BackupWorkflowID(dataset))
	var err error
	if pause {
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
	} else {
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
	}
	return []string{BackupWorkflowID(dataset)}, err
}

func (s *runbookStack) backup(t *testing.T) BackupResult {
	t.Helper()
	run, err := s.c.ExecuteWorkflow(s.ctx, client.StartWorkflowOptions{ID: BackupWorkflowID("files"), TaskQueue: ControlTaskQueue,
		WorkflowIDReusePolicy: 0}, BackupWorkflow, BackupInput{Dataset: "files"})
	require.NoError(t, err)
	var res BackupResult
	require.NoError(t, run.Get(s.ctx, &res))
	return res
}

func (s *runbookStack) start(t *testing.T, name string, params map[string]runbooks.Value, requester string) client.WorkflowRun {
	t.Helper()
	rb, err := runbooks.Builtin(name)
	require.NoError(t, err)
	require.NoError(t, runbooks.Validate(rb, runbooks.ConfigCatalog(s.d.Config)))
	run, err := s.c.ExecuteWorkflow(s.ctx, client.StartWorkflowOptions{ID: RunbookWorkflowID(name, time.Now()), TaskQueue: ControlTaskQueue},
		RunbookWorkflow, RunbookInput{Runbook: rb, Params: params, RequestedBy: requester})
	require.NoError(t, err)
	return run
}

func (s *runbookStack) state(t *testing.T, run client.WorkflowRun) RunbookState {
	t.Helper()
	v, err := s.c.QueryWorkflow(s.ctx, run.GetID(), run.GetRunID(), RunbookStateQuery)
	require.NoError(t, err)
	var st RunbookState
	require.NoError(t, v.Get(&st))
	return st
}

// awaitGate waits until the run's gate is open.
func (s *runbookStack) awaitGate(t *testing.T, run client.WorkflowRun, gate string) RunbookState {
	t.Helper()
	var st RunbookState
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		st = s.state(t, run)
		g, _ := st.Step(gate)
		assert.Equal(ct, StepWaiting, g.Status, "gate %s: %+v", gate, st)
	}, time.Minute, 100*time.Millisecond)
	return st
}

func (s *runbookStack) vote(run client.WorkflowRun, v ApprovalVote) (GateState, error) {
	h, err := s.c.UpdateWorkflow(s.ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), RunID: run.GetRunID(),
		UpdateName: ApproveUpdate, Args: []any{v}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return GateState{}, err
	}
	var gs GateState
	return gs, h.Get(s.ctx, &gs)
}

// auditEvents reads the verified audit trail of the worker's log.
func (s *runbookStack) auditEvents(t *testing.T) []audit.Event {
	t.Helper()
	log, ok := s.acts.Audit.(*audit.Log)
	require.True(t, ok)
	require.NoError(t, log.Flush(s.ctx))
	var out []audit.Event
	_, err := audit.Verify(s.ctx, s.acts.Stores["eu-primary"], "eu-west-1", log.PublicKey(), audit.WithEntries(func(e audit.Entry) error {
		out = append(out, e.Event)
		return nil
	}))
	require.NoError(t, err)
	return out
}

func holdOps(events []audit.Event, hold string) []string {
	var ops []string
	for _, e := range events {
		if e.Kind == audit.KindHold && strings.Contains(e.Reason, hold) {
			ops = append(ops, e.Operation+" "+e.Location)
		}
	}
	return ops
}

func TestLegalHoldRunbookEndToEnd(t *testing.T) {
	s := newRunbookStack(t, nil)
	first := s.backup(t)
	second := s.backup(t)
	params := map[string]runbooks.Value{
		"dataset": runbooks.S("files"), "hold": runbooks.S("case-2026-114"),
		"from":   runbooks.S(first.DataAsOf.Add(-time.Second).Format(time.RFC3339Nano)),
		"to":     runbooks.S(first.DataAsOf.Add(time.Millisecond).Format(time.RFC3339Nano)),
		"reason": runbooks.S("litigation hold, matter 114"),
	}
	run := s.start(t, "legal-hold", params, "alice")
	st := s.awaitGate(t, run, "approve-release")
	gate, _ := st.Step("approve-release")
	assert.Equal(t, []string{"bob", "carol"}, gate.WaitingFor)
	assert.Equal(t, "Release legal hold case-2026-114 on files, requested by alice?", gate.Message)
	place, _ := st.Step("place")
	assert.Equal(t, runbooks.L(first.RestorePoint), place.Outputs["points"], "only the point in the range is held")
	verify, _ := st.Step("verify")
	assert.Equal(t, runbooks.S("true"), verify.Outputs["ok"], "every held object is present and protected everywhere")
	assert.Equal(t, runbooks.S("1"), verify.Outputs["verified"])

	// While the hold is active, retention keeps the held point at the primary and replicas.
	ret, err := s.c.ExecuteWorkflow(s.ctx, client.StartWorkflowOptions{ID: RetentionWorkflowID("files"), TaskQueue: ControlTaskQueue},
		RetentionWorkflow, RetentionInput{Dataset: "files"})
	require.NoError(t, err)
	var kept RetentionResult
	require.NoError(t, ret.Get(s.ctx, &kept))
	assert.NotContains(t, kept.Pruned, first.RestorePoint)

	// The requester cannot approve; a stranger cannot; a legal approver can.
	_, err = s.vote(run, ApprovalVote{Gate: "approve-release", Approver: "alice"})
	require.ErrorContains(t, err, "alice started this run and cannot approve their own request")
	_, err = s.vote(run, ApprovalVote{Gate: "approve-release", Approver: "dave"})
	require.ErrorContains(t, err, "dave is not an approver of gate approve-release")
	gs, err := s.vote(run, ApprovalVote{Gate: "approve-release", Approver: "bob"})
	require.NoError(t, err)
	assert.Equal(t, "approved", gs.Status)

	var res RunbookResult
	require.NoError(t, run.Get(s.ctx, &res))
	assert.Equal(t, RunCompleted, res.Status)
	released, _ := res.Step("release")
	assert.NotEqual(t, runbooks.S("0"), released.Outputs["objects_released"])
	t.Logf("legal-hold run %s:\n%s", run.GetID(), runbookDetails(res.RunbookState))

	// Read back from the stores: released everywhere, no object left under a store hold.
	rep, err := holds.Inspect(s.ctx, "files", "case-2026-114", s.holdTargets(t))
	require.NoError(t, err)
	assert.Equal(t, holds.StateReleased, rep.State)
	assert.Equal(t, []string{"bob"}, rep.Approvers)
	for _, l := range rep.Locations {
		assert.True(t, l.Recorded, l.Location)
		assert.Zero(t, l.Held, "%s still holds objects", l.Location)
	}
	ops := holdOps(s.auditEvents(t), "case-2026-114")
	for _, want := range []string{"placed ", "applied eu-primary", "applied eu-replica", "applied us-replica", "applied ap-catalog", "approved ", "released eu-primary"} {
		assert.Contains(t, ops, want)
	}
	_ = second
	recordHistory(t, s.c, run.GetID(), run.GetRunID(), "RunbookWorkflow-legal-hold")
}

// holdTargets opens hold targets over the deployment's stores for read-back.
func (s *runbookStack) holdTargets(t *testing.T) []holds.Target {
	t.Helper()
	var out []holds.Target
	for _, loc := range []string{"eu-primary", "eu-replica", "us-replica", "ap-catalog"} {
		out = append(out, holds.Target{Store: s.acts.Stores[loc], Mode: holds.ModeFull})
	}
	return out
}

func TestRegionFailoverRunbookEndToEnd(t *testing.T) {
	s := newRunbookStack(t, nil)
	b := s.backup(t)
	target := filepath.Join(s.d.Root, "failover", "files")
	run := s.start(t, "region-failover", map[string]runbooks.Value{"dataset": runbooks.S("files"), "target": runbooks.S(target)}, "alice")
	st := s.awaitGate(t, run, "approve")
	choose, _ := st.Step("choose")
	assert.Equal(t, runbooks.S("eu-replica"), choose.Outputs["location"], "only the full copy at home is a candidate")
	assert.Equal(t, runbooks.S(b.RestorePoint), choose.Outputs["restore_point"])
	_, err := s.vote(run, ApprovalVote{Gate: "approve", Approver: "dave"})
	require.NoError(t, err)
	var res RunbookResult
	require.NoError(t, run.Get(s.ctx, &res))
	restore, _ := res.Step("restore")
	assert.Equal(t, runbooks.S("eu-replica"), restore.Outputs["location"])
	assert.NotEmpty(t, restore.Outputs["rto_seconds"].Scalar)
	assert.NotEmpty(t, restore.Outputs["rpo_seconds"].Scalar)
	for rel := range map[string]bool{"a.txt": true, "sub/b.txt": true, "c.bin": true} {
		want, err := os.ReadFile(filepath.Join(s.d.Source, rel))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(target, rel))
		require.NoError(t, err)
		assert.Equal(t, want, got, rel)
	}

	// A plaintext restore from the encrypted US copy is refused, whatever asks for it.
	_, err = s.acts.RestoreTo(s.ctx, activities.RestoreToInput{Dataset: "files", Location: "us-replica", To: filepath.Join(s.d.Root, "us")})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, activities.ErrTypePolicyDenied, appErr.Type())
	assert.NoDirExists(t, filepath.Join(s.d.Root, "us"))
}

func TestRansomwareRecoveryRunbookEndToEnd(t *testing.T) {
	s := newRunbookStack(t, nil)
	clean := s.backup(t)
	before := s.packs(t)
	require.NoError(t, os.WriteFile(filepath.Join(s.d.Source, "encrypted.bin"), bytes.Repeat([]byte("ransom!"), 200_000), 0o644))
	infected := s.backup(t)
	s.corruptNewPack(t, before)
	_, err := s.c.ScheduleClient().Create(s.ctx, client.ScheduleOptions{ID: BackupWorkflowID("files"),
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: 24 * time.Hour}}},
		Action: &client.ScheduleWorkflowAction{ID: BackupWorkflowID("files"), Workflow: BackupWorkflow, Args: []any{BackupInput{Dataset: "files"}},
			TaskQueue: ControlTaskQueue}})
	require.NoError(t, err)
	target := filepath.Join(s.d.Root, "isolated")

	// An aborted run resumes the schedules it paused.
	aborted := s.start(t, "ransomware-recovery", map[string]runbooks.Value{"dataset": runbooks.S("files"),
		"hold": runbooks.S("incident-1"), "target": runbooks.S(target)}, "alice")
	s.awaitGate(t, aborted, "approve")
	assert.True(t, s.schedulePaused(t), "frozen while the run waits")
	require.NoError(t, s.c.CancelWorkflow(s.ctx, aborted.GetID(), aborted.GetRunID()))
	err = aborted.Get(s.ctx, nil)
	require.Error(t, err)
	assert.True(t, temporal.IsCanceledError(err), "%v", err)
	st := s.state(t, aborted)
	pause, _ := st.Step("pause")
	assert.Equal(t, StepCompensated, pause.Status)
	assert.False(t, s.schedulePaused(t), "the compensation resumed the schedule")
	recordHistory(t, s.c, aborted.GetID(), aborted.GetRunID(), "RunbookWorkflow-ransomware-cancelled")

	run := s.start(t, "ransomware-recovery", map[string]runbooks.Value{"dataset": runbooks.S("files"),
		"hold": runbooks.S("incident-2"), "target": runbooks.S(target)}, "alice")
	st = s.awaitGate(t, run, "approve")
	find, _ := st.Step("find-clean")
	assert.Equal(t, runbooks.S(clean.RestorePoint), find.Outputs["restore_point"], "the newest point failed verification")
	require.Len(t, find.Outputs["rejected"].List, 1)
	assert.Contains(t, find.Outputs["rejected"].List[0], infected.RestorePoint)
	_, err = s.vote(run, ApprovalVote{Gate: "approve", Approver: "erin"})
	require.NoError(t, err)
	var res RunbookResult
	require.NoError(t, run.Get(s.ctx, &res))
	assert.Equal(t, RunCompleted, res.Status)
	assert.NoFileExists(t, filepath.Join(target, "encrypted.bin"), "the clean point predates the attack")
	assert.FileExists(t, filepath.Join(target, "a.txt"))
	assert.True(t, s.schedulePaused(t), "a finished recovery leaves the dataset frozen until people decide")

	// The freeze hold is ongoing: a backup taken now is held from the start.
	s.resumeForTest(t)
	after := s.backup(t)
	for _, loc := range []string{"eu-primary", "eu-replica", "us-replica", "ap-catalog"} {
		g, err := holds.Records(s.acts.Stores[loc], "files").Guard(s.ctx)
		require.NoError(t, err)
		assert.Contains(t, g.PointHolds(after.RestorePoint), "incident-2", "the copy at %s is held too", loc)
	}
	info, err := s.acts.Stores["eu-replica"].Stat(s.ctx, "datasets/files/points/"+after.RestorePoint)
	require.NoError(t, err)
	assert.True(t, info.LegalHold, "the replica's store holds the new point's manifest")
}

func (s *runbookStack) schedulePaused(t *testing.T) bool {
	t.Helper()
	desc, err := s.c.ScheduleClient().GetHandle(s.ctx, BackupWorkflowID("files")).Describe(s.ctx)
	require.NoError(t, err)
	return desc.Schedule.State.Paused
}

func (s *runbookStack) resumeForTest(t *testing.T) {
	t.Helper()
	require.NoError(t, s.c.ScheduleClient().GetHandle(s.ctx, BackupWorkflowID("files")).Delete(s.ctx))
}

func (s *runbookStack) packs(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	require.NoError(t, s.acts.Stores["eu-primary"].List(s.ctx, "datasets/files/packs/", func(oi providers.ObjectInfo) error {
		out[oi.Key] = true
		return nil
	}))
	return out
}

// corruptNewPack flips a byte in a pack that appeared since before: only the newest point
// uses it.
func (s *runbookStack) corruptNewPack(t *testing.T, before map[string]bool) {
	t.Helper()
	st := s.acts.Stores["eu-primary"]
	for key := range s.packs(t) {
		if before[key] {
			continue
		}
		rc, err := st.Get(s.ctx, key, providers.GetOptions{})
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		require.NoError(t, rc.Close())
		require.NoError(t, err)
		data[100] ^= 0x40
		_, err = st.Put(s.ctx, key, bytes.NewReader(data), providers.PutOptions{})
		require.NoError(t, err)
		return
	}
	t.Fatal("the second backup wrote no new pack")
}

func TestKeyRevocationDrillRunbookEndToEnd(t *testing.T) {
	s := newRunbookStack(t, nil)
	s.backup(t)
	sharesDir := filepath.Join(s.d.Root, "escrow")
	run := s.start(t, "key-revocation-drill", map[string]runbooks.Value{"dataset": runbooks.S("files"),
		"replica": runbooks.S("eu-replica"), "shares_dir": runbooks.S(sharesDir)}, "alice")
	var res RunbookResult
	require.NoError(t, run.Get(s.ctx, &res), "%s", runbookDetails(s.state(t, run)))
	assert.Equal(t, RunCompleted, res.Status)
	for _, id := range []string{"backup-fails", "restore-fails", "copy-fails"} {
		st, _ := res.Step(id)
		assert.Equal(t, runbooks.S(activities.ErrTypeKeyRevoked), st.Outputs["error_type"], "%s failed closed", id)
	}
	drill, _ := res.Step("drill")
	assert.Equal(t, runbooks.S("true"), drill.Outputs["verified"])
	comp, _ := res.Step("recover-after-failure")
	assert.Equal(t, StepSkipped, comp.Status)
	for _, f := range []string{"custodian-1", "custodian-2", "custodian-3"} {
		info, err := os.Stat(filepath.Join(sharesDir, f+".share.json"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
	var keyOps []string
	for _, e := range s.auditEvents(t) {
		if e.Kind == audit.KindKey && e.Outcome == audit.OutcomeOK && e.Operation != "unwrap" && e.Operation != "wrap" {
			keyOps = append(keyOps, e.Operation)
		}
	}
	assert.Subset(t, keyOps, []string{"split", "revoke", "reinstate", "rotate_kek"})
}
