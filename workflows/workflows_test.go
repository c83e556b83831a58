package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drflow/drflow/activities"
)

const testPoint = "20250102T030405.000Z-0a1b2c3d"

var testPlan = activities.PlanResult{Dataset: "orders", Location: "eu-primary", Region: "eu-west-1", Jurisdiction: "EU",
	Tier: "tier1", TierLevel: 1, RPO: 15 * time.Minute, RTO: time.Hour}

// searchAttrs collects what a workflow upserted, merged in order.
type searchAttrs struct {
	dataset, kind string
	tier          int64
	rpo, rto      float64
	hasRPO        bool
	hasRTO        bool
	met           bool
	hasMet        bool
	calls         int
	// audited are the AuditRun inputs, in order.
	audited []activities.AuditRunInput
}

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *searchAttrs) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflow(BackupWorkflow)
	env.RegisterWorkflow(RestoreDrillWorkflow)
	env.RegisterActivity(&activities.Activities{})
	sa := &searchAttrs{}
	env.OnActivity(a.AuditRun, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AuditRunInput) error {
		sa.audited = append(sa.audited, in)
		return nil
	}).Maybe()
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		attrs := args.Get(0).(temporal.SearchAttributes)
		sa.calls++
		if v, ok := attrs.GetKeyword(SearchAttrDataset); ok {
			sa.dataset = v
		}
		if v, ok := attrs.GetKeyword(SearchAttrKind); ok {
			sa.kind = v
		}
		if v, ok := attrs.GetInt64(SearchAttrTier); ok {
			sa.tier = v
		}
		if v, ok := attrs.GetFloat64(SearchAttrRPOSeconds); ok {
			sa.rpo, sa.hasRPO = v, true
		}
		if v, ok := attrs.GetFloat64(SearchAttrRTOSeconds); ok {
			sa.rto, sa.hasRTO = v, true
		}
		if v, ok := attrs.GetBool(SearchAttrObjectivesMet); ok {
			sa.met, sa.hasMet = v, true
		}
	}).Return(nil).Maybe()
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env, sa
}

func applicationError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "not an application error: %v", err)
	return appErr
}

func TestBackupWorkflow(t *testing.T) {
	tests := []struct {
		name      string
		took      time.Duration // how long the backup activity runs
		previous  string
		prevAsOf  time.Time
		wantRPO   float64
		wantKnown bool
		wantMet   bool
	}{
		{"within objective", 2 * time.Minute, testPoint, t0.Add(-10 * time.Minute), 12 * 60, true, true},
		{"missed objective", 10 * time.Minute, testPoint, t0.Add(-10 * time.Minute), 20 * 60, true, false},
		{"first backup is unknown and not met", time.Minute, "", time.Time{}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, sa := newEnv(t)
			env.OnActivity(a.Plan, mock.Anything, activities.PlanInput{Dataset: "orders"}).Return(testPlan, nil).Once()
			var gotInput activities.BackupActivityInput
			env.OnActivity(a.Backup, mock.Anything, mock.Anything).After(tt.took).Run(func(args mock.Arguments) {
				gotInput = args.Get(1).(activities.BackupActivityInput)
			}).Return(activities.BackupActivityResult{
				Point: "20250102T031405.000Z-0a1b2c3d", DataAsOf: t0, Location: "eu-primary",
				BytesRead: 100, BytesUploaded: 40, ChunksNew: 2, ChunksReused: 3,
				PreviousPoint: tt.previous, PreviousDataAsOf: tt.prevAsOf,
			}, nil).Once()
			var queue string
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				if info.ActivityType.Name == "Backup" {
					queue = info.TaskQueue
				}
			})

			env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var res BackupResult
			require.NoError(t, env.GetWorkflowResult(&res))

			assert.Equal(t, "drflow-eu-west-1", queue, "backup runs on the region's queue")
			assert.Equal(t, "orders", gotInput.Dataset)
			assert.NotEmpty(t, gotInput.RunID)
			assert.Equal(t, "20250102T031405.000Z-0a1b2c3d", res.RestorePoint)
			assert.Equal(t, tt.previous, res.PreviousPoint)
			assert.InDelta(t, tt.wantRPO, res.RPOSeconds, 1)
			assert.Equal(t, tt.wantKnown, res.RPOKnown)
			assert.Equal(t, tt.wantMet, res.RPOMet)
			assert.Equal(t, 900.0, res.RPOObjectiveSeconds)
			assert.Equal(t, 1, res.Tier)
			require.Len(t, sa.audited, 1)
			assert.Equal(t, activities.RunBackup, sa.audited[0].Kind)
			assert.Equal(t, res.RestorePoint, sa.audited[0].Point)
			assert.InDelta(t, res.RPOSeconds, sa.audited[0].RPO.Seconds(), 1, "the audited RPO is the result's (0 when unknown)")
			assert.Equal(t, 900.0, sa.audited[0].RPOObjective.Seconds())
			assert.Equal(t, int64(100), res.BytesRead)
			assert.Equal(t, int64(2), res.ChunksNew)
			assert.NotNil(t, res.Replicas)
			assert.NotEmpty(t, res.WorkflowID)

			assert.Equal(t, "orders", sa.dataset)
			assert.Equal(t, KindBackup, sa.kind)
			assert.Equal(t, int64(1), sa.tier)
			assert.Equal(t, tt.wantKnown, sa.hasRPO, "RPO is set only when known")
			if tt.wantKnown {
				assert.InDelta(t, tt.wantRPO, sa.rpo, 1)
			}
			assert.True(t, sa.hasMet)
			assert.Equal(t, tt.wantMet, sa.met)
			assert.False(t, sa.hasRTO)

			val, err := env.QueryWorkflow(ProgressQuery)
			require.NoError(t, err)
			var p Progress
			require.NoError(t, val.Get(&p))
			assert.Equal(t, "done", p.Phase)
		})
	}
}

