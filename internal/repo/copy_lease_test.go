package repo

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

// pauseOnGet wraps store so that the first Get of key closes paused, then blocks until resume
// is closed.
func pauseOnGet(store providers.Store, key string, paused, resume chan struct{}) providers.Store {
	f := storetest.NewFaulty(store)
	f.On(storetest.MethodGet).Key(key).Times(1).Inject(storetest.Before(func(context.Context, storetest.Call) error {
		close(paused)
		<-resume
		return nil
	}))
	return f
}

// replicaWithCondemnedPacks backs up x then y at the primary, copies both to a replica, prunes
// x there and condemns its packs by a GC, then backs up x again at the primary: the new point
// needs exactly the packs condemned at the replica.
func replicaWithCondemnedPacks(t *testing.T) (f *fixture, clk *testClock, dst providers.Store, replica *Repo, again BackupResult, condemned int) {
	t.Helper()
	f, clk = gcFixture(t)
	ctx := context.Background()
	dst = openStore(t, t.TempDir(), "eu-replica", "EU")
	replica = f.open(dst, "customers")
	replica.now = clk.Now
	src := newMemSource(tree(1))
	for _, files := range [][]memFile{tree(1), tree(2)} {
		src.set(files)
		p := f.backup(src, BackupOptions{})
		_, err := Copy(ctx, f.store, dst, "customers", p.Point.ID, CopyOptions{Audit: f.audit, now: clk.Now})
		require.NoError(t, err)
	}
	pr, err := replica.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	require.Len(t, pr.Pruned, 1)
	g, err := replica.GC(ctx, GCOptions{Grace: time.Minute})
	require.NoError(t, err)
	require.Positive(t, g.PacksCondemned)
	src.set(tree(1))
	again = f.backup(src, BackupOptions{})
	require.Zero(t, again.ChunksNew, "the primary reuses the packs the replica condemned")
	return f, clk, dst, replica, again, g.PacksCondemned
}

// A copy that finds the packs it needs present, but condemned, at the destination keeps them
// alive with its lease: a GC past the grace period while the copy runs deletes none, and the
// copied point verifies at the destination.
func TestCopyLeaseKeepsCondemnedPacksAlive(t *testing.T) {
	t.Parallel()
	f, clk, dst, replica, again, condemned := replicaWithCondemnedPacks(t)
	ctx := context.Background()

	// Hold the copy after it listed the destination and skipped the packs, before its
	// manifest.
	paused, resume := make(chan struct{}), make(chan struct{})
	src := pauseOnGet(f.store, pointKey("customers", again.Point.ID), paused, resume)
	type outcome struct {
		res CopyResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Copy(ctx, src, dst, "customers", again.Point.ID, CopyOptions{Audit: f.audit, now: clk.Now})
		done <- outcome{res, err}
	}()
	select {
	case <-paused:
	case o := <-done:
		t.Fatalf("copy ended before its manifest: %v", o.err)
	}
	leases := listAll(t, dst, leasesPrefix("customers"))
	require.Len(t, leases, 1, "a running copy holds a lease at the destination")
	assert.Contains(t, leases[0], "/leases/copy-")

	clk.Add(2 * time.Minute)
	g2, err := replica.GC(ctx, GCOptions{Grace: time.Minute})
	require.NoError(t, err)
	assert.Zero(t, g2.PacksDeleted, "the copy's lease has seen no condemned list")
	assert.Equal(t, condemned, g2.PacksWaiting)
	assert.Equal(t, 1, g2.LeasesLive)

	close(resume)
	o := <-done
	require.NoError(t, o.err)
	assert.Equal(t, int64(1), o.res.ObjectsCopied, "only the manifest: every pack was already there")
	assert.Empty(t, listAll(t, dst, leasesPrefix("customers")), "the copy's lease is released")

	clk.Add(2 * time.Minute)
	g3, err := replica.GC(ctx, GCOptions{Grace: time.Minute})
	require.NoError(t, err)
	assert.Zero(t, g3.PacksDeleted)
	assert.Equal(t, condemned, g3.PacksRescued, "the copied manifest references them again")
	v, err := replica.Verify(ctx, again.Point.ID, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, v.OK())
	f.restoreEqual(replica, again.Point.ID, tree(1))
}

// A copy that relies on condemned packs while a GC that started before its lease is still
// running fails retryably and writes no manifest; once that GC has ended, the copy succeeds
// and copies again the packs it deleted.
func TestCopyWaitsOutGCThatMayNotHaveSeenItsLease(t *testing.T) {
	t.Parallel()
	f, clk, dst, replica, again, _ := replicaWithCondemnedPacks(t)
	ctx := context.Background()
	gc, err := replica.acquireLease(ctx, gcLeasePrefix+"20261123T020000.000Z-00000000")
	require.NoError(t, err)

	_, err = Copy(ctx, f.store, dst, "customers", again.Point.ID, CopyOptions{Audit: f.audit, now: clk.Now})
	require.ErrorIs(t, err, ErrGCRunning)
	_, err = dst.Stat(ctx, pointKey("customers", again.Point.ID))
	require.ErrorIs(t, err, providers.ErrNotFound, "no manifest without its packs")

	// That GC deletes the condemned packs, as it may, then ends.
	clk.Add(2 * time.Minute)
	names, _, condemned, err := replica.readCondemned(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for id := range condemned {
		require.NoError(t, dst.Delete(ctx, indexKey("customers", id)))
		require.NoError(t, dst.Delete(ctx, packKey("customers", id)))
	}
	gc.release(ctx)

	res, err := Copy(ctx, f.store, dst, "customers", again.Point.ID, CopyOptions{Audit: f.audit, now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, int64(2*len(condemned)+1), res.ObjectsCopied, "the deleted packs, their indexes and the manifest")
	v, err := replica.Verify(ctx, again.Point.ID, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, v.OK())
}

// PruneCatalog prunes a metadata-only location's catalog by the policy and keeps held entries.
func TestPruneCatalogKeepsHeldEntries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	cat := openStore(t, t.TempDir(), "ap-catalog", "AP")
	src := newMemSource(nil)
	var ids []string
	for seed := int64(1); seed <= 3; seed++ {
		src.set(tree(seed))
		p := f.backup(src, BackupOptions{})
		_, err := CopyMetadata(ctx, f.repo, cat, p.Point.ID, CopyOptions{Audit: f.audit})
		require.NoError(t, err)
		ids = append(ids, p.Point.ID)
	}
	require.NoError(t, cat.SetLegalHold(ctx, catalogKey("customers", ids[0]), true))

	res, err := PruneCatalog(ctx, cat, "customers", RetentionPolicy{KeepLast: 1}, CatalogPruneOptions{Actor: "test", Audit: f.audit})
	require.NoError(t, err)
	require.Len(t, res.Kept, 1)
	assert.Equal(t, ids[2], res.Kept[0].ID)
	assert.Equal(t, []string{ids[1]}, pointIDs(res.Pruned))
	require.Len(t, res.Held, 1)
	assert.Equal(t, ids[0], res.Held[0].ID)
	assert.Equal(t, "legal hold", res.Held[0].Reason)
	left, err := CatalogPoints(ctx, cat, "customers")
	require.NoError(t, err)
	assert.Equal(t, []string{ids[0], ids[2]}, pointIDs(left))
	ev := f.audit.last("restore_point.pruned")
	assert.Equal(t, "ap-catalog", ev.Location)

	_, err = PruneCatalog(ctx, cat, "customers", RetentionPolicy{}, CatalogPruneOptions{Audit: f.audit})
	assert.ErrorContains(t, err, "keep_last must be at least 1")
}
