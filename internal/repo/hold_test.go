package repo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/providers"
)

// holdScene is a repository whose newest-but-one point (again) has every chunk in two
// copies: packs condemned after an earlier point with the same content was pruned
// (condemned), and the packs the backup of again wrote because it kept away from those.
// The condemned packs are past their grace period once the clock is moved on.
type holdScene struct {
	r         *Repo
	clk       *testClock
	src       *memSource
	again     string   // tree(1), backed up after the first tree(1) point was pruned
	newest    string   // tree(3)
	condemned []packID // the first tree(1) point's packs
}

func newHoldScene(t *testing.T, r *Repo) *holdScene {
	t.Helper()
	ctx := context.Background()
	s := &holdScene{r: r, clk: newTestClock(), src: newMemSource(nil)}
	r.now = s.clk.Now
	s.backup(t, 1)
	s.backup(t, 2)
	pr, err := r.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	require.Len(t, pr.Pruned, 1)
	g, err := r.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	require.Positive(t, g.PacksCondemned)
	_, _, condemned, err := r.readCondemned(ctx)
	require.NoError(t, err)
	for id := range condemned {
		s.condemned = append(s.condemned, id)
	}
	s.again = s.backup(t, 1)
	s.newest = s.backup(t, 3)
	return s
}

func (s *holdScene) backup(t *testing.T, seed int64) string {
	t.Helper()
	s.src.set(tree(seed))
	res, err := s.r.Backup(context.Background(), s.src, BackupOptions{Actor: "test"})
	require.NoError(t, err)
	return res.Point.ID
}

// condemnedKeys are the keys of the condemned packs and their indexes.
func (s *holdScene) condemnedKeys() []string {
	var out []string
	for _, id := range s.condemned {
		out = append(out, packKey(s.r.dataset, id), indexKey(s.r.dataset, id))
	}
	return out
}

// placeHold records hold name over points in r's store, as the hold lifecycle does: the
// order, then each point's coverage (CoverPoint), then, with provider, the store's own hold
// on every covered object. It returns the covered objects.
func placeHold(t *testing.T, r *Repo, name string, provider bool, points ...string) []string {
	t.Helper()
	ctx := context.Background()
	book := holds.Records(r.store, r.dataset)
	require.NoError(t, book.PutOrder(ctx, testOrder(r.dataset, name, points...)))
	var all []string
	for _, p := range points {
		objects, record, err := r.CoverPoint(ctx, book, name, p, time.Now())
		require.NoError(t, err)
		require.NotEmpty(t, record)
		all = append(all, objects...)
	}
	if provider {
		for _, k := range all {
			require.NoError(t, r.store.SetLegalHold(ctx, k, true), k)
		}
	}
	return all
}

func testOrder(dataset, name string, points ...string) holds.Order {
	return holds.Order{Name: name, Dataset: dataset, Reason: "matter 2026-17", RequestedBy: "legal@example.com",
		Selection: holds.Selection{Points: points}, PlacedAt: time.Now().UTC(), Actor: "test"}
}

// pointEvent returns the last event of kind about point.
func pointEvent(r *recorder, kind, point string) audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if e := r.events[i]; e.Kind == kind && e.Point == point {
			return e
		}
	}
	return audit.Event{}
}

// requireObjectsExist checks that every key is in st.
func requireObjectsExist(t *testing.T, st providers.Store, objects []string) {
	t.Helper()
	for _, k := range objects {
		_, err := st.Stat(context.Background(), k)
		require.NoError(t, err, "held object %s", k)
	}
}

