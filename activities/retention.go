package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
)

// RetentionActivityInput prunes one dataset on one of its locations and collects its garbage
// there.
type RetentionActivityInput struct {
	Dataset string `json:"dataset"`
	// Location is the primary (empty) or one of the dataset's replicas.
	Location string `json:"location,omitempty"`
}

// HeldPoint is a restore point that retention would prune but a hold keeps.
type HeldPoint struct {
	Point  string `json:"point"`
	Reason string `json:"reason"` // e.g. "legal hold"
}

// RetentionActivityResult is what Retention kept, pruned and freed. Points are restore point
// IDs, oldest first.
type RetentionActivityResult struct {
	Location string `json:"location"`
	// Mode is what the residency policy allows at a replica (full, encrypted or metadata:
	// only catalog entries are pruned there, nothing is collected); empty at the primary.
	Mode   string      `json:"mode,omitempty"`
	Kept   []string    `json:"kept"`
	Pruned []string    `json:"pruned"`
	Held   []HeldPoint `json:"held"`
	// The garbage collection: packs newly condemned, waiting for their grace period (or for
	// a backup that started before they were condemned), and deleted.
	PacksCondemned  int   `json:"packs_condemned"`
	PacksWaiting    int   `json:"packs_waiting"`
	PacksDeleted    int   `json:"packs_deleted"`
	ChunksCollected int64 `json:"chunks_collected"`
	BytesFreed      int64 `json:"bytes_freed"`
	// UnreferencedBytes sit in packs that also hold live chunks: only a repack frees them.
	UnreferencedBytes  int64 `json:"unreferenced_bytes"`
	CheckpointsDeleted int   `json:"checkpoints_deleted"`
}

// RetentionProgress is the heartbeat detail of Retention: the phase ("prune" or "gc") and how
// many of its objects (restore points to prune; manifests, checkpoints and packs to examine)
// are done.
type RetentionProgress struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// Retention applies the retention rules of the dataset's tier on its primary location or on
// one of its replicas: it deletes the restore points the rules do not keep, except those
// under legal hold or retention lock, then runs a garbage collection that condemns the packs
// no point needs and deletes those condemned by an earlier run (see internal/repo,
// "Retention and garbage collection"; copies into a replica hold leases as backups do). At a
// metadata-only replica it prunes the catalog entries by the same rules. The mode of a
// replica is decided by the dataset's residency policy for its jurisdiction, as Replicate
// decides it. It runs on the task queue of the primary's region, whose worker holds the
// replicas' stores and the data key.
//
//nolint:gocyclo // prune then GC, each step audited and logged on failure
func (a *Activities) Retention(ctx context.Context, in RetentionActivityInput) (RetentionActivityResult, error) {
	var out RetentionActivityResult
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return out, err
	}
	tier, ok := a.Config.Tier(ds.Tier)
	if !ok {
		return out, nonRetryable(ErrTypeNotFound, "dataset %s: tier %q is not configured", ds.Name, ds.Tier)
	}
	policy := repo.RetentionPolicy{KeepLast: tier.Retention.KeepLast, KeepDaily: tier.Retention.KeepDaily,
		KeepWeekly: tier.Retention.KeepWeekly, KeepMonthly: tier.Retention.KeepMonthly}
	if err := policy.Validate(); err != nil {
		return out, nonRetryable(ErrTypeInvalidInput, "tier %s of dataset %s: %v", tier.Name, ds.Name, err)
	}
	out.Location = loc.Name
	if loc.Name != ds.Primary {
		pol, ok := a.Config.Policy(ds.Policy)
		if !ok {
			return out, nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
		}
		mode, _, rule, ok := pol.Decide(loc.Jurisdiction)
		if !ok || mode == config.CopyDenied {
			return out, nonRetryable(ErrTypeInvalidInput, "retention of dataset %s at location %s: its residency policy allows no copy there (%s)",
				ds.Name, loc.Name, rule)
		}
		out.Mode = string(mode)
	}
	log := a.logger().With(zap.String("dataset", ds.Name), zap.String("location", loc.Name))
	heartbeat := func(p repo.Progress) {
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, RetentionProgress{Phase: p.Phase, Done: p.EntriesDone, Total: p.EntriesTotal})
		}
	}

	var pr repo.PruneResult
	var r *repo.Repo
	if out.Mode == string(config.CopyMetadata) {
		st := a.Stores[loc.Name]
		if st == nil {
			return out, nonRetryable(ErrTypeNotServed, "this worker has no store for location %s (region %s)", loc.Name, loc.Region)
		}
		if a.Audit == nil {
			return out, nonRetryable(ErrTypeNotServed, "this worker has no audit log")
		}
		heartbeat(repo.Progress{Phase: repo.PhasePrune})
		pr, err = repo.PruneCatalog(ctx, st, ds.Name, policy, repo.CatalogPruneOptions{Actor: actor(ctx), Audit: a.Audit, Logger: log})
	} else {
		if r, err = a.repo(ds, loc); err != nil {
			return out, err
		}
		pr, err = r.Prune(ctx, policy, repo.PruneOptions{Actor: actor(ctx), Progress: heartbeat})
	}
	if err != nil {
		log.Warn("prune failed", zap.String("class", errorClass(err)))
		return out, classify(err)
	}
	out.Kept, out.Pruned, out.Held = []string{}, []string{}, []HeldPoint{}
	for _, p := range pr.Kept {
		out.Kept = append(out.Kept, p.ID)
	}
	for _, p := range pr.Pruned {
		out.Pruned = append(out.Pruned, p.ID)
	}
	for _, h := range pr.Held {
		out.Held = append(out.Held, HeldPoint{Point: h.ID, Reason: h.Reason})
	}
	if r == nil {
		log.Info("catalog retention done", zap.Int("kept", len(out.Kept)), zap.Int("pruned", len(out.Pruned)),
			zap.Int("held", len(out.Held)))
		return out, nil
	}

	gr, err := r.GC(ctx, repo.GCOptions{Actor: actor(ctx), Grace: a.GCGrace, Progress: heartbeat, Run: gcRun(ctx)})
	if err != nil {
		log.Warn("garbage collection failed", zap.String("class", errorClass(err)), zap.Int("pruned", len(out.Pruned)))
		return out, classify(err)
	}
	out.PacksCondemned, out.PacksWaiting, out.PacksDeleted = gr.PacksCondemned, gr.PacksWaiting, gr.PacksDeleted
	out.ChunksCollected, out.BytesFreed, out.UnreferencedBytes = gr.ChunksCollected, gr.BytesFreed, gr.UnreferencedBytes
	out.CheckpointsDeleted = gr.CheckpointsDeleted
	log.Info("retention done", zap.Int("kept", len(out.Kept)), zap.Int("pruned", len(out.Pruned)),
		zap.Int("held", len(out.Held)), zap.Int("packs_condemned", out.PacksCondemned),
		zap.Int("packs_waiting", out.PacksWaiting), zap.Int("packs_deleted", out.PacksDeleted),
		zap.Int64("bytes_freed", out.BytesFreed))
	return out, nil
}

// gcRun names a retention activity's garbage collection after the activity, the same for
// every attempt: a retry takes over the GC lease of the attempt it replaces.
func gcRun(ctx context.Context) string {
	if !activity.IsActivity(ctx) {
		return ""
	}
	info := activity.GetInfo(ctx)
	return "retention-" + info.WorkflowExecution.RunID + "-" + info.ActivityID
}
