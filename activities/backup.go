package activities

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/sources"
)

// BackupActivityInput backs up one dataset into its primary location.
type BackupActivityInput struct {
	Dataset string `json:"dataset"`
	// RunID names the backup's checkpoint: a retry with the same RunID resumes the
	// interrupted attempt. Workflows pass an ID that is the same for every attempt.
	RunID string `json:"run_id"`
	// ForceReread reads every file, also those unchanged since the previous restore point.
	ForceReread bool `json:"force_reread,omitempty"`
}

// BackupActivityResult describes the new restore point and the one before it.
type BackupActivityResult struct {
	Point         string    `json:"point"`
	DataAsOf      time.Time `json:"data_as_of"`
	Location      string    `json:"location"`
	BytesRead     int64     `json:"bytes_read"`
	BytesUploaded int64     `json:"bytes_uploaded"`
	ChunksNew     int64     `json:"chunks_new"`
	ChunksReused  int64     `json:"chunks_reused"`
	Entries       int64     `json:"entries"`
	Problems      int64     `json:"problems"` // entries the source could not read
	// Resumed reports that this attempt continued an interrupted one's checkpoint;
	// BytesSkipped is what it took from the checkpoint without reading it again.
	Resumed      bool  `json:"resumed"`
	BytesSkipped int64 `json:"bytes_skipped"`
	// FilesUnchanged and BytesUnchanged are the files not read again because they had not
	// changed since the previous restore point.
	FilesUnchanged int64 `json:"files_unchanged,omitempty"`
	BytesUnchanged int64 `json:"bytes_unchanged,omitempty"`
	// PreviousPoint is the newest restore point on the primary before this backup; empty
	// for the first. PreviousDataAsOf is its data_as_of, from which the backup's RPO
	// exposure is measured.
	PreviousPoint    string    `json:"previous_point,omitempty"`
	PreviousDataAsOf time.Time `json:"previous_data_as_of"`
}

// Backup writes a new restore point of a dataset to its primary location.
func (a *Activities) Backup(ctx context.Context, in BackupActivityInput) (BackupActivityResult, error) {
	if in.RunID == "" {
		return BackupActivityResult{}, nonRetryable(ErrTypeInvalidInput, "backup of %q: run_id is required", in.Dataset)
	}
	ds, loc, err := a.lookup(in.Dataset, "")
	if err != nil {
		return BackupActivityResult{}, err
	}
	r, err := a.repo(ds, loc)
	if err != nil {
		return BackupActivityResult{}, err
	}
	log := a.logger().With(zap.String("dataset", ds.Name), zap.String("location", loc.Name))

	var res BackupActivityResult
	res.Location = loc.Name
	points, err := r.Points(ctx)
	if err != nil {
		return res, classify(err)
	}
	if n := len(points); n > 0 {
		res.PreviousPoint, res.PreviousDataAsOf = points[n-1].ID, points[n-1].DataAsOf
	}

	src, err := a.source(ds)
	if err != nil {
		return res, err
	}
	hb := a.newHeartbeater(ctx)
	out, err := r.Backup(ctx, src, repo.BackupOptions{
		RunID:       in.RunID,
		Progress:    hb.report,
		Actor:       actor(ctx),
		Description: string(ds.Source.Type) + " source of dataset " + ds.Name,
		ForceReread: in.ForceReread,
	})
	if err != nil {
		log.Warn("backup failed", zap.String("class", errorClass(err)))
		return res, classify(err)
	}
	// A resumed run whose point was finished earlier may name the previous point as itself.
	if res.PreviousPoint == out.Point.ID {
		res.PreviousPoint, res.PreviousDataAsOf = "", time.Time{}
		if n := len(points); n > 1 {
			res.PreviousPoint, res.PreviousDataAsOf = points[n-2].ID, points[n-2].DataAsOf
		}
	}
	res.Point, res.DataAsOf = out.Point.ID, out.Point.DataAsOf
	// A point written while an ongoing legal hold is active is held from the start.
	if err := a.propagateHolds(ctx, ds, loc.Name, out.Point); err != nil {
		return res, err
	}
	res.BytesRead, res.BytesUploaded = out.BytesRead, out.BytesUploaded
	res.ChunksNew, res.ChunksReused = out.ChunksNew, out.ChunksReused
	res.Entries, res.Problems, res.Resumed, res.BytesSkipped = out.Entries, out.ProblemCount, out.Resumed, out.BytesSkipped
	res.FilesUnchanged, res.BytesUnchanged = out.FilesUnchanged, out.BytesUnchanged
	log.Info("backup done", zap.String("point", res.Point), zap.Int64("entries", res.Entries),
		zap.Int64("bytes_read", res.BytesRead), zap.Int64("files_unchanged", res.FilesUnchanged), zap.Int64("bytes_uploaded", res.BytesUploaded),
		zap.Int64("problems", res.Problems), zap.Bool("resumed", res.Resumed))
	return res, nil
}

