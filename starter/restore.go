package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/targets"
)

// restoreReport is the output of restore.
type restoreReport struct {
	Dataset  string    `json:"dataset"`
	Point    string    `json:"point"`
	DataAsOf time.Time `json:"data_as_of"`
	Location string    `json:"location"`
	// TargetKind is "directory" or "postgres"; Target the directory, or the database's name.
	TargetKind string `json:"target_kind"`
	Target     string `json:"target"`
	Files      int64  `json:"files"`
	Entries    int64  `json:"entries"`
	Bytes      int64  `json:"bytes"`
	Chunks     int64  `json:"chunks"`
	// BytesRead counts the sealed bytes read from the store.
	BytesRead       int64   `json:"bytes_read"`
	DurationSeconds float64 `json:"duration_seconds"`
	// ThroughputMBps is Bytes (10^6 bytes) per second of Duration.
	ThroughputMBps float64 `json:"throughput_mbps"`
	// Validation says what the target checked: files written, or row counts for PostgreSQL.
	Validation string `json:"validation"`
}

func restoreCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "restore")
	f := addDataFlags(fs)
	point := fs.String("point", "", `restore point: "latest" or a restore point ID (see drflow points DATASET); required`)
	to := fs.String("to", "", "where to restore: a new or empty directory, or for a PostgreSQL dataset a DSN naming a database that does not exist yet (postgres://user@host:5432/restored); required")
	adminDB := fs.String("admin-database", "postgres", "with a DSN: the database to connect to while creating the target database")
	fs.Usage = dataUsage(fs, "drflow restore DATASET --point ID|latest --to PATH|DSN [flags]",
		`Restores a restore point of DATASET. Directory and object-prefix datasets restore into a
directory that is new or empty: drflow never writes over existing data, and a non-empty
directory is refused before anything is read. A PostgreSQL dataset restores into a new
database on the server of a DSN, created from template0 and checked against the backup's row
counts; into a directory it restores its dump (database.dump, for pg_restore). Every chunk is
authenticated and every file's hash checked before it reaches the target; if anything fails,
what the restore wrote is removed and drflow exits 1 naming the chunk and pack. Prints bytes,
files, duration and throughput. The restore is audited.`)
	dataset, err := parseFlagsWithDataset(fs, args)
	if err != nil {
		return err
	}
	if *point == "" {
		return fmt.Errorf("%w: --point is required: %q or a restore point ID (see drflow points %s)", errUsage, pointLatest, dataset)
	}
	if err := checkPointFlag(*point); err != nil {
		return err
	}
	if *to == "" {
		return fmt.Errorf("%w: --to is required: a new or empty directory, or a PostgreSQL DSN for a PostgreSQL dataset", errUsage)
	}
	ref, err := resolveDataset(f, dataset)
	if err != nil {
		return err
	}
	target, err := targets.New(ctx, ref.ds, *to, *adminDB)
	if errors.Is(err, targets.ErrUsage) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	var rep *restoreReport
	err = ref.with(ctx, e, func(o *openedRepo) (err error) {
		rep, err = o.restore(ctx, *point, target)
		return err
	})
	if err != nil {
		return err
	}
	if *f.asJSON {
		return printJSON(e, rep)
	}
	fmt.Fprintf(e.stdout, "restored %s of %s (data as of %s) from %s into %s\n", rep.Point, rep.Dataset,
		rep.DataAsOf.UTC().Format(time.RFC3339), rep.Location, target.Describe())
	fmt.Fprintf(e.stdout, "  %d files, %d bytes in %.2fs (%.1f MB/s)\n", rep.Files, rep.Bytes, rep.DurationSeconds, rep.ThroughputMBps)
	fmt.Fprintf(e.stdout, "  verified: every chunk authenticated, every file hash checked; %s\n", rep.Validation)
	return nil
}

// restore writes the point want into target and verifies it; on failure target is discarded.
func (o *openedRepo) restore(ctx context.Context, want string, target targets.Target) (*restoreReport, error) {
	p, err := o.pick(ctx, want)
	if err != nil {
		return nil, err
	}
	h, err := o.repo.Manifest(ctx, p.ID)
	if err != nil {
		return nil, dataError("read restore point "+p.ID, err)
	}
	sink, err := target.Create(ctx)
	if err != nil {
		return nil, err
	}
	res, err := o.repo.Restore(ctx, p.ID, sink, repo.RestoreOptions{Actor: cliActor()})
	if err == nil && !res.Validation.OK() {
		err = fmt.Errorf("restore of %s of %s did not validate: %d mismatches: %s", p.ID, o.ds.Name,
			len(res.Validation.Mismatches), strings.Join(res.Validation.Mismatches, "; "))
	}
	if err != nil {
		err = dataError(fmt.Sprintf("restore %s of %s", p.ID, o.ds.Name), err)
		if c, ok := sink.(io.Closer); ok {
			_ = c.Close()
		}
		if derr := target.Discard(context.WithoutCancel(ctx)); derr != nil {
			return nil, fmt.Errorf("%w (and the partial restore in %s could not be removed: %v)", err, target.Describe(), derr)
		}
		return nil, fmt.Errorf("%w (the partial restore was removed from %s)", err, target.Describe())
	}
	if err := target.Keep(ctx); err != nil {
		return nil, err
	}
	rep := &restoreReport{
		Dataset: o.ds.Name, Point: p.ID, DataAsOf: p.DataAsOf, Location: o.loc.Name,
		Files: h.Totals.Files, Entries: res.Entries, Bytes: res.Bytes, Chunks: res.Chunks, BytesRead: res.BytesRead,
		DurationSeconds: res.Duration.Seconds(), Validation: res.Validation.Checked,
	}
	if s := res.Duration.Seconds(); s > 0 {
		rep.ThroughputMBps = float64(res.Bytes) / 1e6 / s
	}
	rep.TargetKind, rep.Target = target.Kind(), target.Name()
	return rep, nil
}
