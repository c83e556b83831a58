package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// TestRunReportsEveryFigure runs the whole benchmark on a small dataset: every figure is
// printed, plausible, and the incremental backup uploads only what changed.
func TestRunReportsEveryFigure(t *testing.T) {
	res, err := Run(context.Background(), Options{Size: 24 << 20, Seed: 1, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	for _, name := range []string{"dataset_MiB", "backup_MBps", "incremental_MBps", "incremental_upload_ratio",
		"restore_MBps", "verify_MBps", "dedup_ratio", "peak_rss_MiB"} {
		v, ok := res.Get(name)
		require.True(t, ok, name)
		assert.Greater(t, v, 0.0, name)
	}
	ratio, _ := res.Get("incremental_upload_ratio")
	assert.Less(t, ratio, 0.1, "changing 1%% of the data must not re-upload most of it")
	read, ok := res.Get("incremental_read_ratio")
	require.True(t, ok)
	// Here every file was written within a second of the first backup, so all are read again
	// (internal/repo tests the rule); a real run reads far less.
	assert.LessOrEqual(t, read, 1.0)
	dedup, _ := res.Get("dedup_ratio")
	assert.Greater(t, dedup, 1.5, "two restore points of nearly the same data share their chunks")

	var out bytes.Buffer
	require.NoError(t, res.Write(&out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Len(t, lines, len(res))
	for _, l := range lines {
		assert.Regexp(t, `^[a-z_A-Z]+=[0-9.]+$`, l)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	_, err := Run(context.Background(), Options{})
	assert.ErrorContains(t, err, "size must be positive")
	dir := t.TempDir()
	_, err = Generate(dir, 1<<10, DefaultMix, 1)
	require.NoError(t, err)
	_, err = Run(context.Background(), Options{Dir: dir, Size: 1 << 20})
	assert.ErrorContains(t, err, "is not empty")
}
