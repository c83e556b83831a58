package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

// testClock is a clock that tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gcFixture is a fixture whose repository runs on a test clock.
func gcFixture(t testing.TB) (*fixture, *testClock) {
	f := newFixture(t)
	clk := newTestClock()
	f.repo.now = clk.Now
	return f, clk
}

// tree is a small tree whose content is unique to seed: its chunks are shared with no other
// seed's tree.
func tree(seed int64) []memFile {
	return []memFile{
		dir("d", 1),
		file("d/a.bin", 0o600, 2, randomBytes(seed*10+1, 1500<<10)),
		file("d/b.txt", 0o644, 3, textBytes(seed*10+2, 600<<10, contentMarker)),
		file("e.bin", 0o600, 4, randomBytes(seed*10+3, 900<<10)),
	}
}

// set replaces the source's files.
func (s *memSource) set(files []memFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = files
	s.facts = map[string]string{"files": fmt.Sprint(countFiles(files))}
}

// storeBytes sums the sizes of the objects under the dataset's packs/ and index/.
func storeBytes(t *testing.T, st providers.Store) int64 {
	t.Helper()
	var n int64
	for _, prefix := range []string{packsPrefix("customers"), indexPrefix("customers")} {
		require.NoError(t, st.List(context.Background(), prefix, func(oi providers.ObjectInfo) error {
			n += oi.Size
			return nil
		}))
	}
	return n
}

func (f *fixture) gc(opts GCOptions) GCResult {
	f.t.Helper()
	opts.Actor = "test"
	res, err := f.repo.GC(context.Background(), opts)
	require.NoError(f.t, err)
	return res
}

func pointIDs(ps []PointInfo) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

func TestPruneKeepsHeldPointsAndGCFreesPrunedChunks(t *testing.T) {
	t.Parallel()
	f, clk := gcFixture(t)
	ctx := context.Background()
	src := newMemSource(nil)
	var points []BackupResult
	for seed := int64(1); seed <= 3; seed++ {
		src.set(tree(seed))
		points = append(points, f.backup(src, BackupOptions{Actor: "test"}))
	}
	held, pruned, newest := points[0].Point.ID, points[1].Point.ID, points[2].Point.ID
	require.NoError(t, f.store.SetLegalHold(ctx, PointObjectKey("customers", held), true))

	res, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	require.Len(t, res.Kept, 1)
	assert.Equal(t, newest, res.Kept[0].ID)
	assert.Equal(t, []string{"last 1"}, res.Kept[0].Reasons)
	assert.Equal(t, []string{pruned}, pointIDs(res.Pruned))
	require.Len(t, res.Held, 1)
	assert.Equal(t, held, res.Held[0].ID)
	assert.Equal(t, "legal hold", res.Held[0].Reason)
	left, err := f.repo.Points(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{held, newest}, pointIDs(left))

	var prunes []audit.Event
	for _, e := range f.audit.events {
		if e.Kind == audit.KindPrune {
			prunes = append(prunes, e)
		}
	}
	require.Len(t, prunes, 2)
	assert.Equal(t, held, prunes[0].Point)
	assert.Equal(t, audit.OutcomeDenied, prunes[0].Outcome)
	assert.Equal(t, "kept: legal hold", prunes[0].Reason)
	assert.Equal(t, pruned, prunes[1].Point)
	assert.Equal(t, audit.OutcomeOK, prunes[1].Outcome)

	// A dry run changes nothing and reports the same.
	dry, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{DryRun: true})
	require.NoError(t, err)
	assert.Empty(t, dry.Pruned)
	assert.Equal(t, []HeldPoint{{ID: held, DataAsOf: res.Held[0].DataAsOf, Reason: "legal hold"}}, dry.Held)

	// First GC: the packs of the pruned point are condemned, nothing is deleted.
	before := storeBytes(t, f.store)
	g1 := f.gc(GCOptions{})
	t.Logf("gc 1: %+v", g1)
	assert.Equal(t, 2, g1.Points)
	assert.Positive(t, g1.PacksCondemned)
	assert.Equal(t, g1.Packs, g1.PacksReferenced+g1.PacksCondemned)
	assert.Zero(t, g1.PacksDeleted)
	assert.Zero(t, g1.MissingChunks)
	assert.Equal(t, before, storeBytes(t, f.store))
	assert.Len(t, listAll(t, f.store, condemnedPrefix("customers")), 1)

	// Within the grace period: still nothing deleted.
	clk.Add(DefaultGCGrace - time.Minute)
	g2 := f.gc(GCOptions{})
	assert.Zero(t, g2.PacksDeleted)
	assert.Equal(t, g1.PacksCondemned, g2.PacksWaiting)
	assert.Zero(t, g2.PacksCondemned)
	assert.Equal(t, before, storeBytes(t, f.store))

	// After it: the condemned packs go, and the store shrinks by what GC reports.
	clk.Add(2 * time.Minute)
	g3 := f.gc(GCOptions{})
	t.Logf("gc 3: %+v", g3)
	assert.Equal(t, g1.PacksCondemned, g3.PacksDeleted)
	assert.Positive(t, g3.ChunksCollected)
	assert.Positive(t, g3.BytesFreed)
	after := storeBytes(t, f.store)
	assert.Equal(t, before-after, g3.BytesFreed)
	assert.Empty(t, listAll(t, f.store, condemnedPrefix("customers")), "nothing left condemned")
	// The pruned point's content was unique to it: about its stored size is freed.
	assert.Greater(t, g3.BytesFreed, points[1].BytesUploaded)
	t.Logf("freed %d of %d bytes (%d packs, %d chunks)", g3.BytesFreed, before, g3.PacksDeleted, g3.ChunksCollected)

	// The remaining points restore byte for byte and verify.
	f.restoreEqual(f.repo, held, tree(1))
	f.restoreEqual(f.repo, newest, tree(3))
	for _, p := range []string{held, newest} {
		v, err := f.repo.Verify(ctx, p, VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, v.OK(), v.Failures)
	}
	_, err = f.repo.Restore(ctx, pruned, newMemSink(), RestoreOptions{})
	assert.ErrorIs(t, err, providers.ErrNotFound)

	// Another GC finds nothing to do.
	g4 := f.gc(GCOptions{})
	assert.Zero(t, g4.PacksCondemned+g4.PacksDeleted+g4.PacksWaiting)
	assert.Equal(t, audit.KindGC, f.audit.last(audit.KindGC).Kind)
	assert.Equal(t, g3.BytesFreed, findEvent(f.audit, audit.KindGC, 2).Bytes)
	requireNoNames(t, f.audit.json(t), tree(1))
}

