// Package e2e holds end-to-end tests of the data path across every real store: sources,
// key manager, audit log and backup engine together, as a worker runs them.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/azblob"
	"github.com/drflow/drflow/providers/gcs"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/s3"
)

// marker appears in every file of the test tree, so its absence from stored bytes proves
// that only ciphertext reached a store.
const marker = "DRFLOW-PLAINTEXT-MARKER-7f3a"

const adminDSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable"

type env struct {
	keys  *keys.Manager
	audit *audit.Log
}

func newEnv(t *testing.T, home providers.Store) env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	signer, err := audit.LoadOrCreateSigner(filepath.Join(dir, "audit.key"))
	require.NoError(t, err)
	alog, err := audit.Open(ctx, audit.Options{Store: home, Region: "eu-west-1", Signer: signer, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = alog.Close(context.Background()) })
	kek, err := keys.OpenKeyring(ctx, keys.KeyringOptions{Path: filepath.Join(dir, "eu.keyring"), Name: "eu-kek",
		Jurisdiction: "EU", Recorder: alog, Actor: "e2e"})
	require.NoError(t, err)
	mgr, err := keys.NewManager(keys.ManagerOptions{KEK: kek, Recorder: alog, Actor: "e2e"})
	require.NoError(t, err)
	return env{keys: mgr, audit: alog}
}

func (e env) repo(t *testing.T, st providers.Store, dataset string) *repo.Repo {
	t.Helper()
	r, err := repo.Open(repo.Options{Store: st, Dataset: dataset, Keys: e.keys, Audit: e.audit, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	return r
}

// stores starts every real server and returns one fresh store per provider.
func stores(t *testing.T) map[string]providers.Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]providers.Store{}

	st, err := local.Open(local.Options{Root: t.TempDir(), Location: providers.Location{Name: "local", Region: "eu-west-1", Jurisdiction: "EU"}})
	require.NoError(t, err)
	out["local"] = st

	minio := testservers.MinIO(t)
	minio.CreateBucket(t, "e2e", true)
	s3st, err := s3.Open(ctx, s3.Options{Bucket: "e2e", Prefix: "dr", Endpoint: minio.Endpoint, Region: minio.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(minio.AccessKey, minio.SecretKey, ""),
		Location:    providers.Location{Name: "minio", Region: "us-east-1", Jurisdiction: "US"}})
	require.NoError(t, err)
	out["s3"] = s3st

	fake := testservers.FakeGCS(t)
	fake.CreateBucket(t, testservers.FakeGCSBucket{Name: "e2e"})
	gst, err := gcs.Open(ctx, gcs.Options{Bucket: "e2e", Prefix: "dr", Endpoint: fake.Endpoint,
		Location: providers.Location{Name: "gcs", Region: "eu-west-1", Jurisdiction: "EU"}})
	require.NoError(t, err)
	out["gcs"] = gst

	az := testservers.Azurite(t)
	az.CreateContainer(t, "e2e")
	ast, err := azblob.Open(ctx, azblob.Options{Container: "e2e", Prefix: "dr/", ConnectionString: az.ConnectionString,
		Location: providers.Location{Name: "azure", Region: "eu-west-1", Jurisdiction: "EU"}})
	require.NoError(t, err)
	out["azblob"] = ast
	return out
}

