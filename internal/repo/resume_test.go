package repo

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
)

// resumeTree mixes single-chunk files with multi-chunk ones, so that checkpoints fall both
// between entries and inside them.
func resumeTree() []memFile {
	var files []memFile
	for i := range 24 {
		files = append(files, file(fmt.Sprintf("small/%02d.bin", i), 0o600, i, randomBytes(int64(i), 300<<10)))
		if i%6 == 0 {
			files = append(files, file(fmt.Sprintf("big/%02d.bin", i), 0o600, i, randomBytes(int64(1000+i), 3<<20)))
		}
	}
	files = append(files, dir("big", 1), dir("small", 2), file("z/text.log", 0o600, 3, textBytes(9, 2<<20, contentMarker)))
	return files
}

// newResumeFixture checkpoints often: small packs, no minimum interval.
func newResumeFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.repo.packTarget = 512 << 10
	return f
}

// interrupt runs a backup and cancels it once it has made n checkpoints durable.
func interrupt(t *testing.T, f *fixture, src *memSource, run string, n int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := f.repo.Backup(ctx, src, BackupOptions{RunID: run, Progress: func(p Progress) {
		if p.Checkpoints >= n {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, listAll(t, f.store, pointsPrefix("customers")), "an interrupted backup leaves no restore point")
	assert.NotEmpty(t, listAll(t, f.store, checkpointKey("customers", run)), "but a checkpoint")
}

func TestResumeFromCheckpoint(t *testing.T) {
	t.Parallel()
	for _, after := range []int64{2, 5, 8, 12} {
		t.Run(fmt.Sprintf("after %d checkpoints", after), func(t *testing.T) {
			f := newResumeFixture(t)
			files := resumeTree()
			total := sumBytes(files)
			src := newMemSource(files)
			interrupt(t, f, src, "nightly-1", after)

			res := f.backup(src, BackupOptions{RunID: "nightly-1"})
			t.Logf("resumed from %q: read %d of %d bytes, skipped %d, uploaded %d (%d new chunks, %d reused)",
				res.ResumedFrom, res.BytesRead, total, res.BytesSkipped, res.BytesUploaded, res.ChunksNew, res.ChunksReused)
			assert.True(t, res.Resumed)
			assert.NotEmpty(t, res.ResumedFrom)
			assert.Positive(t, res.BytesSkipped)
			assert.Less(t, res.BytesRead, total)
			assert.Equal(t, total, res.BytesRead+res.BytesSkipped)
			assert.Equal(t, total, res.Totals.Bytes)
			assert.Equal(t, int64(len(files)), res.Entries)
			assert.Equal(t, src.asOf, res.Point.DataAsOf, "a resumed point keeps the first attempt's DataAsOf")
			assert.Equal(t, []string{runDoneKey("customers", "nightly-1")}, listAll(t, f.store, runPrefix("customers", "nightly-1")),
				"the checkpoint is deleted, the run record stays")

			h, err := f.repo.Manifest(context.Background(), res.Point.ID)
			require.NoError(t, err)
			assert.Equal(t, 2, h.Attempts)
			assert.Equal(t, res.Totals, h.Totals)

			vres, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
			require.NoError(t, err)
			assert.Equal(t, h.Totals.Chunks, vres.ChunksTotal)
			f.restoreEqual(f.repo, res.Point.ID, files)

			// The same totals as a backup that never stopped.
			again := f.backup(newMemSource(files), BackupOptions{})
			assert.Equal(t, again.Totals, res.Totals)
			assert.Zero(t, again.ChunksNew)
		})
	}
}

func TestResumeTwice(t *testing.T) {
	t.Parallel()
	f := newResumeFixture(t)
	files := resumeTree()
	src := newMemSource(files)
	interrupt(t, f, src, "r", 2)
	interrupt(t, f, src, "r", 4)
	res := f.backup(src, BackupOptions{RunID: "r"})
	assert.True(t, res.Resumed)
	h, err := f.repo.Manifest(context.Background(), res.Point.ID)
	require.NoError(t, err)
	assert.Equal(t, 3, h.Attempts)
	assert.Equal(t, src.asOf, h.DataAsOf)
	f.restoreEqual(f.repo, res.Point.ID, files)
}

// A crash after the manifest was written but before the checkpoint was deleted: the next run
// reports the finished restore point instead of writing a second one.
func TestResumeAfterManifestWritten(t *testing.T) {
	t.Parallel()
	f := newResumeFixture(t)
	files := resumeTree()
	src := newMemSource(files)
	interrupt(t, f, src, "r", 2)
	state := readObject(t, f.store, checkpointKey("customers", "r"))
	done := f.backup(src, BackupOptions{RunID: "r"})
	writeObject(t, f.store, checkpointKey("customers", "r"), state)

	res := f.backup(src, BackupOptions{RunID: "r"})
	assert.Equal(t, done.Point.ID, res.Point.ID)
	assert.Equal(t, done.ManifestHash, res.ManifestHash)
	assert.Zero(t, res.BytesRead)
	assert.Equal(t, []string{runDoneKey("customers", "r")}, listAll(t, f.store, runPrefix("customers", "r")))
	points, err := f.repo.Points(context.Background())
	require.NoError(t, err)
	assert.Len(t, points, 1)
	assert.Equal(t, audit.OutcomeOK, f.audit.last(audit.KindRestorePoint).Outcome)
}

// A checkpoint that cannot be used (here: a frame part is gone) is discarded and the run
// starts over; it still reuses the uploaded packs.
func TestBrokenCheckpointStartsOver(t *testing.T) {
	t.Parallel()
	f := newResumeFixture(t)
	files := resumeTree()
	src := newMemSource(files)
	interrupt(t, f, src, "r", 3)
	require.NoError(t, f.store.Delete(context.Background(), framePartKey("customers", "r", 1)))
	res := f.backup(src, BackupOptions{RunID: "r"})
	assert.False(t, res.Resumed)
	assert.Equal(t, sumBytes(files), res.BytesRead)
	assert.Positive(t, res.ChunksReused)
	f.restoreEqual(f.repo, res.Point.ID, files)
}

// With checkpointEvery 0 a backup checkpoints whenever a pack becomes durable and the entry
// stream has advanced.
func TestCheckpointsFollowDurablePacks(t *testing.T) {
	t.Parallel()
	f := newResumeFixture(t)
	var n int64
	res := f.backup(newMemSource(resumeTree()), BackupOptions{RunID: "x", Progress: func(p Progress) { n = p.Checkpoints }})
	packs := int64(len(listAll(t, f.store, indexPrefix("customers"))))
	t.Logf("%d checkpoints for %d new chunks in %d packs", n, res.ChunksNew, packs)
	// How many packs complete between two advances of the entry stream depends on
	// scheduling, so the count is not exact; but checkpoints follow packs, not only the end
	// (with checkpoints only at the end there would be 1).
	assert.Greater(t, packs, int64(4))
	assert.GreaterOrEqual(t, n, packs/4) // 10 to 16 of 24 seen under load
}

// The resume position of a frame closed inside an entry is that entry's start, possibly in an
// earlier frame.
func TestManifestWriterBoundaries(t *testing.T) {
	t.Parallel()
	dk := fuzzKey(t)
	w := manifestWriter{dk: dk, base: frameBase(appendPreamble(nil, magicManifest, 1), "fuzz", fuzzPoint), idx: 1}
	entry := func(p string) []byte { return encodeEntry(nil, file(p, 0o600, 1, nil).Entry) }

	w.add(recEntry, entry("a"), 0)
	w.add(recEnd, encodeEnd(nil, 0, [32]byte{}), 0)
	w.endEntry("a")
	bStart := len(w.buf)
	w.add(recEntry, entry("b"), 0)
	w.add(recChunks, encodeRefs(nil, []chunkRef{{Len: 1}}), 3)
	w.closeFrame() // inside b
	require.Len(t, w.closed, 1)
	assert.Equal(t, "a", w.closed[0].lastPath)
	assert.Equal(t, framePos{Frame: 1, Offset: bStart}, w.closed[0].boundary)
	assert.Equal(t, uint64(3), w.closed[0].dep)

	w.add(recChunks, encodeRefs(nil, []chunkRef{{Len: 1}}), 0)
	w.closeFrame() // still inside b, which started in frame 1
	assert.Equal(t, "a", w.closed[1].lastPath)
	assert.Equal(t, framePos{Frame: 1, Offset: bStart}, w.closed[1].boundary)
	assert.Equal(t, uint64(0), w.closed[1].dep)

	w.add(recEnd, encodeEnd(nil, 2, [32]byte{1}), 0)
	w.endEntry("b")
	w.closeFrame() // at an entry boundary: resume starts with the next frame
	assert.Equal(t, "b", w.closed[2].lastPath)
	assert.Equal(t, framePos{Frame: 4}, w.closed[2].boundary)
	assert.Equal(t, uint32(4), w.idx)
}

// A run whose attempt wrote its restore point without ever checkpointing (a small backup), then
// died before it reported: the retried attempt finds the run record and reports the same
// point. Without it the retry would write a second restore point of one run.
func TestRetryAfterPointWrittenWithoutCheckpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := tree(1)
	src := newMemSource(files)
	first := f.backup(src, BackupOptions{RunID: "sched-1"})
	assert.Equal(t, []string{runDoneKey("customers", "sched-1")}, listAll(t, f.store, runPrefix("customers", "sched-1")))

	src.set(tree(2)) // the source changed meanwhile: the retry must not read it
	again := f.backup(src, BackupOptions{RunID: "sched-1"})
	assert.Equal(t, first.Point.ID, again.Point.ID)
	assert.Equal(t, first.ManifestHash, again.ManifestHash)
	assert.True(t, again.Resumed)
	assert.Zero(t, again.BytesRead)
	points, err := f.repo.Points(context.Background())
	require.NoError(t, err)
	assert.Len(t, points, 1, "one run, one restore point")
	f.restoreEqual(f.repo, again.Point.ID, files)

	// Another run writes its own point.
	other := f.backup(src, BackupOptions{RunID: "sched-2"})
	assert.NotEqual(t, first.Point.ID, other.Point.ID)
	assert.False(t, other.Resumed)
}

// A run record that does not open is ignored, as a damaged checkpoint is; one that names a
// point that is gone (pruned, or never written) sends the run through a normal backup.
func TestRunRecordDamagedOrStale(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := newMemSource(tree(1))
	first := f.backup(src, BackupOptions{RunID: "r"})

	record := readObject(t, f.store, runDoneKey("customers", "r"))
	record[len(record)-1] ^= 1
	writeObject(t, f.store, runDoneKey("customers", "r"), record)
	damaged := f.backup(src, BackupOptions{RunID: "r"})
	assert.NotEqual(t, first.Point.ID, damaged.Point.ID, "a record that does not authenticate is not trusted")
	assert.False(t, damaged.Resumed)

	// The record now names damaged's point; once that point is gone the run backs up anew.
	require.NoError(t, f.store.Delete(context.Background(), pointKey("customers", damaged.Point.ID)))
	stale := f.backup(src, BackupOptions{RunID: "r"})
	assert.NotEqual(t, damaged.Point.ID, stale.Point.ID)
	assert.False(t, stale.Resumed)
}
