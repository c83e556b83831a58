package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
)

func readObject(t testing.TB, st providers.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func writeObject(t testing.TB, st providers.Store, key string, b []byte) {
	t.Helper()
	_, err := st.Put(context.Background(), key, bytes.NewReader(b), providers.PutOptions{})
	require.NoError(t, err)
}

// frameSpans splits a manifest object into its preamble and frames (each with its length
// word).
func frameSpans(t testing.TB, m []byte) [][2]int {
	t.Helper()
	var spans [][2]int
	for off := preambleSize; off < len(m); {
		n := int(binary.BigEndian.Uint32(m[off:]) &^ finalFrameBit)
		spans = append(spans, [2]int{off, off + 4 + n})
		off += 4 + n
	}
	return spans
}

// manyEntries makes a tree whose manifest needs several entry frames.
func manyEntries(n int) []memFile {
	files := []memFile{dir("d", 0)}
	for i := range n {
		files = append(files, file(fmt.Sprintf("d/%06d-a-rather-long-file-name-to-fill-manifest-frames-quickly.txt", i), 0o600, i, nil))
	}
	files = append(files, file("d/zz-content", 0o600, 1, randomBytes(1, 2<<20)))
	return files
}

func TestTamperedManifestIsRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := manyEntries(30000)
	res := f.backup(newMemSource(files), BackupOptions{})
	key := pointKey("customers", res.Point.ID)
	orig := readObject(t, f.store, key)
	spans := frameSpans(t, orig)
	require.GreaterOrEqual(t, len(spans), 4, "header and at least three entry frames")
	frame := func(i int) []byte { return orig[spans[i][0]:spans[i][1]] }
	without := func(i int) []byte {
		return append(bytes.Clone(orig[:spans[i][0]]), orig[spans[i][1]:]...)
	}
	flipBit := func(at int, bit byte) []byte {
		b := bytes.Clone(orig)
		b[at] ^= bit
		return b
	}
	flip := func(at int) []byte { return flipBit(at, 0x01) }

	tests := []struct {
		name string
		give []byte
		want string
	}{
		{"flip a byte of the header", flip(spans[0][0] + 30), "frame 0: authentication failed"},
		{"flip a byte of an entry frame", flip(spans[1][0] + 100), "frame 1: authentication failed"},
		{"flip the last byte", flip(len(orig) - 1), "authentication failed"},
		{"clear the final flag", flipBit(spans[len(spans)-1][0], 0x80), "authentication failed"},
		{"set the final flag early", flipBit(spans[2][0], 0x80), "frame 2: authentication failed"},
		{"drop the final frame", orig[:spans[len(spans)-1][0]], "truncated: the final frame is missing"},
		{"truncate inside a frame", orig[:spans[2][0]+50], "truncated"},
		{"drop an entry frame", without(2), "frame 2: authentication failed"},
		{"swap two entry frames", func() []byte {
			b := bytes.Clone(orig[:spans[1][0]])
			b = append(b, frame(2)...)
			b = append(b, frame(1)...)
			return append(b, orig[spans[2][1]:]...)
		}(), "frame 1: authentication failed"},
		{"append bytes after the final frame", append(bytes.Clone(orig), 0), "bytes after the final frame"},
		{"huge frame length", func() []byte {
			b := bytes.Clone(orig)
			binary.BigEndian.PutUint32(b[spans[1][0]:], 0x7fffffff)
			return b
		}(), "exceeds the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeObject(t, f.store, key, tt.give)
			defer writeObject(t, f.store, key, orig)
			// The header alone is checked by Manifest; the whole stream by Verify and Restore.
			_, verr := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
			require.Error(t, verr)
			assert.ErrorIs(t, verr, keys.ErrIntegrity)
			assert.ErrorContains(t, verr, tt.want)
			_, rerr := f.repo.Restore(context.Background(), res.Point.ID, newMemSink(), RestoreOptions{})
			assert.ErrorIs(t, rerr, keys.ErrIntegrity)
			assert.ErrorContains(t, rerr, tt.want)
		})
	}

	t.Run("wrong magic", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[0] = 'X'
		writeObject(t, f.store, key, b)
		defer writeObject(t, f.store, key, orig)
		_, err := f.repo.Manifest(context.Background(), res.Point.ID)
		assert.ErrorIs(t, err, ErrFormat)
	})
	t.Run("other key epoch in the preamble", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[8] = 2
		writeObject(t, f.store, key, b)
		defer writeObject(t, f.store, key, orig)
		_, err := f.repo.Manifest(context.Background(), res.Point.ID)
		assert.Error(t, err)
	})
	_, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
	require.NoError(t, err, "the original verifies again")
}

