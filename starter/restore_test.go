package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/testdeploy"
)

// readTree returns every regular file under root, by slash path.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	}))
	return out
}

func TestRestoreCommand(t *testing.T) {
	f := newDataFixture(t, 2)

	// The newest point, into a directory that does not exist yet.
	target := filepath.Join(t.TempDir(), "restored")
	code, out, errOut := runCLI(t, "restore", "files", "--point", "latest", "--to", target, "--config", f.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, f.files, readTree(t, target), "the restore reproduces the source byte for byte")
	assert.Equal(t, readTree(t, f.Source), readTree(t, target))
	assert.Contains(t, out, "restored "+f.points[1]+" of files (data as of ")
	assert.Contains(t, out, "from eu-primary into "+target)
	assert.Regexp(t, fmt.Sprintf(`3 files, %d bytes in [0-9.]+s \([0-9.]+ MB/s\)`, totalBytes(f.files)), out)
	assert.Contains(t, out, "verified: every chunk authenticated, every file hash checked")
	assertNoFileNames(t, out, errOut)

	// An older point by ID, into an existing empty directory, as JSON.
	older := t.TempDir()
	code, out, errOut = runCLI(t, "restore", "files", "--point", f.points[0], "--to", older, "--config", f.ConfigPath, "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, f.firstFiles, readTree(t, older))
	var rep restoreReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Equal(t, f.points[0], rep.Point)
	assert.Equal(t, "directory", rep.TargetKind)
	assert.Equal(t, older, rep.Target)
	assert.Equal(t, int64(3), rep.Files)
	assert.Equal(t, totalBytes(f.firstFiles), rep.Bytes)
	assert.Positive(t, rep.BytesRead)
	assert.Positive(t, rep.DurationSeconds)
	assert.Positive(t, rep.ThroughputMBps)

	// A non-empty target is refused before anything is read, and keeps what it held.
	full := t.TempDir()
	keep := filepath.Join(full, "keep.txt")
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o600))
	code, out, errOut = runCLI(t, "restore", "files", "--point", "latest", "--to", full, "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "restore target "+full+" is not empty (1 entries): drflow never restores over existing data, and nothing was changed; choose a new or empty directory")
	assert.Equal(t, map[string]string{"keep.txt": "mine"}, readTree(t, full))

	code, _, errOut = runCLI(t, "restore", "files", "--point", "latest", "--to", keep, "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "restore target "+keep+" is a file, not a directory: nothing was changed")

	// A corrupted pack fails the restore naming chunk and pack; the partial restore is removed.
	pack := f.corruptPack(t)
	broken := filepath.Join(t.TempDir(), "broken")
	code, out, errOut = runCLI(t, "restore", "files", "--point", "latest", "--to", broken, "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, out)
	assert.Regexp(t, `drflow restore: restore `+f.points[1]+` of files: integrity check failed: chunk [0-9a-f]{64} in pack `+pack+`: .* \(the partial restore was removed from `+broken+`\)`, errOut)
	assert.NoDirExists(t, broken)
	assertNoFileNames(t, out, errOut)

	emptyDir := t.TempDir()
	code, _, errOut = runCLI(t, "restore", "files", "--point", "latest", "--to", emptyDir, "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code, errOut)
	assert.DirExists(t, emptyDir, "a directory that existed stays, emptied")
	assert.Empty(t, readTree(t, emptyDir))
}

const pgAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// pgDatabase creates an empty database and drops it when the test ends.
func pgDatabase(t *testing.T, prefix string) string {
	t.Helper()
	name := prefix + randomHex(t)
	pgExec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { pgExec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return name
}

func pgExec(t *testing.T, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgAdminDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return hex.EncodeToString(b[:])
}

func dsnOf(db string) string {
	return "postgres://postgres@127.0.0.1:5432/" + db + "?sslmode=disable"
}

func TestRestoreCommandPostgres(t *testing.T) {
	ctx := context.Background()
	src := pgDatabase(t, "drflow_cli_src_")
	conn, err := pgx.Connect(ctx, dsnOf(src))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE patients (id int PRIMARY KEY, name text);
		INSERT INTO patients SELECT i, 'patient ' || i FROM generate_series(1, 1234) i;
		CREATE TABLE visits (id int, patient int REFERENCES patients);
		INSERT INTO visits SELECT i, 1 + i % 1234 FROM generate_series(1, 321) i;`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	// The shared deployment plus one PostgreSQL dataset (datasets is the file's last section).
	d := testdeploy.New(t, testdeploy.Options{})
	extra := fmt.Sprintf(`  - name: pg
    classification: personal
    policy: eu-only
    tier: tier1
    primary: eu-primary
    source:
      type: postgres
      dsn: %s
`, dsnOf(src))
	cfgFile, err := os.OpenFile(d.ConfigPath, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = cfgFile.WriteString(extra)
	require.NoError(t, err)
	require.NoError(t, cfgFile.Close())
	cfg, err := config.Load(d.ConfigPath)
	require.NoError(t, err)

	acts, err := activities.New(ctx, cfg, activities.Options{Region: "eu-west-1", StateDir: filepath.Join(d.Root, "var", "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err = env.ExecuteActivity(acts.Backup, activities.BackupActivityInput{Dataset: "pg", RunID: "run-1"})
	require.NoError(t, err)
	require.NoError(t, acts.Close(ctx))

	dst := "drflow_cli_dst_" + randomHex(t)
	t.Cleanup(func() { pgExec(t, "DROP DATABASE IF EXISTS "+dst+" WITH (FORCE)") })
	code, out, errOut := runCLI(t, "restore", "pg", "--point", "latest", "--to", dsnOf(dst), "--config", d.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, fmt.Sprintf(`into database %q on 127.0.0.1:5432`, dst))
	assert.Contains(t, out, "row counts of 2 tables")

	conn, err = pgx.Connect(ctx, dsnOf(dst))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var patients, visits int
	require.NoError(t, conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM visits)").Scan(&patients, &visits))
	assert.Equal(t, 1234, patients)
	assert.Equal(t, 321, visits)
	var comment *string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1", dst).Scan(&comment))
	assert.Nil(t, comment, "the restored database carries no scratch mark that a cleanup could act on")

	// An existing database is refused and left as it was.
	code, out, errOut = runCLI(t, "restore", "pg", "--point", "latest", "--to", dsnOf(dst), "--config", d.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, fmt.Sprintf(`restore target database %q on 127.0.0.1:5432 already exists: drflow restores only into a new database, and nothing was changed`, dst))
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM patients").Scan(&patients))
	assert.Equal(t, 1234, patients)

	code, _, errOut = runCLI(t, "restore", "pg", "--point", "latest", "--to", dsnOf("postgres"), "--config", d.ConfigPath)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `--to names database "postgres", which already exists on every server`)

	// Into a directory, a PostgreSQL point is its dump.
	dumpDir := t.TempDir()
	code, _, errOut = runCLI(t, "restore", "pg", "--point", "latest", "--to", dumpDir, "--config", d.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	dump := readTree(t, dumpDir)
	require.Contains(t, dump, "database.dump")
	assert.Equal(t, "PGDMP", dump["database.dump"][:5], "a pg_dump custom-format archive")
}
