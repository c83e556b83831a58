package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
)

// RetentionWorkflow applies the retention rules of a dataset's tier on its primary location,
// then on each of its replicas in turn: restore points the rules do not keep are deleted,
// except those under legal hold or retention lock (reported as held), then a garbage
// collection condemns the packs no point needs and deletes those condemned by an earlier run
// once their grace period has passed. So the space of a pruned point is freed by the
// retention run after the one that pruned it. A metadata-only replica has its catalog
// entries pruned by the same rules. Backups and copies running meanwhile are safe: see
// internal/repo, "Retention and garbage collection" and "Copy". Every location is handled
// on the primary region's queue, whose worker holds the replicas' stores and the data key.
func RetentionWorkflow(ctx workflow.Context, in RetentionInput) (RetentionResult, error) {
	if err := in.Validate(); err != nil {
		return RetentionResult{}, invalidInput(err)
	}
	log := workflow.GetLogger(ctx)
	run, err := startDatasetRun(ctx, KindRetention, activities.PlanInput{Dataset: in.Dataset})
	if err != nil {
		return RetentionResult{}, err
	}
	plan, prog := run.plan, run.prog

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
		Held:            heldPoints(out.Held),
		ChunksCollected: out.ChunksCollected,
		BytesFreed:      out.BytesFreed,
	}
	log.Info("retention done", "dataset", in.Dataset, "location", out.Location, "kept", len(res.Kept),
		"pruned", len(res.Pruned), "held", len(res.Held), "packs_condemned", out.PacksCondemned,
		"packs_waiting", out.PacksWaiting, "packs_deleted", out.PacksDeleted, "bytes_freed", out.BytesFreed,
		"unreferenced_bytes", out.UnreferencedBytes)

	freed := out.BytesFreed
	// Runs started before replicas were collected end here.
	if workflow.GetVersion(ctx, retentionReplicasChange, workflow.DefaultVersion, 1) == 1 {
		for _, loc := range plan.Replicas {
			prog.phase("retention " + loc)
			var ro activities.RetentionActivityResult
			err := workflow.ExecuteActivity(dataActivities(ctx, plan.Region), a.Retention,
				activities.RetentionActivityInput{Dataset: in.Dataset, Location: loc}).Get(ctx, &ro)
			if err != nil {
				return res, err
			}
			res.Replicas = append(res.Replicas, ReplicaRetention{
				Location: ro.Location, Mode: ro.Mode, Kept: nonNil(ro.Kept), Pruned: nonNil(ro.Pruned), Held: heldPoints(ro.Held),
				PacksCondemned: ro.PacksCondemned, BytesFreed: ro.BytesFreed,
			})
			freed += ro.BytesFreed
			log.Info("replica retention done", "dataset", in.Dataset, "location", ro.Location, "mode", ro.Mode,
				"kept", len(ro.Kept), "pruned", len(ro.Pruned), "held", len(ro.Held), "packs_condemned", ro.PacksCondemned,
				"packs_deleted", ro.PacksDeleted, "bytes_freed", ro.BytesFreed)
		}
	}
	prog.done(freed)
	return res, nil
}

// retentionReplicasChange is the GetVersion change ID of retention at replicas.
const retentionReplicasChange = "retention-replicas"

func heldPoints(held []activities.HeldPoint) []string {
	out := []string{}
	for _, h := range held {
		out = append(out, h.Point)
	}
	return out
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