// findEvent returns the n-th (from 0) event of kind.
func findEvent(r *recorder, kind string, n int) audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Kind == kind {
			if n == 0 {
				return e
			}
			n--
		}
	}
	return audit.Event{}
}

// A point the store refuses to delete (a retention lock that Stat does not show, here a hold
// placed between Stat and Delete) is held, not a failure.
func TestPruneTreatsImmutableDeleteAsHeld(t *testing.T) {
	t.Parallel()
	f, _ := gcFixture(t)
	ctx := context.Background()
	src := newMemSource(tree(1))
	first := f.backup(src, BackupOptions{})
	f.backup(src, BackupOptions{})
	f.repo.store = holdOnStat(f.store, PointObjectKey("customers", first.Point.ID))

	res, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Empty(t, res.Pruned)
	require.Len(t, res.Held, 1)
	assert.Equal(t, first.Point.ID, res.Held[0].ID)
	assert.Contains(t, res.Held[0].Reason, "the store refused deletion")
	ev := f.audit.last(audit.KindPrune)
	assert.Equal(t, audit.OutcomeDenied, ev.Outcome)
	assert.Equal(t, first.Point.ID, ev.Point)
}

// holdOnStat wraps store so that a Stat of key places a legal hold on it, after the store
// reported it unheld.
func holdOnStat(store providers.Store, key string) providers.Store {
	f := storetest.NewFaulty(store)
	f.On(storetest.MethodStat).Key(key).Inject(storetest.After(func(ctx context.Context, c storetest.Call) error {
		if c.Err != nil {
			return nil
		}
		return store.SetLegalHold(ctx, key, true)
	}))
	return f
}

