package activities

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A drill cancelled in the middle of its restore (the workflow was cancelled, or the worker is
// stopping) removes its scratch target before it returns.
func TestDrillCancelledRemovesTarget(t *testing.T) {
	f := newFixture(t)
	big := make([]byte, 96<<20) // incompressible, so the restore takes a while
	rand.NewChaCha8([32]byte{1}).Read(big)
	require.NoError(t, os.WriteFile(filepath.Join(f.source, "big.bin"), big, 0o644))
	a := f.activities(t)
	backup(t, activityEnv(a), a, "run-1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel as soon as the drill has created its scratch target: the restore is then
	// running or about to run.
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if entries, _ := os.ReadDir(f.scratch); len(entries) > 0 {
				cancel()
				return
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	res, err := a.Drill(ctx, DrillActivityInput{Dataset: "files"})
	require.Error(t, err, "the drill finished before it could be cancelled")
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, res.Verified)
	assertEmptyDir(t, f.scratch)
}
