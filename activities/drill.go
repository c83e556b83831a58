package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/sources"
)

// Values of DrillActivityInput.Point and Target; the same as the workflows package's.
const (
	PointLatest    = "latest"
	PointRandom    = "random"
	TargetDir      = "dir"
	TargetPostgres = "postgres"
)

// cleanupTimeout bounds removing a drill target after the activity was cancelled.
const cleanupTimeout = 2 * time.Minute

// DrillActivityInput restores one restore point into a scratch target and verifies it.
type DrillActivityInput struct {
	Dataset string `json:"dataset"`
	// Point is PointLatest, PointRandom or a restore point ID.
	Point string `json:"point"`
	// Location to restore from; empty for the dataset's primary.
	Location string `json:"location,omitempty"`
	// Target is TargetDir or TargetPostgres.
	Target string `json:"target"`
}

// DrillActivityResult describes a verified restore. The target has been removed.
type DrillActivityResult struct {
	Point    string    `json:"point"`
	DataAsOf time.Time `json:"data_as_of"`
	Location string    `json:"location"`
	Verified bool      `json:"verified"`
	// Bytes is the plaintext restored; Entries the entries restored.
	Bytes      int64 `json:"bytes"`
	Entries    int64 `json:"entries"`
	Mismatches int   `json:"mismatches"`
	// RestoredAt is the worker's clock when verification passed (informational: workflows
	// measure RTO with workflow.Now).
	RestoredAt time.Time `json:"restored_at"`
}

// Drill restores a restore point into a fresh scratch target (a directory under
// ScratchDir, or a scratch PostgreSQL database), and succeeds only if the restore is
// verified: every chunk authenticated and checked against its ID, every file's hash checked,
// and the sink's validation (row counts for PostgreSQL) passed. The target is always
// removed, whether the drill succeeds, fails or is cancelled.
func (a *Activities) Drill(ctx context.Context, in DrillActivityInput) (DrillActivityResult, error) {
	if in.Point == "" {
		in.Point = PointLatest
	}
	if in.Target == "" {
		in.Target = TargetDir
	}
	if in.Target != TargetDir && in.Target != TargetPostgres {
		return DrillActivityResult{}, nonRetryable(ErrTypeInvalidInput, "drill of %q: unknown target %q", in.Dataset, in.Target)
	}
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return DrillActivityResult{}, err
	}
	// A drill writes plaintext where the copy is: from an encrypted copy or a copy outside
	// the home jurisdiction it is refused, and audited, as a restore is.
	if err := a.checkPlaintextRestore(ctx, ds, loc); err != nil {
		return DrillActivityResult{}, err
	}
	r, err := a.repo(ds, loc)
	if err != nil {
		return DrillActivityResult{}, err
	}
	log := a.logger().With(zap.String("dataset", ds.Name), zap.String("location", loc.Name), zap.String("target", in.Target))

	point, err := a.pickPoint(ctx, r, in.Point)
	if err != nil {
		return DrillActivityResult{}, err
	}
	log = log.With(zap.String("point", point.ID))

	sink, cleanup, err := a.drillTarget(ctx, in.Target)
	if err != nil {
		return DrillActivityResult{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if cerr := cleanup(cctx); cerr != nil {
			// The scratch target is the worker's, not customer data; its name is safe to log.
			log.Error("drill target not removed", zap.Error(cerr))
		}
	}()

	hb := a.newHeartbeater(ctx)
	res, err := r.Restore(ctx, point.ID, sink, repo.RestoreOptions{Progress: hb.report, Actor: actor(ctx)})
	out := DrillActivityResult{Point: point.ID, DataAsOf: point.DataAsOf, Location: loc.Name, Bytes: res.Bytes,
		Entries: res.Entries, Mismatches: len(res.Validation.Mismatches)}
	if err != nil {
		log.Warn("drill restore failed", zap.String("class", errorClass(err)))
		return out, classify(err)
	}
	if !res.Validation.OK() {
		log.Warn("drill restore did not validate", zap.Int("mismatches", out.Mismatches))
		return out, nonRetryable(ErrTypeVerificationFailed, "restore of %s of %s did not validate: %d mismatches",
			point.ID, ds.Name, out.Mismatches)
	}
	out.Verified, out.RestoredAt = true, now()
	log.Info("drill restore verified", zap.Int64("entries", out.Entries), zap.Int64("bytes", out.Bytes))
	return out, nil
}

// pickPoint resolves latest, random or an ID to one of the repository's restore points.
func (a *Activities) pickPoint(ctx context.Context, r *repo.Repo, want string) (repo.PointInfo, error) {
	if want != PointLatest && want != PointRandom {
		if _, err := repo.ParsePointID(want); err != nil {
			return repo.PointInfo{}, nonRetryable(ErrTypeInvalidInput, "restore point %q is not %q, %q or a restore point ID", want, PointLatest, PointRandom)
		}
	}
	points, err := r.Points(ctx)
	if err != nil {
		return repo.PointInfo{}, classify(err)
	}
	if len(points) == 0 {
		return repo.PointInfo{}, nonRetryable(ErrTypeNotFound, "dataset %s has no restore point in %s", r.Dataset(), r.Store().Location().Name)
	}
	switch want {
	case PointLatest:
		return points[len(points)-1], nil
	case PointRandom:
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(points))))
		if err != nil {
			return repo.PointInfo{}, fmt.Errorf("pick a random restore point: %w", err)
		}
		return points[n.Int64()], nil
	}
	for _, p := range points {
		if p.ID == want {
			return p, nil
		}
	}
	return repo.PointInfo{}, nonRetryable(ErrTypeNotFound, "dataset %s has no restore point %s in %s", r.Dataset(), want, r.Store().Location().Name)
}

// drillTarget creates a fresh, empty restore target and returns the function that removes it.
func (a *Activities) drillTarget(ctx context.Context, target string) (sources.Sink, func(context.Context) error, error) {
	suffix, err := randomSuffix()
	if err != nil {
		return nil, nil, err
	}
	switch target {
	case TargetPostgres:
		if a.PostgresAdminDSN == "" {
			return nil, nil, nonRetryable(ErrTypeNotServed, "this worker has no PostgreSQL admin DSN for drill databases")
		}
		sink, err := sources.NewPostgresSink(ctx, a.PostgresAdminDSN, "drflow_drill_"+suffix, sources.PostgresSinkOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("drill target: %w", err)
		}
		return sink, sink.DropScratch, nil
	default:
		if a.ScratchDir == "" {
			return nil, nil, nonRetryable(ErrTypeNotServed, "this worker has no scratch directory for drills")
		}
		if err := os.MkdirAll(a.ScratchDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("drill target: %w", err)
		}
		dir, err := os.MkdirTemp(a.ScratchDir, "drill-"+suffix+"-")
		if err != nil {
			return nil, nil, fmt.Errorf("drill target: %w", err)
		}
		cleanup := func(context.Context) error { return os.RemoveAll(dir) }
		sink, err := sources.NewDirectorySink(dir)
		if err != nil {
			_ = cleanup(ctx)
			return nil, nil, fmt.Errorf("drill target: %w", err)
		}
		return sink, func(c context.Context) error {
			_ = sink.Close() // releases directory handles if Finish did not run
			return cleanup(c)
		}, nil
	}
}

func randomSuffix() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
