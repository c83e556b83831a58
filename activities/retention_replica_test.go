package activities

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
)

// Retention applies the tier's rules at each replica in the mode its residency policy
// allows: full and encrypted replicas are pruned and collected, the metadata-only one has
// its catalog pruned, and holds are respected everywhere.
func TestRetentionOnReplicas(t *testing.T) {
	f := newReplFixture(t)
	f.cfg.Tiers[0].Retention = config.Retention{KeepLast: 1}
	a, rec := f.activities(t)
	env := activityEnv(a)
	ctx := context.Background()
	src := fixture{source: filepath.Join(filepath.Dir(f.stateDir), "source")}
	copies := []ReplicateActivityInput{
		{Location: "eu-replica", Mode: "full"},
		{Location: "us-replica", Mode: "encrypted", LegalBasis: "scc"},
		{Location: "ap-catalog", Mode: "metadata"},
	}
	var points []string
	for i := range 3 {
		src.addUniqueFile(t, "unique.bin", int64(100+i))
		pt := backup(t, env, a, fmt.Sprintf("run-%d", i)).Point
		points = append(points, pt)
		for _, c := range copies {
			c.Dataset, c.Point = "files", pt
			_, err := replicate(a, c)
			require.NoError(t, err, c.Location)
		}
	}
	require.NoError(t, a.Stores["eu-replica"].SetLegalHold(ctx, repo.PointObjectKey("files", points[0]), true))
	require.NoError(t, a.Stores["ap-catalog"].SetLegalHold(ctx, "datasets/files/catalog/"+points[0]+".json", true))

	tests := []struct {
		give       string
		wantMode   string
		wantPruned []string
		wantHeld   []HeldPoint
		wantGC     bool
	}{
		{"eu-replica", "full", points[1:2], []HeldPoint{{Point: points[0], Reason: "legal hold"}}, true},
		{"us-replica", "encrypted", points[:2], []HeldPoint{}, true},
		{"ap-catalog", "metadata", points[1:2], []HeldPoint{{Point: points[0], Reason: "legal hold"}}, false},
		{"", "", points[:2], []HeldPoint{}, true},
	}
	for _, tt := range tests {
		t.Run("location "+tt.give, func(t *testing.T) {
			res, err := retention(env, a, RetentionActivityInput{Dataset: "files", Location: tt.give})
			require.NoError(t, err)
			want := tt.give
			if want == "" {
				want = "eu-primary"
			}
			assert.Equal(t, want, res.Location)
			assert.Equal(t, tt.wantMode, res.Mode)
			assert.Equal(t, points[2:], res.Kept)
			assert.Equal(t, tt.wantPruned, res.Pruned)
			assert.Equal(t, tt.wantHeld, res.Held)
			assert.Equal(t, tt.wantGC, res.PacksCondemned > 0, "packs condemned: %d", res.PacksCondemned)
		})
	}

	left, err := repo.CatalogPoints(ctx, a.Stores["ap-catalog"], "files")
	require.NoError(t, err)
	var ids []string
	for _, p := range left {
		ids = append(ids, p.ID)
	}
	assert.Equal(t, []string{points[0], points[2]}, ids, "the held entry and the newest stay")
	r, err := repo.Open(repo.Options{Store: a.Stores["eu-replica"], Dataset: "files", Keys: a.Keys["EU"], Audit: a.Audit})
	require.NoError(t, err)
	v, err := r.Verify(ctx, points[2], repo.VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, v.OK(), "the kept point verifies at the replica")
	for _, e := range rec.events(audit.KindPrune) {
		assert.NoError(t, audit.Validate(e))
	}

	t.Run("bad location", func(t *testing.T) {
		_, err := retention(env, a, RetentionActivityInput{Dataset: "files", Location: "cn-replica"})
		assertNonRetryable(t, err, ErrTypeInvalidInput)
		assert.ErrorContains(t, err, `location "cn-replica" holds no copy of dataset files`)
		_, err = retention(env, a, RetentionActivityInput{Dataset: "files", Location: "nowhere"})
		assertNonRetryable(t, err, ErrTypeInvalidInput)
	})
}
