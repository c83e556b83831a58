package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/providers"
)

// ReplicationPlanInput names a restore point's dataset and the location it should be copied
// to.
type ReplicationPlanInput struct {
	Dataset  string `json:"dataset"`
	Location string `json:"location"` // destination
}

// ReplicationPlan is the routing of a replication and what the dataset's residency policy
// allows at the destination, read from configuration, which workflows cannot read.
type ReplicationPlan struct {
	Dataset string `json:"dataset"`
	// Source is the dataset's primary location; SourceRegion its region, whose task queue
	// runs the copy (the home worker reads the primary).
	Source       string `json:"source"`
	SourceRegion string `json:"source_region"`
	Destination  string `json:"destination"`
	DestRegion   string `json:"dest_region"`
	// DestJurisdiction is where Destination lies; Home the policy's home jurisdiction.
	DestJurisdiction string `json:"dest_jurisdiction"`
	Home             string `json:"home"`
	// Mode is full, encrypted, metadata or denied (config.CopyMode values).
	Mode string `json:"mode"`
	// Mechanism is the legal basis of a transfer out of Home; empty at home.
	Mechanism string `json:"mechanism,omitempty"`
	// Rule says in words why the policy decided so.
	Rule string `json:"rule"`
}

// Denied reports whether the policy allows nothing at the destination.
func (p ReplicationPlan) Denied() bool { return p.Mode == string(config.CopyDenied) }

// DenialMessage describes a denied plan, naming the dataset, the destination, its
// jurisdiction and the rule.
func (p ReplicationPlan) DenialMessage() string {
	return denialMessage(p.Dataset, p.Destination, p.DestJurisdiction, p.Rule)
}

func denialMessage(dataset, dest, jur, rule string) string {
	return fmt.Sprintf("replication of dataset %s to location %s (jurisdiction %s) is denied by its residency policy: %s",
		dataset, dest, jur, rule)
}

// PlanReplication runs on the control task queue: it evaluates the dataset's residency policy
// for the destination's jurisdiction and audits the decision, allowed or denied. A denial is
// not an error here: the workflow turns it into a non-retryable PolicyDenied failure without
// scheduling the copy.
func (a *Activities) PlanReplication(ctx context.Context, in ReplicationPlanInput) (ReplicationPlan, error) {
	ds, src, dst, pol, err := a.replicationTarget(in.Dataset, in.Location)
	if err != nil {
		return ReplicationPlan{}, err
	}
	if a.Audit == nil {
		return ReplicationPlan{}, nonRetryable(ErrTypeNotServed, "this worker has no audit log to record policy decisions")
	}
	mode, mech, rule, _ := pol.Decide(dst.Jurisdiction)
	plan := ReplicationPlan{
		Dataset: ds.Name, Source: src.Name, SourceRegion: src.Region,
		Destination: dst.Name, DestRegion: dst.Region, DestJurisdiction: dst.Jurisdiction, Home: pol.Home,
		Mode: string(mode), Mechanism: string(mech), Rule: rule,
	}
	if err := a.recordDecision(ctx, ds, src, dst, mode, mech, rule); err != nil {
		return ReplicationPlan{}, err
	}
	a.logger().Info("replication planned", zap.String("dataset", ds.Name), zap.String("destination", dst.Name),
		zap.String("destination_jurisdiction", dst.Jurisdiction), zap.String("mode", plan.Mode))
	return plan, nil
}

// ReplicateActivityInput copies one restore point of a dataset from its primary to Location,
// in the Mode (and under the LegalBasis) that PlanReplication found.
type ReplicateActivityInput struct {
	Dataset  string `json:"dataset"`
	Point    string `json:"point"`
	Location string `json:"location"`
	// Mode is full, encrypted or metadata.
	Mode       string `json:"mode"`
	LegalBasis string `json:"legal_basis,omitempty"`
}

// ReplicateActivityResult describes one copy of a restore point.
type ReplicateActivityResult struct {
	Location       string `json:"location"`
	Jurisdiction   string `json:"jurisdiction"`
	Mode           string `json:"mode"`
	ObjectsCopied  int64  `json:"objects_copied"`
	ObjectsSkipped int64  `json:"objects_skipped"`
	BytesCopied    int64  `json:"bytes_copied"`
	ManifestHash   string `json:"manifest_hash,omitempty"`
}