func TestBackupWorkflowRetriesTransientFailure(t *testing.T) {
	env, _ := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
	var runIDs []string
	record := func(args mock.Arguments) { runIDs = append(runIDs, args.Get(1).(activities.BackupActivityInput).RunID) }
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).Run(record).
		Return(activities.BackupActivityResult{}, errors.New("store unavailable")).Once()
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).Run(record).
		Return(activities.BackupActivityResult{Point: testPoint, DataAsOf: t0, PreviousPoint: testPoint, PreviousDataAsOf: t0.Add(-time.Minute)}, nil).Once()

	env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
	require.NoError(t, env.GetWorkflowError())
	var res BackupResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.True(t, res.RPOMet)
	require.Len(t, runIDs, 2)
	assert.Equal(t, runIDs[0], runIDs[1], "a retry resumes the same backup run")
}

func TestBackupWorkflowNonRetryableFailures(t *testing.T) {
	for _, typ := range []string{activities.ErrTypeKeyRevoked, activities.ErrTypeInvalidInput, activities.ErrTypeIntegrityFailure, activities.ErrTypeNotServed} {
		t.Run(typ, func(t *testing.T) {
			env, sa := newEnv(t)
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
			env.OnActivity(a.Backup, mock.Anything, mock.Anything).
				Return(activities.BackupActivityResult{}, temporal.NewNonRetryableApplicationError("nope", typ, nil)).Once()

			env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
			require.True(t, env.IsWorkflowCompleted())
			appErr := applicationError(t, env.GetWorkflowError())
			assert.Equal(t, typ, appErr.Type())
			assert.True(t, sa.hasMet)
			assert.False(t, sa.met, "a failed backup met nothing")
		})
	}
}

func TestBackupWorkflowRetryableTypeStillStopsWhenListed(t *testing.T) {
	// A retryable application error of a listed type is not retried: the policy lists it.
	env, _ := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).
		Return(activities.BackupActivityResult{}, temporal.NewApplicationError("revoked", activities.ErrTypeKeyRevoked)).Once()
	env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "orders"})
	assert.Equal(t, activities.ErrTypeKeyRevoked, applicationError(t, env.GetWorkflowError()).Type())
}

