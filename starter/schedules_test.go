package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

// scheduleDeployment is the test deployment with a second tier, so that datasets of tier 1
// and tier 2 get different schedules and one tier can change alone.
type scheduleDeployment struct {
	testdeploy.Deployment
	header string // the deployment's file up to its datasets
}

func newScheduleDeployment(t *testing.T) scheduleDeployment {
	t.Helper()
	d := testdeploy.New(t, testdeploy.Options{})
	data, err := os.ReadFile(d.ConfigPath)
	require.NoError(t, err)
	header, _, ok := strings.Cut(string(data), "datasets:\n")
	require.True(t, ok, "test deployment has no datasets section")
	require.Greater(t, strings.LastIndex(header, "tiers:"), strings.LastIndex(header, "policies:"), "tiers must be the last section before datasets")
	return scheduleDeployment{Deployment: d, header: header}
}

// write rewrites the configuration: tier2 backs up every tier2Every; datasets maps each
// dataset to its tier ("tier1" or "tier2").
func (d scheduleDeployment) write(t *testing.T, tier2Every string, datasets ...[2]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(d.header)
	fmt.Fprintf(&b, "  - name: tier2\n    level: 2\n    rpo: 4h\n    rto: 8h\n    backup_every: %s\n    drill_every: 7d\ndatasets:\n", tier2Every)
	for _, ds := range datasets {
		fmt.Fprintf(&b, "  - name: %s\n    classification: internal\n    policy: eu-only\n    tier: %s\n    primary: eu-primary\n    source:\n      type: directory\n      path: source\n", ds[0], ds[1])
	}
	require.NoError(t, os.WriteFile(d.ConfigPath, []byte(b.String()), 0o644))
}

func TestSchedulesCommandErrors(t *testing.T) {
	d := newScheduleDeployment(t)
	d.write(t, "1h", [2]string{"files", "tier1"})
	for _, cmd := range []string{"apply", "list"} {
		t.Run(cmd, func(t *testing.T) {
			addr := freeAddr(t)
			start := time.Now()
			code, out, errOut := runCLI(t, "schedules", cmd, "--config", d.ConfigPath, "--temporal-address", addr, "--dial-timeout", "2s")
			assert.Equal(t, exitFailed, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "drflow schedules "+cmd+": cannot reach Temporal at "+addr+" (is the server running? set --temporal-address or TEMPORAL_ADDRESS)")
			assert.Less(t, time.Since(start), 10*time.Second)

			// A bad configuration is reported before any dial.
			bad := filepath.Join(t.TempDir(), "bad.yaml")
			require.NoError(t, os.WriteFile(bad, []byte("jurisdictions: []\ntiers:\n  - name: t\n    level: 7\n"), 0o600))
			start = time.Now()
			code, _, errOut = runCLI(t, "schedules", cmd, "--config", bad, "--temporal-address", addr)
			assert.Equal(t, exitFailed, code)
			assert.Contains(t, errOut, "is invalid")
			assert.Contains(t, errOut, "level")
			assert.NotContains(t, errOut, "cannot reach Temporal")
			assert.Less(t, time.Since(start), 2*time.Second)

			code, _, errOut = runCLI(t, "schedules", cmd, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
			assert.Equal(t, exitFailed, code)
			assert.Contains(t, errOut, "missing.yaml")

			code, _, errOut = runCLI(t, "schedules", cmd, "--every", "5m")
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, "flag provided but not defined: -every")

			code, _, errOut = runCLI(t, "schedules", cmd, "files")
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, `unexpected argument "files"`)
		})
	}
}

// scheduleEnv is one Temporal dev server shared by the steps of TestSchedules.
type scheduleEnv struct {
	srv    *testservers.TemporalServer
	c      client.Client
	d      scheduleDeployment
	common []string
}

func (se scheduleEnv) cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLI(t, append(args, se.common...)...)
}

func (se scheduleEnv) describe(t *testing.T, id string) *client.ScheduleDescription {
	t.Helper()
	desc, err := se.c.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
	require.NoError(t, err, id)
	return desc
}

func (se scheduleEnv) exists(t *testing.T, id string) bool {
	t.Helper()
	_, err := se.c.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
	if err != nil {
		require.ErrorContains(t, err, "not found", id)
		return false
	}
	return true
}

