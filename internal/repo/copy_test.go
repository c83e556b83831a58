package repo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// rawFiles reads every file under a store's root directory, bypassing the store.
func rawFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	}))
	return out
}

// requireNoPlaintext checks that no file under root carries a marker, a file name or a
// recognisable run of the test data.
func requireNoPlaintext(t *testing.T, root string, files []memFile) {
	t.Helper()
	needles := [][]byte{[]byte(contentMarker), []byte(nameMarker), []byte("invoice customer")}
	for _, f := range files {
		base := f.Path[strings.LastIndex(f.Path, "/")+1:]
		if len(base) >= 5 {
			needles = append(needles, []byte(base))
		}
		if len(f.content) >= 4096 {
			needles = append(needles, f.content[1000:1064]) // 64 bytes of (random) content
		}
	}
	raw := rawFiles(t, root)
	require.NotEmpty(t, raw)
	for p, b := range raw {
		for _, n := range needles {
			require.False(t, bytes.Contains(b, n), "%s contains %q", p, truncate(string(n), 40))
		}
	}
}

func TestCopyReplicatesCiphertextOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := mixedTree()
	first := f.backup(newMemSource(files), BackupOptions{})
	dstRoot := t.TempDir()
	dst := openStore(t, dstRoot, "us-replica", "US")
	ctx := context.Background()
	opts := CopyOptions{Audit: f.audit, Actor: "test", LegalBasis: "SCC"}

	res, err := Copy(ctx, f.store, dst, "customers", first.Point.ID, opts)
	require.NoError(t, err)
	packs := len(listAll(t, f.store, packsPrefix("customers")))
	require.Positive(t, packs)
	assert.Equal(t, int64(2*packs+1+1), res.ObjectsCopied, "packs, indexes, one wrapped key, the manifest")
	assert.Zero(t, res.ObjectsSkipped)
	assert.Equal(t, first.ManifestHash, res.ManifestHash)
	ev := f.audit.last(audit.KindCopy)
	assert.Equal(t, audit.OutcomeOK, ev.Outcome)
	assert.Equal(t, audit.CopyModeEncrypted, ev.CopyMode)
	assert.Equal(t, "SCC", ev.LegalBasis)
	assert.Equal(t, "eu-primary", ev.Location)
	assert.Equal(t, "EU", ev.Jurisdiction)
	assert.Equal(t, "us-replica", ev.Destination)
	assert.Equal(t, "US", ev.DestJurisdiction)
	assert.Equal(t, res.BytesCopied, ev.Bytes)
	assert.Equal(t, first.ManifestHash, ev.ManifestHash)

	// Everything is there already.
	again, err := Copy(ctx, f.store, dst, "customers", first.Point.ID, opts)
	require.NoError(t, err)
	assert.Zero(t, again.ObjectsCopied)
	assert.Zero(t, again.BytesCopied)
	assert.Equal(t, res.ObjectsCopied, again.ObjectsSkipped)

	// A later point copies only what is new.
	changed := append(mixedTree(), file("new/file.bin", 0o600, 99, randomBytes(99, 2<<20)))
	src := newMemSource(changed)
	src.snaps = 1
	second := f.backup(src, BackupOptions{})
	res2, err := Copy(ctx, f.store, dst, "customers", second.Point.ID, opts)
	require.NoError(t, err)
	newPacks := len(listAll(t, f.store, packsPrefix("customers"))) - packs
	assert.Equal(t, int64(2*newPacks+1), res2.ObjectsCopied)
	assert.Less(t, res2.BytesCopied, res.BytesCopied)

	// The copy restores in the destination (with the home key, which this test has).
	replica := f.open(dst, "customers")
	f.restoreEqual(replica, first.Point.ID, files)
	f.restoreEqual(replica, second.Point.ID, changed)
	points, err := replica.Points(ctx)
	require.NoError(t, err)
	assert.Len(t, points, 2)

	// No plaintext anywhere in the destination: not in packs, indexes, manifests or metadata.
	requireNoPlaintext(t, dstRoot, changed)
	requireNoPlaintext(t, f.root, changed)
}

func TestCopyRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res := f.backup(newMemSource(mixedTree()), BackupOptions{})
	dst := openStore(t, t.TempDir(), "us", "US")
	ctx := context.Background()
	_, err := Copy(ctx, f.store, dst, "customers", res.Point.ID, CopyOptions{})
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = Copy(ctx, f.store, dst, "customers", res.Point.ID, CopyOptions{Audit: f.audit, Mode: audit.CopyModeMetadata})
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = Copy(ctx, f.store, dst, "customers", "20261122T213000.123Z-00000000", CopyOptions{Audit: f.audit})
	require.ErrorIs(t, err, providers.ErrNotFound)
	assert.Equal(t, audit.OutcomeFailed, f.audit.last(audit.KindCopy).Outcome)
	assert.Empty(t, listAll(t, dst, pointsPrefix("customers")))

	// A different manifest under the same ID at the destination is not silently accepted.
	writeObject(t, dst, pointKey("customers", res.Point.ID), []byte("something else"))
	_, err = Copy(ctx, f.store, dst, "customers", res.Point.ID, CopyOptions{Audit: f.audit})
	require.ErrorIs(t, err, providers.ErrExists)
}

// The wrapped keys at the destination follow the home copy (a KEK rotation re-wraps them).
func TestCopyRefreshesWrappedKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res := f.backup(newMemSource(mixedTree()), BackupOptions{})
	dst := openStore(t, t.TempDir(), "us", "US")
	ctx := context.Background()
	opts := CopyOptions{Audit: f.audit, Mode: audit.CopyModeFull}
	_, err := Copy(ctx, f.store, dst, "customers", res.Point.ID, opts)
	require.NoError(t, err)
	keyObj := listAll(t, f.store, keysPrefix("customers"))[0]
	writeObject(t, f.store, keyObj, []byte("re-wrapped by a new KEK"))
	again, err := Copy(ctx, f.store, dst, "customers", res.Point.ID, opts)
	require.NoError(t, err)
	assert.Equal(t, int64(1), again.ObjectsCopied)
	assert.Equal(t, []byte("re-wrapped by a new KEK"), readObject(t, dst, keyObj))
	assert.Equal(t, audit.CopyModeFull, f.audit.last(audit.KindCopy).CopyMode)
}

func TestCopyMetadataWritesOnlyTheCatalog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := mixedTree()
	res := f.backup(newMemSource(files), BackupOptions{})
	metaRoot := t.TempDir()
	meta := openStore(t, metaRoot, "ch-catalog", "CH")
	ctx := context.Background()

	ce, err := CopyMetadata(ctx, f.repo, meta, res.Point.ID, CopyOptions{Actor: "test", LegalBasis: "adequacy"})
	require.NoError(t, err)
	assert.Equal(t, CatalogEntry{
		Dataset: "customers", PointID: res.Point.ID, DataAsOf: res.Point.DataAsOf, Created: res.Point.Created,
		SourceKind: "directory", Entries: res.Entries, Bytes: res.Totals.Bytes, StoredBytes: res.Totals.StoredBytes,
		Chunks: res.Totals.Chunks, ManifestSHA256: res.ManifestHash,
	}, ce)

	keys := listAll(t, meta, "")
	require.Equal(t, []string{catalogKey("customers", res.Point.ID)}, keys, "nothing but the catalog entry")
	raw := readObject(t, meta, keys[0])
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.ElementsMatch(t, []string{"dataset", "point_id", "data_as_of", "created", "source_kind", "entries",
		"bytes", "stored_bytes", "chunks", "manifest_sha256"}, mapKeys(got))
	requireNoPlaintext(t, metaRoot, files)
	wrapped := readObject(t, f.store, listAll(t, f.store, keysPrefix("customers"))[0])
	for _, enc := range []string{string(wrapped), hex.EncodeToString(wrapped), base64.StdEncoding.EncodeToString(wrapped)} {
		assert.NotContains(t, string(raw), enc)
	}
	ev := f.audit.last(audit.KindCopy)
	assert.Equal(t, audit.CopyModeMetadata, ev.CopyMode)
	assert.Equal(t, "adequacy", ev.LegalBasis)
	assert.Equal(t, "ch-catalog", ev.Destination)
	assert.Equal(t, "CH", ev.DestJurisdiction)

	// Idempotent.
	again, err := CopyMetadata(ctx, f.repo, meta, res.Point.ID, CopyOptions{})
	require.NoError(t, err)
	assert.Equal(t, ce, again)
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