func TestManifestFromAnotherPointOrDatasetIsRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.backup(newMemSource(mixedTree()), BackupOptions{})
	src := newMemSource([]memFile{file("only", 0o600, 1, []byte("b"))})
	src.snaps = 3
	b := f.backup(src, BackupOptions{})

	// Point b's manifest replaced by a's.
	writeObject(t, f.store, pointKey("customers", b.Point.ID), readObject(t, f.store, pointKey("customers", a.Point.ID)))
	_, err := f.repo.Manifest(context.Background(), b.Point.ID)
	require.ErrorIs(t, err, keys.ErrIntegrity)
	require.ErrorContains(t, err, "another restore point")
	_, err = f.repo.Restore(context.Background(), b.Point.ID, newMemSink(), RestoreOptions{})
	require.ErrorIs(t, err, keys.ErrIntegrity)

	// a's manifest planted in another dataset under the same point ID. Even with that
	// dataset's key the frames do not open.
	other := f.open(f.store, "other")
	writeObject(t, f.store, pointKey("other", a.Point.ID), readObject(t, f.store, pointKey("customers", a.Point.ID)))
	_, err = other.Manifest(context.Background(), a.Point.ID)
	require.ErrorIs(t, err, keys.ErrIntegrity)
}

// corruptFixture backs up mixedTree and returns where the chunk of one small file lives.
func corruptFixture(t *testing.T) (*fixture, BackupResult, string, keys.ChunkID, packRef, blobLoc) {
	f := newFixture(t)
	files := mixedTree()
	res := f.backup(newMemSource(files), BackupOptions{})
	const path = "data/setuid"
	var content []byte
	for _, fl := range files {
		if fl.Path == path {
			content = fl.content
		}
	}
	dk, err := f.keys.key("customers", 1)
	require.NoError(t, err)
	id := dk.ChunkID(content)
	idx, err := f.repo.loadIndex(context.Background(), newKeyCache(context.Background(), f.keys, f.store, "customers"), nil, nil, nil)
	require.NoError(t, err)
	loc, pack, ok := idx.lookup(id)
	require.True(t, ok)
	return f, res, path, id, pack, loc
}

func requireIntegrityError(t *testing.T, err error, path string, id keys.ChunkID, reason string) {
	t.Helper()
	require.ErrorIs(t, err, keys.ErrIntegrity)
	var ie *IntegrityError
	require.True(t, errors.As(err, &ie), "%v", err)
	assert.Equal(t, path, ie.Entry)
	assert.Equal(t, id, ie.Chunk)
	assert.Contains(t, ie.Reason, reason)
	assert.Contains(t, err.Error(), id.String())
	assert.Contains(t, err.Error(), path)
}

func TestCorruptedPackFailsVerifyAndRestore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(t *testing.T, f *fixture, pack packRef, loc blobLoc)
		reason  string
		// whole: the whole pack is affected, so the first failure is the pack's first chunk
		// in manifest order, not necessarily ours.
		whole bool
	}{
		{"flipped bit", func(t *testing.T, f *fixture, pack packRef, loc blobLoc) {
			key := packKey("customers", pack.id)
			b := readObject(t, f.store, key)
			b[int(loc.off)+int(loc.sealedLen)/2] ^= 0x10
			writeObject(t, f.store, key, b)
		}, "authentication failed", false},
		{"truncated inside the blob", func(t *testing.T, f *fixture, pack packRef, loc blobLoc) {
			key := packKey("customers", pack.id)
			writeObject(t, f.store, key, readObject(t, f.store, key)[:loc.off+10])
		}, "pack truncated", false},
		{"truncated before the blob", func(t *testing.T, f *fixture, pack packRef, loc blobLoc) {
			key := packKey("customers", pack.id)
			writeObject(t, f.store, key, readObject(t, f.store, key)[:loc.off])
		}, "pack truncated", false},
		{"deleted pack", func(t *testing.T, f *fixture, pack packRef, _ blobLoc) {
			require.NoError(t, f.store.Delete(context.Background(), packKey("customers", pack.id)))
		}, "pack missing", true},
		{"deleted pack and index", func(t *testing.T, f *fixture, pack packRef, _ blobLoc) {
			require.NoError(t, f.store.Delete(context.Background(), packKey("customers", pack.id)))
			require.NoError(t, f.store.Delete(context.Background(), indexKey("customers", pack.id)))
		}, "in no pack index", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, res, path, id, pack, loc := corruptFixture(t)
			tt.corrupt(t, f, pack, loc)

			vres, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
			require.Error(t, err)
			require.ErrorIs(t, err, keys.ErrIntegrity)
			var ours *IntegrityError
			for _, fl := range vres.Failures {
				if fl.Chunk == id {
					ours = fl
				}
			}
			require.NotNil(t, ours, "verify reports the chunk of %s among %d failures", path, len(vres.Failures))
			requireIntegrityError(t, ours, path, id, tt.reason)
			if !tt.whole {
				requireIntegrityError(t, err, path, id, tt.reason)
			}
			if tt.name == "flipped bit" {
				assert.Len(t, vres.Failures, 1, "the other blobs of the pack verify")
			}
			assert.Less(t, vres.ChunksChecked, vres.ChunksTotal)

			sink := newMemSink()
			_, err = f.repo.Restore(context.Background(), res.Point.ID, sink, RestoreOptions{})
			require.ErrorIs(t, err, keys.ErrIntegrity)
			var ie *IntegrityError
			require.True(t, errors.As(err, &ie))
			assert.NotEmpty(t, ie.Entry)
			assert.NotEqual(t, keys.ChunkID{}, ie.Chunk)
			assert.Contains(t, ie.Reason, tt.reason)
			assert.NotContains(t, sink.content, ie.Entry, "nothing unverified reaches the sink")
			if !tt.whole {
				requireIntegrityError(t, err, path, id, tt.reason)
			}

			ev := f.audit.last("restore")
			assert.Equal(t, "failed", ev.Outcome)
			assert.Contains(t, ev.Reason, ie.Chunk.String())
			assert.NotContains(t, ev.Reason, ie.Entry)
			assert.Equal(t, "failed", f.audit.last("verify").Outcome)

			// The same through a directory, whose files several writers write at once.
			target := filepath.Join(t.TempDir(), "target")
			ds, err := sources.NewDirectorySink(target)
			require.NoError(t, err)
			_, err = f.repo.Restore(context.Background(), res.Point.ID, ds, RestoreOptions{})
			require.ErrorIs(t, err, keys.ErrIntegrity)
			assert.Contains(t, err.Error(), tt.reason)
			_, statErr := os.Lstat(filepath.Join(target, filepath.FromSlash(path)))
			assert.ErrorIs(t, statErr, fs.ErrNotExist, "a file with a bad chunk never appears under its name")
			require.NoError(t, ds.Close())
		})
	}
}

