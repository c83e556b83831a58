package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := mixedTree()
	src := newMemSource(files)
	src.problems = []sources.Problem{{Path: "docs/unreadable", Err: "permission denied"}}
	res := f.backup(src, BackupOptions{Actor: "test", Description: "unit test tree"})

	assert.Equal(t, int64(len(files)), res.Entries)
	assert.Equal(t, sumBytes(files), res.BytesRead)
	assert.Equal(t, sumBytes(files), res.Totals.Bytes)
	assert.Greater(t, res.ChunksReused, int64(0), "the duplicate file dedups within the run")
	assert.Less(t, res.BytesUploaded, res.BytesRead, "text compresses and the duplicate is stored once")
	assert.Equal(t, int64(1), res.ProblemCount)
	assert.Equal(t, src.problems, res.Problems)
	assert.Len(t, res.ManifestHash, 64)
	assert.Equal(t, src.asOf, res.Point.DataAsOf)
	assert.True(t, strings.HasPrefix(res.Point.ID, "20261122T213000.123Z-"), res.Point.ID)

	h, err := f.repo.Manifest(context.Background(), res.Point.ID)
	require.NoError(t, err)
	assert.Equal(t, "customers", h.Dataset)
	assert.Equal(t, sources.KindDirectory, h.SourceKind)
	assert.Equal(t, "unit test tree", h.SourceDescription)
	assert.Equal(t, uint32(1), h.KeyEpoch)
	assert.Equal(t, res.Totals, h.Totals)
	assert.Equal(t, src.facts, h.Facts)
	assert.Equal(t, src.problems, h.Problems)
	assert.Equal(t, int64(4), h.Totals.Dirs)
	assert.Equal(t, int64(2), h.Totals.Symlinks)

	rres := f.restoreEqual(f.repo, res.Point.ID, files)
	assert.Equal(t, sumBytes(files), rres.Bytes)
	assert.Equal(t, res.ManifestHash, rres.ManifestHash)

	vres, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, vres.OK())
	assert.Equal(t, res.Totals.Chunks, vres.ChunksTotal)
	assert.Equal(t, vres.ChunksTotal, vres.ChunksChecked)
	assert.Equal(t, sumBytes(files), vres.BytesChecked)

	assert.Equal(t, []string{"restore_point.written:ok", "restore:ok", "verify:ok"}, f.audit.kinds())
	ev := f.audit.last(audit.KindRestorePoint)
	assert.Equal(t, res.ManifestHash, ev.ManifestHash)
	assert.Equal(t, "eu-primary", ev.Location)
	assert.Equal(t, "EU", ev.Jurisdiction)
	assert.Equal(t, res.Point.ID, ev.Point)
	requireNoNames(t, f.audit.json(t), files)
}

// requireNoNames checks that no path (or content marker) appears in s.
func requireNoNames(t *testing.T, s string, files []memFile) {
	t.Helper()
	assert.NotContains(t, s, contentMarker)
	for _, f := range files {
		base := f.Path[strings.LastIndex(f.Path, "/")+1:]
		if len(base) >= 5 {
			assert.NotContains(t, s, base)
		}
	}
}

func TestSecondBackupUploadsNoChunks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := mixedTree()
	first := f.backup(newMemSource(files), BackupOptions{})
	src := newMemSource(files)
	src.snaps = 5
	second := f.backup(src, BackupOptions{})
	assert.Zero(t, second.ChunksNew)
	assert.Zero(t, second.BytesUploaded)
	assert.Equal(t, first.Totals.ChunkRefs, second.ChunksReused)
	assert.Equal(t, first.Totals, second.Totals)
	assert.NotEqual(t, first.Point.ID, second.Point.ID)

	points, err := f.repo.Points(context.Background())
	require.NoError(t, err)
	require.Len(t, points, 2)
	assert.Equal(t, first.Point.ID, points[0].ID, "oldest first")
	assert.Equal(t, second.Point.ID, points[1].ID)
	assert.True(t, points[1].DataAsOf.After(points[0].DataAsOf))
	f.restoreEqual(f.repo, first.Point.ID, files)
	f.restoreEqual(f.repo, second.Point.ID, files)
}

