package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/targets"
)

// RestoreToInput restores a restore point into a target on the worker: a new or empty
// directory, or a PostgreSQL DSN naming a database that does not exist yet.
type RestoreToInput struct {
	Dataset  string `json:"dataset"`
	Point    string `json:"point,omitempty"` // PointLatest (default) or an ID
	Location string `json:"location,omitempty"`
	To       string `json:"to"`
}

// RestoreToResult describes a verified restore that was kept in its target.
type RestoreToResult struct {
	Point      string    `json:"point"`
	DataAsOf   time.Time `json:"data_as_of"`
	Location   string    `json:"location"`
	TargetKind string    `json:"target_kind"`
	Bytes      int64     `json:"bytes"`
	Entries    int64     `json:"entries"`
}

// RestoreTo restores a point into a target that a person keeps (a failover or recovery
// target), verified as a drill's restore is; a failed restore removes what it wrote. It
// restores plaintext only from the primary or a full copy that the residency policy allows:
// a restore from a copy held abroad is refused and audited.
func (a *Activities) RestoreTo(ctx context.Context, in RestoreToInput) (RestoreToResult, error) {
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return RestoreToResult{}, err
	}
	if err := a.checkPlaintextRestore(ctx, ds, loc); err != nil {
		return RestoreToResult{}, err
	}
	target, err := targets.New(ctx, ds, in.To, "postgres")
	if err != nil {
		return RestoreToResult{}, nonRetryable(ErrTypeInvalidInput, "restore of %s: %v", ds.Name, err)
	}
	r, err := a.repo(ds, loc)
	if err != nil {
		return RestoreToResult{}, err
	}
	point, err := a.pickPoint(ctx, r, defaultPoint(in.Point))
	if err != nil {
		return RestoreToResult{}, err
	}
	sink, err := target.Create(ctx)
	if err != nil {
		return RestoreToResult{}, fmt.Errorf("restore of %s: create target: %w", ds.Name, err)
	}
	hb := a.newHeartbeater(ctx)
	res, err := r.Restore(ctx, point.ID, sink, repo.RestoreOptions{Progress: hb.report, Actor: actor(ctx)})
	if err == nil && !res.Validation.OK() {
		err = nonRetryable(ErrTypeVerificationFailed, "restore of %s of %s did not validate: %d mismatches", point.ID, ds.Name, len(res.Validation.Mismatches))
	}
	if err != nil {
		if c, ok := sink.(io.Closer); ok {
			_ = c.Close()
		}
		if derr := target.Discard(context.WithoutCancel(ctx)); derr != nil {
			a.logger().Error("partial restore not removed", zap.String("dataset", ds.Name), zap.Error(derr))
		}
		return RestoreToResult{}, classify(err)
	}
	if err := target.Keep(ctx); err != nil {
		return RestoreToResult{}, err
	}
	a.logger().Info("restore kept in target", zap.String("dataset", ds.Name), zap.String("point", point.ID),
		zap.String("location", loc.Name), zap.String("target_kind", target.Kind()), zap.Int64("bytes", res.Bytes))
	return RestoreToResult{Point: point.ID, DataAsOf: point.DataAsOf, Location: loc.Name, TargetKind: target.Kind(),
		Bytes: res.Bytes, Entries: res.Entries}, nil
}

// checkPlaintextRestore refuses to restore plaintext from a location where the residency
// policy does not allow full copies: the key would have to leave home, or the data land
// outside its jurisdiction. The refusal is audited.
func (a *Activities) checkPlaintextRestore(ctx context.Context, ds config.Dataset, loc config.Location) error {
	pol, ok := a.Config.Policy(ds.Policy)
	if !ok {
		return nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
	}
	mode, _, rule, _ := pol.Decide(loc.Jurisdiction)
	if loc.Name == ds.Primary || (mode == config.CopyFull && loc.Jurisdiction == pol.Home) {
		return nil
	}
	msg := fmt.Sprintf("plaintext restore of dataset %s from %s (%s) refused: %s; restore from a full copy inside %s",
		ds.Name, loc.Name, loc.Jurisdiction, rule, pol.Home)
	ev := audit.Event{Kind: audit.KindRestore, Outcome: audit.OutcomeDenied, Actor: actor(ctx), Dataset: ds.Name,
		Location: loc.Name, Jurisdiction: loc.Jurisdiction, Reason: msg}
	if a.Audit != nil {
		if err := a.Audit.Record(ctx, ev); err != nil {
			return err
		}
	}
	return nonRetryable(ErrTypePolicyDenied, "%s", msg)
}

func defaultPoint(p string) string {
	if p == "" {
		return PointLatest
	}
	return p
}

// VerifyPointInput verifies one restore point at one location.
type VerifyPointInput struct {
	Dataset  string `json:"dataset"`
	Point    string `json:"point,omitempty"`
	Location string `json:"location,omitempty"`
}

// VerifyPointResult is a clean verification.
type VerifyPointResult struct {
	Point    string    `json:"point"`
	DataAsOf time.Time `json:"data_as_of"`
	Verified bool      `json:"verified"`
	Chunks   int64     `json:"chunks"`
	Bytes    int64     `json:"bytes"`
}

