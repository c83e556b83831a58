// Package targets checks and creates the targets restores write into: a new or empty
// directory, or a PostgreSQL database that does not exist yet. Every refusal happens before
// anything is written, and a failed restore's target is removed again, so a restore never
// writes over existing data and never leaves half a restore behind. The CLI's restore and the
// runbook restore activity share it.
package targets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/sources"
)

// ErrUsage marks a target that is wrong as given (not one that failed): the CLI reports it as
// a usage error.
var ErrUsage = errors.New("invalid restore target")

// Kinds of restore target.
const (
	KindDirectory = "directory"
	KindPostgres  = "postgres"
)

// Target is where a restore writes: checked by New before anything is opened, created just
// before the restore, removed again if the restore fails.
type Target interface {
	// Describe names the target for people: the directory, or the database and server.
	Describe() string
	// Kind is KindDirectory or KindPostgres; Name the directory or database.
	Kind() string
	Name() string
	Create(ctx context.Context) (sources.Sink, error)
	// Discard removes what the restore created; Keep makes the result the user's.
	Discard(ctx context.Context) error
	Keep(ctx context.Context) error
}

// IsDSN tells a PostgreSQL DSN (URL or keyword/value form) from a directory path.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") ||
		strings.Contains(s, "dbname=") || strings.Contains(s, "host=")
}

// New checks to for dataset: a DSN for a PostgreSQL dataset, otherwise a directory. adminDB
// is the database to connect to while creating the target database. The cheap refusals come
// before any key is opened.
func New(ctx context.Context, ds config.Dataset, to, adminDB string) (Target, error) {
	if !IsDSN(to) {
		return newDirTarget(to)
	}
	if ds.Source.Type != config.SourcePostgres {
		return nil, fmt.Errorf("%w: --to is a PostgreSQL DSN, but dataset %s is a %s dataset: give a new or empty directory",
			ErrUsage, ds.Name, ds.Source.Type)
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

func (t *dirTarget) Describe() string { return t.path }

func (t *dirTarget) Create(context.Context) (sources.Sink, error) {
	return sources.NewDirectorySink(t.path)
}

// Discard empties the directory, or removes it if the restore created it: it was empty.
func (t *dirTarget) Discard(context.Context) error {
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

func (t *dirTarget) Keep(context.Context) error { return nil }

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
		return nil, fmt.Errorf("%w: --to is not a valid PostgreSQL DSN: %v", ErrUsage, err)
	}
	db := cfg.Database
	if db == "" {
		return nil, fmt.Errorf("%w: --to must name the database to create, e.g. postgres://user@host:5432/restored", ErrUsage)
	}
	if !databaseName.MatchString(db) {
		return nil, fmt.Errorf("%w: --to names database %q: want 1 to 63 letters, digits, '_' or '-', starting with a letter or '_'", ErrUsage, db)
	}
	if slices.Contains([]string{adminDB, "postgres", "template0", "template1"}, db) {
		return nil, fmt.Errorf("%w: --to names database %q, which already exists on every server: name a new database", ErrUsage, db)
	}
	t := &pgTarget{adminDSN: withDatabase(dsn, adminDB), database: db, server: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)}
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return nil, fmt.Errorf("restore target %s: %w", t.Describe(), err)
	}
	if exists {
		return nil, fmt.Errorf("restore target %s already exists: drflow restores only into a new database, and nothing was changed; name a database that does not exist", t.Describe())
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

func (t *pgTarget) Describe() string { return fmt.Sprintf("database %q on %s", t.database, t.server) }

func (t *pgTarget) Create(ctx context.Context) (sources.Sink, error) {
	sink, err := sources.NewPostgresSink(ctx, t.adminDSN, t.database, sources.PostgresSinkOptions{})
	if err != nil {
		return nil, err
	}
	t.sink = sink
	return sink, nil
}

func (t *pgTarget) Discard(ctx context.Context) error { return t.sink.DropScratch(ctx) }

// Keep removes the sink's scratch mark, so that no drflow cleanup ever drops the restored
// database.
func (t *pgTarget) Keep(ctx context.Context) error {
	conn, err := t.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{t.database}.Sanitize()+" IS NULL"); err != nil {
		return fmt.Errorf("restored %s, but could not clear drflow's scratch mark on it: %w", t.Describe(), err)
	}
	return nil
}

func (t *dirTarget) Kind() string { return KindDirectory }
func (t *dirTarget) Name() string { return t.path }
func (t *pgTarget) Kind() string  { return KindPostgres }
func (t *pgTarget) Name() string  { return t.database }
