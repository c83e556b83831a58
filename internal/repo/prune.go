package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/providers"
)

// RetentionPolicy says which restore points survive pruning; a point is kept if any rule keeps
// it. Days, weeks (ISO 8601) and months are those of DataAsOf in UTC.
type RetentionPolicy struct {
	// KeepLast keeps the newest n points; at least 1, so that pruning never removes the
	// newest point.
	KeepLast int
	// KeepDaily keeps the newest point of each of the newest n days that have a point
	// (restic's semantics: days without a point do not count).
	KeepDaily int
	// KeepWeekly and KeepMonthly do the same for weeks and months.
	KeepWeekly  int
	KeepMonthly int
}

// Validate reports a policy that could prune every point or that makes no sense.
func (p RetentionPolicy) Validate() error {
	var errs []error
	if p.KeepLast < 1 {
		errs = append(errs, fmt.Errorf("%w: retention keep_last must be at least 1 (the newest restore point is always kept), got %d",
			providers.ErrInvalidArgument, p.KeepLast))
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"keep_daily", p.KeepDaily}, {"keep_weekly", p.KeepWeekly}, {"keep_monthly", p.KeepMonthly}} {
		if f.n < 0 {
			errs = append(errs, fmt.Errorf("%w: retention %s must not be negative, got %d", providers.ErrInvalidArgument, f.name, f.n))
		}
	}
	return errors.Join(errs...)
}

// KeptPoint is a restore point that retention keeps, with every rule that keeps it, such as
// "last 1", "daily 2025-01-02", "weekly 2025-W01", "monthly 2025-01".
type KeptPoint struct {
	PointInfo
	Reasons []string `json:"reasons"`
}