func TestWorkflowsRejectInvalidInput(t *testing.T) {
	t.Run("backup", func(t *testing.T) {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(&activities.Activities{})
		env.ExecuteWorkflow(BackupWorkflow, BackupInput{Dataset: "Bad/Name"})
		appErr := applicationError(t, env.GetWorkflowError())
		assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
		assert.True(t, appErr.NonRetryable())
		assert.Contains(t, appErr.Error(), "dataset")
	})
	t.Run("drill", func(t *testing.T) {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(&activities.Activities{})
		env.ExecuteWorkflow(RestoreDrillWorkflow, DrillInput{Dataset: "orders", Target: "s3"})
		appErr := applicationError(t, env.GetWorkflowError())
		assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
		assert.Contains(t, appErr.Error(), "target")
	})
}

func TestRestoreDrillWorkflow(t *testing.T) {
	tests := []struct {
		name     string
		took     time.Duration
		dataAsOf time.Time
		wantRPO  float64
		wantRTO  float64
		wantMet  bool
	}{
		{"both met", 20 * time.Minute, t0.Add(-5 * time.Minute), 300, 1200, true},
		{"slow restore misses RTO", 90 * time.Minute, t0.Add(-5 * time.Minute), 300, 5400, false},
		{"stale point misses RPO", time.Minute, t0.Add(-2 * time.Hour), 7200, 60, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, sa := newEnv(t)
			env.OnActivity(a.Plan, mock.Anything, activities.PlanInput{Dataset: "orders", Location: "eu-secondary"}).
				Return(func() activities.PlanResult {
					p := testPlan
					p.Location, p.Region = "eu-secondary", "eu-central-1"
					return p
				}(), nil).Once()
			env.OnActivity(a.Drill, mock.Anything, activities.DrillActivityInput{Dataset: "orders", Point: RestorePointLatest,
				Location: "eu-secondary", Target: DrillTargetDir}).After(tt.took).
				Return(activities.DrillActivityResult{Point: testPoint, DataAsOf: tt.dataAsOf, Location: "eu-secondary",
					Verified: true, Bytes: 1234, Entries: 3}, nil).Once()
			var queue string
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				if info.ActivityType.Name == "Drill" {
					queue = info.TaskQueue
				}
			})

			env.ExecuteWorkflow(RestoreDrillWorkflow, DrillInput{Dataset: "orders", Location: "eu-secondary"})
			require.NoError(t, env.GetWorkflowError())
			var res DrillResult
			require.NoError(t, env.GetWorkflowResult(&res))

			assert.Equal(t, "drflow-eu-central-1", queue)
			assert.Equal(t, testPoint, res.RestorePoint)
			assert.Equal(t, "eu-secondary", res.Location)
			assert.Equal(t, DrillTargetDir, res.Target)
			assert.True(t, res.Verified)
			assert.Equal(t, int64(1234), res.BytesRestored)
			assert.InDelta(t, tt.wantRPO, res.RPOSeconds, 1)
			assert.InDelta(t, tt.wantRTO, res.RTOSeconds, 1)
			// The audit trail gets the same figures, signed, for evidence packs.
			require.Len(t, sa.audited, 1)
			rec := sa.audited[0]
			assert.Equal(t, activities.RunDrill, rec.Kind)
			assert.Equal(t, "eu-secondary", rec.Location)
			assert.Equal(t, testPoint, rec.Point)
			assert.True(t, rec.Verified)
			assert.InDelta(t, tt.wantRPO, rec.RPO.Seconds(), 1)
			assert.InDelta(t, tt.wantRTO, rec.RTO.Seconds(), 1)
			assert.Equal(t, testPlan.RTO, rec.RTOObjective)
			assert.Equal(t, 900.0, res.RPOObjectiveSeconds)
			assert.Equal(t, 3600.0, res.RTOObjectiveSeconds)
			assert.Equal(t, tt.wantMet, res.ObjectivesMet())
			assert.WithinDuration(t, t0, res.StartedAt, time.Second)
			assert.InDelta(t, tt.wantRTO, res.FinishedAt.Sub(res.StartedAt).Seconds(), 1)
			assert.NotEmpty(t, res.WorkflowID)

			assert.Equal(t, "orders", sa.dataset)
			assert.Equal(t, KindDrill, sa.kind)
			assert.Equal(t, int64(1), sa.tier)
			assert.True(t, sa.hasRPO)
			assert.True(t, sa.hasRTO)
			assert.InDelta(t, tt.wantRPO, sa.rpo, 1)
			assert.InDelta(t, tt.wantRTO, sa.rto, 1)
			assert.Equal(t, tt.wantMet, sa.met)
		})
	}
}