// Replicate runs on the task queue of the dataset's primary region: it reads the primary
// and writes the destination store, which this worker must also hold.
//
// It decides the residency policy again from its own configuration before the first byte
// moves (defence in depth against a tampered or stale plan, or a policy changed since):
// a denial, or a mode or legal basis other than the one planned, is audited and fails with
// a non-retryable PolicyDenied error, and nothing is written. Full and encrypted copies move
// ciphertext and wrapped data keys only (repo.Copy); metadata copies write the catalog entry
// only (repo.CopyMetadata).
//
//nolint:gocyclo // the policy check, the copy and the hold extension, each audited on failure
func (a *Activities) Replicate(ctx context.Context, in ReplicateActivityInput) (ReplicateActivityResult, error) {
	if _, err := repo.ParsePointID(in.Point); err != nil {
		return ReplicateActivityResult{}, nonRetryable(ErrTypeInvalidInput, "replicate %q: restore point %q is not a restore point ID", in.Dataset, in.Point)
	}
	ds, src, dst, pol, err := a.replicationTarget(in.Dataset, in.Location)
	if err != nil {
		return ReplicateActivityResult{}, err
	}
	if a.Audit == nil {
		return ReplicateActivityResult{}, nonRetryable(ErrTypeNotServed, "this worker has no audit log")
	}
	res := ReplicateActivityResult{Location: dst.Name, Jurisdiction: dst.Jurisdiction, Mode: in.Mode}

	mode, mech, rule, ok := pol.Decide(dst.Jurisdiction)
	if !ok || string(mode) != in.Mode || string(mech) != in.LegalBasis {
		if ok {
			rule = fmt.Sprintf("the copy was planned as %s (legal basis %q), but %s", in.Mode, in.LegalBasis, rule)
		}
		if err := a.recordDecision(ctx, ds, src, dst, config.CopyDenied, "", rule); err != nil {
			return res, err
		}
		return res, temporal.NewNonRetryableApplicationError(denialMessage(ds.Name, dst.Name, dst.Jurisdiction, rule), ErrTypePolicyDenied, nil)
	}

	srcStore, dstStore := a.Stores[src.Name], a.Stores[dst.Name]
	if srcStore == nil {
		return res, nonRetryable(ErrTypeNotServed, "this worker has no store for source location %s (region %s)", src.Name, src.Region)
	}
	if dstStore == nil {
		return res, nonRetryable(ErrTypeNotServed, "this worker has no store for destination location %s (region %s)", dst.Name, dst.Region)
	}
	log := a.logger().With(zap.String("dataset", ds.Name), zap.String("point", in.Point),
		zap.String("destination", dst.Name), zap.String("mode", in.Mode))

	opts := repo.CopyOptions{
		Mode: in.Mode, LegalBasis: in.LegalBasis, Actor: actor(ctx), Audit: a.Audit, Logger: a.logger(),
		SourceLocation: src.Name, SourceJurisdiction: src.Jurisdiction,
		DestLocation: dst.Name, DestJurisdiction: dst.Jurisdiction,
	}
	// The kill switch: while the dataset's KEK is revoked, no copy of its data moves.
	if err := a.checkKey(ctx, ds, srcStore); err != nil {
		return res, err
	}
	stop := heartbeatWhile(ctx, Progress{Phase: "copy", BytesTotal: -1, ETASeconds: -1})
	defer stop()

	switch mode {
	case config.CopyFull, config.CopyEncrypted:
		out, err := repo.Copy(ctx, srcStore, dstStore, ds.Name, in.Point, opts)
		if err != nil {
			log.Warn("replication failed", zap.String("class", errorClass(err)))
			return res, classify(err)
		}
		res.ObjectsCopied, res.ObjectsSkipped, res.BytesCopied = out.ObjectsCopied, out.ObjectsSkipped, out.BytesCopied
		res.ManifestHash = out.ManifestHash
	case config.CopyMetadata:
		r, err := a.repo(ds, src)
		if err != nil {
			return res, err
		}
		ce, err := repo.CopyMetadata(ctx, r, dstStore, in.Point, opts)
		if err != nil {
			log.Warn("metadata replication failed", zap.String("class", errorClass(err)))
			return res, classify(err)
		}
		res.ObjectsCopied, res.ManifestHash = 1, ce.ManifestSHA256
	default:
		// Decide returned a mode this activity does not know: refuse rather than guess.
		return res, nonRetryable(ErrTypePolicyDenied, "replication of dataset %s to location %s: unknown copy mode %q", ds.Name, dst.Name, mode)
	}
	// Holds on the point (and ongoing ones) cover the new copy too.
	if err := a.propagateHolds(ctx, ds, dst.Name, repo.PointInfo{ID: in.Point, DataAsOf: pointTime(in.Point)}); err != nil {
		return res, err
	}
	log.Info("replication done", zap.Int64("objects_copied", res.ObjectsCopied),
		zap.Int64("objects_skipped", res.ObjectsSkipped), zap.Int64("bytes_copied", res.BytesCopied))
	return res, nil
}