// TestRoundTripsOnEveryStore backs up a directory tree, a PostgreSQL database and an object
// prefix into every real store and restores each exactly.
func TestRoundTripsOnEveryStore(t *testing.T) {
	all := stores(t)
	e := newEnv(t, all["local"])
	tree := makeTree(t)
	db := makeDatabase(t)
	objects := makeObjects(t)

	for _, name := range []string{"local", "s3", "gcs", "azblob"} {
		st := all[name]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("directory", func(t *testing.T) {
				r := e.repo(t, st, "files")
				res, err := r.Backup(ctx, sources.NewDirectory(tree), repo.BackupOptions{Actor: "e2e"})
				require.NoError(t, err)
				assert.Empty(t, res.Problems)
				assert.Positive(t, res.ChunksNew)

				target := filepath.Join(t.TempDir(), "restored")
				sink, err := sources.NewDirectorySink(target)
				require.NoError(t, err)
				_, err = r.Restore(ctx, res.Point.ID, sink, repo.RestoreOptions{Actor: "e2e"})
				require.NoError(t, err)
				assertSameTree(t, tree, target)

				again, err := r.Backup(ctx, sources.NewDirectory(tree), repo.BackupOptions{Actor: "e2e"})
				require.NoError(t, err)
				assert.Zero(t, again.ChunksNew, "unchanged data uploads no chunks")
				assert.Zero(t, again.BytesUploaded)

				ver, err := r.Verify(ctx, again.Point.ID, repo.VerifyOptions{})
				require.NoError(t, err)
				assert.True(t, ver.OK())
				assert.Equal(t, ver.ChunksTotal, ver.ChunksChecked)
			})

			t.Run("postgres", func(t *testing.T) {
				r := e.repo(t, st, "orders-db")
				res, err := r.Backup(ctx, sources.NewPostgres(db, sources.PostgresOptions{}), repo.BackupOptions{Actor: "e2e"})
				require.NoError(t, err)
				scratch := fmt.Sprintf("drflow_e2e_restore_%s_%d", name, time.Now().UnixNano())
				sink, err := sources.NewPostgresSink(ctx, adminDSN, scratch, sources.PostgresSinkOptions{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = sink.DropScratch(context.Background()) })
				rest, err := r.Restore(ctx, res.Point.ID, sink, repo.RestoreOptions{Actor: "e2e"})
				require.NoError(t, err)
				assert.True(t, rest.Validation.OK(), "mismatches: %v", rest.Validation.Mismatches)
				assert.Contains(t, rest.Validation.Checked, "row counts of 2 tables")
			})

			t.Run("objects", func(t *testing.T) {
				r := e.repo(t, st, "blobs")
				res, err := r.Backup(ctx, sources.NewObjects(objects, "in/"), repo.BackupOptions{Actor: "e2e"})
				require.NoError(t, err)
				dst, err := local.Open(local.Options{Root: t.TempDir()})
				require.NoError(t, err)
				_, err = r.Restore(ctx, res.Point.ID, sources.NewObjectsSink(dst, "out/"), repo.RestoreOptions{Actor: "e2e"})
				require.NoError(t, err)
				assert.Equal(t, objectHashes(t, objects, "in/"), objectHashes(t, dst, "out/"))
			})
		})
	}
}

// TestEncryptedCopyLeavesOnlyCiphertext copies a restore point from its EU home to a US
// location and inspects every byte stored there: no plaintext, keys only in wrapped form,
// and the copy restores with the home KEK. The metadata-only catalog names no file.
func TestEncryptedCopyLeavesOnlyCiphertext(t *testing.T) {
	ctx := context.Background()
	all := stores(t)
	home, us, catalog := all["local"], all["s3"], all["gcs"]
	e := newEnv(t, home)
	tree := makeTree(t)

	r := e.repo(t, home, "files")
	res, err := r.Backup(ctx, sources.NewDirectory(tree), repo.BackupOptions{Actor: "e2e"})
	require.NoError(t, err)

	cp, err := repo.Copy(ctx, home, us, "files", res.Point.ID, repo.CopyOptions{Mode: audit.CopyModeEncrypted, LegalBasis: "scc",
		Audit: e.audit, Actor: "e2e"})
	require.NoError(t, err)
	assert.Positive(t, cp.ObjectsCopied)

	var objects int
	require.NoError(t, us.List(ctx, "", func(o providers.ObjectInfo) error {
		objects++
		data := read(t, us, o.Key)
		assert.NotContains(t, string(data), marker, "plaintext in %s", o.Key)
		assert.NotContains(t, string(data), "secret-notes.txt", "file name in %s", o.Key)
		return nil
	}))
	assert.Positive(t, objects)

	// Restoring the copy needs the home KEK (the wrapped DEK travelled with it).
	target := filepath.Join(t.TempDir(), "from-us")
	sink, err := sources.NewDirectorySink(target)
	require.NoError(t, err)
	_, err = e.repo(t, us, "files").Restore(ctx, res.Point.ID, sink, repo.RestoreOptions{Actor: "e2e"})
	require.NoError(t, err)
	assertSameTree(t, tree, target)

	// A second copy moves nothing new.
	again, err := repo.Copy(ctx, home, us, "files", res.Point.ID, repo.CopyOptions{Mode: audit.CopyModeEncrypted, LegalBasis: "scc", Audit: e.audit})
	require.NoError(t, err)
	assert.Zero(t, again.ObjectsCopied)

	entry, err := repo.CopyMetadata(ctx, r, catalog, res.Point.ID, repo.CopyOptions{Audit: e.audit, Actor: "e2e"})
	require.NoError(t, err)
	assert.Equal(t, res.Point.ID, entry.PointID)
	var keysSeen []string
	require.NoError(t, catalog.List(ctx, "", func(o providers.ObjectInfo) error {
		keysSeen = append(keysSeen, o.Key)
		data := string(read(t, catalog, o.Key))
		assert.NotContains(t, data, marker)
		assert.NotContains(t, data, "secret-notes.txt")
		assert.NotContains(t, data, "wrapped")
		return nil
	}))
	require.Len(t, keysSeen, 1, "a metadata-only location holds the catalog entry and nothing else")
	assert.Contains(t, keysSeen[0], "catalog/")
}