func TestSmallChangeUploadsLittle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var files []memFile
	for i := range 100 {
		files = append(files, file(fmt.Sprintf("f/%03d.bin", i), 0o644, i, randomBytes(int64(100+i), 512<<10)))
	}
	first := f.backup(newMemSource(files), BackupOptions{})

	// Change 1% of the data: one file rewritten in its middle.
	changed := append([]memFile(nil), files...)
	c := bytes.Clone(changed[42].content)
	copy(c[100<<10:], randomBytes(7, 300<<10))
	changed[42].content = c
	second := f.backup(newMemSource(changed), BackupOptions{})
	ratio := float64(second.BytesUploaded) / float64(first.BytesUploaded)
	t.Logf("first upload %d bytes, second %d (%.2f%%), chunks new %d reused %d", first.BytesUploaded,
		second.BytesUploaded, 100*ratio, second.ChunksNew, second.ChunksReused)
	assert.LessOrEqual(t, ratio, 0.03)
	assert.Positive(t, second.ChunksNew)
	f.restoreEqual(f.repo, second.Point.ID, changed)
	f.restoreEqual(f.repo, first.Point.ID, files)
}

func TestEditInLargeFileReuploadsOnlyNearbyChunks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := randomBytes(11, 32<<20)
	first := f.backup(newMemSource([]memFile{file("db.img", 0o600, 1, big)}), BackupOptions{})
	require.Greater(t, first.ChunksNew, int64(16))

	tests := []struct {
		name string
		give []byte
	}{
		{"overwrite 4 KiB in the middle", func() []byte {
			b := bytes.Clone(big)
			copy(b[16<<20:], randomBytes(12, 4<<10))
			return b
		}()},
		{"insert 100 bytes at the start", append(randomBytes(13, 100), big...)},
		{"append 1 MiB", append(bytes.Clone(big), randomBytes(14, 1<<20)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := f.backup(newMemSource([]memFile{file("db.img", 0o600, 1, tt.give)}), BackupOptions{})
			t.Logf("%d new chunks, %d reused", res.ChunksNew, res.ChunksReused)
			assert.LessOrEqual(t, res.ChunksNew, int64(3), "content-defined chunking resynchronises")
			f.restoreEqual(f.repo, res.Point.ID, []memFile{file("db.img", 0o600, 1, tt.give)})
		})
	}
}

func TestProblemsAndFactsReachHeaderAndResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := newMemSource([]memFile{file("a", 0o600, 1, []byte("x"))})
	for i := range 150 {
		src.problems = append(src.problems, sources.Problem{Path: fmt.Sprintf("bad/%03d", i), Err: "EACCES"})
	}
	src.facts = map[string]string{"files": "1", "rows.public.orders": "12"}
	res := f.backup(src, BackupOptions{})
	assert.Equal(t, int64(150), res.ProblemCount)
	assert.Equal(t, src.problems, res.Problems)
	h, err := f.repo.Manifest(context.Background(), res.Point.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(150), h.ProblemCount)
	assert.Equal(t, src.problems[:headerProblems], h.Problems)
	assert.Equal(t, src.facts, h.Facts)
	sink := newMemSink()
	_, err = f.repo.Restore(context.Background(), res.Point.ID, sink, RestoreOptions{})
	require.NoError(t, err)
	assert.Equal(t, src.facts, sink.facts)
}

func TestValidationMismatchIsAuditedAsFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := newMemSource([]memFile{file("a", 0o600, 1, []byte("x"))})
	src.facts = map[string]string{"files": "2"}
	res := f.backup(src, BackupOptions{})
	rres, err := f.repo.Restore(context.Background(), res.Point.ID, newMemSink(), RestoreOptions{})
	require.NoError(t, err)
	assert.False(t, rres.Validation.OK())
	ev := f.audit.last(audit.KindRestore)
	assert.Equal(t, audit.OutcomeFailed, ev.Outcome)
	assert.NotContains(t, ev.Reason, "files: want")
}

func TestBadSourcesAreRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give []memFile
		want string
	}{
		{"dot-dot path", []memFile{file("a/../b", 0o600, 1, nil)}, "invalid entry path"},
		{"absolute path", []memFile{file("/etc/passwd", 0o600, 1, nil)}, "invalid entry path"},
		{"unknown type", []memFile{{Entry: sources.Entry{Path: "x", Type: 9}}}, "unknown type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.repo.Backup(context.Background(), newMemSource(tt.give), BackupOptions{})
			require.ErrorContains(t, err, tt.want)
			points, err := f.repo.Points(context.Background())
			require.NoError(t, err)
			assert.Empty(t, points)
			assert.Equal(t, audit.OutcomeFailed, f.audit.last(audit.KindRestorePoint).Outcome)
		})
	}
}

func TestUnorderedWalkIsRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.repo.Backup(context.Background(), unorderedSource{}, BackupOptions{})
	require.ErrorContains(t, err, "not in sources.ComparePaths order")
}

type unorderedSource struct{}

func (unorderedSource) Kind() string { return sources.KindObjects }
func (unorderedSource) Snapshot(context.Context) (sources.Snapshot, error) {
	return &memSnap{files: []memFile{file("b", 0o600, 1, nil), file("a", 0o600, 1, nil)}}, nil
}

func TestCrashMidBackupLeavesNoRestorePoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := mixedTree()
	src := newMemSource(files)
	src.failAt = "docs/a/" + nameMarker + ".csv"
	_, err := f.repo.Backup(context.Background(), src, BackupOptions{RunID: "nightly"})
	require.ErrorContains(t, err, "simulated read error")
	points, err := f.repo.Points(context.Background())
	require.NoError(t, err)
	assert.Empty(t, points)
	assert.Empty(t, listAll(t, f.store, pointsPrefix("customers")))
	assert.NotEmpty(t, listAll(t, f.store, packsPrefix("customers")), "packs written before the failure stay for dedup")
	ev := f.audit.last(audit.KindRestorePoint)
	assert.Equal(t, audit.OutcomeFailed, ev.Outcome)
	assert.NotContains(t, ev.Reason, nameMarker)

	// The next run completes and reuses what was uploaded.
	src.failAt = ""
	res := f.backup(src, BackupOptions{RunID: "nightly"})
	assert.Positive(t, res.ChunksReused)
	f.restoreEqual(f.repo, res.Point.ID, files)
}

func TestCancelledBackupLeavesNoRestorePoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := f.repo.Backup(ctx, newMemSource(mixedTree()), BackupOptions{Progress: func(p Progress) {
		if p.ChunksNew > 3 {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, listAll(t, f.store, pointsPrefix("customers")))
	assert.Equal(t, "backup failed: cancelled", f.audit.last(audit.KindRestorePoint).Reason)
}

func listAll(t testing.TB, st providers.Store, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, st.List(context.Background(), prefix, func(oi providers.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}))
	return keys
}

func TestProgressIsMonotonicWithTotals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.repo.checkpointEvery = DefaultCheckpointEvery
	files := mixedTree()
	var calls []Progress
	res := f.backup(newMemSource(files), BackupOptions{Progress: func(p Progress) { calls = append(calls, p) }})
	requireMonotonic(t, calls)
	last := calls[len(calls)-1]
	assert.Equal(t, PhaseDone, last.Phase)
	assert.Equal(t, sumBytes(files), last.BytesDone)
	assert.Equal(t, last.BytesDone, last.BytesTotal)
	assert.Equal(t, int64(len(files)), last.EntriesTotal)
	assert.Equal(t, res.BytesUploaded, last.BytesUploaded)
	assert.Equal(t, res.ChunksNew, last.ChunksNew)

	calls = nil
	_, err := f.repo.Restore(context.Background(), res.Point.ID, newMemSink(), RestoreOptions{Progress: func(p Progress) { calls = append(calls, p) }})
	require.NoError(t, err)
	requireMonotonic(t, calls)
	for _, p := range calls {
		assert.Equal(t, sumBytes(files), p.BytesTotal)
		assert.Equal(t, int64(len(files)), p.EntriesTotal)
	}
	last = calls[len(calls)-1]
	assert.Equal(t, last.BytesTotal, last.BytesDone)
	assert.Equal(t, last.EntriesTotal, last.EntriesDone)

	calls = nil
	_, err = f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{Progress: func(p Progress) { calls = append(calls, p) }})
	require.NoError(t, err)
	requireMonotonic(t, calls)
	last = calls[len(calls)-1]
	assert.Equal(t, last.BytesTotal, last.BytesDone)
}