// repo opens the repository of ds in loc with the data keys of the dataset's home.
func (a *Activities) repo(ds config.Dataset, loc config.Location) (*repo.Repo, error) {
	st := a.Stores[loc.Name]
	if st == nil {
		return nil, nonRetryable(ErrTypeNotServed, "this worker has no store for location %s (region %s)", loc.Name, loc.Region)
	}
	pol, ok := a.Config.Policy(ds.Policy)
	if !ok {
		return nil, nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
	}
	mgr := a.Keys[pol.Home]
	if mgr == nil {
		return nil, nonRetryable(ErrTypeNotServed, "this worker holds no key of jurisdiction %s, home of dataset %s", pol.Home, ds.Name)
	}
	if a.Audit == nil {
		return nil, nonRetryable(ErrTypeNotServed, "this worker has no audit log")
	}
	r, err := repo.Open(repo.Options{Store: st, Dataset: ds.Name, Keys: mgr, Audit: a.Audit, Logger: a.logger(),
		CheckpointEvery: a.CheckpointEvery})
	if err != nil {
		return nil, classify(err)
	}
	return r, nil
}

// source builds the source of ds from configuration.
func (a *Activities) source(ds config.Dataset) (sources.Source, error) {
	switch ds.Source.Type {
	case config.SourceDirectory:
		return sources.NewDirectory(ds.Source.Path), nil
	case config.SourcePostgres:
		dsn := ds.Source.DSN
		if ds.Source.DSNEnv != "" {
			dsn = os.Getenv(ds.Source.DSNEnv)
			if dsn == "" {
				return nil, nonRetryable(ErrTypeInvalidInput, "dataset %s: environment variable %s (dsn_env) is empty or unset", ds.Name, ds.Source.DSNEnv)
			}
		}
		return sources.NewPostgres(dsn, sources.PostgresOptions{}), nil
	case config.SourceObjects:
		st := a.Stores[ds.Source.Location]
		if st == nil {
			return nil, nonRetryable(ErrTypeNotServed, "dataset %s: this worker has no store for source location %s", ds.Name, ds.Source.Location)
		}
		return sources.NewObjects(st, ds.Source.Prefix), nil
	default:
		return nil, nonRetryable(ErrTypeInvalidInput, "dataset %s: unknown source type %q", ds.Name, ds.Source.Type)
	}
}

// actor names the workflow run for audit events.
func actor(ctx context.Context) string {
	if !activity.IsActivity(ctx) {
		return "drflow worker"
	}
	info := activity.GetInfo(ctx)
	return fmt.Sprintf("workflow %s", info.WorkflowExecution.ID)
}

// errorClass names an error for logs without its message, which may name files: the
// application error type it already carries, else its class in repo's table.
func errorClass(err error) string {
	if t := appType(err); t != "" {
		return t
	}
	return repo.ClassifyError(err).Name
}
