package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/testdeploy"
)

// secretName appears only as a file name in the source, so tests can check that it never
// reaches errors or results.
const secretName = "patient-records-secret.txt"

// fixture is a small single-region configuration on local stores.
type fixture struct {
	cfg       *config.Config
	stateDir  string
	storeRoot string
	source    string
	scratch   string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	files := map[string]string{}
	for i, name := range []string{"a.txt", "b.bin", "sub/c.txt", secretName} {
		files[name] = strings.Repeat(fmt.Sprintf("line %d of file %s\n", i, name), 2000+i*500)
	}
	d := testdeploy.New(t, testdeploy.Options{Files: files})
	f := fixture{
		cfg:       d.Config,
		stateDir:  filepath.Join(d.Root, "state"),
		storeRoot: d.StoreRoot,
		source:    d.Source,
		scratch:   filepath.Join(d.Root, "scratch"),
	}
	return f
}

func (f fixture) activities(t *testing.T) *Activities {
	t.Helper()
	a, err := New(context.Background(), f.cfg, Options{StateDir: f.stateDir, ScratchDir: f.scratch, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close(context.Background())) })
	return a
}

func activityEnv(a *Activities) *testsuite.TestActivityEnvironment {
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return env
}

func backup(t *testing.T, env *testsuite.TestActivityEnvironment, a *Activities, runID string) BackupActivityResult {
	t.Helper()
	val, err := env.ExecuteActivity(a.Backup, BackupActivityInput{Dataset: "files", RunID: runID})
	require.NoError(t, err)
	var res BackupActivityResult
	require.NoError(t, val.Get(&res))
	return res
}

func drill(env *testsuite.TestActivityEnvironment, a *Activities, in DrillActivityInput) (DrillActivityResult, error) {
	val, err := env.ExecuteActivity(a.Drill, in)
	if err != nil {
		return DrillActivityResult{}, err
	}
	var res DrillActivityResult
	return res, val.Get(&res)
}

// assertNonRetryable checks err is a non-retryable application error of type typ that does
// not name customer files.
func assertNonRetryable(t *testing.T, err error, typ string) {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "not an application error: %v", err)
	assert.Equal(t, typ, appErr.Type(), "error: %v", err)
	assert.True(t, appErr.NonRetryable(), "error: %v", err)
	assert.NotContains(t, err.Error(), secretName)
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "drill left its target behind")
}

func TestPlan(t *testing.T) {
	f := newFixture(t)
	a := &Activities{Config: f.cfg}
	env := activityEnv(a)
	val, err := env.ExecuteActivity(a.Plan, PlanInput{Dataset: "files"})
	require.NoError(t, err)
	var got PlanResult
	require.NoError(t, val.Get(&got))
	assert.Equal(t, PlanResult{Dataset: "files", Location: "eu-primary", Region: "eu-west-1", Jurisdiction: "EU",
		Tier: "tier1", TierLevel: 1, RPO: 15 * 60e9, RTO: 3600e9, Replicas: []string{}, Replication: "async", Label: "files"}, got,
		"with search_attributes: names the label is the name")

	_, err = env.ExecuteActivity(a.Plan, PlanInput{Dataset: "nope"})
	assertNonRetryable(t, err, ErrTypeNotFound)
	_, err = env.ExecuteActivity(a.Plan, PlanInput{Dataset: "files", Location: "elsewhere"})
	assertNonRetryable(t, err, ErrTypeInvalidInput)
}