// SelectRetention applies p to points (in any order) and returns the points kept and those to
// prune, both oldest first. It reads nothing: holds are Prune's business.
func SelectRetention(points []PointInfo, p RetentionPolicy) (kept []KeptPoint, prune []PointInfo, err error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	sorted := append([]PointInfo(nil), points...)
	sortPoints(sorted)
	reasons := make([][]string, len(sorted))
	// Newest first.
	for n, i := 0, len(sorted)-1; i >= 0 && n < p.KeepLast; i, n = i-1, n+1 {
		reasons[i] = append(reasons[i], fmt.Sprintf("last %d", n+1))
	}
	buckets := []struct {
		rule string
		n    int
		key  func(time.Time) string
	}{
		{"daily", p.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.KeepWeekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
		{"monthly", p.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, b := range buckets {
		last, n := "", 0
		for i := len(sorted) - 1; i >= 0 && n < b.n; i-- {
			k := b.key(sorted[i].DataAsOf.UTC())
			if k == last {
				continue
			}
			last = k
			n++
			reasons[i] = append(reasons[i], b.rule+" "+k)
		}
	}
	for i, pt := range sorted {
		if len(reasons[i]) > 0 {
			kept = append(kept, KeptPoint{PointInfo: pt, Reasons: reasons[i]})
		} else {
			prune = append(prune, pt)
		}
	}
	return kept, prune, nil
}

// PruneOptions tune Prune.
type PruneOptions struct {
	// Actor is recorded in the audit events (a workflow ID, a user).
	Actor string
	// DryRun selects and checks holds but deletes nothing and audits nothing.
	DryRun bool
	// Progress, if set, is called after each point (Phase PhasePrune, EntriesDone/Total).
	Progress func(Progress)
}

// HeldPoint is a restore point that retention would prune but that a legal hold or an
// active retention lock protects.
type HeldPoint struct {
	ID       string    `json:"id"`
	DataAsOf time.Time `json:"data_as_of"`
	Reason   string    `json:"reason"`
}

// PruneResult is what Prune kept, deleted and could not delete.
type PruneResult struct {
	Kept   []KeptPoint
	Pruned []PointInfo
	Held   []HeldPoint
}

// PhasePrune and PhaseGC are the Progress phases of Prune and GC.
const (
	PhasePrune = "prune"
	PhaseGC    = "gc"
)

// PointObjectKey is the store key of a restore point's manifest: the object that a legal
// hold or retention lock protects to keep the point from being pruned.
func PointObjectKey(dataset, pointID string) string { return pointKey(dataset, pointID) }

// Prune deletes the manifests of the restore points that policy does not keep. A point that an
// active legal hold in the store's hold records covers or selects (internal/holds: drflow
// enforces these even where the store cannot), or whose manifest is under a legal hold or an
// active retention of the store (as Stat reports it, or as Delete refuses with
// providers.ErrImmutable), is kept and reported as held. Every deletion and every refusal is
// audited. The chunks of pruned points stay until GC collects them.
func (r *Repo) Prune(ctx context.Context, policy RetentionPolicy, opts PruneOptions) (PruneResult, error) {
	var res PruneResult
	points, err := r.Points(ctx)
	if err != nil {
		return res, err
	}
	kept, candidates, err := SelectRetention(points, policy)
	if err != nil {
		return res, fmt.Errorf("prune %s: %w", r.dataset, err)
	}
	res.Kept = kept
	var guard *holds.Guard
	if len(candidates) > 0 {
		// Once per run, after the points are chosen: a hold placed since is not seen, but
		// its placement finds the point either gone or still here, never half pruned.
		if guard, err = holds.Records(r.store, r.dataset).Guard(ctx); err != nil {
			return res, fmt.Errorf("prune %s: %w", r.dataset, err)
		}
	}
	progress := func(done int) {
		if opts.Progress != nil {
			opts.Progress(Progress{Phase: PhasePrune, BytesTotal: -1, EntriesDone: int64(done), EntriesTotal: int64(len(candidates))})
		}
	}
	progress(0)
	for i, pt := range candidates {
		out, reason, err := r.prunePoint(ctx, pt, guard, opts)
		if err != nil {
			return res, err
		}
		switch out {
		case pointHeld:
			res.Held = append(res.Held, HeldPoint{ID: pt.ID, DataAsOf: pt.DataAsOf, Reason: reason})
		case pointPruned:
			res.Pruned = append(res.Pruned, pt)
		}
		progress(i + 1)
	}
	r.log.Info("prune done", zap.Int("kept", len(res.Kept)), zap.Int("pruned", len(res.Pruned)),
		zap.Int("held", len(res.Held)), zap.Bool("dry_run", opts.DryRun))
	return res, nil
}

type pruneOutcome int

const (
	pointPruned pruneOutcome = iota
	pointHeld
	pointGone // deleted meanwhile by someone else
)

// prunePoint deletes one point's manifest unless it is held; for a held point it returns
// what holds it.
func (r *Repo) prunePoint(ctx context.Context, pt PointInfo, guard *holds.Guard, opts PruneOptions) (pruneOutcome, string, error) {
	key := pointKey(r.dataset, pt.ID)
	info, err := r.store.Stat(ctx, key)
	if isNotFound(err) {
		return pointGone, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("prune %s: stat restore point %s: %w", r.dataset, pt.ID, err)
	}
	reason := protection(pointHolds(guard, pt, key), info, r.now())
	if reason == "" && !opts.DryRun {
		err = r.store.Delete(ctx, key)
		switch {
		case errors.Is(err, providers.ErrImmutable):
			// A hold placed after the Stat, or one the store enforces without reporting it.
			reason = "the store refused deletion: " + providers.ErrImmutable.Error()
		case isNotFound(err):
			return pointGone, "", nil
		case err != nil:
			return 0, "", fmt.Errorf("prune %s: delete restore point %s: %w", r.dataset, pt.ID, err)
		}
	}
	out := pointPruned
	if reason != "" {
		out = pointHeld
		r.log.Info("restore point held; not pruned", zap.String("point", pt.ID), zap.String("reason", reason))
	}
	if opts.DryRun {
		return out, reason, nil
	}
	ev := audit.Event{Kind: audit.KindPrune, Outcome: audit.OutcomeOK, Actor: opts.Actor, Point: pt.ID,
		Bytes: info.Size, Reason: "not kept by the retention policy"}
	if out == pointHeld {
		ev.Outcome, ev.Reason = audit.OutcomeDenied, "kept: "+reason
	}
	if err := r.record(ctx, ev); err != nil {
		return 0, "", err
	}
	return out, reason, nil
}
