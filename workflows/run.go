package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
)

// datasetRun is what every workflow that works on one dataset starts with: its progress
// state (query and current details), its plan (routing and objectives, read from
// configuration by the Plan activity) and its search attributes. The workflows then read as
// the steps a person would name.
type datasetRun struct {
	ctx     workflow.Context
	dataset string
	kind    string
	plan    activities.PlanResult
	obj     Objectives
	prog    *progressState
}

// startDatasetRun plans a run of kind on in.Dataset (at in.Location, or its primary) and
// makes it findable by DrDataset, DrTier and DrKind.
func startDatasetRun(ctx workflow.Context, kind string, in activities.PlanInput) (*datasetRun, error) {
	prog, err := newProgress(ctx)
	if err != nil {
		return nil, err
	}
	r := &datasetRun{ctx: ctx, dataset: in.Dataset, kind: kind, prog: prog}
	if err := workflow.ExecuteActivity(controlActivities(ctx), a.Plan, in).Get(ctx, &r.plan); err != nil {
		return nil, err
	}
	r.obj = objectivesOf(r.plan)
	err = workflow.UpsertTypedSearchAttributes(ctx,
		SearchAttrDataset.ValueSet(labelOr(r.plan.Label, in.Dataset)),
		SearchAttrTier.ValueSet(int64(r.obj.Tier)),
		SearchAttrKind.ValueSet(kind),
	)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// failed marks the run as having missed its objectives (search attribute and metric), so
// that "DrObjectivesMet = false" finds failed runs as well as slow ones, and returns err.
func (r *datasetRun) failed(err error) error {
	_ = workflow.UpsertTypedSearchAttributes(r.ctx, SearchAttrObjectivesMet.ValueSet(false))
	gauges(r.ctx, r.dataset, r.kind, map[string]float64{MetricObjectivesMet: 0})
	return err
}

// audit records the run's outcome, with the tier's objectives, in the audit trail of the
// region of the run's location (activities.AuditRun), where evidence packs read it. A run
// that cannot be audited fails. Histories recorded before this step replay without it.
func (r *datasetRun) audit(in activities.AuditRunInput) error {
	if workflow.GetVersion(r.ctx, "audit-run", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	in.Dataset, in.Location, in.Tier = r.dataset, r.plan.Location, r.plan.Tier
	in.RPOObjective = r.obj.RPO
	if in.Kind == activities.RunDrill {
		in.RTOObjective = r.obj.RTO
	}
	return workflow.ExecuteActivity(dataActivities(r.ctx, r.plan.Region), a.AuditRun, in).Get(r.ctx, nil)
}
