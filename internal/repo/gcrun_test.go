package repo

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A GC attempt killed mid-run leaves its lease live, which makes copies and hold placements
// wait for it; the retried attempt of the same collection (same Run) takes that lease over
// and removes it when done.
func TestGCRetryTakesOverKilledAttemptsLease(t *testing.T) {
	t.Parallel()
	f, _ := gcFixture(t)
	ctx := context.Background()
	f.backup(newMemSource(tree(1)), BackupOptions{})

	// The killed attempt: its lease was written, its process is gone (no release).
	killed, err := f.repo.acquireLease(ctx, gcLeasePrefix+"retention-run-7")
	require.NoError(t, err)
	close(killed.stop) // no more refreshes, and no release
	<-killed.done
	gc, err := f.repo.liveGC(ctx)
	require.NoError(t, err)
	assert.Equal(t, "retention-run-7", gc, "the killed attempt's lease blocks placements")

	_, err = f.repo.GC(ctx, GCOptions{Run: "retention-run-7"})
	require.NoError(t, err)
	gc, err = f.repo.liveGC(ctx)
	require.NoError(t, err)
	assert.Empty(t, gc, "the retry removed the lease")

	_, err = f.repo.GC(ctx, GCOptions{Run: "bad/run"})
	assert.ErrorContains(t, err, "gc run")
}
