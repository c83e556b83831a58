package activities

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/providers"
)

func TestHomeRegion(t *testing.T) {
	f := newFixture(t)
	region, err := HomeRegion(f.cfg, "files")
	require.NoError(t, err)
	assert.Equal(t, "eu-west-1", region)

	_, err = HomeRegion(f.cfg, "nope")
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `dataset "nope" is not configured`)
}

func TestOpenExistingCreatesNoKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	opts := Options{Region: "eu-west-1", StateDir: f.stateDir, ScratchDir: f.scratch, Logger: zaptest.NewLogger(t)}
	kek := f.cfg.KEKs[0].Path

	// Before any worker ran: no keyring, no signing key. Nothing may be created.
	_, err := OpenExisting(ctx, f.cfg, opts)
	require.ErrorIs(t, err, ErrNotHome)
	assert.Contains(t, err.Error(), "key eu-kek of EU: keyring "+kek+": does not exist")
	assert.NoFileExists(t, kek)
	assert.NoDirExists(t, f.stateDir+"/audit")

	// A worker creates both; the signing key is where OpenExisting looks for it.
	a, err := New(ctx, f.cfg, opts)
	require.NoError(t, err)
	require.NoError(t, a.Close(ctx))
	assert.FileExists(t, kek)
	assert.FileExists(t, auditKeyPath(f.stateDir, "eu-west-1"))

	a, err = OpenExisting(ctx, f.cfg, opts)
	require.NoError(t, err)
	assert.NotNil(t, a.Keys["EU"])
	assert.NotNil(t, a.Stores["eu-primary"])
	require.NoError(t, a.Close(ctx))

	// Another state directory than the worker's is refused, not given a second key.
	other := opts
	other.StateDir = t.TempDir()
	_, err = OpenExisting(ctx, f.cfg, other)
	require.ErrorIs(t, err, ErrNotHome)
	assert.Contains(t, err.Error(), "audit signing key of region eu-west-1")
	entries, err := os.ReadDir(other.StateDir)
	require.NoError(t, err)
	assert.Empty(t, entries)

	_, err = OpenExisting(ctx, f.cfg, Options{StateDir: f.stateDir})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = OpenExisting(ctx, f.cfg, Options{Region: "mars-1", StateDir: f.stateDir})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
}