func TestRestoreDrillWorkflowRetriesThenSucceeds(t *testing.T) {
	env, sa := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
	env.OnActivity(a.Drill, mock.Anything, mock.Anything).Return(activities.DrillActivityResult{}, errors.New("worker lost")).Once()
	env.OnActivity(a.Drill, mock.Anything, mock.Anything).
		Return(activities.DrillActivityResult{Point: testPoint, DataAsOf: t0, Verified: true}, nil).Once()
	env.ExecuteWorkflow(RestoreDrillWorkflow, DrillInput{Dataset: "orders"})
	require.NoError(t, env.GetWorkflowError())
	var res DrillResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.True(t, res.Verified)
	assert.True(t, sa.met)
	// The retry's backoff counts against the RTO: it is part of the recovery.
	assert.Positive(t, res.RTOSeconds)
}

func TestRestoreDrillWorkflowNonRetryableFailure(t *testing.T) {
	for _, typ := range []string{activities.ErrTypeKeyRevoked, activities.ErrTypeIntegrityFailure, activities.ErrTypeNotFound} {
		t.Run(typ, func(t *testing.T) {
			env, sa := newEnv(t)
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(testPlan, nil)
			env.OnActivity(a.Drill, mock.Anything, mock.Anything).
				Return(activities.DrillActivityResult{}, temporal.NewNonRetryableApplicationError("nope", typ, nil)).Once()
			env.ExecuteWorkflow(RestoreDrillWorkflow, DrillInput{Dataset: "orders"})
			assert.Equal(t, typ, applicationError(t, env.GetWorkflowError()).Type())
			assert.Equal(t, KindDrill, sa.kind)
			assert.True(t, sa.hasMet)
			assert.False(t, sa.met)
			assert.False(t, sa.hasRTO, "a failed drill reports no RTO")
		})
	}
}

func TestPlanFailureIsNotRetriedWhenNonRetryable(t *testing.T) {
	env, _ := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).
		Return(activities.PlanResult{}, temporal.NewNonRetryableApplicationError("dataset not configured", activities.ErrTypeNotFound, nil)).Once()
	env.ExecuteWorkflow(RestoreDrillWorkflow, DrillInput{Dataset: "orders"})
	assert.Equal(t, activities.ErrTypeNotFound, applicationError(t, env.GetWorkflowError()).Type())
}

func TestActivityProgressConvertsToProgress(t *testing.T) {
	// Heartbeat details of the data activities decode into Progress.
	got := Progress(activities.Progress{Phase: "restore", BytesDone: 1, BytesTotal: 2, ETASeconds: 3})
	assert.Equal(t, Progress{Phase: "restore", BytesDone: 1, BytesTotal: 2, ETASeconds: 3}, got)
}

func TestNonRetryableTypesIncludeInvalidInput(t *testing.T) {
	assert.Contains(t, activities.NonRetryableErrorTypes(), ErrTypeInvalidInput)
	assert.Equal(t, ErrTypeInvalidInput, activities.ErrTypeInvalidInput)
	assert.Equal(t, RestorePointLatest, activities.PointLatest)
	assert.Equal(t, RestorePointRandom, activities.PointRandom)
	assert.Equal(t, DrillTargetDir, activities.TargetDir)
	assert.Equal(t, DrillTargetPostgres, activities.TargetPostgres)
}
