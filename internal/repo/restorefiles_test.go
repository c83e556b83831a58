package repo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/sources"
)

// A restore into a directory writes many files at once; what lands is exactly what the
// sequential restore into memory gives, with the same totals.
func TestRestoreIntoDirectoryWithSeveralWriters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := append(manyEntries(600), mixedTree()...)
	res := f.backup(newMemSource(files), BackupOptions{})
	want := f.restoreEqual(f.repo, res.Point.ID, files)

	target := filepath.Join(t.TempDir(), "target")
	sink, err := sources.NewDirectorySink(target)
	require.NoError(t, err)
	got, err := f.repo.Restore(context.Background(), res.Point.ID, sink, RestoreOptions{})
	require.NoError(t, err)
	assert.Equal(t, want.Entries, got.Entries)
	assert.Equal(t, want.Bytes, got.Bytes)
	assert.Equal(t, want.Chunks, got.Chunks)
	assert.True(t, got.Validation.OK())

	n := 0
	for _, fl := range files {
		if fl.Type != sources.TypeFile {
			continue
		}
		data, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(fl.Path)))
		require.NoError(t, err, fl.Path)
		require.True(t, bytes.Equal(fl.content, data), "%s: restored content differs", fl.Path)
		fi, err := os.Lstat(filepath.Join(target, filepath.FromSlash(fl.Path)))
		require.NoError(t, err)
		assert.Equal(t, fl.Mode.Perm(), fi.Mode().Perm(), fl.Path)
		n++
	}
	assert.Greater(t, n, 600)
}

// A restore cancelled while its writers run stops with the cancellation and leaves no
// partial file.
func TestRestoreIntoDirectoryCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := manyEntries(300)
	res := f.backup(newMemSource(files), BackupOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	target := filepath.Join(t.TempDir(), "target")
	ds, err := sources.NewDirectorySink(target)
	require.NoError(t, err)
	sink := &cancelAfter{DirectorySink: ds, n: 50, cancel: cancel}
	_, err = f.repo.Restore(ctx, res.Point.ID, sink, RestoreOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, ds.Close())
	entries, err := os.ReadDir(filepath.Join(target, "d"))
	require.NoError(t, err)
	assert.Less(t, len(entries), 300, "the restore stopped early")
	for _, e := range entries {
		// Whatever was written in full is whole: a file cut off by the cancellation was removed.
		data, err := os.ReadFile(filepath.Join(target, "d", e.Name()))
		require.NoError(t, err)
		for _, fl := range files {
			if fl.Path == "d/"+e.Name() {
				require.True(t, bytes.Equal(fl.content, data), "%s is partial", e.Name())
			}
		}
	}
}

// cancelAfter cancels the restore when the n-th file is prepared, while earlier files are
// being written.
type cancelAfter struct {
	*sources.DirectorySink
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) PrepareFile(ctx context.Context, e sources.Entry) (sources.FileWrite, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.DirectorySink.PrepareFile(ctx, e)
}