func TestPointObjectsListsEveryCopy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	s := newHoldScene(t, f.repo)

	objects, err := f.repo.PointObjects(ctx, s.again)
	require.NoError(t, err)
	assert.True(t, slices.IsSorted(objects))
	assert.Contains(t, objects, pointKey("customers", s.again))
	assert.Contains(t, objects, keysPrefix("customers")+"epoch-00000001", "the wrapped key")
	for _, k := range s.condemnedKeys() {
		assert.Contains(t, objects, k, "the condemned copies of its chunks")
	}
	var packs, indexes int
	for _, k := range objects {
		switch {
		case strings.HasPrefix(k, packsPrefix("customers")):
			packs++
		case strings.HasPrefix(k, indexPrefix("customers")):
			indexes++
		}
	}
	assert.Equal(t, packs, indexes)
	assert.Greater(t, packs, len(s.condemned), "and the copies its own backup wrote")
	newest, err := f.repo.PointObjects(ctx, s.newest)
	require.NoError(t, err)
	for _, k := range s.condemnedKeys() {
		assert.NotContains(t, newest, k, "another tree shares no chunk")
	}

	_, err = f.repo.PointObjects(ctx, "20200101T000000.000Z-00000000")
	require.ErrorIs(t, err, providers.ErrNotFound)

	// A replica names the same objects (Copy keeps every name), read with the home keys.
	dst := openStore(t, t.TempDir(), "eu-replica", "EU")
	_, err = Copy(ctx, f.store, dst, "customers", s.again, CopyOptions{Audit: f.audit})
	require.NoError(t, err)
	replica, err := f.open(dst, "customers").PointObjects(ctx, s.again)
	require.NoError(t, err)
	assert.Equal(t, objects, replica)

	// A metadata-only location holds the catalog entry.
	cat := openStore(t, t.TempDir(), "ap-catalog", "AP")
	_, err = CopyMetadata(ctx, f.repo, cat, s.again, CopyOptions{Audit: f.audit})
	require.NoError(t, err)
	entry, err := CatalogObjects(ctx, cat, "customers", s.again)
	require.NoError(t, err)
	assert.Equal(t, []string{catalogKey("customers", s.again)}, entry)
	_, err = CatalogObjects(ctx, cat, "customers", s.newest)
	require.ErrorIs(t, err, providers.ErrNotFound)
}

// Holds in drflow's records alone (no provider hold): prune keeps the held point, GC keeps
// the held condemned copies past the grace period and leaves their list, and both say why.
func TestHoldRecordsAloneKeepPointsAndPacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	s := newHoldScene(t, f.repo)
	objects := placeHold(t, f.repo, "case-7", false, s.again)

	pr, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	require.Len(t, pr.Held, 1)
	assert.Equal(t, HeldPoint{ID: s.again, DataAsOf: pr.Held[0].DataAsOf, Reason: "legal hold case-7"}, pr.Held[0])
	ev := pointEvent(f.audit, audit.KindPrune, s.again)
	assert.Equal(t, audit.OutcomeDenied, ev.Outcome)
	assert.Equal(t, "kept: legal hold case-7", ev.Reason)

	for range 2 {
		s.clk.Add(2 * time.Hour)
		g, err := f.repo.GC(ctx, GCOptions{Actor: "test"})
		require.NoError(t, err)
		assert.Equal(t, len(s.condemned), g.PacksHeld)
		assert.Equal(t, []string{"case-7"}, g.HeldBy)
		assert.Contains(t, f.audit.last(audit.KindGC).Reason, "held by legal hold case-7")
	}
	requireObjectsExist(t, f.store, objects)
	_, _, condemned, err := f.repo.readCondemned(ctx)
	require.NoError(t, err)
	for _, id := range s.condemned {
		assert.NotContains(t, condemned, id, "a held pack is not condemned")
	}
	v, err := f.repo.Verify(ctx, s.again, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, v.OK())

	// Released, the copies are condemned again and go after the grace period.
	require.NoError(t, holds.Records(f.store, "customers").PutRelease(ctx, "case-7", holds.Release{
		Reason: "matter closed", RequestedBy: "legal@example.com", ApprovedBy: []string{"cfo@example.com"}, ReleasedAt: time.Now()}))
	g, err := f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Zero(t, g.PacksHeld)
	assert.Equal(t, len(s.condemned), g.PacksCondemned)
	s.clk.Add(2 * time.Hour)
	g, err = f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, len(s.condemned), g.PacksDeleted)
	f.restoreEqual(f.repo, s.again, tree(1))
}

