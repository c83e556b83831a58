// Package schedules turns a drflow configuration into the Temporal Schedules that run each
// dataset's backups, restore drills and retention, and reconciles a namespace with them:
// create what is missing, update what drifted, delete what the configuration no longer has,
// and never touch a schedule that drflow did not create.
//
// The rules that derive a schedule from a dataset's tier live in Plan and are pure, so they
// can be read and tested without a server:
//
//	kind       interval      overlap                        catch-up window       jitter
//	backup     backup_every  tier 1 BufferOne, others Skip  backup_every          backup_every/20, at most 1m
//	drill      drill_every   Skip                           drill_every, ≤ 1 day  drill_every/20, at most 10m
//	retention  1 day         Skip                           1 day                 10m
//
// A catch-up window equal to the interval means that after any outage of the Temporal
// server exactly one missed run starts at once, never a burst. Every catch-up window is at
// least 10s, the server's minimum.
package schedules

import (
	"fmt"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/labels"
	"github.com/drflow/drflow/workflows"
)

// Workflow type names the schedules start. They are the names the worker registers
// (the function names); the retention workflow is referenced by name only.
const (
	BackupWorkflowType    = "BackupWorkflow"
	DrillWorkflowType     = "RestoreDrillWorkflow"
	RetentionWorkflowType = "RetentionWorkflow"
)

// Tuning of the derived schedules; see the package documentation.
const (
	// RetentionEvery is how often each dataset's retention runs. Pruning is not urgent:
	// keep_last and the other rules are lower bounds, so a day's extra restore points only
	// cost storage.
	RetentionEvery = 24 * time.Hour

	// MinCatchupWindow is the shortest catch-up window the Temporal server accepts.
	MinCatchupWindow = 10 * time.Second

	maxBackupJitter    = time.Minute
	maxDrillJitter     = 10 * time.Minute
	retentionJitter    = 10 * time.Minute
	maxDrillCatchup    = 24 * time.Hour
	jitterDivisor      = 20
	bufferOneTierLevel = 1
)

// Schedule is one schedule drflow wants in the namespace.
type Schedule struct {
	ID      string
	Dataset string
	// Label names the dataset in the schedule's ID, its runs' IDs and their search
	// attributes: its name, or a keyed hash of it (search_attributes: hashed).
	Label string
	Kind  string // workflows.KindBackup, KindDrill or KindRetention
	Tier  int    // level of the dataset's tier, 1 to 3

	Every          time.Duration
	Jitter         time.Duration
	Overlap        enumspb.ScheduleOverlapPolicy
	CatchupWindow  time.Duration
	PauseOnFailure bool

	WorkflowType string
	// WorkflowID is the action's workflow ID; the server appends the scheduled time to it.
	WorkflowID string
	TaskQueue  string
	Input      any
}

// Plan returns the schedules cfg asks for: a backup, a drill and a retention schedule per
// dataset, sorted by ID. The schedule IDs equal the actions' workflow IDs
// ("drflow-backup-orders"); the server appends the scheduled time to the latter, so runs
// never take the schedule's name.
func Plan(cfg *config.Config) ([]Schedule, error) {
	lab, err := labels.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("plan schedules: %w", err)
	}
	var out []Schedule
	for _, ds := range cfg.Datasets {
		tier, ok := cfg.Tier(ds.Tier)
		if !ok {
			// Load validates every reference; only a Config built by hand gets here.
			return nil, fmt.Errorf("plan schedules: dataset %s has unknown tier %q", ds.Name, ds.Tier)
		}
		label := lab.Dataset(ds.Name)
		out = append(out, backupSchedule(ds.Name, label, tier), drillSchedule(ds.Name, label, tier), retentionSchedule(ds.Name, label, tier))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// newSchedule returns the schedule of kind for dataset that starts workflowType with input on
// the control queue, with workflowID (the schedule's ID too), skipping overlaps.
func newSchedule(kind, dataset, label string, tier config.Tier, workflowID, workflowType string, input any) Schedule {
	return Schedule{
		ID:           workflowID,
		Dataset:      dataset,
		Label:        label,
		Kind:         kind,
		Tier:         tier.Level,
		Overlap:      enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		WorkflowType: workflowType,
		WorkflowID:   workflowID,
		TaskQueue:    workflows.ControlTaskQueue,
		Input:        input,
	}
}

func backupSchedule(dataset, label string, tier config.Tier) Schedule {
	s := newSchedule(workflows.KindBackup, dataset, label, tier, workflows.BackupWorkflowID(label), BackupWorkflowType,
		workflows.BackupInput{Dataset: dataset})
	s.Every = tier.BackupEvery
	s.Jitter = min(tier.BackupEvery/jitterDivisor, maxBackupJitter)
	if tier.Level <= bufferOneTierLevel {
		// Tier 1's RPO is minutes: a run that comes due while the previous one still runs
		// starts right after it rather than a whole interval later.
		s.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
	}
	s.CatchupWindow = max(tier.BackupEvery, MinCatchupWindow)
	// A failed backup must not silence the next one: that would turn one failure into an
	// ever-growing RPO.
	s.PauseOnFailure = false
	return s
}

func drillSchedule(dataset, label string, tier config.Tier) Schedule {
	// Scheduled drills pick any restore point, so older points are exercised too. Overlaps
	// are skipped: one drill of a dataset at a time.
	s := newSchedule(workflows.KindDrill, dataset, label, tier, workflows.DrillWorkflowID(label), DrillWorkflowType,
		workflows.DrillInput{Dataset: dataset, RestorePoint: workflows.RestorePointRandom})
	s.Every = tier.DrillEvery
	s.Jitter = min(tier.DrillEvery/jitterDivisor, maxDrillJitter)
	// A drill missed by more than a day waits for its next slot rather than start while the
	// system recovers from a long outage.
	s.CatchupWindow = max(min(tier.DrillEvery, maxDrillCatchup), MinCatchupWindow)
	// A failed drill is a finding, recorded in its search attributes; the next one still runs.
	s.PauseOnFailure = false
	return s
}

func retentionSchedule(dataset, label string, tier config.Tier) Schedule {
	s := newSchedule(workflows.KindRetention, dataset, label, tier, workflows.RetentionWorkflowID(label), RetentionWorkflowType,
		workflows.RetentionInput{Dataset: dataset})
	s.Every = RetentionEvery
	s.Jitter = retentionJitter
	s.CatchupWindow = RetentionEvery
	// Retention deletes: when it fails, it stops until a person has looked, rather than retry
	// a destructive job every day.
	s.PauseOnFailure = true
	return s
}