func TestBackupThenDrillVerifies(t *testing.T) {
	f := newFixture(t)
	a := f.activities(t)
	env := activityEnv(a)

	first := backup(t, env, a, "run-1")
	assert.NotEmpty(t, first.Point)
	assert.Empty(t, first.PreviousPoint, "first backup has no previous point")
	assert.True(t, first.PreviousDataAsOf.IsZero())
	assert.Positive(t, first.BytesRead)
	assert.Positive(t, first.ChunksNew)
	assert.Equal(t, int64(0), first.Problems)

	second := backup(t, env, a, "run-2")
	assert.NotEqual(t, first.Point, second.Point)
	assert.Equal(t, first.Point, second.PreviousPoint)
	// Listed points carry data_as_of from their IDs, to the millisecond (rounded down, so
	// the RPO measured from it is never understated).
	assert.WithinDuration(t, first.DataAsOf, second.PreviousDataAsOf, time.Millisecond)
	assert.False(t, second.PreviousDataAsOf.After(first.DataAsOf))
	assert.Zero(t, second.ChunksNew, "unchanged data uploads no chunks")

	for _, point := range []string{"", PointLatest, PointRandom, first.Point} {
		t.Run("point "+point, func(t *testing.T) {
			res, err := drill(env, a, DrillActivityInput{Dataset: "files", Point: point})
			require.NoError(t, err)
			assert.True(t, res.Verified)
			assert.Zero(t, res.Mismatches)
			assert.Positive(t, res.Bytes)
			assert.Positive(t, res.Entries)
			assert.False(t, res.RestoredAt.IsZero())
			if point == "" || point == PointLatest {
				assert.Equal(t, second.Point, res.Point)
				assert.WithinDuration(t, second.DataAsOf, res.DataAsOf, time.Millisecond)
			}
			assertEmptyDir(t, f.scratch)
		})
	}

	_, err := drill(env, a, DrillActivityInput{Dataset: "files", Point: "20000102T030405.000Z-0a1b2c3d"})
	assertNonRetryable(t, err, ErrTypeNotFound)
	_, err = drill(env, a, DrillActivityInput{Dataset: "files", Point: "newest"})
	assertNonRetryable(t, err, ErrTypeInvalidInput)
	_, err = drill(env, a, DrillActivityInput{Dataset: "files", Target: TargetPostgres})
	assertNonRetryable(t, err, ErrTypeNotServed)
	assertEmptyDir(t, f.scratch)
}

func TestDrillOfCorruptedPackFailsNonRetryable(t *testing.T) {
	f := newFixture(t)
	a := f.activities(t)
	env := activityEnv(a)
	backup(t, env, a, "run-1")

	packs := 0
	require.NoError(t, filepath.WalkDir(f.storeRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(filepath.ToSlash(p), "/packs/") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i := len(data) / 4; i < len(data); i += 97 {
			data[i] ^= 0xff
		}
		packs++
		return os.WriteFile(p, data, 0o600)
	}))
	require.Positive(t, packs, "no pack found to corrupt")

	_, err := drill(env, a, DrillActivityInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeIntegrityFailure)
	assertEmptyDir(t, f.scratch)
}

func TestDrillWithRevokedKeyFailsNonRetryable(t *testing.T) {
	f := newFixture(t)
	a := f.activities(t)
	env := activityEnv(a)
	backup(t, env, a, "run-1")

	ring, ok := a.Keys["EU"].KEK().(*keys.Keyring)
	require.True(t, ok)
	require.NoError(t, ring.Revoke(context.Background(), "test revocation"))

	// A fresh worker has no cached data key.
	b := f.activities(t)
	_, err := drill(activityEnv(b), b, DrillActivityInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeKeyRevoked)
	assertEmptyDir(t, f.scratch)
}

func TestBackupInputErrors(t *testing.T) {
	f := newFixture(t)
	a := f.activities(t)
	env := activityEnv(a)
	_, err := env.ExecuteActivity(a.Backup, BackupActivityInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeInvalidInput)
	_, err = env.ExecuteActivity(a.Backup, BackupActivityInput{Dataset: "nope", RunID: "r"})
	assertNonRetryable(t, err, ErrTypeNotFound)

	// A worker of another region has neither the store nor the key.
	other := &Activities{Config: f.cfg}
	_, err = activityEnv(other).ExecuteActivity(other.Backup, BackupActivityInput{Dataset: "files", RunID: "r"})
	assertNonRetryable(t, err, ErrTypeNotServed)
}
