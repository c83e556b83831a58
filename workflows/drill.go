package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
)

// RestoreDrillWorkflow restores a restore point into a scratch target on a worker of the
// location's region, verifies it, and measures what a real incident at the drill's start
// would have cost: RTO = workflow.Now once verified - drill start, RPO = drill start -
// data_as_of of the point restored (DrillFigures). The scratch target is removed by the
// activity whatever happens.
//
// A failed drill fails the workflow, with DrObjectivesMet set to false first, so that
// "DrKind = 'drill' AND DrObjectivesMet = false" finds failed drills as well as slow ones.
func RestoreDrillWorkflow(ctx workflow.Context, in DrillInput) (DrillResult, error) {
	if err := in.Validate(); err != nil {
		return DrillResult{}, invalidInput(err)
	}
	in = in.WithDefaults()
	start := workflow.Now(ctx)
	log := workflow.GetLogger(ctx)
	run, err := startDatasetRun(ctx, KindDrill, activities.PlanInput{Dataset: in.Dataset, Location: in.Location})
	if err != nil {
		return DrillResult{}, err
	}
	plan, obj, prog := run.plan, run.obj, run.prog

	prog.phase("restore")
	var out activities.DrillActivityResult
	// A cancelled drill waits for the activity to remove its scratch target: the run ends
	// only once nothing of the restore is left behind.
	actx := workflow.WithWaitForCancellation(dataActivities(ctx, plan.Region), true)
	err = workflow.ExecuteActivity(actx, a.Drill, activities.DrillActivityInput{
		Dataset: in.Dataset, Point: in.RestorePoint, Location: plan.Location, Target: in.Target,
	}).Get(ctx, &out)
	if err != nil {
		return DrillResult{}, run.failed(err)
	}

	finished := workflow.Now(ctx)
	m := DrillFigures(start, finished, out.DataAsOf, obj)
	if m.ClockSkew > 0 {
		log.Warn("restore point lies after the drill's start; RPO clamped", "skew", m.ClockSkew)
	}
	res := DrillResult{
		Dataset:             in.Dataset,
		Tier:                obj.Tier,
		RestorePoint:        out.Point,
		DataAsOf:            out.DataAsOf,
		Location:            plan.Location,
		Target:              in.Target,
		StartedAt:           start,
		FinishedAt:          finished,
		RPOSeconds:          m.RPO.Seconds(),
		RTOSeconds:          m.RTO.Seconds(),
		RPOObjectiveSeconds: obj.RPO.Seconds(),
		RTOObjectiveSeconds: obj.RTO.Seconds(),
		RPOMet:              m.RPOMet,
		// An unverified restore recovered nothing.
		RTOMet:        m.RTOMet && out.Verified,
		Verified:      out.Verified,
		BytesRestored: out.Bytes,
		WorkflowID:    workflow.GetInfo(ctx).WorkflowExecution.ID,
	}
	err = run.audit(activities.AuditRunInput{Kind: activities.RunDrill, Point: out.Point, RPO: m.RPO, RTO: m.RTO,
		Bytes: out.Bytes, Verified: out.Verified})
	if err != nil {
		return DrillResult{}, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SearchAttrRPOSeconds.ValueSet(res.RPOSeconds),
		SearchAttrRTOSeconds.ValueSet(res.RTOSeconds),
		SearchAttrObjectivesMet.ValueSet(res.ObjectivesMet()),
	); err != nil {
		return res, err
	}
	gauges(ctx, in.Dataset, KindDrill, map[string]float64{
		MetricDrillRPOSeconds: res.RPOSeconds,
		MetricDrillRTOSeconds: res.RTOSeconds,
		MetricObjectivesMet:   boolGauge(res.ObjectivesMet()),
	})
	prog.details(drillDetails(res))
	prog.done(out.Bytes)
	log.Info("drill done", "dataset", in.Dataset, "point", res.RestorePoint, "rpo_seconds", res.RPOSeconds,
		"rto_seconds", res.RTOSeconds, "verified", res.Verified, "objectives_met", res.ObjectivesMet())
	return res, nil
}
