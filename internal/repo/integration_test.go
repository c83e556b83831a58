package repo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
)

// The engine with the real key manager (local keyring KEK) and the real directory source and
// sink: what a worker runs.
func TestWithKeyManagerAndDirectorySource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	dir := t.TempDir()
	kek, err := keys.OpenKeyring(ctx, keys.KeyringOptions{Path: filepath.Join(dir, "keys", "eu.keyring"), Name: "eu-kek",
		Jurisdiction: "EU", Recorder: rec, Actor: "test"})
	require.NoError(t, err)
	mgr, err := keys.NewManager(keys.ManagerOptions{KEK: kek, Recorder: rec, Actor: "test"})
	require.NoError(t, err)
	st := openStore(t, filepath.Join(dir, "store"), "eu-primary", "EU")
	r, err := Open(Options{Store: st, Dataset: "files", Keys: mgr, Audit: rec, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)

	tree := filepath.Join(dir, "tree")
	want := map[string][]byte{
		"a/one.txt":       []byte("one " + contentMarker),
		"a/b/big.bin":     randomBytes(1, 6<<20),
		"a/b/empty":       nil,
		"z-" + nameMarker: textBytes(2, 1<<20, contentMarker),
	}
	for p, b := range want {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), b, 0o640))
	}
	require.NoError(t, os.Symlink("one.txt", filepath.Join(tree, "a", "link")))

	res, err := r.Backup(ctx, sources.NewDirectory(tree), BackupOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), res.Totals.Files)
	h, err := r.Manifest(ctx, res.Point.ID)
	require.NoError(t, err)
	assert.Equal(t, kek.ID(), h.KEKID)
	assert.Equal(t, kek.ID(), rec.last(audit.KindRestorePoint).KeyID)

	out := filepath.Join(dir, "out")
	sink, err := sources.NewDirectorySink(out)
	require.NoError(t, err)
	rres, err := r.Restore(ctx, res.Point.ID, sink, RestoreOptions{Actor: "test"})
	require.NoError(t, err)
	assert.True(t, rres.Validation.OK(), rres.Validation.Mismatches)
	for p, b := range want {
		got, err := os.ReadFile(filepath.Join(out, p))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(b, got), p)
	}
	target, err := os.Readlink(filepath.Join(out, "a", "link"))
	require.NoError(t, err)
	assert.Equal(t, "one.txt", target)
	requireNoPlaintext(t, filepath.Join(dir, "store"), []memFile{file("z-"+nameMarker, 0, 0, want["z-"+nameMarker])})
}
