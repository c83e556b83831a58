package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/testservers"
)

// A backup's history does not grow with the length of its data activity: live progress
// travels in heartbeats, which never enter the history. The Backup activity here heartbeats
// its Progress once per simulated 15 s (the interval at which activities used to signal the
// workflow): 4 times for a 1-minute backup, 480 times for a 2-hour one.
func TestProgressAddsNoHistoryEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	plan := func(context.Context, activities.PlanInput) (activities.PlanResult, error) { return testPlan, nil }
	backup := func(ctx context.Context, in activities.BackupActivityInput) (activities.BackupActivityResult, error) {
		simulated, err := time.ParseDuration(in.Dataset[len("orders-"):])
		if err != nil {
			return activities.BackupActivityResult{}, err
		}
		const total = 1 << 30
		reports := int64(simulated / (15 * time.Second))
		for i := int64(1); i <= reports; i++ {
			activity.RecordHeartbeat(ctx, activities.Progress{Phase: "backup", BytesDone: total * i / reports, BytesTotal: total,
				ETASeconds: float64(reports-i) * 15})
		}
		return activities.BackupActivityResult{Point: testPoint, DataAsOf: time.Now(), BytesRead: total}, nil
	}
	for _, q := range []string{ControlTaskQueue, RegionTaskQueue(testPlan.Region)} {
		w := worker.New(c, q, worker.Options{})
		Register(w)
		w.RegisterActivityWithOptions(plan, activity.RegisterOptions{Name: "Plan"})
		w.RegisterActivityWithOptions(backup, activity.RegisterOptions{Name: "Backup"})
		w.RegisterActivityWithOptions(func(context.Context, activities.AuditRunInput) error { return nil }, activity.RegisterOptions{Name: "AuditRun"})
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}

	events := map[time.Duration]int{}
	for _, d := range []time.Duration{time.Minute, 2 * time.Hour} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("progress-events-%s", d), TaskQueue: ControlTaskQueue},
			BackupWorkflow, BackupInput{Dataset: "orders-" + d.String()})
		require.NoError(t, err)
		require.NoError(t, run.Get(ctx, nil))
		n, signals := historyEvents(t, c, run.GetID(), run.GetRunID())
		assert.Zero(t, signals, "signals in the history of the %s backup", d)
		events[d] = n
	}
	t.Logf("history events: %d for a 1-minute backup, %d for a 2-hour one", events[time.Minute], events[2*time.Hour])
	assert.Equal(t, events[time.Minute], events[2*time.Hour])
}

// historyEvents counts the events of a run's history, and its signal events.
func historyEvents(t *testing.T, c client.Client, workflowID, runID string) (events, signals int) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		events++
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			signals++
		}
	}
	return events, signals
}