func read(t *testing.T, st providers.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

// makeTree builds a tree with nested directories, symlinks, modes, mtimes, empty files,
// unicode names, a large file spanning many chunks and small files.
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(rel string, data []byte, mode fs.FileMode) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, mode))
		require.NoError(t, os.Chmod(p, mode))
	}
	big := make([]byte, 9<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	copy(big[1<<20:], marker)
	write("data/big.bin", big, 0o640)
	write("docs/secret-notes.txt", []byte(strings.Repeat(marker+" confidential\n", 500)), 0o600)
	write("docs/empty", nil, 0o644)
	write("docs/ünïcode name.txt", []byte(marker), 0o644)
	for i := range 50 {
		write(fmt.Sprintf("small/%02d.txt", i), []byte(fmt.Sprintf("%s small file %d\n", marker, i)), 0o644)
	}
	require.NoError(t, os.Symlink("../docs/secret-notes.txt", filepath.Join(root, "data", "link")))
	require.NoError(t, os.Chmod(filepath.Join(root, "docs"), 0o750))
	when := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, when, when)
	}))
	return root
}

// assertSameTree compares two trees entry by entry: type, permission bits, content, symlink
// target, and (for files and directories) modification time to the nanosecond.
func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := describe(t, want), describe(t, got)
	assert.Equal(t, w, g)
}

func describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %v", info.Mode().Type(), info.Mode().Perm())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case info.IsDir():
			desc += " " + info.ModTime().UTC().Format(time.RFC3339Nano)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += fmt.Sprintf(" %d %s %s", len(data), hex.EncodeToString(sum[:8]), info.ModTime().UTC().Format(time.RFC3339Nano))
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	}))
	return out
}

// makeDatabase creates a PostgreSQL database with two tables and returns its DSN.
func makeDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, adminDSN)
	require.NoError(t, err, "PostgreSQL must answer on 127.0.0.1:5432 (make test starts it: scripts/postgres.sh)")
	defer admin.Close(ctx)
	name := fmt.Sprintf("drflow_e2e_%d", time.Now().UnixNano())
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), adminDSN)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	dsn := fmt.Sprintf("host=127.0.0.1 port=5432 user=postgres dbname=%s sslmode=disable", name)
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, photo bytea);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint REFERENCES customers(id), total numeric(12,2), note text);
INSERT INTO customers (name, photo) SELECT 'customer ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 3000) g;
INSERT INTO orders (customer, total, note) SELECT 1 + g % 3000, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE 'ünïcode ' || g END FROM generate_series(1, 20000) g;`)
	require.NoError(t, err)
	return dsn
}

// makeObjects fills a local store's prefix with objects to back up.
func makeObjects(t *testing.T) providers.Store {
	t.Helper()
	st, err := local.Open(local.Options{Root: t.TempDir()})
	require.NoError(t, err)
	for i := range 30 {
		data := bytes.Repeat([]byte(fmt.Sprintf("%s object %d ", marker, i)), 100*(i+1))
		_, err := st.Put(context.Background(), fmt.Sprintf("in/obj-%02d", i), bytes.NewReader(data), providers.PutOptions{})
		require.NoError(t, err)
	}
	return st
}

func objectHashes(t *testing.T, st providers.Store, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, st.List(context.Background(), prefix, func(o providers.ObjectInfo) error {
		sum := sha256.Sum256(read(t, st, o.Key))
		out[strings.TrimPrefix(o.Key, prefix)] = hex.EncodeToString(sum[:])
		return nil
	}))
	require.NotEmpty(t, out)
	return out
}
