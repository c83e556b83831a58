package sources

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sourceSchema exercises what a restore must carry: bytea with NUL bytes, unicode, NULLs,
// names that need quoting, identity columns, foreign keys, indexes, partitions, an unlogged
// table, a materialized view and a large object.
const sourceSchema = `
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, avatar bytea, note text);
INSERT INTO users (name, avatar, note) VALUES
  ('Zoë', '\x00ff10'::bytea, NULL),
  ('東京 🚀', NULL, 'it''s "quoted"'),
  ('plain', ''::bytea, ''),
  ('nulls', NULL, NULL);
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Q1.2024" (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id int NOT NULL REFERENCES users (id),
  amount numeric(12, 2));
INSERT INTO "Sales"."Q1.2024" (user_id, amount) SELECT 1 + g % 4, g * 1.5 FROM generate_series(1, 1000) g;
CREATE INDEX ON "Sales"."Q1.2024" (user_id);
CREATE TABLE empty_table (x int);
CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events SELECT g, date '2024-06-01' + g FROM generate_series(1, 400) g;
CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v jsonb);
INSERT INTO cache VALUES ('a', '{"x": [1, 2]}'), ('b', 'null');
CREATE MATERIALIZED VIEW user_names AS SELECT name FROM users;
SELECT lo_from_bytea(0, '\xdeadbeef'::bytea);
`

var sourceFacts = map[string]string{
	`rows:"Sales"."Q1.2024"`:  "1000",
	"rows:public.cache":       "2",
	"rows:public.empty_table": "0",
	"rows:public.events":      "400",
	"rows:public.events_2024": "213",
	"rows:public.events_2025": "187",
	"rows:public.users":       "4",
}

// usersDigest renders every row of users, so that two databases can be compared.
const usersDigest = `SELECT string_agg(format('%s|%s|%s|%s', id, name, coalesce(encode(avatar, 'hex'), '<null>'), coalesce(note, '<null>')), E'\n' ORDER BY id) FROM users`

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(context.Background(), sql).Scan(&s))
	return s
}

func newSourceDB(t *testing.T) (string, *pgx.Conn, *pgx.Conn) {
	t.Helper()
	admin := pgAdmin(t)
	name, conn := createDB(t, admin)
	_, err := conn.Exec(context.Background(), sourceSchema)
	require.NoError(t, err)
	return name, conn, admin
}

func newScratch(t *testing.T, opts PostgresSinkOptions) *PostgresSink {
	t.Helper()
	name := uniqueName("drflow_scratch")
	t.Cleanup(func() { dropDB(t, name) })
	sink, err := NewPostgresSink(context.Background(), testAdminDSN, name, opts)
	require.NoError(t, err)
	return sink
}

func scratchConn(t *testing.T, sink *PostgresSink) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbDSN(sink.Database()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name, srcConn, admin := newSourceDB(t)

	source := NewPostgres(dbDSN(name), PostgresOptions{})
	assert.Equal(t, KindPostgres, source.Kind())
	snap, err := source.Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()
	assert.Equal(t, sourceFacts, snap.Facts())

	sink := newScratch(t, PostgresSinkOptions{})
	entries, err := transfer(ctx, snap, "", sink)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, Entry{Path: "database.dump", Type: TypeFile, Mode: 0o600, ModTime: snap.DataAsOf(), Size: -1}, entries[0])
	assert.Empty(t, snap.Problems())
	require.NoError(t, snap.Close())

	v, err := sink.Finish(ctx, snap.Facts())
	require.NoError(t, err)
	assert.Equal(t, Validation{Checked: "row counts of 7 tables"}, v)

	dst := scratchConn(t, sink)
	assert.Equal(t, queryString(t, srcConn, usersDigest), queryString(t, dst, usersDigest))
	assert.Contains(t, queryString(t, dst, usersDigest), "1|Zoë|00ff10|<null>")
	assert.Equal(t, "deadbeef", queryString(t, dst, `SELECT encode(lo_get(oid), 'hex') FROM pg_largeobject_metadata`))
	assert.Equal(t, "4", queryString(t, dst, `SELECT count(*)::text FROM user_names`))
	assert.Equal(t, "1000", queryString(t, dst, `SELECT max(id)::text FROM "Sales"."Q1.2024"`))

	// A restore that lost a row, and one that gained a table, are caught.
	_, err = dst.Exec(ctx, `DELETE FROM "Sales"."Q1.2024" WHERE id = 7; CREATE TABLE extra (x int)`)
	require.NoError(t, err)
	v, err = sink.Finish(ctx, snap.Facts())
	require.NoError(t, err)
	assert.False(t, v.OK())
	assert.Equal(t, []string{
		`rows:"Sales"."Q1.2024": snapshot has 1000 rows, restore has 999`,
		"rows:public.extra: not in the snapshot, restore has 0 rows",
	}, v.Mismatches)
	dst.Close(ctx)

	require.NoError(t, sink.DropScratch(ctx))
	var n int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", sink.Database()).Scan(&n))
	assert.Zero(t, n)
	require.NoError(t, sink.DropScratch(ctx), "dropping twice is fine")
}