// A blob whose ciphertext is valid but belongs to another chunk (an index pointing at the
// wrong blob) fails on its AAD; a pack whose content was swapped for another pack's fails
// the same way.
func TestSwappedPackIsDetected(t *testing.T) {
	t.Parallel()
	f, res, _, _, pack, _ := corruptFixture(t)
	var other string
	for _, k := range listAll(t, f.store, packsPrefix("customers")) {
		if k != packKey("customers", pack.id) {
			other = k
			break
		}
	}
	require.NotEmpty(t, other)
	writeObject(t, f.store, packKey("customers", pack.id), readObject(t, f.store, other))
	_, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
	require.Error(t, err)
	var ie *IntegrityError
	require.True(t, errors.As(err, &ie))
	_, err = f.repo.Restore(context.Background(), res.Point.ID, newMemSink(), RestoreOptions{})
	require.ErrorIs(t, err, keys.ErrIntegrity)
}

func TestSampleVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var files []memFile
	for i := range 60 {
		files = append(files, file(fmt.Sprintf("f%02d", i), 0o600, i, randomBytes(int64(i), 100<<10)))
	}
	res := f.backup(newMemSource(files), BackupOptions{})
	require.Equal(t, int64(60), res.Totals.Chunks)

	a, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{SamplePercent: 30, Seed: 7})
	require.NoError(t, err)
	b, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{SamplePercent: 30, Seed: 7})
	require.NoError(t, err)
	c, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{SamplePercent: 30, Seed: 8})
	require.NoError(t, err)
	all, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{SamplePercent: 100})
	require.NoError(t, err)
	t.Logf("seed 7: %d of %d chunks, seed 8: %d", a.ChunksChecked, a.ChunksTotal, c.ChunksChecked)
	assert.Equal(t, int64(60), a.ChunksTotal)
	assert.Equal(t, a.ChunksChecked, b.ChunksChecked, "reproducible")
	assert.Equal(t, a.BytesChecked, b.BytesChecked)
	assert.Greater(t, a.ChunksChecked, int64(5))
	assert.Less(t, a.ChunksChecked, int64(35))
	assert.Less(t, a.BytesRead, all.BytesRead)
	assert.Equal(t, int64(60), all.ChunksChecked)
	assert.Equal(t, res.ManifestHash, a.ManifestHash, "the manifest is always read whole")

	// A missing pack is found by a sample even if none of its chunks is sampled: the index
	// lookup covers every reference.
	packs := listAll(t, f.store, indexPrefix("customers"))
	require.NoError(t, f.store.Delete(context.Background(), packs[0]))
	_, err = f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{SamplePercent: 0.001, Seed: 7})
	require.ErrorContains(t, err, "in no pack index")
}

func TestEntryTypesSurviveVerbatim(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := []memFile{
		{Entry: sources.Entry{Path: "zero-time", Type: sources.TypeFile, Mode: 0o600}, content: []byte("x")},
		symlink("l", "target with spaces/and\\backslash", 2),
		file("sticky", 0o1777|0o2000, 3, nil),
	}
	res := f.backup(newMemSource(files), BackupOptions{})
	f.restoreEqual(f.repo, res.Point.ID, files)
}