// waitListed waits until listing the namespace's schedules (eventually consistent) shows
// exactly ids.
func (se scheduleEnv) waitListed(t *testing.T, ids ...string) {
	t.Helper()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		it, err := se.c.ScheduleClient().List(context.Background(), client.ScheduleListOptions{})
		require.NoError(ct, err)
		var got []string
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(ct, err)
			got = append(got, e.ID)
		}
		assert.ElementsMatch(ct, ids, got)
	}, 30*time.Second, 100*time.Millisecond)
}

var (
	filesIDs     = []string{"drflow-backup-files", "drflow-drill-files", "drflow-retention-files"}
	moreFilesIDs = []string{"drflow-backup-more-files", "drflow-drill-more-files", "drflow-retention-more-files"}
)

const foreignID = "nightly-report"

// TestSchedules runs apply and list against one Temporal dev server, step by step: each step
// starts from the state the previous one left.
func TestSchedules(t *testing.T) {
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	se := scheduleEnv{srv: srv, c: srv.Client(t), d: newScheduleDeployment(t)}
	se.common = []string{"--config", se.d.ConfigPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace}
	se.d.write(t, "1h", [2]string{"files", "tier1"}, [2]string{"more-files", "tier2"})

	// A schedule that people made; drflow must never touch it.
	_, err := se.c.ScheduleClient().Create(context.Background(), client.ScheduleOptions{
		ID:     foreignID,
		Spec:   client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}},
		Action: &client.ScheduleWorkflowAction{ID: "report", Workflow: "ReportWorkflow", TaskQueue: "reports"},
		Paused: true,
	})
	require.NoError(t, err)
	foreignUpdated := se.describe(t, foreignID).Info.LastUpdateAt

	allIDs := append(append([]string{}, filesIDs...), moreFilesIDs...)
	steps := []struct {
		name string
		fn   func(t *testing.T, se scheduleEnv)
	}{
		{"dry run changes nothing", func(t *testing.T, se scheduleEnv) {
			code, out, errOut := se.cli(t, "schedules", "apply", "--dry-run")
			require.Equal(t, exitOK, code, errOut)
			for _, id := range allIDs {
				assert.Regexp(t, `(?m)^would create +`+id+`: `, out)
				assert.False(t, se.exists(t, id), id)
			}
			assert.Contains(t, out, "dry run, nothing changed: would be 6 created, 0 updated, 0 unchanged, 0 deleted")
		}},
		{"apply creates every schedule", func(t *testing.T, se scheduleEnv) {
			code, out, errOut := se.cli(t, "schedules", "apply", "--paused")
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "created      drflow-backup-files: backup of files every 5m, overlap BufferOne, catch-up 5m, paused\n")
			assert.Contains(t, out, "created      drflow-backup-more-files: backup of more-files every 1h, overlap Skip, catch-up 1h, paused\n")
			assert.Contains(t, out, "6 created, 0 updated, 0 unchanged, 0 deleted")
			checkCreated(t, se)
		}},
		{"re-apply changes nothing", func(t *testing.T, se scheduleEnv) {
			before := map[string]time.Time{}
			for _, id := range allIDs {
				before[id] = se.describe(t, id).Info.LastUpdateAt
			}
			code, out, errOut := se.cli(t, "schedules", "apply")
			require.Equal(t, exitOK, code, errOut)
			for _, id := range allIDs {
				assert.Regexp(t, `(?m)^unchanged +`+id+`$`, out)
				desc := se.describe(t, id)
				assert.Equal(t, before[id], desc.Info.LastUpdateAt, "%s was updated", id)
				assert.True(t, desc.Schedule.State.Paused, "apply without --paused leaves %s paused", id)
			}
			assert.Contains(t, out, "0 created, 0 updated, 6 unchanged, 0 deleted")
		}},
		{"changing a tier's backup_every updates its backups only", func(t *testing.T, se scheduleEnv) {
			se.d.write(t, "2h", [2]string{"files", "tier1"}, [2]string{"more-files", "tier2"})
			code, out, errOut := se.cli(t, "schedules", "apply", "--dry-run")
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "would update drflow-backup-more-files: interval every 1h -> every 2h; catch-up window 1h -> 2h\n")
			assert.Equal(t, time.Hour, se.describe(t, "drflow-backup-more-files").Schedule.Spec.Intervals[0].Every)

			code, out, errOut = se.cli(t, "schedules", "apply")
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "updated      drflow-backup-more-files: interval every 1h -> every 2h; catch-up window 1h -> 2h\n")
			assert.Contains(t, out, "0 created, 1 updated, 5 unchanged, 0 deleted")
			desc := se.describe(t, "drflow-backup-more-files")
			assert.Equal(t, []client.ScheduleIntervalSpec{{Every: 2 * time.Hour}}, desc.Schedule.Spec.Intervals)
			assert.Equal(t, 2*time.Hour, desc.Schedule.Policy.CatchupWindow)
			assert.True(t, desc.Schedule.State.Paused, "an update keeps the schedule's state")
			assert.Equal(t, "drflow-backup-more-files", desc.Schedule.Action.(*client.ScheduleWorkflowAction).ID)
		}},
		{"list", func(t *testing.T, se scheduleEnv) {
			code, out, errOut := se.cli(t, "schedules", "list")
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "drflow-backup-files  backup of files  every 5m  overlap BufferOne  paused\n")
			assert.Contains(t, out, "drflow-backup-more-files  backup of more-files  every 2h  overlap Skip  paused\n")
			assert.Contains(t, out, "drflow-retention-files  retention of files  every 1d  overlap Skip  paused\n")
			assert.NotContains(t, out, foreignID)
			assert.Equal(t, 6, strings.Count(out, "last run:  none"), out)
			next := regexp.MustCompile(`(?m)^  next runs: (\S+), (\S+), (\S+)$`).FindAllStringSubmatch(out, -1)
			require.Len(t, next, 6, out)

			code, out, errOut = se.cli(t, "schedules", "list", "--json")
			require.Equal(t, exitOK, code, errOut)
			var sts []schedules.Status
			require.NoError(t, json.Unmarshal([]byte(out), &sts), out)
			require.Len(t, sts, 6)
			for i, id := range []string{"drflow-backup-files", "drflow-backup-more-files", "drflow-drill-files", "drflow-drill-more-files", "drflow-retention-files", "drflow-retention-more-files"} {
				assert.Equal(t, id, sts[i].ID)
				assert.True(t, sts[i].Exists && sts[i].Managed && sts[i].InConfig && sts[i].Paused, id)
				assert.Len(t, sts[i].NextRuns, 3, id)
				assert.Nil(t, sts[i].LastRun, id)
			}
			b := sts[1]
			assert.Equal(t, "more-files", b.Dataset)
			assert.Equal(t, workflows.KindBackup, b.Kind)
			assert.Equal(t, 7200.0, b.IntervalSeconds)
			assert.Equal(t, "Skip", b.Overlap)
			for i := 1; i < len(b.NextRuns); i++ {
				gap := b.NextRuns[i].Sub(b.NextRuns[i-1])
				// Each run is jittered by up to a minute.
				assert.InDelta(t, (2 * time.Hour).Seconds(), gap.Seconds(), 60, "gap between next runs")
			}
			var raw []map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &raw))
			for _, k := range []string{"id", "dataset", "kind", "interval", "overlap_policy", "paused", "next_runs", "actions"} {
				assert.Contains(t, raw[0], k)
			}
		}},
		{"removing a dataset deletes its schedules only", func(t *testing.T, se scheduleEnv) {
			se.waitListed(t, append([]string{foreignID}, allIDs...)...)
			se.d.write(t, "2h", [2]string{"files", "tier1"})
			code, out, errOut := se.cli(t, "schedules", "apply", "--json")
			require.Equal(t, exitOK, code, errOut)
			var rep scheduleApplyReport
			require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
			assert.False(t, rep.DryRun)
			outcomes := map[string]string{}
			for _, ch := range rep.Changes {
				outcomes[ch.ID] = ch.Outcome
			}
			assert.Equal(t, map[string]string{
				"drflow-backup-files": "unchanged", "drflow-drill-files": "unchanged", "drflow-retention-files": "unchanged",
				"drflow-backup-more-files": "deleted", "drflow-drill-more-files": "deleted", "drflow-retention-more-files": "deleted",
			}, outcomes)
			for _, id := range moreFilesIDs {
				assert.False(t, se.exists(t, id), id)
			}
			foreign := se.describe(t, foreignID)
			assert.Equal(t, foreignUpdated, foreign.Info.LastUpdateAt, "the foreign schedule was not touched")
			assert.True(t, foreign.Schedule.State.Paused)
		}},
		{"apply leaves a foreign schedule with a drflow ID alone", func(t *testing.T, se scheduleEnv) {
			se.waitListed(t, append([]string{foreignID}, filesIDs...)...)
			_, err := se.c.ScheduleClient().Create(context.Background(), client.ScheduleOptions{
				ID:     "drflow-drill-more-files",
				Spec:   client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}},
				Action: &client.ScheduleWorkflowAction{ID: "hand-made", Workflow: "RestoreDrillWorkflow", TaskQueue: "elsewhere"},
				Paused: true,
			})
			require.NoError(t, err)
			se.d.write(t, "2h", [2]string{"files", "tier1"}, [2]string{"more-files", "tier2"})
			code, out, errOut := se.cli(t, "schedules", "apply", "--paused")
			assert.Equal(t, exitFailed, code)
			assert.Contains(t, errOut, `schedule drflow-drill-more-files exists but was not created by drflow (its memo has no "drflow-managed"); drflow leaves it alone`)
			// The other schedules are still reconciled.
			assert.Contains(t, out, "2 created, 0 updated, 3 unchanged, 0 deleted")
			hand := se.describe(t, "drflow-drill-more-files")
			assert.Equal(t, "elsewhere", hand.Schedule.Action.(*client.ScheduleWorkflowAction).TaskQueue)

			code, out, errOut = se.cli(t, "schedules", "list")
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "drflow-drill-more-files  drill of more-files  exists but was not created by drflow; apply leaves it alone\n")

			// Back to one dataset for the next step; the hand-made schedule stays.
			se.waitListed(t, append([]string{foreignID, "drflow-drill-more-files", "drflow-backup-more-files", "drflow-retention-more-files"}, filesIDs...)...)
			se.d.write(t, "2h", [2]string{"files", "tier1"})
			code, out, errOut = se.cli(t, "schedules", "apply")
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "0 created, 0 updated, 3 unchanged, 2 deleted")
			assert.True(t, se.exists(t, "drflow-drill-more-files"))
		}},
		{"a triggered schedule runs the real workflows", testSchedulesFire},
	}
	for _, step := range steps {
		if !t.Run(step.name, func(t *testing.T) { step.fn(t, se) }) {
			return // later steps build on this one
		}
	}
}