// VerifyPoint authenticates and checks every chunk and file hash of a restore point. A point
// that fails is a non-retryable IntegrityFailure naming the first chunk and pack.
func (a *Activities) VerifyPoint(ctx context.Context, in VerifyPointInput) (VerifyPointResult, error) {
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return VerifyPointResult{}, err
	}
	r, err := a.repo(ds, loc)
	if err != nil {
		return VerifyPointResult{}, err
	}
	point, err := a.pickPoint(ctx, r, defaultPoint(in.Point))
	if err != nil {
		return VerifyPointResult{}, err
	}
	res, err := a.verify(ctx, r, point)
	if err != nil {
		return VerifyPointResult{}, err
	}
	return VerifyPointResult{Point: point.ID, DataAsOf: point.DataAsOf, Verified: true, Chunks: res.ChunksChecked, Bytes: res.BytesChecked}, nil
}

func (a *Activities) verify(ctx context.Context, r *repo.Repo, point repo.PointInfo) (repo.VerifyResult, error) {
	hb := a.newHeartbeater(ctx)
	res, err := r.Verify(ctx, point.ID, repo.VerifyOptions{Progress: hb.report, Actor: actor(ctx)})
	if err != nil {
		return res, classify(err)
	}
	if !res.OK() {
		return res, nonRetryable(ErrTypeIntegrityFailure, "restore point %s of %s at %s: %s (%d failures)", point.ID, r.Dataset(),
			r.Store().Location().Name, integrityMessage(res.Failures[0]), len(res.Failures))
	}
	return res, nil
}

// CleanPointInput searches a location for the newest restore point that verifies.
type CleanPointInput struct {
	Dataset  string `json:"dataset"`
	Location string `json:"location,omitempty"`
	// Max is how many points to try, newest first (0: defaultCleanPointMax).
	Max int `json:"max,omitempty"`
}

// CleanPointResult is the newest point that verified and the newer ones that did not.
type CleanPointResult struct {
	Point    string    `json:"point"`
	DataAsOf time.Time `json:"data_as_of"`
	Location string    `json:"location"`
	Checked  int       `json:"checked"`
	// Rejected lists "ID: reason" for each newer point that failed verification.
	Rejected []string `json:"rejected"`
}

const defaultCleanPointMax = 10

// FindCleanPoint verifies the newest restore points in turn and answers the first one that
// verifies clean: after ransomware or silent corruption, the newest point may carry the
// damage, and recovery needs the newest one that does not.
func (a *Activities) FindCleanPoint(ctx context.Context, in CleanPointInput) (CleanPointResult, error) {
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return CleanPointResult{}, err
	}
	r, err := a.repo(ds, loc)
	if err != nil {
		return CleanPointResult{}, err
	}
	points, err := r.Points(ctx)
	if err != nil {
		return CleanPointResult{}, classify(err)
	}
	limit := in.Max
	if limit <= 0 {
		limit = defaultCleanPointMax
	}
	out := CleanPointResult{Location: loc.Name, Rejected: []string{}}
	for i := len(points) - 1; i >= 0 && out.Checked < limit; i-- {
		p := points[i]
		out.Checked++
		_, err := a.verify(ctx, r, p)
		if err == nil {
			out.Point, out.DataAsOf = p.ID, p.DataAsOf
			a.logger().Info("clean restore point found", zap.String("dataset", ds.Name), zap.String("location", loc.Name),
				zap.String("point", p.ID), zap.Int("checked", out.Checked))
			return out, nil
		}
		if errors.Is(err, context.Canceled) || !isDamage(err) {
			return out, err
		}
		out.Rejected = append(out.Rejected, fmt.Sprintf("%s: %s", p.ID, appMessage(err)))
	}
	return out, nonRetryable(ErrTypeNotFound, "none of the newest %d restore points of %s at %s verifies clean (%v)",
		out.Checked, ds.Name, loc.Name, out.Rejected)
}

// isDamage tells a point that failed its checks from a failure to check it at all.
func isDamage(err error) bool {
	t := appType(err)
	return t == ErrTypeIntegrityFailure || t == ErrTypeVerificationFailed || t == ErrTypeUnsupportedFormat || t == ErrTypeNotFound
}

// PointExistsInput asks whether a dataset has a restore point at a location.
type PointExistsInput struct {
	Dataset  string    `json:"dataset"`
	Location string    `json:"location,omitempty"`
	After    time.Time `json:"after,omitzero"`
}

// PointExistsResult answers PointExists.
type PointExistsResult struct {
	OK    bool   `json:"ok"`
	Point string `json:"point,omitempty"`
}

// PointExists answers whether the location holds a restore point of the dataset whose
// data_as_of is after After (any point when zero), and the newest such point. It reads no
// manifest, so it needs no key.
func (a *Activities) PointExists(ctx context.Context, in PointExistsInput) (PointExistsResult, error) {
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return PointExistsResult{}, err
	}
	r, err := a.repo(ds, loc)
	if err != nil {
		return PointExistsResult{}, err
	}
	points, err := r.Points(ctx)
	if err != nil {
		return PointExistsResult{}, classify(err)
	}
	if n := len(points); n > 0 && points[n-1].DataAsOf.After(in.After) {
		return PointExistsResult{OK: true, Point: points[n-1].ID}, nil
	}
	return PointExistsResult{}, nil
}
