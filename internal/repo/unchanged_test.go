package repo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/sources"
)

// A backup reads only the files that changed since the previous restore point; a file whose
// content changed behind an unchanged size and mtime is still read (its ctime moved), and
// --force-reread and the sampled share read everything again. Every point restores exactly.
func TestUnchangedFilesAreNotReadAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.repo.unchangedMargin = 0 // files are written moments before the first backup
	src := t.TempDir()
	contents := map[string][]byte{}
	for i := range 40 {
		name := fmt.Sprintf("dir-%d/file-%02d.bin", i%4, i)
		contents[name] = randomBytes(int64(i), 20_000+i*997)
		require.NoError(t, os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, name), contents[name], 0o644))
	}
	var total int64
	for _, c := range contents {
		total += int64(len(c))
	}
	backup := func(opts BackupOptions) BackupResult {
		t.Helper()
		if opts.RereadPercent == 0 {
			opts.RereadPercent = -1
		}
		res, err := f.repo.Backup(context.Background(), sources.NewDirectory(src), opts)
		require.NoError(t, err)
		return res
	}
	restoreEquals := func(point string) {
		t.Helper()
		target := filepath.Join(t.TempDir(), "r")
		sink, err := sources.NewDirectorySink(target)
		require.NoError(t, err)
		_, err = f.repo.Restore(context.Background(), point, sink, RestoreOptions{})
		require.NoError(t, err)
		for name, want := range contents {
			got, err := os.ReadFile(filepath.Join(target, name))
			require.NoError(t, err)
			require.True(t, bytes.Equal(want, got), "%s of %s", name, point)
		}
	}

	first := backup(BackupOptions{})
	assert.Equal(t, total, first.BytesRead)
	assert.Zero(t, first.FilesUnchanged)

	second := backup(BackupOptions{})
	assert.Zero(t, second.BytesRead, "nothing changed, nothing is read")
	assert.EqualValues(t, len(contents), second.FilesUnchanged)
	assert.Equal(t, total, second.BytesUnchanged)
	assert.Zero(t, second.BytesUploaded)
	assert.Equal(t, first.Totals.Bytes, second.Totals.Bytes)
	assert.Equal(t, first.Totals.ChunkRefs, second.Totals.ChunkRefs)
	restoreEquals(second.Point.ID)
	assert.Contains(t, f.audit.last("restore_point.written").Reason, fmt.Sprintf("%d files unchanged and not read", len(contents)))

	// Same size, same mtime, other content: the kind of change only ctime shows.
	const victim = "dir-1/file-05.bin"
	path := filepath.Join(src, victim)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	changed := bytes.Clone(contents[victim])
	changed[100] ^= 0xff
	require.NoError(t, os.WriteFile(path, changed, 0o644))
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
	contents[victim] = changed
	third := backup(BackupOptions{})
	assert.EqualValues(t, len(changed), third.BytesRead, "only the changed file is read")
	assert.EqualValues(t, len(contents)-1, third.FilesUnchanged)
	restoreEquals(third.Point.ID)

	forced := backup(BackupOptions{ForceReread: true})
	assert.Equal(t, total, forced.BytesRead)
	assert.Zero(t, forced.FilesUnchanged)

	sampled := backup(BackupOptions{RereadPercent: 100})
	assert.Equal(t, total, sampled.BytesRead)
	assert.EqualValues(t, len(contents), sampled.SampledRereads)
	restoreEquals(sampled.Point.ID)
}

// A file changed just before the previous backup began is read again: within the margin its
// ctime cannot prove that the previous backup saw the change.
func TestFileChangedWithinTheMarginIsRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.repo.unchangedMargin = time.Hour
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "a"), randomBytes(1, 5000), 0o644))
	_, err := f.repo.Backup(context.Background(), sources.NewDirectory(src), BackupOptions{})
	require.NoError(t, err)
	res, err := f.repo.Backup(context.Background(), sources.NewDirectory(src), BackupOptions{RereadPercent: -1})
	require.NoError(t, err)
	assert.EqualValues(t, 5000, res.BytesRead)
	assert.Zero(t, res.FilesUnchanged)
}
