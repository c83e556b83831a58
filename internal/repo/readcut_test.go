package repo

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers/storetest"
)

// TestReadsCutShortAreNotDamage: a body that the connection cuts short (the transport's
// io.ErrUnexpectedEOF) says nothing about the object. Small objects and pack ranges are read
// again; a read that keeps failing fails the restore with a retryable error, not an
// IntegrityError, which would stop a drill for good. (An object that really is short is
// damage: tamper_test.go.)
func TestReadsCutShortAreNotDamage(t *testing.T) {
	f := newFixture(t)
	files := []memFile{
		{Entry: sources.Entry{Path: "a.bin", Type: sources.TypeFile, Mode: 0o644, ModTime: mtime(1)}, content: randomBytes(1, 3<<20)},
		{Entry: sources.Entry{Path: "b.txt", Type: sources.TypeFile, Mode: 0o644, ModTime: mtime(2)}, content: textBytes(2, 200<<10, "b")},
	}
	res := f.backup(newMemSource(files), BackupOptions{Actor: "test"})
	faulty := storetest.NewFaulty(f.store)
	r := f.open(faulty, "customers")
	ds := datasetPrefix("customers")

	// The first read of a pack range and of an index is cut: both are read again.
	packs := faulty.On(storetest.MethodGet).Prefix(ds + "packs/").Times(1).Inject(storetest.ShortRead(10, nil))
	indexes := faulty.On(storetest.MethodGet).Prefix(ds + "index/").Times(1).Inject(storetest.ShortRead(3, nil))
	f.restoreEqual(r, res.Point.ID, files)
	assert.Equal(t, 1, packs.Fired())
	assert.Equal(t, 1, indexes.Fired())

	// Every read cut: the restore fails, retryably.
	for _, prefix := range []string{ds + "packs/", ds + "index/", pointKey("customers", res.Point.ID)} {
		rule := faulty.On(storetest.MethodGet).Prefix(prefix).Inject(storetest.ShortRead(5, nil))
		_, err := r.Restore(context.Background(), res.Point.ID, newMemSink(), RestoreOptions{Actor: "test"})
		require.Error(t, err, prefix)
		assert.NotErrorIs(t, err, keys.ErrIntegrity, "%s: %v", prefix, err)
		var ie *IntegrityError
		assert.NotErrorAs(t, err, &ie, prefix)
		assert.ErrorIs(t, err, errReadCut, prefix)
		rule.Remove()
	}
	f.restoreEqual(r, res.Point.ID, files)
}