// replicationTarget resolves a dataset, its primary, a destination location (any configured
// location other than the primary: the policy, not the replica list, decides what may go
// there) and the dataset's policy.
func (a *Activities) replicationTarget(dataset, location string) (config.Dataset, config.Location, config.Location, config.Policy, error) {
	var (
		dst config.Location
		pol config.Policy
	)
	ds, src, err := a.lookup(dataset, "")
	if err != nil {
		return ds, src, dst, pol, err
	}
	if location == "" {
		return ds, src, dst, pol, nonRetryable(ErrTypeInvalidInput, "replication of dataset %s: no destination location", ds.Name)
	}
	if location == ds.Primary {
		return ds, src, dst, pol, nonRetryable(ErrTypeInvalidInput, "replication of dataset %s: location %s is its primary", ds.Name, location)
	}
	dst, ok := a.Config.Location(location)
	if !ok {
		return ds, src, dst, pol, nonRetryable(ErrTypeNotFound, "location %q is not configured", location)
	}
	pol, ok = a.Config.Policy(ds.Policy)
	if !ok {
		return ds, src, dst, pol, nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
	}
	return ds, src, dst, pol, nil
}

// recordDecision audits a residency decision about copying ds from src to dst. A denial's
// reason names the dataset, the destination, its jurisdiction and the rule. An unaudited decision fails closed: the error is
// retryable, so a later attempt records it before anything moves.
func (a *Activities) recordDecision(ctx context.Context, ds config.Dataset, src, dst config.Location,
	mode config.CopyMode, mech config.Mechanism, rule string) error {
	ev := audit.Event{
		Kind: audit.KindPolicy, Outcome: audit.OutcomeOK, Actor: actor(ctx), Dataset: ds.Name,
		Location: src.Name, Jurisdiction: src.Jurisdiction,
		Destination: dst.Name, DestJurisdiction: dst.Jurisdiction,
		LegalBasis: string(mech), Reason: rule,
	}
	if mode == config.CopyDenied {
		ev.Outcome = audit.OutcomeDenied
		ev.Reason = denialMessage(ds.Name, dst.Name, dst.Jurisdiction, rule)
	} else {
		ev.CopyMode = string(mode)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := a.Audit.Record(actx, ev); err != nil {
		return fmt.Errorf("audit policy decision on dataset %s for %s: %w", ds.Name, dst.Name, err)
	}
	if mode == config.CopyDenied {
		a.logger().Warn("replication denied by residency policy", zap.String("dataset", ds.Name),
			zap.String("destination", dst.Name), zap.String("destination_jurisdiction", dst.Jurisdiction))
	}
	return nil
}

// heartbeatWhile heartbeats p until the returned stop is called, for activities whose work
// reports no progress of its own. Outside an activity it does nothing.
func heartbeatWhile(ctx context.Context, p Progress) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	every := 10 * time.Second
	if t := activity.GetInfo(ctx).HeartbeatTimeout; t > 0 && t/3 < every {
		every = max(t/3, 100*time.Millisecond)
	}
	activity.RecordHeartbeat(ctx, p)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx, p)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// checkKey fails closed (KeyRevoked, KeyDestroyed) unless the dataset's current data key
// unwraps: a copy moves only ciphertext, but a revoked KEK means nobody may move the data.
func (a *Activities) checkKey(ctx context.Context, ds config.Dataset, st providers.Store) error {
	pol, ok := a.Config.Policy(ds.Policy)
	if !ok {
		return nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
	}
	mgr := a.Keys[pol.Home]
	if mgr == nil {
		return nonRetryable(ErrTypeNotServed, "this worker holds no key of jurisdiction %s, home of dataset %s", pol.Home, ds.Name)
	}
	if _, err := mgr.Current(ctx, st, ds.Name); err != nil {
		return classify(err)
	}
	return nil
}

// pointTime is the data_as_of a point ID encodes (zero if it encodes none).
func pointTime(id string) time.Time {
	t, _ := repo.ParsePointID(id)
	return t
}