// TestPostgresSnapshotIsConsistent changes the database after Snapshot and before Walk: the
// dump and the facts show the data as of the snapshot, and DataAsOf precedes the changes.
func TestPostgresSnapshotIsConsistent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name, srcConn, _ := newSourceDB(t)
	before := queryString(t, srcConn, usersDigest)

	snap, err := NewPostgres(dbDSN(name), PostgresOptions{}).Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()

	var changedAt time.Time
	require.NoError(t, srcConn.QueryRow(ctx, `
		WITH ins AS (INSERT INTO users (name) VALUES ('after the snapshot'), ('also after') RETURNING 1),
		     del AS (DELETE FROM "Sales"."Q1.2024" WHERE id <= 10 RETURNING 1)
		SELECT statement_timestamp() FROM (SELECT count(*) FROM ins) i, (SELECT count(*) FROM del) d`).Scan(&changedAt))
	_, err = srcConn.Exec(ctx, `INSERT INTO empty_table SELECT generate_series(1, 50)`)
	require.NoError(t, err)
	assert.True(t, snap.DataAsOf().Before(changedAt), "DataAsOf %s, change committed at %s", snap.DataAsOf(), changedAt)
	assert.Equal(t, sourceFacts, snap.Facts(), "facts were taken in the snapshot")

	sink := newScratch(t, PostgresSinkOptions{})
	_, err = transfer(ctx, snap, "", sink)
	require.NoError(t, err)
	v, err := sink.Finish(ctx, snap.Facts())
	require.NoError(t, err)
	assert.True(t, v.OK(), "%v", v.Mismatches)

	dst := scratchConn(t, sink)
	assert.Equal(t, before, queryString(t, dst, usersDigest))
	assert.Equal(t, "1000", queryString(t, dst, `SELECT count(*)::text FROM "Sales"."Q1.2024"`))
	assert.Equal(t, "0", queryString(t, dst, `SELECT count(*)::text FROM empty_table`))
	assert.Equal(t, "6", queryString(t, srcConn, `SELECT count(*)::text FROM users`), "the source did change")
}

// TestPostgresDumpFails drops the source database between Snapshot and Walk (which also
// ends the snapshot's session): pg_dump cannot connect, and the error carries its stderr.
func TestPostgresDumpFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := pgAdmin(t)
	name, conn := createDB(t, admin)
	conn.Close(ctx)
	snap, err := NewPostgres(dbDSN(name), PostgresOptions{}).Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()
	_, err = admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
	require.NoError(t, err)

	var readErr error
	err = snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
		_, readErr = io.Copy(io.Discard, r)
		return readErr
	})
	require.Error(t, err)
	assert.Equal(t, readErr, err, "the entry's reader reports the failure instead of a clean end")
	assert.Contains(t, err.Error(), "pg_dump failed: exit status 1: ")
	assert.Contains(t, err.Error(), `database "`+name+`" does not exist`)
	assert.NoError(t, snap.Close(), "the session is already gone")
}

func TestPostgresWalk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name, _, _ := newSourceDB(t)
	snap, err := NewPostgres(dbDSN(name), PostgresOptions{}).Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()

	t.Run("resume after the dump", func(t *testing.T) {
		for _, after := range []string{"database.dump", "z"} {
			err := snap.Walk(ctx, after, func(Entry, io.Reader) error {
				t.Errorf("after %q: fn called", after)
				return nil
			})
			require.NoError(t, err)
		}
	})
	t.Run("callback error stops pg_dump", func(t *testing.T) {
		stop := errors.New("stop")
		err := snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
			var head [5]byte
			_, err := io.ReadFull(r, head[:])
			require.NoError(t, err)
			assert.Equal(t, "PGDMP", string(head[:]), "custom format magic")
			return stop
		})
		assert.Same(t, stop, err)
	})
	t.Run("callback that stops reading early", func(t *testing.T) {
		err := snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
			_, err := io.ReadFull(r, make([]byte, 10))
			return err
		})
		assert.ErrorContains(t, err, "returned before the end of the dump")
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		err := snap.Walk(cctx, "", func(e Entry, r io.Reader) error {
			cancel()
			_, err := io.Copy(io.Discard, r)
			return err
		})
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("walks again", func(t *testing.T) {
		var n int64
		err := snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
			var err error
			n, err = io.Copy(io.Discard, r)
			return err
		})
		require.NoError(t, err)
		assert.Greater(t, n, int64(1000))
	})
}

