package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
)

// RetentionWorkflow applies the retention rules of a dataset's tier on its primary location:
// restore points the rules do not keep are deleted, except those under legal hold or
// retention lock (reported as held), then a garbage collection condemns the packs no point
// needs and deletes those condemned by an earlier run once their grace period has passed.
// So the space of a pruned point is freed by the retention run after the one that pruned it.
// Backups running meanwhile are safe: see internal/repo, "Retention and garbage collection".
func RetentionWorkflow(ctx workflow.Context, in RetentionInput) (RetentionResult, error) {
	if err := in.Validate(); err != nil {
		return RetentionResult{}, invalidInput(err)
	}
	log := workflow.GetLogger(ctx)
	prog, err := newProgress(ctx)
	if err != nil {
		return RetentionResult{}, err
	}

	var plan activities.PlanResult
	if err := workflow.ExecuteActivity(controlActivities(ctx), a.Plan, activities.PlanInput{Dataset: in.Dataset}).Get(ctx, &plan); err != nil {
		return RetentionResult{}, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SearchAttrDataset.ValueSet(in.Dataset),
		SearchAttrTier.ValueSet(int64(plan.TierLevel)),
		SearchAttrKind.ValueSet(KindRetention),
	); err != nil {
		return RetentionResult{}, err
	}

	prog.phase("retention")
	var out activities.RetentionActivityResult
	err = workflow.ExecuteActivity(dataActivities(ctx, plan.Region), a.Retention,
		activities.RetentionActivityInput{Dataset: in.Dataset}).Get(ctx, &out)
	if err != nil {
		return RetentionResult{}, err
	}

	res := RetentionResult{
		Dataset:         in.Dataset,
		Kept:            nonNil(out.Kept),
		Pruned:          nonNil(out.Pruned),
		Held:            []string{},
		ChunksCollected: out.ChunksCollected,
		BytesFreed:      out.BytesFreed,
	}
	for _, h := range out.Held {
		res.Held = append(res.Held, h.Point)
	}
	prog.done(out.BytesFreed)
	log.Info("retention done", "dataset", in.Dataset, "location", out.Location, "kept", len(res.Kept),
		"pruned", len(res.Pruned), "held", len(res.Held), "packs_condemned", out.PacksCondemned,
		"packs_waiting", out.PacksWaiting, "packs_deleted", out.PacksDeleted, "bytes_freed", out.BytesFreed,
		"unreferenced_bytes", out.UnreferencedBytes)
	return res, nil
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
