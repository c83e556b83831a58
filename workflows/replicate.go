package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
)

// ReplicateWorkflow copies one restore point of a dataset from its primary to one location,
// in the mode the dataset's residency policy allows there.
//
// The policy is checked twice (defence in depth): PlanReplication decides and audits
// it before the copy is scheduled, and a denial fails the workflow with a non-retryable
// PolicyDenied error without scheduling anything; the Replicate activity decides again from
// its own configuration before the first byte moves.
func ReplicateWorkflow(ctx workflow.Context, in ReplicateInput) (ReplicaResult, error) {
	if err := in.Validate(); err != nil {
		return ReplicaResult{}, invalidInput(err)
	}
	log := workflow.GetLogger(ctx)
	prog, err := newProgress(ctx)
	if err != nil {
		return ReplicaResult{}, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SearchAttrDataset.ValueSet(in.label()),
		SearchAttrKind.ValueSet(KindReplicate),
	); err != nil {
		return ReplicaResult{}, err
	}

	var plan activities.ReplicationPlan
	err = workflow.ExecuteActivity(controlActivities(ctx), a.PlanReplication,
		activities.ReplicationPlanInput{Dataset: in.Dataset, Location: in.Location}).Get(ctx, &plan)
	if err != nil {
		return ReplicaResult{}, err
	}
	if plan.Denied() {
		log.Warn("replication denied by residency policy", "dataset", in.Dataset, "location", in.Location,
			"jurisdiction", plan.DestJurisdiction)
		return ReplicaResult{}, temporal.NewNonRetryableApplicationError(plan.DenialMessage(), activities.ErrTypePolicyDenied, nil)
	}

	prog.phase("copy")
	var out activities.ReplicateActivityResult
	err = workflow.ExecuteActivity(dataActivities(ctx, plan.SourceRegion), a.Replicate, activities.ReplicateActivityInput{
		Dataset: in.Dataset, Point: in.RestorePoint, Location: plan.Destination, Mode: plan.Mode, LegalBasis: plan.Mechanism,
	}).Get(ctx, &out)
	if err != nil {
		return ReplicaResult{}, err
	}
	res := ReplicaResult{
		Location:      out.Location,
		Jurisdiction:  out.Jurisdiction,
		Mode:          config.CopyMode(out.Mode),
		ObjectsCopied: out.ObjectsCopied,
		BytesCopied:   out.BytesCopied,
	}
	prog.done(out.BytesCopied)
	log.Info("replication done", "dataset", in.Dataset, "point", in.RestorePoint, "location", res.Location,
		"mode", res.Mode, "bytes_copied", res.BytesCopied)
	return res, nil
}