// An order whose coverage is not recorded yet (a placement under way) keeps the points it
// selects, and an ongoing hold keeps the points created after it was placed.
func TestPruneKeepsPointsAnOrderSelects(t *testing.T) {
	t.Parallel()
	f, _ := gcFixture(t)
	ctx := context.Background()
	src := newMemSource(nil)
	backup := func(seed int64) {
		src.set(tree(seed))
		f.backup(src, BackupOptions{})
	}
	backup(1)
	backup(2)
	before, err := f.repo.Points(ctx)
	require.NoError(t, err)
	book := holds.Records(f.store, "customers")
	require.NoError(t, book.PutOrder(ctx, testOrder("customers", "by-id", before[0].ID)))
	ongoing := testOrder("customers", "ongoing", "20200101T000000.000Z-00000000")
	ongoing.Selection.Ongoing = true
	ongoing.PlacedAt = before[1].Created.Add(time.Millisecond)
	require.NoError(t, book.PutOrder(ctx, ongoing))
	backup(3)
	backup(4)
	points, err := f.repo.Points(ctx)
	require.NoError(t, err)
	require.True(t, points[2].Created.After(ongoing.PlacedAt))

	pr, err := f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, []string{points[1].ID}, pointIDs(pr.Pruned))
	require.Len(t, pr.Held, 2)
	assert.Equal(t, points[0].ID, pr.Held[0].ID)
	assert.Equal(t, "legal hold by-id", pr.Held[0].Reason)
	assert.Equal(t, points[2].ID, pr.Held[1].ID)
	assert.Equal(t, "legal hold ongoing", pr.Held[1].Reason)
}

// A GC that read the hold records before a hold was placed reads them again before it
// sweeps: the placement (here without CoverPoint's lease) happens while GC marks.
func TestGCRereadsHoldsBeforeSweeping(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	s := newHoldScene(t, f.repo)
	s.clk.Add(2 * time.Hour)
	paused, resume := make(chan struct{}), make(chan struct{})
	slow := f.open(pauseOnGet(f.store, indexKey("customers", s.condemned[0]), paused, resume), "customers")
	slow.now = s.clk.Now
	type result struct {
		res GCResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := slow.GC(ctx, GCOptions{Actor: "test"})
		done <- result{res, err}
	}()
	<-paused // GC has read the hold records (none) and is reading the indexes

	objects, err := f.repo.PointObjects(ctx, s.again)
	require.NoError(t, err)
	book := holds.Records(f.store, "customers")
	require.NoError(t, book.PutOrder(ctx, testOrder("customers", "case-9", s.again)))
	_, err = book.Cover(ctx, "case-9", s.again, time.Now(), objects, time.Now())
	require.NoError(t, err)
	close(resume)

	got := <-done
	require.NoError(t, got.err)
	assert.Zero(t, got.res.PacksDeleted)
	assert.Equal(t, len(s.condemned), got.res.PacksHeld)
	requireObjectsExist(t, f.store, objects)
}

// A store that refuses to delete (a provider hold that drflow's records do not show, set
// after GC read them) keeps the pack condemned, and GC does not fail.
func TestGCKeepsPacksTheStoreRefusesToDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	s := newHoldScene(t, f.repo)
	for _, k := range s.condemnedKeys() {
		require.NoError(t, f.store.SetLegalHold(ctx, k, true))
	}
	s.clk.Add(2 * time.Hour)
	g, err := f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, len(s.condemned), g.PacksImmutable)
	assert.Zero(t, g.PacksDeleted)
	requireObjectsExist(t, f.store, s.condemnedKeys())
}