func requireMonotonic(t *testing.T, calls []Progress) {
	t.Helper()
	require.NotEmpty(t, calls)
	for i := 1; i < len(calls); i++ {
		a, b := calls[i-1], calls[i]
		require.GreaterOrEqual(t, b.BytesDone, a.BytesDone, "call %d", i)
		require.GreaterOrEqual(t, b.EntriesDone, a.EntriesDone, "call %d", i)
		require.GreaterOrEqual(t, b.BytesUploaded, a.BytesUploaded, "call %d", i)
		require.GreaterOrEqual(t, b.ChunksNew, a.ChunksNew, "call %d", i)
		require.GreaterOrEqual(t, b.ChunksReused, a.ChunksReused, "call %d", i)
		require.GreaterOrEqual(t, b.Checkpoints, a.Checkpoints, "call %d", i)
	}
}

func TestPointIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.repo.Manifest(context.Background(), "../../etc")
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = f.repo.Manifest(context.Background(), "20261122T213000.123Z-0000000a")
	require.ErrorIs(t, err, providers.ErrNotFound)
	// Foreign objects under points/ are ignored by the listing.
	_, err = f.store.Put(context.Background(), pointsPrefix("customers")+"README", strings.NewReader("x"), providers.PutOptions{})
	require.NoError(t, err)
	points, err := f.repo.Points(context.Background())
	require.NoError(t, err)
	assert.Empty(t, points)
}

func TestOpenRequiresDependencies(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := Open(Options{Store: f.store, Dataset: "x", Keys: f.keys})
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = Open(Options{Store: f.store, Dataset: "a/b", Keys: f.keys, Audit: f.audit})
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
}

func TestIntegrityErrorIsErrIntegrity(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", &IntegrityError{Entry: "a/b", Chunk: keys.ChunkID{1}, Pack: "p", Reason: "pack missing", Err: providers.ErrNotFound})
	assert.ErrorIs(t, err, keys.ErrIntegrity)
	assert.ErrorIs(t, err, providers.ErrNotFound)
	var ie *IntegrityError
	require.True(t, errors.As(err, &ie))
	assert.Contains(t, err.Error(), `entry "a/b"`)
	assert.NotContains(t, ie.auditReason(), "a/b")
}

// A sink that stops reading early must not desynchronise the restore.
func TestSinkThatReadsPartially(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := mixedTree()
	res := f.backup(newMemSource(files), BackupOptions{})
	sink := &partialSink{memSink: newMemSink()}
	_, err := f.repo.Restore(context.Background(), res.Point.ID, sink, RestoreOptions{})
	require.NoError(t, err)
	assert.Len(t, sink.entries, len(files))
}

type partialSink struct{ *memSink }

func (s *partialSink) Write(ctx context.Context, e sources.Entry, r io.Reader) error {
	if r != nil {
		var b [10]byte
		_, _ = io.ReadFull(r, b[:])
		r = nil
	}
	return s.memSink.Write(ctx, e, r)
}

func TestEmptySourceAndRunIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := newMemSource(nil)
	src.facts = map[string]string{"files": "0"}
	res := f.backup(src, BackupOptions{RunID: "empty-1"})
	assert.Zero(t, res.Entries)
	f.restoreEqual(f.repo, res.Point.ID, nil)
	v, err := f.repo.Verify(context.Background(), res.Point.ID, VerifyOptions{})
	require.NoError(t, err)
	assert.Zero(t, v.ChunksTotal)

	for _, run := range []string{"a/b", "with space", "..", strings.Repeat("x", 201)} {
		_, err := f.repo.Backup(context.Background(), src, BackupOptions{RunID: run})
		require.ErrorIs(t, err, providers.ErrInvalidArgument, run)
	}
}
