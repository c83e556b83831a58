package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ Sink = (*PostgresSink)(nil)

// PostgresSinkOptions tune a PostgreSQL sink.
type PostgresSinkOptions struct {
	// PGRestore is the pg_restore program; empty finds it like pg_dump (see findTool).
	PGRestore string
	// DropExisting replaces a scratch database left by an earlier drflow restore instead of
	// refusing it. A database that drflow did not create is never dropped.
	DropExisting bool
}

// scratchComment marks the databases that PostgresSink creates, so that DropExisting and
// DropScratch can never drop anything else.
const scratchComment = "drflow scratch restore database; DropScratch removes it"

var scratchName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)

// PostgresSink restores a PostgreSQL source's dump into a new scratch database on the server
// of an admin DSN (a role that may create databases) and verifies it against the snapshot's
// row counts.
//
// The dump streams into pg_restore's stdin:
//
//	pg_restore --no-owner --no-privileges --exit-on-error --no-password --dbname=<scratch>
//
// pg_restore reads a custom-format archive from a pipe when it restores serially: pg_dump
// wrote to a pipe too, so the archive has no data offsets and pg_restore reads its blocks in
// archive order, which is the order a serial restore needs. A parallel restore (--jobs)
// needs a seekable file and is not used, so the dump never touches the disk. Ownership and
// grants are not restored (the roles need not exist on the drill server).
type PostgresSink struct {
	admin     *pgx.ConnConfig
	scratch   string
	pgRestore string
	env       []string
	restored  bool
}

// NewPostgresSink creates the scratch database (from template0, as pg_restore needs) and
// marks it as drflow's. It refuses a database that already exists unless opts.DropExisting
// is set and drflow created it, and refuses the names of the admin DSN's own database and of
// the built-in ones. scratchDB is 1 to 63 letters, digits, '_' or '-', not starting with a
// digit or '-'.
func NewPostgresSink(ctx context.Context, adminDSN, scratchDB string, opts PostgresSinkOptions) (*PostgresSink, error) {
	if !scratchName.MatchString(scratchDB) {
		return nil, fmt.Errorf("postgres sink: scratch database name %q: want 1 to 63 letters, digits, '_' or '-', starting with a letter or '_'", scratchDB)
	}
	cfg, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	if slices.Contains([]string{"postgres", "template0", "template1", cfg.Database}, scratchDB) {
		return nil, fmt.Errorf("postgres sink: %q cannot be a scratch database: it is the admin DSN's database or a built-in one", scratchDB)
	}
	pgRestore, err := findTool("pg_restore", opts.PGRestore)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	env, err := toolEnv(cfg, adminDSN, scratchDB)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	s := &PostgresSink{admin: cfg, scratch: scratchDB, pgRestore: pgRestore, env: env}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if opts.DropExisting {
		if err := s.drop(ctx, conn); err != nil {
			return nil, err
		}
	}
	ident := pgx.Identifier{scratchDB}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0"); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" {
			return nil, fmt.Errorf("postgres sink: scratch database %q already exists: refusing to restore into it (set DropExisting to replace a scratch database of an earlier drflow restore)", scratchDB)
		}
		return nil, fmt.Errorf("postgres sink: create scratch database %q: %w", scratchDB, err)
	}
	if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+ident+" IS '"+scratchComment+"'"); err != nil {
		return nil, fmt.Errorf("postgres sink: mark scratch database %q: %w", scratchDB, err)
	}
	return s, nil
}

// Database is the scratch database's name.
func (s *PostgresSink) Database() string { return s.scratch }

