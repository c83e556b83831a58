package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/sources"
)

// Kinds of restore target.
const (
	targetDirectory = "directory"
	targetPostgres  = "postgres"
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

// restoreTarget is where a restore writes: checked before anything is opened, created just
// before the restore, removed again if the restore fails.
type restoreTarget interface {
	describe() string
	create(ctx context.Context) (sources.Sink, error)
	// discard removes what the restore created; keep makes the result the user's.
	discard(ctx context.Context) error
	keep(ctx context.Context) error
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
	target, err := newRestoreTarget(ctx, ref.ds, *to, *adminDB)
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
		rep.DataAsOf.UTC().Format(time.RFC3339), rep.Location, target.describe())
	fmt.Fprintf(e.stdout, "  %d files, %d bytes in %.2fs (%.1f MB/s)\n", rep.Files, rep.Bytes, rep.DurationSeconds, rep.ThroughputMBps)
	fmt.Fprintf(e.stdout, "  verified: every chunk authenticated, every file hash checked; %s\n", rep.Validation)
	return nil
}

// restore writes the point want into target and verifies it; on failure target is discarded.
func (o *openedRepo) restore(ctx context.Context, want string, target restoreTarget) (*restoreReport, error) {
	p, err := o.pick(ctx, want)
	if err != nil {
		return nil, err
	}
	h, err := o.repo.Manifest(ctx, p.ID)
	if err != nil {
		return nil, dataError("read restore point "+p.ID, err)
	}
	sink, err := target.create(ctx)
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
		if derr := target.discard(context.WithoutCancel(ctx)); derr != nil {
			return nil, fmt.Errorf("%w (and the partial restore in %s could not be removed: %v)", err, target.describe(), derr)
		}
		return nil, fmt.Errorf("%w (the partial restore was removed from %s)", err, target.describe())
	}
	if err := target.keep(ctx); err != nil {
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
	switch t := target.(type) {
	case *dirTarget:
		rep.TargetKind, rep.Target = targetDirectory, t.path
	case *pgTarget:
		rep.TargetKind, rep.Target = targetPostgres, t.database
	}
	return rep, nil
}

// isDSN tells a PostgreSQL DSN (URL or keyword/value form) from a directory path.
func isDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") ||
		strings.Contains(s, "dbname=") || strings.Contains(s, "host=")
}

// newRestoreTarget checks to for dataset: the cheap refusals come before any key is opened.
func newRestoreTarget(ctx context.Context, ds config.Dataset, to, adminDB string) (restoreTarget, error) {
	if !isDSN(to) {
		return newDirTarget(to)
	}
	if ds.Source.Type != config.SourcePostgres {
		return nil, fmt.Errorf("%w: --to is a PostgreSQL DSN, but dataset %s is a %s dataset: give a new or empty directory",
			errUsage, ds.Name, ds.Source.Type)
	}
	return newPgTarget(ctx, to, adminDB)
}

// dirTarget is a directory that did not exist or was empty.
type dirTarget struct {
	path    string
	existed bool
}

func newDirTarget(path string) (*dirTarget, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w", path, err)
	}
	t := &dirTarget{path: abs}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("restore target %s: %w", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("restore target %s is a file, not a directory: nothing was changed; choose a new or empty directory", abs)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", abs, err)
	}
	if len(entries) > 0 {
		return nil, fmt.Errorf("restore target %s is not empty (%d entries): drflow never restores over existing data, and nothing was changed; choose a new or empty directory",
			abs, len(entries))
	}
	t.existed = true
	return t, nil
}

func (t *dirTarget) describe() string { return t.path }

func (t *dirTarget) create(context.Context) (sources.Sink, error) {
	return sources.NewDirectorySink(t.path)
}

// discard empties the directory, or removes it if the restore created it: it was empty.
func (t *dirTarget) discard(context.Context) error {
	if !t.existed {
		return os.RemoveAll(t.path)
	}
	entries, err := os.ReadDir(t.path)
	if err != nil {
		return err
	}
	var errs []error
	for _, de := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(t.path, de.Name())))
	}
	return errors.Join(errs...)
}

func (t *dirTarget) keep(context.Context) error { return nil }

// databaseName is what a PostgreSQL restore target may be called (as sources.PostgresSink
// accepts).
var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)

// pgTarget is a database that does not exist yet on the server of a DSN.
type pgTarget struct {
	adminDSN string
	database string
	server   string
	sink     *sources.PostgresSink
}

func newPgTarget(ctx context.Context, dsn, adminDB string) (*pgTarget, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: --to is not a valid PostgreSQL DSN: %v", errUsage, err)
	}
	db := cfg.Database
	if db == "" {
		return nil, fmt.Errorf("%w: --to must name the database to create, e.g. postgres://user@host:5432/restored", errUsage)
	}
	if !databaseName.MatchString(db) {
		return nil, fmt.Errorf("%w: --to names database %q: want 1 to 63 letters, digits, '_' or '-', starting with a letter or '_'", errUsage, db)
	}
	if slices.Contains([]string{adminDB, "postgres", "template0", "template1"}, db) {
		return nil, fmt.Errorf("%w: --to names database %q, which already exists on every server: name a new database", errUsage, db)
	}
	t := &pgTarget{adminDSN: withDatabase(dsn, adminDB), database: db, server: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)}
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return nil, fmt.Errorf("restore target %s: %w", t.describe(), err)
	}
	if exists {
		return nil, fmt.Errorf("restore target %s already exists: drflow restores only into a new database, and nothing was changed; name a database that does not exist", t.describe())
	}
	return t, nil
}

// withDatabase returns dsn with its database replaced by db.
func withDatabase(dsn, db string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	// In keyword/value form the last setting of a keyword wins.
	return dsn + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
}

func (t *pgTarget) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, t.adminDSN)
	if err != nil {
		return nil, fmt.Errorf("restore target: connect to PostgreSQL at %s: %w", t.server, err)
	}
	return conn, nil
}

func (t *pgTarget) describe() string { return fmt.Sprintf("database %q on %s", t.database, t.server) }

func (t *pgTarget) create(ctx context.Context) (sources.Sink, error) {
	sink, err := sources.NewPostgresSink(ctx, t.adminDSN, t.database, sources.PostgresSinkOptions{})
	if err != nil {
		return nil, err
	}
	t.sink = sink
	return sink, nil
}

func (t *pgTarget) discard(ctx context.Context) error { return t.sink.DropScratch(ctx) }

// keep removes the sink's scratch mark, so that no drflow cleanup ever drops the restored
// database.
func (t *pgTarget) keep(ctx context.Context) error {
	conn, err := t.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{t.database}.Sanitize()+" IS NULL"); err != nil {
		return fmt.Errorf("restored %s, but could not clear drflow's scratch mark on it: %w", t.describe(), err)
	}
	return nil
}