// checkCreated checks what apply created against the tier rules.
func checkCreated(t *testing.T, se scheduleEnv) {
	t.Helper()
	dc := converter.GetDefaultDataConverter()
	tests := []struct {
		id      string
		every   time.Duration
		jitter  time.Duration
		overlap enumspb.ScheduleOverlapPolicy
		catchup time.Duration
		pause   bool
		wfType  string
		tier    int64
		kind    string
		input   any
	}{
		{"drflow-backup-files", 5 * time.Minute, 15 * time.Second, enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, 5 * time.Minute, false,
			"BackupWorkflow", 1, workflows.KindBackup, workflows.BackupInput{Dataset: "files"}},
		{"drflow-backup-more-files", time.Hour, time.Minute, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, time.Hour, false,
			"BackupWorkflow", 2, workflows.KindBackup, workflows.BackupInput{Dataset: "more-files"}},
		{"drflow-drill-files", config.DefaultDrillEvery, 10 * time.Minute, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, 24 * time.Hour, false,
			"RestoreDrillWorkflow", 1, workflows.KindDrill, workflows.DrillInput{Dataset: "files", RestorePoint: "random"}},
		{"drflow-retention-more-files", 24 * time.Hour, 10 * time.Minute, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, 24 * time.Hour, true,
			"RetentionWorkflow", 2, workflows.KindRetention, workflows.RetentionInput{Dataset: "more-files"}},
	}
	for _, tt := range tests {
		desc := se.describe(t, tt.id)
		s := desc.Schedule
		assert.Equal(t, []client.ScheduleIntervalSpec{{Every: tt.every}}, s.Spec.Intervals, tt.id)
		assert.Equal(t, tt.jitter, s.Spec.Jitter, tt.id)
		assert.Equal(t, tt.overlap, s.Policy.Overlap, tt.id)
		assert.Equal(t, tt.catchup, s.Policy.CatchupWindow, tt.id)
		assert.Equal(t, tt.pause, s.Policy.PauseOnFailure, tt.id)
		assert.True(t, s.State.Paused, tt.id)
		assert.Contains(t, s.State.Note, "managed by drflow", tt.id)
		assert.Contains(t, desc.Memo.GetFields(), schedules.ManagedMemoKey, tt.id)

		a, ok := s.Action.(*client.ScheduleWorkflowAction)
		require.True(t, ok, tt.id)
		assert.Equal(t, tt.wfType, a.Workflow, tt.id)
		assert.Equal(t, tt.id, a.ID, tt.id)
		assert.Equal(t, workflows.ControlTaskQueue, a.TaskQueue, tt.id)
		require.Len(t, a.Args, 1, tt.id)
		p, ok := a.Args[0].(*commonpb.Payload)
		require.True(t, ok, tt.id)
		got := reflect.New(reflect.TypeOf(tt.input))
		require.NoError(t, dc.FromPayload(p, got.Interface()), tt.id)
		assert.Equal(t, tt.input, got.Elem().Interface(), tt.id)
		ds, _ := a.TypedSearchAttributes.GetKeyword(workflows.SearchAttrDataset)
		kind, _ := a.TypedSearchAttributes.GetKeyword(workflows.SearchAttrKind)
		tier, _ := a.TypedSearchAttributes.GetInt64(workflows.SearchAttrTier)
		assert.Equal(t, strings.TrimPrefix(tt.id, "drflow-"+tt.kind+"-"), ds, tt.id)
		assert.Equal(t, tt.kind, kind, tt.id)
		assert.Equal(t, tt.tier, tier, tt.id)
	}
}

