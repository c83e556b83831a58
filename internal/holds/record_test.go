package holds

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
)

func localStore(t *testing.T) providers.Store {
	t.Helper()
	st, err := local.Open(local.Options{Root: t.TempDir(), Location: providers.Location{Name: "eu-primary"}})
	require.NoError(t, err)
	return st
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func order(name string) Order {
	return Order{Name: name, Dataset: "files", Reason: "case 7", RequestedBy: "alice", PlacedAt: t0,
		Selection: Selection{From: t0.Add(-time.Hour), To: t0}}
}

func TestRecordsLifecycle(t *testing.T) {
	ctx := context.Background()
	b := Records(localStore(t), "files")

	require.NoError(t, b.PutOrder(ctx, order("case-7")))
	require.NoError(t, b.PutOrder(ctx, order("case-7")), "the same order again is a no-op")
	other := order("case-7")
	other.Reason = "something else"
	assert.ErrorIs(t, b.PutOrder(ctx, other), ErrConflict)

	key, err := b.Cover(ctx, "case-7", "p1", t0, []string{"datasets/files/points/p1", "datasets/files/packs/aa/1"}, t0)
	require.NoError(t, err)
	assert.Equal(t, "datasets/files/holds/case-7/points/p1.json", key)
	key, err = b.Cover(ctx, "case-7", "p1", t0, []string{"datasets/files/packs/aa/1"}, t0)
	require.NoError(t, err)
	assert.Empty(t, key, "nothing new to record")
	key, err = b.Cover(ctx, "case-7", "p1", t0, []string{"datasets/files/keys/1"}, t0)
	require.NoError(t, err)
	assert.Contains(t, key, "points/p1+")

	require.NoError(t, b.PutOrder(ctx, order("case-9")))
	_, err = b.Cover(ctx, "case-9", "p1", t0, []string{"datasets/files/points/p1"}, t0)
	require.NoError(t, err)

	g, err := b.Guard(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"case-7", "case-9"}, g.PointHolds("p1"))
	assert.Equal(t, []string{"case-7"}, g.ObjectHolds("datasets/files/keys/1"))
	assert.Nil(t, g.PointHolds("p2"))

	rel := Release{Reason: "case closed", RequestedBy: "alice", ApprovedBy: []string{"alice"}, ReleasedAt: t0}
	err = b.PutRelease(ctx, "case-7", rel)
	require.Error(t, err, "self-approval is not a second person")
	assert.True(t, errors.Is(err, providers.ErrInvalidArgument))
	rel.ApprovedBy = []string{"bob"}
	require.NoError(t, b.PutRelease(ctx, "case-7", rel))
	require.NoError(t, b.PutRelease(ctx, "case-7", rel), "idempotent")
	_, err = b.Cover(ctx, "case-7", "p2", t0, []string{"x"}, t0)
	assert.ErrorIs(t, err, ErrConflict, "a released hold covers nothing new")

	g, err = b.Guard(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"case-9"}, g.PointHolds("p1"))
	assert.Nil(t, g.ObjectHolds("datasets/files/keys/1"), "released with its hold")
	assert.Equal(t, []string{"case-9"}, []string{g.Active()[0].Name})

	_, err = b.Get(ctx, "nope")
	assert.ErrorIs(t, err, providers.ErrNotFound)
	var nilGuard *Guard
	assert.Nil(t, nilGuard.PointHolds("p1"))
	assert.False(t, nilGuard.Any())
}

func TestOrderValidate(t *testing.T) {
	tests := []struct {
		name string
		give func(*Order)
		want string
	}{
		{"bad name", func(o *Order) { o.Name = "Case 7" }, "lower-case"},
		{"no reason", func(o *Order) { o.Reason = " " }, "reason is required"},
		{"no requester", func(o *Order) { o.RequestedBy = "" }, "requested_by is required"},
		{"both selections", func(o *Order) { o.Selection.Points = []string{"p"} }, "not both"},
		{"to before from", func(o *Order) { o.Selection.To = o.Selection.From.Add(-time.Hour) }, "is before --from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := order("case-7")
			tt.give(&o)
			assert.ErrorContains(t, o.Validate(), tt.want)
		})
	}
	assert.NoError(t, order("case-7").Validate())
}