// A backup that deduplicated against packs before GC condemned them keeps them alive: GC
// waits for its lease, and the packs are rescued once its manifest references them.
func TestGCWaitsForBackupThatReusesCondemnedPacks(t *testing.T) {
	t.Parallel()
	f, clk := gcFixture(t)
	ctx := context.Background()
	x, y := tree(1), tree(2)
	src := newMemSource(x)
	f.backup(src, BackupOptions{})
	src.set(y)
	f.backup(src, BackupOptions{})
	_, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)

	// A backup of x again: it dedups against the pruned point's packs, then stops just
	// before writing its manifest.
	src.set(x)
	paused, resume := make(chan struct{}), make(chan struct{})
	var leaseDuring *lease
	type outcome struct {
		res BackupResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := f.repo.Backup(ctx, src, BackupOptions{RunID: "concurrent", Progress: func(p Progress) {
			if p.Phase == PhaseManifest {
				leaseDuring, _ = f.repo.readLease(ctx, "concurrent")
				close(paused)
				<-resume
			}
		}})
		done <- outcome{res, err}
	}()
	select {
	case <-paused:
	case o := <-done:
		t.Fatalf("backup ended before its manifest: %v", o.err)
	}
	require.NotNil(t, leaseDuring, "a running backup holds a lease")
	assert.NotNil(t, leaseDuring.Seen)

	g1 := f.gc(GCOptions{Grace: time.Minute})
	assert.Positive(t, g1.PacksCondemned, "the pruned point's packs look unreferenced")
	assert.Equal(t, 1, g1.LeasesLive)
	clk.Add(2 * time.Minute)
	g2 := f.gc(GCOptions{Grace: time.Minute})
	assert.Zero(t, g2.PacksDeleted, "the running backup has not seen them condemned")
	assert.Equal(t, g1.PacksCondemned, g2.PacksWaiting)

	close(resume)
	o := <-done
	require.NoError(t, o.err)
	assert.Positive(t, o.res.ChunksReused)
	assert.Zero(t, o.res.ChunksNew, "every chunk was reused from the condemned packs")
	assert.Empty(t, listAll(t, f.store, leasesPrefix("customers")), "the lease is released")

	clk.Add(2 * time.Minute)
	g3 := f.gc(GCOptions{Grace: time.Minute})
	assert.Zero(t, g3.PacksDeleted)
	assert.Equal(t, g1.PacksCondemned, g3.PacksRescued)
	assert.Empty(t, listAll(t, f.store, condemnedPrefix("customers")))
	f.restoreEqual(f.repo, o.res.Point.ID, x)
	v, err := f.repo.Verify(ctx, o.res.Point.ID, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, v.OK())
}

// A backup that starts after packs were condemned does not reuse them, so GC can delete them
// while points written meanwhile stay whole.
func TestBackupAfterCondemnationDoesNotReuseCondemnedPacks(t *testing.T) {
	t.Parallel()
	f, clk := gcFixture(t)
	ctx := context.Background()
	x := tree(1)
	src := newMemSource(x)
	first := f.backup(src, BackupOptions{})
	src.set(tree(2))
	f.backup(src, BackupOptions{})
	_, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	g1 := f.gc(GCOptions{Grace: time.Minute})
	require.Positive(t, g1.PacksCondemned)

	src.set(x)
	again := f.backup(src, BackupOptions{})
	assert.Zero(t, again.ChunksReused, "condemned chunks are not reused")
	assert.Equal(t, first.ChunksNew, again.ChunksNew)

	clk.Add(2 * time.Minute)
	g2 := f.gc(GCOptions{Grace: time.Minute})
	assert.Equal(t, g1.PacksCondemned, g2.PacksDeleted)
	f.restoreEqual(f.repo, again.Point.ID, x)
}