// testSchedulesFire triggers the backup, drill and retention schedules of "files" with real
// workers and real activities polling, and checks the runs they start.
func testSchedulesFire(t *testing.T, se scheduleEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// "timed" is for the timer-fired schedule at the end; the workers load it now.
	se.d.write(t, "2h", [2]string{"files", "tier1"}, [2]string{"timed", "tier2"})
	if code, _, errOut := se.cli(t, "schedules", "apply", "--paused"); code != exitOK {
		t.Fatalf("apply: exit %d: %s", code, errOut)
	}
	cfg, err := config.Load(se.d.ConfigPath)
	require.NoError(t, err)
	acts, err := activities.New(ctx, cfg, activities.Options{StateDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	testworker.Start(t, se.c, acts)

	var backup workflows.BackupResult
	backupRun := triggerAndWait(ctx, t, se, "drflow-backup-files", &backup)
	assert.Equal(t, "files", backup.Dataset)
	require.NotEmpty(t, backup.RestorePoint)
	r, err := repo.Open(repo.Options{Store: acts.Stores["eu-primary"], Dataset: "files", Keys: acts.Keys["EU"], Audit: acts.Audit})
	require.NoError(t, err)
	points, err := r.Points(ctx)
	require.NoError(t, err)
	var ids []string
	for _, p := range points {
		ids = append(ids, p.ID)
	}
	assert.Equal(t, []string{backup.RestorePoint}, ids, "the scheduled backup made the dataset's restore point")

	// The schedule set the search attributes at start, before the workflow upserted any.
	started := startAttrs(ctx, t, se.c, backupRun)
	assert.Equal(t, "files", started[workflows.SearchAttrDataset.GetName()])
	assert.Equal(t, workflows.KindBackup, started[workflows.SearchAttrKind.GetName()])
	assert.Equal(t, float64(1), started[workflows.SearchAttrTier.GetName()])
	assert.Equal(t, "drflow-backup-files", started["TemporalScheduledById"])

	var drill workflows.DrillResult
	triggerAndWait(ctx, t, se, "drflow-drill-files", &drill)
	assert.True(t, drill.Verified)
	assert.Equal(t, backup.RestorePoint, drill.RestorePoint, "random among one point")

	var retention workflows.RetentionResult
	triggerAndWait(ctx, t, se, "drflow-retention-files", &retention)
	assert.Equal(t, []string{backup.RestorePoint}, retention.Kept)
	assert.Empty(t, retention.Pruned)

	// The runs are findable by dataset and kind, and list reports them.
	code, out, errOut := se.cli(t, "schedules", "list", "--json")
	require.Equal(t, exitOK, code, errOut)
	var sts []schedules.Status
	require.NoError(t, json.Unmarshal([]byte(out), &sts), out)
	last := map[string]*schedules.Run{}
	for _, st := range sts {
		last[st.ID] = st.LastRun
	}
	require.NotNil(t, last["drflow-backup-files"])
	assert.Equal(t, backupRun.GetID(), last["drflow-backup-files"].WorkflowID)
	assert.Equal(t, "Completed", last["drflow-backup-files"].Result)
	require.NotNil(t, last["drflow-drill-files"])
	assert.Equal(t, "Completed", last["drflow-drill-files"].Result)
	require.NotNil(t, last["drflow-retention-files"])
	assert.Equal(t, "Completed", last["drflow-retention-files"].Result)

	code, out, errOut = se.cli(t, "schedules", "list")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^  last run:  \S+ Completed \(`+regexp.QuoteMeta(backupRun.GetID())+`\)$`, out)

	// A schedule also fires on its own timer: the tier 2 dataset "timed" backing up every 2 s
	// (apply keeps it paused, as created; an operator unpauses it) starts a backup with
	// nobody triggering it.
	se.d.write(t, "2s", [2]string{"files", "tier1"}, [2]string{"timed", "tier2"})
	code, out, errOut = se.cli(t, "schedules", "apply")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^updated +drflow-backup-timed: `, out)
	h := se.c.ScheduleClient().GetHandle(ctx, "drflow-backup-timed")
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	require.NoError(t, h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "fire test"}))
	var fired *client.ScheduleActionResult
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		desc, err := h.Describe(ctx)
		require.NoError(ct, err)
		require.NotEmpty(ct, desc.Info.RecentActions)
		fired = &desc.Info.RecentActions[0]
		require.NotNil(ct, fired.StartWorkflowResult)
	}, 30*time.Second, 100*time.Millisecond, "the 2s backup schedule never fired")
	assert.False(t, fired.ScheduleTime.IsZero(), "a timer-fired action has a scheduled time")
	var timed workflows.BackupResult
	run := se.c.GetWorkflow(ctx, fired.StartWorkflowResult.WorkflowID, fired.StartWorkflowResult.FirstExecutionRunID)
	require.NoError(t, run.Get(ctx, &timed))
	assert.Equal(t, "timed", timed.Dataset)
	assert.NotEmpty(t, timed.RestorePoint)
	require.NoError(t, h.Pause(ctx, client.SchedulePauseOptions{Note: "test done"}))
}