func TestPostgresSinkGuards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := pgAdmin(t)

	for _, bad := range []string{"", "postgres", "template1", "1abc", "-x", "a b", `a"b`, strings.Repeat("x", 64)} {
		_, err := NewPostgresSink(ctx, testAdminDSN, bad, PostgresSinkOptions{})
		assert.Error(t, err, "scratch name %q", bad)
	}

	sink := newScratch(t, PostgresSinkOptions{})
	_, err := NewPostgresSink(ctx, testAdminDSN, sink.Database(), PostgresSinkOptions{})
	require.ErrorContains(t, err, "already exists: refusing to restore into it")
	again, err := NewPostgresSink(ctx, testAdminDSN, sink.Database(), PostgresSinkOptions{DropExisting: true})
	require.NoError(t, err, "a scratch database of an earlier restore may be replaced")

	// A database drflow did not create is never dropped, even when asked to replace.
	other, _ := createDB(t, admin)
	_, err = NewPostgresSink(ctx, testAdminDSN, other, PostgresSinkOptions{DropExisting: true})
	require.ErrorIs(t, err, errNotScratch)
	var n int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", other).Scan(&n))
	assert.Equal(t, 1, n)

	// Only the dump entry, once, and only a valid archive.
	require.ErrorContains(t, again.Write(ctx, Entry{Path: "other", Type: TypeFile}, strings.NewReader("x")), `restores only the file "database.dump"`)
	_, err = again.Finish(ctx, nil)
	require.ErrorContains(t, err, "nothing was restored")
	err = again.Write(ctx, Entry{Path: "database.dump", Type: TypeFile, Size: -1}, strings.NewReader("not a dump"))
	require.ErrorContains(t, err, "pg_restore failed: exit status 1: ")
	require.ErrorContains(t, err, "input file does not appear to be a valid archive")

	// A source that fails mid-stream stops pg_restore and reports the source's error.
	broken := errors.New("source broke")
	err = again.Write(ctx, Entry{Path: "database.dump", Type: TypeFile, Size: -1}, io.MultiReader(strings.NewReader("PGDMP"), errReaderOf(broken)))
	require.ErrorIs(t, err, broken)
}

// testCertificate writes a self-signed certificate and its key, PEM-encoded, and returns
// their file names.
func testCertificate(t *testing.T) (crtFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drflow test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	crtFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	require.NoError(t, os.WriteFile(crtFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return crtFile, keyFile
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func errReaderOf(err error) io.Reader { return failingReader{err} }

func TestToolEnv(t *testing.T) {
	// Set after parsing: pgx would read them too.
	inherit := func(t *testing.T) {
		t.Setenv("PGSERVICE", "elsewhere")
		t.Setenv("PGHOSTADDR", "10.9.9.9")
		t.Setenv("PGSSLROOTCERT", "/inherited/root.crt")
	}
	// pgx loads the TLS files while parsing, so they must be real.
	crt, key := testCertificate(t)
	tests := []struct {
		name string
		dsn  string
		want []string
	}{
		{
			name: "keyword/value",
			dsn:  `host=db.example port=6543 user=backup password='p@ss w\'rd' dbname=app sslmode=require sslcert=@CRT@ sslkey=@KEY@ application_name='drflow backup'`,
			want: []string{"PGAPPNAME=drflow backup", "PGDATABASE=app", "PGHOST=db.example", "PGPASSWORD=p@ss w'rd", "PGPORT=6543",
				"PGSSLCERT=@CRT@", "PGSSLKEY=@KEY@", "PGSSLMODE=require", "PGSSLROOTCERT=/inherited/root.crt", "PGUSER=backup"},
		},
		{
			name: "URL",
			dsn:  "postgres://backup:s%3Acret@db.example:6543/app?sslmode=verify-full&sslrootcert=@CRT@",
			want: []string{"PGDATABASE=app", "PGHOST=db.example", "PGPASSWORD=s:cret", "PGPORT=6543",
				"PGSSLMODE=verify-full", "PGSSLROOTCERT=@CRT@", "PGUSER=backup"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := strings.NewReplacer("@CRT@", crt, "@KEY@", key)
			tt.dsn = files.Replace(tt.dsn)
			for i := range tt.want {
				tt.want[i] = files.Replace(tt.want[i])
			}
			cfg, err := pgx.ParseConfig(tt.dsn)
			require.NoError(t, err)
			inherit(t)
			env, err := toolEnv(cfg, tt.dsn, cfg.Database)
			require.NoError(t, err)
			var pg []string
			for _, kv := range env {
				if strings.HasPrefix(kv, "PG") {
					pg = append(pg, kv)
				}
			}
			assert.Equal(t, tt.want, pg)
			assert.False(t, slices.Contains(env, "PGSERVICE=elsewhere"))
		})
	}

	cfg, err := pgx.ParseConfig("host=a,b port=5432 user=x dbname=y sslmode=disable")
	require.NoError(t, err)
	_, err = toolEnv(cfg, "", "y")
	assert.ErrorContains(t, err, "several hosts")
}

func TestRowsKey(t *testing.T) {
	tests := []struct{ schema, table, want string }{
		{"public", "users", "rows:public.users"},
		{"public", "t_1$", "rows:public.t_1$"},
		{"Sales", "Q1.2024", `rows:"Sales"."Q1.2024"`},
		{"a.b", "c", `rows:"a.b".c`},
		{"a", "b.c", `rows:a."b.c"`},
		{"public", `say "hi"`, `rows:public."say ""hi"""`},
		{"public", "1st", `rows:public."1st"`},
		{"public", "ünï", `rows:public."ünï"`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rowsKey(tt.schema, tt.table))
	}
}
