package sources

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// dumpEntry is the one entry of a PostgreSQL source: the database in pg_dump's custom format.
const dumpEntry = "database.dump"

const (
	// stderrLimit bounds how much of a PostgreSQL tool's stderr is kept for its error.
	stderrLimit = 32 << 10
	// toolWaitDelay bounds how long a killed or finished tool may keep its pipes open.
	toolWaitDelay = 10 * time.Second
	// closeTimeout bounds the cleanup statements run by Close and DropScratch's helpers.
	closeTimeout = 30 * time.Second
)

// findTool returns the PostgreSQL client program name: override if set, else the one on
// PATH, else the newest of /usr/lib/postgresql/<version>/bin (Debian and Ubuntu install the
// server's tools there, off PATH). pg_dump must be at least as new as the server it dumps.
func findTool(name, override string) (string, error) {
	if override != "" {
		return override, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", name))
	if len(matches) == 0 {
		return "", fmt.Errorf("%s not found on PATH or in /usr/lib/postgresql/*/bin: install the PostgreSQL client tools", name)
	}
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	slices.SortFunc(matches, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return matches[0], nil
}

// dsnEnv maps libpq connection settings that may appear in a DSN, beyond host, port, user,
// password and database, onto the environment variables that libpq reads instead.
var dsnEnv = map[string]string{
	"sslmode":          "PGSSLMODE",
	"sslrootcert":      "PGSSLROOTCERT",
	"sslcert":          "PGSSLCERT",
	"sslkey":           "PGSSLKEY",
	"sslcrl":           "PGSSLCRL",
	"sslcrldir":        "PGSSLCRLDIR",
	"sslsni":           "PGSSLSNI",
	"sslcertmode":      "PGSSLCERTMODE",
	"sslnegotiation":   "PGSSLNEGOTIATION",
	"channel_binding":  "PGCHANNELBINDING",
	"require_auth":     "PGREQUIREAUTH",
	"gssencmode":       "PGGSSENCMODE",
	"krbsrvname":       "PGKRBSRVNAME",
	"connect_timeout":  "PGCONNECT_TIMEOUT",
	"options":          "PGOPTIONS",
	"application_name": "PGAPPNAME",
}

// toolEnv is the environment for pg_dump or pg_restore: the worker's own, with the
// connection of cfg (to database) in PG* variables, so that no credential appears on a
// command line, where any user of the machine could read it. Settings the DSN states
// explicitly override inherited ones; others (e.g. PGSSLROOTCERT) are inherited, as pgx
// itself read them. A service file entry is resolved by pgx, so PGSERVICE is dropped: libpq
// would let it override the variables set here.
func toolEnv(cfg *pgx.ConnConfig, dsn, database string) ([]string, error) {
	for _, fb := range cfg.Fallbacks {
		if fb.Host != cfg.Host || fb.Port != cfg.Port {
			return nil, fmt.Errorf("DSN names several hosts (%s:%d, %s:%d): pg_dump and pg_restore must reach the very server that drflow connected to, so give one host", cfg.Host, cfg.Port, fb.Host, fb.Port)
		}
	}
	set := map[string]string{
		"PGHOST":     cfg.Host,
		"PGPORT":     strconv.Itoa(int(cfg.Port)),
		"PGUSER":     cfg.User,
		"PGDATABASE": database,
	}
	if cfg.Password != "" {
		set["PGPASSWORD"] = cfg.Password
	}
	for k, v := range dsnSettings(dsn) {
		if env, ok := dsnEnv[k]; ok {
			set[env] = v
		}
	}
	drop := []string{"PGHOSTADDR", "PGPASSWORD", "PGSERVICE", "PGTARGETSESSIONATTRS", "PGLOADBALANCEHOSTS", "PGREQUIRESSL"}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok || slices.Contains(drop, k) {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		if v != "" { // libpq would take an empty variable as an empty setting, not a default
			env = append(env, k+"="+v)
		}
	}
	slices.Sort(env)
	return env, nil
}

// dsnSettings returns the settings written in a libpq DSN, URL or keyword/value form. pgx
// has already validated the DSN; this only recovers settings that its parsed config does not
// keep in their original form (TLS file names, sslmode).
//
//nolint:gocyclo // one case per libpq connection setting
func dsnSettings(dsn string) map[string]string {
	out := map[string]string{}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return out
		}
		for k, vs := range u.Query() {
			if len(vs) > 0 {
				out[k] = vs[len(vs)-1]
			}
		}
		return out
	}
	s := dsn
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			return out
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return out
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\n\r\f\v")
		var val strings.Builder
		quoted := strings.HasPrefix(s, "'")
		if quoted {
			s = s[1:]
		}
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				val.WriteByte(s[i])
				continue
			}
			if quoted && c == '\'' {
				i++
				break
			}
			if !quoted && strings.IndexByte(" \t\n\r\f\v", c) >= 0 {
				break
			}
			val.WriteByte(c)
		}
		out[key] = val.String()
		s = s[i:]
	}
}

// querier is what counting rows needs: a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// tablesSQL lists the tables whose rows pg_dump dumps and pg_restore restores: ordinary and
// partitioned tables outside the system schemas, except temporary tables and tables that
// belong to an extension (CREATE EXTENSION recreates those, with their own contents). Views,
// materialized views (refreshed on restore) and foreign tables hold no dumped rows.
const tablesSQL = `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

// rowsPrefix starts every row-count fact: "rows:<schema>.<table>" -> decimal count.
const rowsPrefix = "rows:"

// rowCounts counts the rows of every table that q sees, exactly (count(*)), pipelined in one
// batch.
func rowCounts(ctx context.Context, q querier) (map[string]string, error) {
	rows, err := q.Query(ctx, tablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pgx.Identifier, error) {
		var schema, name string
		err := row.Scan(&schema, &name)
		return pgx.Identifier{schema, name}, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	facts := make(map[string]string, len(tables))
	if len(tables) == 0 {
		return facts, nil
	}
	b := &pgx.Batch{}
	for _, t := range tables {
		b.Queue("SELECT count(*) FROM " + t.Sanitize())
	}
	br := q.SendBatch(ctx, b)
	for _, t := range tables {
		var n int64
		if err := br.QueryRow().Scan(&n); err != nil {
			br.Close()
			return nil, fmt.Errorf("count rows of %s: %w", t.Sanitize(), err)
		}
		facts[rowsKey(t[0], t[1])] = strconv.FormatInt(n, 10)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	return facts, nil
}

// rowsKey names a table's row-count fact. A name that is not a plain lower-case SQL
// identifier is double-quoted, as in SQL, so the key stays unambiguous for names that contain
// dots or quotes: rows:public.users, rows:"Sales"."Q1.2024".
func rowsKey(schema, table string) string {
	return rowsPrefix + keyIdent(schema) + "." + keyIdent(table)
}

func keyIdent(s string) string {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9') || c == '$':
			plain = i > 0
		default:
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// toolError reports a failed PostgreSQL tool with what it wrote to stderr.
func toolError(tool string, err error, stderr *headBuffer) error {
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		return fmt.Errorf("%s failed: %w (no output on stderr)", tool, err)
	}
	return fmt.Errorf("%s failed: %w: %s", tool, err, msg)
}

var errNotScratch = errors.New("not a drflow scratch database")