// Packs without an index, checkpoints of runs that ended long ago and dead leases are
// garbage; a recent checkpoint keeps what it references.
func TestGCCollectsCrashLeftovers(t *testing.T) {
	t.Parallel()
	f, clk := gcFixture(t)
	ctx := context.Background()
	files, src := crashedBackup(t, f, 100)
	id, err := newPackID()
	require.NoError(t, err)
	_, err = f.store.Put(ctx, packKey("customers", id), bytes.NewReader(randomBytes(9, 5000)), providers.PutOptions{})
	require.NoError(t, err)
	dead, err := json.Marshal(lease{Format: leaseFormat, Dataset: "customers", Run: "gone", Started: clk.Now().Add(-2 * time.Hour),
		Refreshed: clk.Now().Add(-time.Hour)})
	require.NoError(t, err)
	_, err = f.store.Put(ctx, leaseKey("customers", "gone"), bytes.NewReader(dead), providers.PutOptions{})
	require.NoError(t, err)

	g1 := f.gc(GCOptions{})
	t.Logf("gc 1: %+v", g1)
	assert.Equal(t, 1, g1.Checkpoints, "the recent checkpoint is marked")
	assert.Zero(t, g1.LeasesLive)
	assert.Equal(t, 1, g1.LeasesDeleted)
	assert.Positive(t, g1.PacksReferenced, "packs the checkpoint references stay")
	assert.GreaterOrEqual(t, g1.PacksWithoutIndex, 1)
	assert.Equal(t, g1.Packs, g1.PacksReferenced+g1.PacksCondemned)

	clk.Add(2 * time.Hour)
	g2 := f.gc(GCOptions{})
	assert.Equal(t, g1.PacksCondemned, g2.PacksDeleted)
	assert.Equal(t, g1.PacksReferenced, g2.PacksReferenced)
	_, err = f.store.Stat(ctx, packKey("customers", id))
	assert.ErrorIs(t, err, providers.ErrNotFound, "the pack without an index is gone")
	assert.NotEmpty(t, listAll(t, f.store, runPrefix("customers", "crashed")))

	clk.Add(DefaultCheckpointTTL)
	g3 := f.gc(GCOptions{})
	assert.Equal(t, 1, g3.CheckpointsDeleted)
	assert.Empty(t, listAll(t, f.store, checkpointsPrefix("customers")))
	assert.Equal(t, g2.PacksReferenced, g3.PacksCondemned)

	clk.Add(2 * time.Hour)
	g4 := f.gc(GCOptions{})
	assert.Equal(t, g3.PacksCondemned, g4.PacksDeleted)
	assert.Empty(t, listAll(t, f.store, packsPrefix("customers")))
	assert.Empty(t, listAll(t, f.store, indexPrefix("customers")))

	// The run, retried, starts over and writes a whole point.
	res := f.backup(src, BackupOptions{RunID: "crashed"})
	assert.False(t, res.Resumed)
	f.restoreEqual(f.repo, res.Point.ID, files)
}

// A backup whose lease went unrefreshed for half its TTL writes no manifest; its retry resumes.
func TestBackupWithLapsedLeaseWritesNoPoint(t *testing.T) {
	t.Parallel()
	f, clk := gcFixture(t)
	ctx := context.Background()
	files := tree(1)
	src := newMemSource(files)
	_, err := f.repo.Backup(ctx, src, BackupOptions{RunID: "slow", Progress: func(p Progress) {
		if p.Phase == PhaseManifest {
			clk.Add(DefaultLeaseTTL / 2) // as if the process had been frozen
		}
	}})
	require.ErrorIs(t, err, ErrLeaseLapsed)
	assert.Empty(t, listAll(t, f.store, pointsPrefix("customers")))
	assert.Empty(t, listAll(t, f.store, leasesPrefix("customers")))

	res := f.backup(src, BackupOptions{RunID: "slow"})
	t.Logf("retry resumed: %v", res.Resumed)
	f.restoreEqual(f.repo, res.Point.ID, files)
}

// GC fails closed: a manifest it cannot read stops it before anything is condemned.
func TestGCFailsClosedOnUnreadableManifest(t *testing.T) {
	t.Parallel()
	f, _ := gcFixture(t)
	ctx := context.Background()
	src := newMemSource(tree(1))
	f.backup(src, BackupOptions{})
	bad := fmt.Sprintf("%s-%08x", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Format(pointTimeLayout), 7)
	_, err := f.store.Put(ctx, pointKey("customers", bad), bytes.NewReader([]byte("DRFM not a manifest")), providers.PutOptions{})
	require.NoError(t, err)
	_, err = f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.Error(t, err)
	assert.ErrorContains(t, err, bad)
	assert.Empty(t, listAll(t, f.store, condemnedPrefix("customers")))
	ev := f.audit.last(audit.KindGC)
	assert.Equal(t, audit.OutcomeFailed, ev.Outcome)
}

// BenchmarkGC measures a collection of a repository with 400 packs of one chunk each and two
// points, one pruned: listing, reading every manifest and index, condemning half the packs.
func BenchmarkGC(b *testing.B) {
	f, _ := gcFixture(b)
	f.repo.packTarget = 64 << 10
	var files []memFile
	for i := range 400 {
		files = append(files, file(fmt.Sprintf("f%03d.bin", i), 0o600, i, randomBytes(int64(i), 64<<10)))
	}
	src := newMemSource(files[:200])
	f.backup(src, BackupOptions{})
	src.set(files[200:])
	f.backup(src, BackupOptions{})
	_, err := f.repo.Prune(context.Background(), RetentionPolicy{KeepLast: 1}, PruneOptions{})
	require.NoError(b, err)
	var res GCResult
	b.ResetTimer()
	for range b.N {
		res = f.gc(GCOptions{})
	}
	b.ReportMetric(float64(res.Packs), "packs")
}