// triggerAndWait triggers schedule id, waits for the run it starts and stores its result.
func triggerAndWait(ctx context.Context, t *testing.T, se scheduleEnv, id string, result any) client.WorkflowRun {
	t.Helper()
	h := se.c.ScheduleClient().GetHandle(ctx, id)
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	var started *client.ScheduleWorkflowExecution
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		desc, err := h.Describe(ctx)
		require.NoError(ct, err)
		require.Len(ct, desc.Info.RecentActions, 1)
		started = desc.Info.RecentActions[0].StartWorkflowResult
		require.NotNil(ct, started)
	}, 30*time.Second, 100*time.Millisecond)
	assert.True(t, strings.HasPrefix(started.WorkflowID, id+"-"), "the server appends the scheduled time: %s", started.WorkflowID)
	run := se.c.GetWorkflow(ctx, started.WorkflowID, started.FirstExecutionRunID)
	require.NoError(t, run.Get(ctx, result), started.WorkflowID)
	return run
}

// startAttrs returns the search attributes a run was started with, decoded.
func startAttrs(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun) map[string]any {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	require.True(t, it.HasNext())
	first, err := it.Next()
	require.NoError(t, err)
	attrs := first.GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(t, attrs, "first event is %s", first.GetEventType())
	out := map[string]any{}
	for k, p := range attrs.GetSearchAttributes().GetIndexedFields() {
		var v any
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, &v), k)
		out[k] = v
	}
	return out
}
