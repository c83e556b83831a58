package repo

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/s3"
)

// Retention on S3 with Object Lock (MinIO): the server itself refuses to delete the held
// point, prune reports it held, and GC frees the pruned point's packs.
func TestRetentionOnMinIO(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testservers.MinIO(t)
	srv.CreateBucket(t, "retention", true)
	st, err := s3.Open(ctx, s3.Options{Bucket: "retention", Prefix: "dr", Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		Location:    providers.Location{Name: "minio", Region: "eu-west-1", Jurisdiction: "EU"}})
	require.NoError(t, err)
	require.True(t, st.Capabilities().ServerEnforced, st.Capabilities().Note)

	f := newFixture(t)
	r := f.open(st, "customers")
	clk := newTestClock()
	r.now = clk.Now
	src := newMemSource(nil)
	var points []string
	for seed := int64(1); seed <= 3; seed++ {
		src.set(tree(seed))
		res, err := r.Backup(ctx, src, BackupOptions{Actor: "test"})
		require.NoError(t, err)
		points = append(points, res.Point.ID)
	}
	require.NoError(t, st.SetLegalHold(ctx, PointObjectKey("customers", points[0]), true))
	require.ErrorIs(t, st.Delete(ctx, PointObjectKey("customers", points[0])), providers.ErrImmutable, "the server enforces the hold")

	pr, err := r.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, []string{points[1]}, pointIDs(pr.Pruned))
	require.Len(t, pr.Held, 1)
	assert.Equal(t, points[0], pr.Held[0].ID)
	assert.Equal(t, "legal hold", pr.Held[0].Reason)

	before := storeBytes(t, st)
	g1, err := r.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Positive(t, g1.PacksCondemned)
	clk.Add(2 * time.Hour)
	g2, err := r.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, g1.PacksCondemned, g2.PacksDeleted)
	assert.Equal(t, before-g2.BytesFreed, storeBytes(t, st))
	t.Logf("MinIO: freed %d of %d bytes in %d packs", g2.BytesFreed, before, g2.PacksDeleted)

	f.restoreEqual(r, points[0], tree(1))
	f.restoreEqual(r, points[2], tree(3))
}