// Write restores the "database.dump" entry; a PostgreSQL restore point has no other.
func (s *PostgresSink) Write(ctx context.Context, e Entry, content io.Reader) error {
	if e.Path != dumpEntry || e.Type != TypeFile {
		return fmt.Errorf("postgres sink restores only the file %q, not %s %q", dumpEntry, e.Type, e.Path)
	}
	if s.restored {
		return fmt.Errorf("postgres sink: %q was already restored into %q", dumpEntry, s.scratch)
	}
	if content == nil {
		return fmt.Errorf("postgres sink: %q has no content", dumpEntry)
	}
	stderr := &headBuffer{limit: stderrLimit}
	cmd := exec.CommandContext(ctx, s.pgRestore, "--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--dbname="+s.scratch)
	cmd.Env = s.env
	cmd.Stdout = stderr // nothing is expected there with --dbname
	cmd.Stderr = stderr
	cmd.WaitDelay = toolWaitDelay
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pg_restore: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pg_restore: %w", err)
	}
	src := &errReader{r: ctxReader{ctx: ctx, r: content}}
	_, copyErr := io.Copy(stdin, src)
	if src.err != nil {
		// The dump did not arrive whole: stop pg_restore rather than let it load a part.
		_ = cmd.Process.Kill()
		stdin.Close()
		_ = cmd.Wait()
		return fmt.Errorf("restore %s into %q: %w", dumpEntry, s.scratch, src.err)
	}
	closeErr := stdin.Close()
	if err := cmd.Wait(); err != nil {
		// A write error (broken pipe) only says that pg_restore stopped; its stderr says why.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("restore into %q: %w", s.scratch, toolError("pg_restore", err, stderr))
	}
	if err := errors.Join(copyErr, closeErr); err != nil {
		return fmt.Errorf("stream dump to pg_restore: %w", err)
	}
	s.restored = true
	return nil
}

// errReader remembers the error of its reader, to tell a failing source from a failing
// destination in io.Copy.
type errReader struct {
	r   io.Reader
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

// Finish counts the rows of every table in the scratch database and compares them with the
// snapshot's facts. Tables missing from either side are mismatches too.
func (s *PostgresSink) Finish(ctx context.Context, facts map[string]string) (Validation, error) {
	if !s.restored {
		return Validation{}, fmt.Errorf("postgres sink: nothing was restored into %q", s.scratch)
	}
	cfg := s.admin.Copy()
	cfg.Database = s.scratch
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return Validation{}, fmt.Errorf("verify restore: connect to %q: %w", s.scratch, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	got, err := rowCounts(ctx, conn)
	if err != nil {
		return Validation{}, fmt.Errorf("verify restore in %q: %w", s.scratch, err)
	}
	return compareRowCounts(facts, got), nil
}

func compareRowCounts(want, got map[string]string) Validation {
	var mismatches []string
	n := 0
	for k, w := range want {
		if !strings.HasPrefix(k, rowsPrefix) {
			continue
		}
		n++
		g, ok := got[k]
		switch {
		case !ok:
			mismatches = append(mismatches, fmt.Sprintf("%s: snapshot has %s rows, the table is missing from the restore", k, w))
		case g != w:
			mismatches = append(mismatches, fmt.Sprintf("%s: snapshot has %s rows, restore has %s", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			mismatches = append(mismatches, fmt.Sprintf("%s: not in the snapshot, restore has %s rows", k, g))
		}
	}
	slices.Sort(mismatches)
	return Validation{Checked: fmt.Sprintf("row counts of %d tables", n), Mismatches: mismatches}
}

// DropScratch drops the scratch database, ending any session in it (PostgreSQL 13 or newer).
// Dropping one that is already gone is not an error.
func (s *PostgresSink) DropScratch(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.admin)
	if err != nil {
		return fmt.Errorf("drop scratch database %q: connect: %w", s.scratch, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return s.drop(ctx, conn)
}

// drop removes the scratch database if it exists and carries drflow's mark.
func (s *PostgresSink) drop(ctx context.Context, conn *pgx.Conn) error {
	var comment *string
	err := conn.QueryRow(ctx,
		"SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1",
		s.scratch).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop scratch database %q: %w", s.scratch, err)
	}
	if comment == nil || *comment != scratchComment {
		return fmt.Errorf("drop scratch database %q: %w: it exists but drflow did not create it, so it is left alone", s.scratch, errNotScratch)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.scratch}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop scratch database %q: %w", s.scratch, err)
	}
	return nil
}
