package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
)

// BackupWorkflow writes a new restore point of a dataset on its primary location and
// measures the RPO exposure it closed: workflow.Now once the point is durable minus the
// data_as_of of the newest point before it (BackupRPO).
//
// The point is then copied to the dataset's replicas (replicateAll). For a sync tier it
// counts as durable only once every replica holds it, so the copies are part of the RPO
// exposure; for an async tier it is durable once the primary holds it.
func BackupWorkflow(ctx workflow.Context, in BackupInput) (BackupResult, error) {
	if err := in.Validate(); err != nil {
		return BackupResult{}, invalidInput(err)
	}
	log := workflow.GetLogger(ctx)
	info := workflow.GetInfo(ctx)
	run, err := startDatasetRun(ctx, KindBackup, activities.PlanInput{Dataset: in.Dataset})
	if err != nil {
		return BackupResult{}, err
	}
	plan, obj, prog := run.plan, run.obj, run.prog

	prog.phase("backup")
	var out activities.BackupActivityResult
	// FirstRunID is the same for every activity attempt and every workflow retry of this
	// run, so a retried backup resumes the interrupted one's checkpoint.
	runID := info.FirstRunID
	if runID == "" {
		runID = info.WorkflowExecution.RunID
	}
	err = workflow.ExecuteActivity(dataActivities(ctx, plan.Region), a.Backup,
		activities.BackupActivityInput{Dataset: in.Dataset, RunID: runID, ForceReread: in.ForceReread}).Get(ctx, &out)
	if err != nil {
		return BackupResult{}, run.failed(err)
	}

	durable := workflow.Now(ctx)
	prog.phase("replicate")
	replicas, err := replicateAll(ctx, in.Dataset, out.Point, plan)
	if err != nil {
		return BackupResult{}, run.failed(err)
	}
	if plan.Replication == string(config.ReplicationSync) {
		durable = workflow.Now(ctx)
	}
	hasPrevious := out.PreviousPoint != ""
	exposure, known := BackupRPO(durable, out.PreviousDataAsOf, hasPrevious)
	if hasPrevious {
		if skew := ClockSkew(durable, out.PreviousDataAsOf); skew > 0 {
			log.Warn("previous restore point lies after the workflow clock; RPO clamped", "skew", skew)
		}
	}
	res := BackupResult{
		Dataset:             in.Dataset,
		Tier:                obj.Tier,
		RestorePoint:        out.Point,
		DataAsOf:            out.DataAsOf,
		PreviousPoint:       out.PreviousPoint,
		RPOSeconds:          exposure.Seconds(),
		RPOKnown:            known,
		RPOObjectiveSeconds: obj.RPO.Seconds(),
		RPOMet:              obj.RPOMet(exposure, known),
		BytesRead:           out.BytesRead,
		BytesUploaded:       out.BytesUploaded,
		ChunksNew:           out.ChunksNew,
		ChunksReused:        out.ChunksReused,
		Resumed:             out.Resumed,
		BytesSkipped:        out.BytesSkipped,
		FilesUnchanged:      out.FilesUnchanged,
		BytesUnchanged:      out.BytesUnchanged,
		Replication:         plan.Replication,
		Replicas:            replicas,
		WorkflowID:          info.WorkflowExecution.ID,
	}
	rec := activities.AuditRunInput{Kind: activities.RunBackup, Point: out.Point, Bytes: out.BytesUploaded}
	if known {
		rec.RPO = exposure
	}
	if err := run.audit(rec); err != nil {
		return BackupResult{}, err
	}
	updates := []temporal.SearchAttributeUpdate{SearchAttrObjectivesMet.ValueSet(res.ObjectivesMet())}
	if known {
		updates = append(updates, SearchAttrRPOSeconds.ValueSet(res.RPOSeconds))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		return res, err
	}
	figures := map[string]float64{MetricObjectivesMet: boolGauge(res.ObjectivesMet())}
	if known {
		figures[MetricBackupRPOSeconds] = res.RPOSeconds
	}
	gauges(ctx, in.Dataset, KindBackup, figures)
	prog.details(backupDetails(res))
	prog.done(out.BytesRead)
	log.Info("backup done", "dataset", in.Dataset, "point", res.RestorePoint, "rpo_seconds", res.RPOSeconds,
		"rpo_known", known, "rpo_met", res.RPOMet)
	return res, nil
}
