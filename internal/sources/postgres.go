package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions tune a PostgreSQL source.
type PostgresOptions struct {
	// PGDump is the pg_dump program; empty finds it (see findTool). It must be at least as
	// new as the server.
	PGDump string
}

// NewPostgres returns a source that backs up the PostgreSQL database of dsn (a libpq URL or
// keyword/value string) as one entry, "database.dump": pg_dump's custom format, streamed.
//
// Snapshot opens a REPEATABLE READ, READ ONLY transaction, exports its snapshot and counts
// the rows of every table in it (the facts, "rows:<schema>.<table>" -> count); Walk runs
//
//	pg_dump --format=custom --snapshot=<exported id> --no-password
//
// so the dump shows exactly the data that was counted, while the transaction stays open
// until Close. The connection is passed to pg_dump in PGHOST, PGPORT, PGUSER, PGDATABASE and
// PGPASSWORD (never on its command line), with TLS settings of the DSN in their PGSSL*
// variables. DataAsOf is transaction_timestamp(), the start of that transaction: every
// commit before it is in the dump (some later ones may be too), so RPO is never understated.
func NewPostgres(dsn string, opts PostgresOptions) Source {
	return &postgres{dsn: dsn, opts: opts}
}

type postgres struct {
	dsn  string
	opts PostgresOptions
}

func (p *postgres) Kind() string { return KindPostgres }

func (p *postgres) Snapshot(ctx context.Context) (Snapshot, error) {
	cfg, err := pgx.ParseConfig(p.dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres source: %w", err)
	}
	pgDump, err := findTool("pg_dump", p.opts.PGDump)
	if err != nil {
		return nil, fmt.Errorf("postgres source: %w", err)
	}
	env, err := toolEnv(cfg, p.dsn, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("postgres source: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres source: connect: %w", err)
	}
	s := &pgSnapshot{conn: conn, pgDump: pgDump, env: env}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres source %s: %w", cfg.Database, err)
	}
	return s, nil
}

type pgSnapshot struct {
	conn   *pgx.Conn
	tx     pgx.Tx
	pgDump string
	env    []string

	id    string // exported snapshot
	asOf  time.Time
	facts map[string]string

	closeOnce sync.Once
	closeErr  error
}

func (s *pgSnapshot) start(ctx context.Context) error {
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin snapshot transaction: %w", err)
	}
	s.tx = tx
	// The transaction idles while pg_dump works; a server-wide idle timeout must not end it
	// (and with it the exported snapshot) before pg_dump has imported it.
	if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return fmt.Errorf("disable idle timeout: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot(), pg_catalog.transaction_timestamp()").Scan(&s.id, &s.asOf); err != nil {
		return fmt.Errorf("export snapshot: %w", err)
	}
	facts, err := rowCounts(ctx, tx)
	if err != nil {
		return err
	}
	s.facts = facts
	return nil
}

func (s *pgSnapshot) DataAsOf() time.Time { return s.asOf }

// Facts are the exact row counts of every table, taken in the dump's snapshot.
func (s *pgSnapshot) Facts() map[string]string {
	out := make(map[string]string, len(s.facts))
	for k, v := range s.facts {
		out[k] = v
	}
	return out
}

// Problems is always empty: a dump is complete or it fails.
func (s *pgSnapshot) Problems() []Problem { return nil }

// Walk streams pg_dump's output as the entry "database.dump" (Size -1). If pg_dump fails,
// the entry's reader returns the failure, with pg_dump's stderr, instead of io.EOF, and
// Walk returns it too, so a truncated dump never looks complete.
func (s *pgSnapshot) Walk(ctx context.Context, after string, fn func(Entry, io.Reader) error) error {
	if skipAfter(dumpEntry, after) {
		return nil
	}
	stderr := &headBuffer{limit: stderrLimit}
	cmd := exec.CommandContext(ctx, s.pgDump, "--format=custom", "--snapshot="+s.id, "--no-password")
	cmd.Env = s.env
	cmd.Stderr = stderr
	cmd.WaitDelay = toolWaitDelay
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pg_dump: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pg_dump: %w", err)
	}
	d := &dumpReader{ctx: ctx, out: stdout, cmd: cmd, stderr: stderr}
	e := Entry{Path: dumpEntry, Type: TypeFile, Mode: 0o600, ModTime: s.asOf, Size: -1}
	if err := fn(e, d); err != nil {
		d.stop()
		return err
	}
	return d.finish()
}

// dumpReader streams pg_dump's stdout and, at its end, pg_dump's exit status.
type dumpReader struct {
	ctx    context.Context
	out    io.Reader
	cmd    *exec.Cmd
	stderr *headBuffer

	waited  bool
	waitErr error
}

func (d *dumpReader) Read(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	if d.waited {
		if d.waitErr != nil {
			return 0, d.waitErr
		}
		return 0, io.EOF
	}
	n, err := d.out.Read(p)
	if errors.Is(err, io.EOF) {
		d.wait()
		if d.waitErr != nil {
			return n, d.waitErr
		}
	} else if err != nil {
		err = fmt.Errorf("read pg_dump output: %w", err)
	}
	return n, err
}

func (d *dumpReader) wait() {
	if d.waited {
		return
	}
	d.waited = true
	if err := d.cmd.Wait(); err != nil {
		if ctxErr := d.ctx.Err(); ctxErr != nil {
			d.waitErr = ctxErr
			return
		}
		d.waitErr = toolError("pg_dump", err, d.stderr)
	}
}

// stop ends pg_dump early, when the consumer has given up.
func (d *dumpReader) stop() {
	if d.waited {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.waited = true
}

// finish checks, after the consumer returned nil, that it read the whole dump and that
// pg_dump succeeded.
func (d *dumpReader) finish() error {
	var b [1]byte
	for !d.waited {
		n, err := d.Read(b[:])
		if n > 0 {
			d.stop()
			return errors.New("pg_dump: the walk's callback returned before the end of the dump, so it is incomplete")
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return d.waitErr
}

// Close ends the snapshot's transaction and connection. pg_dump no longer needs it once it
// has imported the snapshot, but Close is only meant for after Walk.
func (s *pgSnapshot) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if s.conn.IsClosed() {
			// The server ended the session (e.g. the database was dropped); nothing is held.
			return
		}
		var errs []error
		if s.tx != nil {
			err := s.tx.Rollback(ctx)
			if s.conn.IsClosed() {
				return // the server had already ended the session
			}
			if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
				errs = append(errs, fmt.Errorf("end snapshot transaction: %w", err))
			}
		}
		if err := s.conn.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close connection: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