// collectOnGet wraps store so that it deletes a pack and (unless keepIndex) its index, as GC
// does, just before the first pack read: the reader loaded the index before the collection.
func collectOnGet(store providers.Store, keepIndex bool) providers.Store {
	f := storetest.NewFaulty(store)
	f.On(storetest.MethodGet).Prefix(packsPrefix("customers")).Times(1).Inject(storetest.Before(func(ctx context.Context, c storetest.Call) error {
		if !keepIndex {
			_ = store.Delete(ctx, indexPrefix("customers")+path.Base(c.Key))
		}
		_ = store.Delete(ctx, c.Key)
		return nil
	}))
	return f
}

// A restore that meets a pack GC collected after it loaded the index fails retryably with
// ErrPackCollected; a pack missing with its index still there is damage.
func TestRestoreOfCollectedPackIsRetryableNotDamage(t *testing.T) {
	t.Parallel()
	for _, keepIndex := range []bool{false, true} {
		t.Run(fmt.Sprintf("index kept %v", keepIndex), func(t *testing.T) {
			f, _ := gcFixture(t)
			res := f.backup(newMemSource(tree(1)), BackupOptions{})
			f.repo.store = collectOnGet(f.store, keepIndex)
			_, err := f.repo.Restore(context.Background(), res.Point.ID, newMemSink(), RestoreOptions{})
			require.Error(t, err)
			if keepIndex {
				assert.ErrorIs(t, err, keys.ErrIntegrity)
				assert.NotErrorIs(t, err, ErrPackCollected)
			} else {
				assert.ErrorIs(t, err, ErrPackCollected)
				assert.NotErrorIs(t, err, keys.ErrIntegrity)
			}
		})
	}
}

// A checkpoint whose successor starts at the beginning of a frame (boundary offset 0) names a
// frame that does not exist yet. GC must still mark it, reading only the frames before, as a
// resume does; before this was fixed it skipped such a checkpoint and condemned the packs
// the resume would rely on.
func TestGCMarksCheckpointWithBoundaryAtFrameStart(t *testing.T) {
	t.Parallel()
	f, _ := gcFixture(t)
	ctx := context.Background()
	crashedBackup(t, f, 300)

	kc := newKeyCache(ctx, f.keys, f.store, "customers")
	cp, err := f.repo.loadCheckpoint(ctx, "crashed", kc)
	require.NoError(t, err)
	last := uint32(0)
	for _, k := range listAll(t, f.store, runPrefix("customers", "crashed")+"frames/") {
		var n uint32
		_, err := fmt.Sscanf(k[strings.LastIndex(k, "/")+1:], "%d", &n)
		require.NoError(t, err, k)
		last = max(last, n)
	}
	require.Positive(t, last, "the interrupted backup uploaded frames")
	// Rewrite the checkpoint so that its successor starts a new frame after the last one.
	cp.Boundary = framePos{Frame: last + 1, Offset: 0}
	dk, err := kc.get(cp.Epoch)
	require.NoError(t, err)
	require.NoError(t, f.repo.saveCheckpoint(ctx, dk, cp))

	g := f.gc(GCOptions{})
	assert.Equal(t, 1, g.Checkpoints, "the checkpoint is marked")
	assert.Positive(t, g.PacksReferenced, "and the packs it references stay")
}

// crashedBackup runs a backup "crashed" of 12 files of 300 KiB in small packs (contents from
// seed) and interrupts it after its second checkpoint.
func crashedBackup(t *testing.T, f *fixture, seed int64) ([]memFile, *memSource) {
	t.Helper()
	f.repo.packTarget = 512 << 10
	var files []memFile
	for i := range 12 {
		files = append(files, file(fmt.Sprintf("f%02d.bin", i), 0o600, i, randomBytes(seed+int64(i), 300<<10)))
	}
	src := newMemSource(files)
	interrupt(t, f, src, "crashed", 2)
	return files, src
}
