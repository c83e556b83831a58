package activities

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
)

func retention(env *testsuite.TestActivityEnvironment, a *Activities, in RetentionActivityInput) (RetentionActivityResult, error) {
	val, err := env.ExecuteActivity(a.Retention, in)
	if err != nil {
		return RetentionActivityResult{}, err
	}
	var res RetentionActivityResult
	return res, val.Get(&res)
}

// addUniqueFile gives the next backup chunks that no other backup has.
func (f fixture) addUniqueFile(t *testing.T, name string, seed int64) {
	t.Helper()
	b := make([]byte, 400<<10)
	rand.New(rand.NewSource(seed)).Read(b)
	require.NoError(t, os.WriteFile(filepath.Join(f.source, name), b, 0o600))
}

func TestRetentionPrunesKeepsHeldAndCondemnsGarbage(t *testing.T) {
	f := newFixture(t)
	f.cfg.Tiers[0].Retention = config.Retention{KeepLast: 1}
	a := f.activities(t)
	env := activityEnv(a)
	var mu sync.Mutex
	phases := map[string]bool{}
	env.SetOnActivityHeartbeatListener(func(info *activity.Info, details converter.EncodedValues) {
		var p RetentionProgress
		if info.ActivityType.Name == "Retention" && details.Get(&p) == nil {
			mu.Lock()
			phases[p.Phase] = true
			mu.Unlock()
		}
	})

	var points []string
	for i := range 3 {
		f.addUniqueFile(t, "unique.bin", int64(i))
		points = append(points, backup(t, env, a, fmt.Sprintf("run-%d", i)).Point)
	}
	require.NoError(t, a.Stores["eu-primary"].SetLegalHold(context.Background(), repo.PointObjectKey("files", points[0]), true))

	res, err := retention(env, a, RetentionActivityInput{Dataset: "files"})
	require.NoError(t, err)
	assert.Equal(t, "eu-primary", res.Location)
	assert.Equal(t, []string{points[2]}, res.Kept)
	assert.Equal(t, []string{points[1]}, res.Pruned)
	assert.Equal(t, []HeldPoint{{Point: points[0], Reason: "legal hold"}}, res.Held)
	assert.Positive(t, res.PacksCondemned, "the pruned point's unique chunks are condemned")
	assert.Zero(t, res.PacksDeleted, "nothing is deleted before the grace period")
	mu.Lock()
	assert.NotEmpty(t, phases, "the activity heartbeats")
	for p := range phases {
		assert.Contains(t, []string{repo.PhasePrune, repo.PhaseGC}, p)
	}
	mu.Unlock()

	again, err := retention(env, a, RetentionActivityInput{Dataset: "files"})
	require.NoError(t, err)
	assert.Empty(t, again.Pruned)
	assert.Equal(t, res.Held, again.Held, "a hold is reported every time")
	assert.Equal(t, res.PacksCondemned, again.PacksWaiting)
	assert.Zero(t, again.PacksCondemned)

	for _, p := range []string{points[0], points[2]} {
		d, err := drill(env, a, DrillActivityInput{Dataset: "files", Point: p})
		require.NoError(t, err)
		assert.True(t, d.Verified)
	}
	_, err = drill(env, a, DrillActivityInput{Dataset: "files", Point: points[1]})
	assertNonRetryable(t, err, ErrTypeNotFound)
}

func TestRetentionInputErrors(t *testing.T) {
	f := newFixture(t)
	a := f.activities(t)
	env := activityEnv(a)
	_, err := retention(env, a, RetentionActivityInput{Dataset: "nope"})
	assertNonRetryable(t, err, ErrTypeNotFound)

	f.cfg.Tiers[0].Retention = config.Retention{}
	_, err = retention(env, a, RetentionActivityInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeInvalidInput)
	assert.ErrorContains(t, err, "keep_last must be at least 1")

	other := &Activities{Config: f.cfg}
	f.cfg.Tiers[0].Retention = config.Retention{KeepLast: 3}
	_, err = retention(activityEnv(other), other, RetentionActivityInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeNotServed)
}
