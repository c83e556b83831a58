package schedules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/workflows"
)

const (
	skip      = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
	bufferOne = enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
	day       = 24 * time.Hour
)

func TestPlanExample(t *testing.T) {
	cfg, err := config.Load("../../examples/drflow.yaml")
	require.NoError(t, err)
	got, err := Plan(cfg)
	require.NoError(t, err)

	type row struct {
		id       string
		kind     string
		tier     int
		every    time.Duration
		jitter   time.Duration
		overlap  enumspb.ScheduleOverlapPolicy
		catchup  time.Duration
		pauseErr bool
	}
	want := []row{
		{"drflow-backup-customers", workflows.KindBackup, 1, 5 * time.Minute, 15 * time.Second, bufferOne, 5 * time.Minute, false},
		{"drflow-backup-orders-db", workflows.KindBackup, 2, time.Hour, time.Minute, skip, time.Hour, false},
		{"drflow-backup-us-logs", workflows.KindBackup, 3, 12 * time.Hour, time.Minute, skip, 12 * time.Hour, false},
		{"drflow-drill-customers", workflows.KindDrill, 1, 7 * day, 10 * time.Minute, skip, day, false},
		{"drflow-drill-orders-db", workflows.KindDrill, 2, 14 * day, 10 * time.Minute, skip, day, false},
		{"drflow-drill-us-logs", workflows.KindDrill, 3, 30 * day, 10 * time.Minute, skip, day, false},
		{"drflow-retention-customers", workflows.KindRetention, 1, day, 10 * time.Minute, skip, day, true},
		{"drflow-retention-orders-db", workflows.KindRetention, 2, day, 10 * time.Minute, skip, day, true},
		{"drflow-retention-us-logs", workflows.KindRetention, 3, day, 10 * time.Minute, skip, day, true},
	}
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		assert.Equal(t, w, row{g.ID, g.Kind, g.Tier, g.Every, g.Jitter, g.Overlap, g.CatchupWindow, g.PauseOnFailure}, w.id)
		assert.Equal(t, workflows.ControlTaskQueue, g.TaskQueue, w.id)
		assert.Equal(t, g.ID, g.WorkflowID, "the server appends the scheduled time to the action's ID")
	}

	byID := map[string]Schedule{}
	for _, s := range got {
		byID[s.ID] = s
	}
	assert.Equal(t, BackupWorkflowType, byID["drflow-backup-customers"].WorkflowType)
	assert.Equal(t, workflows.BackupInput{Dataset: "customers"}, byID["drflow-backup-customers"].Input)
	assert.Equal(t, DrillWorkflowType, byID["drflow-drill-orders-db"].WorkflowType)
	assert.Equal(t, workflows.DrillInput{Dataset: "orders-db", RestorePoint: workflows.RestorePointRandom}, byID["drflow-drill-orders-db"].Input)
	assert.Equal(t, RetentionWorkflowType, byID["drflow-retention-us-logs"].WorkflowType)
	assert.Equal(t, workflows.RetentionInput{Dataset: "us-logs"}, byID["drflow-retention-us-logs"].Input)
}

func TestPlanShortIntervalsKeepTheServersMinimumCatchup(t *testing.T) {
	tier := config.Tier{Level: 1, BackupEvery: 4 * time.Second, DrillEvery: 2 * time.Second}
	b := backupSchedule("files", "files", tier)
	assert.Equal(t, MinCatchupWindow, b.CatchupWindow)
	assert.Equal(t, 200*time.Millisecond, b.Jitter)
	assert.Equal(t, MinCatchupWindow, drillSchedule("files", "files", tier).CatchupWindow)
}

// described returns s as the server describes it after a create: inputs as payloads.
func described(t *testing.T, s Schedule) client.Schedule {
	t.Helper()
	spec := s.spec()
	action := s.action()
	p, err := converter.GetDefaultDataConverter().ToPayload(s.Input)
	require.NoError(t, err)
	action.Args = []any{p}
	return client.Schedule{
		Spec:   &spec,
		Action: action,
		Policy: &client.SchedulePolicies{Overlap: s.Overlap, CatchupWindow: s.CatchupWindow, PauseOnFailure: s.PauseOnFailure},
		State:  &client.ScheduleState{Paused: true, Note: "paused by a person"},
	}
}

func TestDiff(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	s := drillSchedule("files", "files", config.Tier{Level: 2, DrillEvery: 7 * day})
	assert.Empty(t, diff(s, described(t, s), dc), "a schedule as created is unchanged, whatever its state")

	tests := []struct {
		name   string
		change func(*client.Schedule)
		want   []string
	}{
		{"interval", func(c *client.Schedule) { c.Spec.Intervals[0].Every = day }, []string{"interval every 1d -> every 7d"}},
		{"calendar added", func(c *client.Schedule) { c.Spec.CronExpressions = []string{"0 3 * * *"} }, []string{"remove calendar times"}},
		{"overlap", func(c *client.Schedule) { c.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL }, []string{"overlap AllowAll -> Skip"}},
		{"catch-up", func(c *client.Schedule) { c.Policy.CatchupWindow = time.Hour }, []string{"catch-up window 1h -> 1d"}},
		{"pause on failure", func(c *client.Schedule) { c.Policy.PauseOnFailure = true }, []string{"pause on failure true -> false"}},
		{"task queue", func(c *client.Schedule) { c.Action.(*client.ScheduleWorkflowAction).TaskQueue = "other" }, []string{"task queue other -> drflow"}},
		{"input", func(c *client.Schedule) {
			p, err := dc.ToPayload(workflows.DrillInput{Dataset: "files"})
			require.NoError(t, err)
			c.Action.(*client.ScheduleWorkflowAction).Args = []any{p}
		}, []string{`input {"dataset":"files"} -> {"dataset":"files","restore_point":"random"}`}},
		{"workflow type", func(c *client.Schedule) { c.Action.(*client.ScheduleWorkflowAction).Workflow = "BackupWorkflow" }, []string{"workflow type BackupWorkflow -> RestoreDrillWorkflow"}},
		{"tier", func(c *client.Schedule) {
			c.Action.(*client.ScheduleWorkflowAction).TypedSearchAttributes = drillSchedule("files", "files", config.Tier{Level: 3, DrillEvery: 7 * day}).action().TypedSearchAttributes
		}, []string{`search attributes DrDataset="files" DrKind="drill" DrTier=3 -> DrDataset="files" DrKind="drill" DrTier=2`}},
		{"timeout", func(c *client.Schedule) { c.Action.(*client.ScheduleWorkflowAction).WorkflowRunTimeout = time.Hour }, []string{"remove workflow timeouts and retry policy set elsewhere"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := described(t, s)
			tt.change(&got)
			assert.Equal(t, tt.want, diff(s, got, dc))
		})
	}
}