// A placement through CoverPoint while a GC runs either fails retryably (the GC started
// first; it is retried once that GC is done) or makes the GC delete no condemned pack.
func TestCoverPointDuringGC(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	s := newHoldScene(t, f.repo)
	s.clk.Add(2 * time.Hour)

	// The GC has written its lease (it is reading the indexes): the placement must wait.
	paused, resume := make(chan struct{}), make(chan struct{})
	slow := f.open(pauseOnGet(f.store, indexKey("customers", s.condemned[0]), paused, resume), "customers")
	slow.now = s.clk.Now
	done := make(chan error, 1)
	go func() {
		_, err := slow.GC(ctx, GCOptions{Actor: "test"})
		done <- err
	}()
	<-paused
	book := holds.Records(f.store, "customers")
	require.NoError(t, book.PutOrder(ctx, testOrder("customers", "case-7", s.again)))
	_, _, err := f.repo.CoverPoint(ctx, book, "case-7", s.again, time.Now())
	require.ErrorIs(t, err, ErrGCRunning)
	h, err := book.Get(ctx, "case-7")
	require.NoError(t, err)
	assert.Empty(t, h.Points, "nothing recorded")
	close(resume)
	require.NoError(t, <-done)

	// That GC deleted the condemned copies; the retry covers what is left.
	objects, _, err := f.repo.CoverPoint(ctx, book, "case-7", s.again, time.Now())
	require.NoError(t, err)
	for _, k := range s.condemnedKeys() {
		assert.NotContains(t, objects, k)
	}
	requireObjectsExist(t, f.store, objects)

	// A GC that reads the leases while a placement holds its lease deletes no condemned pack.
	lease, err := f.repo.acquireLease(ctx, holdLeasePrefix+"test")
	require.NoError(t, err)
	s.src.set(tree(4))
	_, err = f.repo.Backup(ctx, s.src, BackupOptions{})
	require.NoError(t, err)
	_, err = f.repo.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	g, err := f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	require.Positive(t, g.PacksCondemned)
	s.clk.Add(2 * time.Hour)
	require.NoError(t, lease.refresh(ctx, nil)) // the test clock jumped past its TTL
	g, err = f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Zero(t, g.PacksDeleted)
	assert.Positive(t, g.PacksWaiting)
	lease.release(ctx)
	g, err = f.repo.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Positive(t, g.PacksDeleted)
}

// A backup and a GC that run while a hold is placed over every existing point lose nothing:
// every point verifies, and every covered object is still there.
func TestBackupAndGCDuringPlacementLoseNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	runDuringPlacement(t, f.repo, true)
}

func runDuringPlacement(t *testing.T, r *Repo, provider bool) {
	ctx := context.Background()
	s := newHoldScene(t, r)
	s.clk.Add(2 * time.Hour)
	existing, err := r.Points(ctx)
	require.NoError(t, err)
	book := holds.Records(r.store, r.dataset)
	gcDone := make(chan struct{})
	var wg sync.WaitGroup
	var gcErr, backupErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(gcDone)
		_, gcErr = r.GC(ctx, GCOptions{Actor: "test"})
	}()
	go func() {
		defer wg.Done()
		src := newMemSource(tree(4))
		src.asOf = s.clk.Now()
		_, backupErr = r.Backup(ctx, src, BackupOptions{Actor: "test"})
	}()
	require.NoError(t, book.PutOrder(ctx, testOrder(r.dataset, "case-7", pointIDs(existing)...)))
	var covered []string
	for _, p := range existing {
		objects, err := coverRetrying(ctx, r, book, p.ID, gcDone)
		require.NoError(t, err)
		if provider {
			for _, k := range objects {
				require.NoError(t, r.store.SetLegalHold(ctx, k, true), k)
			}
		}
		covered = append(covered, objects...)
	}
	wg.Wait()
	require.NoError(t, gcErr)
	require.NoError(t, backupErr)

	h, err := book.Get(ctx, "case-7")
	require.NoError(t, err)
	for _, p := range existing {
		requireObjectsExist(t, r.store, h.Points[p.ID])
	}
	requireObjectsExist(t, r.store, covered)
	points, err := r.Points(ctx)
	require.NoError(t, err)
	require.Len(t, points, len(existing)+1)
	for _, p := range points {
		v, err := r.Verify(ctx, p.ID, VerifyOptions{})
		require.NoError(t, err)
		require.True(t, v.OK(), "%s: %v", p.ID, v.Failures)
	}
	// Later GCs keep every covered object too.
	for range 2 {
		s.clk.Add(2 * time.Hour)
		_, err := r.GC(ctx, GCOptions{Actor: "test"})
		require.NoError(t, err)
	}
	requireObjectsExist(t, r.store, covered)
}

// coverRetrying is CoverPoint retried once the GC it ran into is done, as Temporal retries
// the activity.
func coverRetrying(ctx context.Context, r *Repo, book *holds.Book, point string, gcDone <-chan struct{}) ([]string, error) {
	for range 2 {
		objects, _, err := r.CoverPoint(ctx, book, "case-7", point, time.Now())
		if !errors.Is(err, ErrGCRunning) {
			return objects, err
		}
		<-gcDone
	}
	return nil, errors.New("GC still running after it ended")
}
