package holds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/gcs/gcstest"
	"github.com/drflow/drflow/providers/storetest"
)

func TestOrderSelects(t *testing.T) {
	tests := []struct {
		name string
		give Selection
		want []string // of p1, p2, p3
	}{
		{"explicit IDs", Selection{Points: []string{"p2", "p3"}}, []string{"p2", "p3"}},
		{"open range stops at the order", Selection{}, []string{"p1", "p2"}},
		{"range", Selection{From: p2.DataAsOf}, []string{"p2"}},
		{"range into the future", Selection{From: p2.DataAsOf, To: p3.DataAsOf}, []string{"p2", "p3"}},
		{"ongoing", Selection{To: p1.DataAsOf, Ongoing: true}, []string{"p1", "p3"}},
		{"ongoing with IDs", Selection{Points: []string{"p2"}, Ongoing: true}, []string{"p2", "p3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := holdOrder("h", tt.give)
			var got []string
			for _, p := range []Point{p1, p2, p3} {
				if o.Selects(p) {
					got = append(got, p.ID)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestPlaceAcrossLocations places a hold on a primary and a replica that has not received
// p2 yet.
func TestPlaceAcrossLocations(t *testing.T) {
	ctx := testCtx(t)
	primary, replica := openLocal(t, "eu-primary"), gcstest.OpenStore(t, gcstest.NewServer(t, "replica"), "dr")
	obj1 := writePoint(t, primary, "p1", "aa/1")
	writePoint(t, primary, "p2", "bb/2")
	writePoint(t, replica, "p1", "aa/1")
	rec := &recorder{}
	rep, err := Place(ctx, PlaceOptions{Order: holdOrder("case-7", Selection{}), Points: []Point{p1, p2},
		Targets: []Target{target(primary, ModePrimary), target(replica, ModeEncrypted)}, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	assert.Equal(t, []string{"p1", "p2"}, rep.Points)
	assert.Equal(t, []string{"gcstest"}, rep.ServerEnforced)
	assert.Equal(t, []string{"eu-primary"}, rep.DrflowEnforced)
	assert.Equal(t, []string{"p1"}, rep.Locations[1].Covered)
	assert.Equal(t, []string{"p2"}, rep.Locations[1].Missing, "not copied there yet")
	assert.Equal(t, 5+len(obj1), rep.Objects, "primary: p1 and p2, which share the key; replica: p1")
	assert.Equal(t, []string{"placed ok", "applied ok eu-primary", "applied ok gcstest"}, rec.take())
	assertHeld(t, replica, obj1, true)
}

// TestPlaceConvergesAfterFault: a provider hold that fails on one object fails the placement
// at that location (audited), the other locations are still placed, and running the same
// placement again completes it.
func TestPlaceConvergesAfterFault(t *testing.T) {
	ctx := testCtx(t)
	flaky := storetest.NewFaulty(openLocal(t, "eu-primary"))
	flaky.On(storetest.MethodSetLegalHold).Key("datasets/ds/packs/aa/1").Times(1).Inject(storetest.ConnReset())
	other := openLocal(t, "eu-replica")
	obj1 := writePoint(t, flaky, "p1", "aa/1", "aa/2")
	writePoint(t, other, "p1", "aa/1", "aa/2")
	rec := &recorder{}
	opts := PlaceOptions{Order: holdOrder("case-7", Selection{Points: []string{"p1"}}), Points: []Point{p1},
		Targets: []Target{target(flaky, ModePrimary), target(other, ModeFull)}, Audit: rec, Now: fixedNow}

	rep, err := Place(ctx, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "injected fault on datasets/ds/packs/aa/1")
	assert.Contains(t, rep.Locations[0].Error, "injected fault")
	assert.Empty(t, rep.Locations[1].Error)
	assert.Equal(t, []string{"placed ok", "applied failed eu-primary", "applied ok eu-replica"}, rec.take())
	info, err := flaky.Stat(ctx, "datasets/ds/packs/aa/1")
	require.NoError(t, err)
	assert.False(t, info.LegalHold, "the failed one")
	g, err := Records(flaky, ds).Guard(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"case-7"}, g.ObjectHolds("datasets/ds/packs/aa/1"), "the coverage record came first")

	rep, err = Place(ctx, opts)
	require.NoError(t, err)
	assert.Equal(t, len(obj1), rep.Locations[0].Objects)
	assertHeld(t, flaky, obj1, true)
	assertHeld(t, other, obj1, true)
	h, err := Records(flaky, ds).Get(ctx, "case-7")
	require.NoError(t, err)
	assert.Equal(t, obj1, h.Points["p1"], "one coverage, not two")
	keys, err := Records(flaky, ds).RecordKeys(ctx, "case-7")
	require.NoError(t, err)
	assert.Len(t, keys, 2)
}

// TestPlaceNotesCollectedObjects: an object listed for a point and deleted before its hold
// (a duplicate pack GC collected) is noted, not an error.
func TestPlaceNotesCollectedObjects(t *testing.T) {
	st := openLocal(t, "eu-primary")
	writePoint(t, st, "p1", "aa/1", "dup")
	tg := target(st, ModePrimary)
	list := tg.Objects
	tg.Objects = func(ctx context.Context, point string) ([]string, error) {
		objs, err := list(ctx, point)
		if err == nil {
			err = st.Delete(ctx, "datasets/ds/packs/dup")
		}
		return objs, err
	}
	rep, err := Place(testCtx(t), PlaceOptions{Order: holdOrder("case-7", Selection{}), Points: []Point{p1},
		Targets: []Target{tg}, Audit: &recorder{}, Now: fixedNow})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Locations[0].Gone)
	assert.Equal(t, 3, rep.Locations[0].Objects, "listed, less the collected one")
	assert.Contains(t, rep.Locations[0].Note, "1 objects no longer exist")
}

func TestPlaceRefusals(t *testing.T) {
	ctx := testCtx(t)
	st := openLocal(t, "eu-primary")
	rec := &recorder{}
	bad := holdOrder("case-7", Selection{})
	bad.Reason = " "
	_, err := Place(ctx, PlaceOptions{Order: bad, Targets: []Target{target(st, ModePrimary)}, Audit: rec})
	assert.ErrorIs(t, err, ErrRefused)
	assert.Equal(t, []string{"refused denied"}, rec.take())
	keys, err := Records(st, ds).RecordKeys(ctx, "case-7")
	require.NoError(t, err)
	assert.Empty(t, keys, "nothing written")

	_, err = Place(ctx, PlaceOptions{Order: holdOrder("case-7", Selection{}), Targets: []Target{target(st, ModePrimary)}})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument, "no audit recorder: fails closed")
	_, err = Place(ctx, PlaceOptions{Order: holdOrder("case-7", Selection{}), Targets: []Target{{Store: st, Mode: "mirror"}}, Audit: rec})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)

	failing := failingRecorder{}
	_, err = Place(ctx, PlaceOptions{Order: holdOrder("case-7", Selection{}), Targets: []Target{target(st, ModePrimary)}, Audit: failing})
	assert.ErrorContains(t, err, "audit log unavailable")
	keys, err = Records(st, ds).RecordKeys(ctx, "case-7")
	require.NoError(t, err)
	assert.Empty(t, keys, "an order that cannot be audited is not placed")

	_, err = ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "case-7", Release: approved("done"), Targets: []Target{target(st, ModePrimary)}, Audit: rec})
	assert.ErrorIs(t, err, providers.ErrNotFound)
	assert.Equal(t, []string{"refused denied"}, rec.take())

	// A released hold cannot be placed again under its name.
	_, err = Place(ctx, PlaceOptions{Order: holdOrder("case-7", Selection{}), Targets: []Target{target(st, ModePrimary)}, Audit: rec})
	require.NoError(t, err)
	_, err = ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "case-7", Release: approved("done"), Targets: []Target{target(st, ModePrimary)}, Audit: rec})
	require.NoError(t, err)
	_, err = Place(ctx, PlaceOptions{Order: holdOrder("case-7", Selection{}), Targets: []Target{target(st, ModePrimary)}, Audit: rec})
	assert.ErrorIs(t, err, ErrConflict)
}

type failingRecorder struct{}

func (failingRecorder) Record(context.Context, audit.Event) error {
	return errors.New("audit log unavailable")
}

// TestPropagate: a new restore point is covered by the ongoing hold, not by the fixed one;
// a copy of an old point to a replica is covered by both holds that cover it at the primary.
func TestPropagate(t *testing.T) {
	ctx := testCtx(t)
	primary := openLocal(t, "eu-primary")
	replica := gcstest.OpenStore(t, gcstest.NewServer(t, "replica"), "dr")
	writePoint(t, primary, "p1", "aa/1")
	rec := &recorder{}
	for _, o := range []Order{
		holdOrder("fixed", Selection{}),
		holdOrder("ongoing", Selection{Points: []string{"p1"}, Ongoing: true}),
	} {
		_, err := Place(ctx, PlaceOptions{Order: o, Points: []Point{p1}, Targets: []Target{target(primary, ModePrimary)}, Audit: rec, Now: fixedNow})
		require.NoError(t, err)
	}
	rec.take()
	src := Records(primary, ds)

	obj1 := writePoint(t, replica, "p1", "aa/1")
	names, err := Propagate(ctx, src, target(replica, ModeFull), p1, rec, "copy-wf", fixedNow())
	require.NoError(t, err)
	assert.Equal(t, []string{"fixed", "ongoing"}, names)
	assert.Equal(t, []string{"covered ok gcstest", "covered ok gcstest"}, rec.take())
	assertHeld(t, replica, obj1, true)

	obj3 := writePoint(t, primary, "p3", "cc/3")
	names, err = Propagate(ctx, src, target(primary, ModePrimary), p3, rec, "backup-wf", fixedNow())
	require.NoError(t, err)
	assert.Equal(t, []string{"ongoing"}, names)
	e := rec.last()
	assert.Equal(t, audit.Event{Kind: audit.KindHold, Outcome: audit.OutcomeOK, Actor: "backup-wf", Dataset: ds, Point: "p3",
		Location: "eu-primary", Jurisdiction: "EU", Operation: OpCovered, Chunks: int64(len(obj3)), Time: fixedNow(),
		Reason: "legal hold ongoing: new restore point covered; 3 objects held, enforced by drflow's local adapter, not by the storage"}, e)
	assertHeld(t, primary, []string{"datasets/ds/packs/cc/3", pointKey("p3")}, true)

	writePoint(t, replica, "p3", "cc/3")
	names, err = Propagate(ctx, src, target(replica, ModeFull), p3, rec, "copy-wf", fixedNow())
	require.NoError(t, err)
	assert.Equal(t, []string{"ongoing"}, names)
	g, err := Records(replica, ds).Guard(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"ongoing"}, g.PointHolds("p3"))
	assert.Equal(t, []string{"fixed", "ongoing"}, g.PointHolds("p1"))

	// Once released at the replica (a release under way), the hold is not propagated there.
	_, err = ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "ongoing", Release: approved("done"),
		Targets: []Target{target(replica, ModeFull)}, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	names, err = Propagate(ctx, src, target(replica, ModeFull), p3, rec, "copy-wf", fixedNow())
	require.NoError(t, err)
	assert.Empty(t, names)
}

// TestReleaseReappliesHoldPlacedDuringLift: a placement that records its coverage and sets
// its provider hold after the release read the other holds, but before it lifted, keeps its
// hold.
func TestReleaseReappliesHoldPlacedDuringLift(t *testing.T) {
	ctx := testCtx(t)
	st := storetest.NewFaulty(gcstest.OpenStore(t, gcstest.NewServer(t, "vault"), "dr"))
	obj1 := writePoint(t, st, "p1", "aa/1")
	rec := &recorder{}
	tg := target(st, ModePrimary)
	place := func(name string) {
		_, err := Place(ctx, PlaceOptions{Order: holdOrder(name, Selection{Points: []string{"p1"}}), Points: []Point{p1},
			Targets: []Target{tg}, Audit: rec, Now: fixedNow})
		require.NoError(t, err)
	}
	place("case-a")
	// The first lift of a provider hold waits for case-b's placement.
	st.On(storetest.MethodSetLegalHold).Where(func(c storetest.Call) bool { return !c.LegalHold }).Times(1).
		Inject(storetest.Before(func(context.Context, storetest.Call) error {
			place("case-b")
			return nil
		}))
	rep, err := ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "case-a", Release: approved("done"), Targets: []Target{tg}, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	lr := rep.Locations[0]
	assert.Equal(t, len(obj1), lr.Reapplied, "case-b covered them after the first reading")
	assert.Equal(t, 3, lr.Lifted, "case-a's records")
	assertHeld(t, st, obj1, true)
	r, err := Inspect(ctx, ds, "case-b", []Target{tg})
	require.NoError(t, err)
	assert.Empty(t, r.Problems)
}

// TestReleasePlacementRace runs the placement of case-b and the release of case-a, which
// cover the same objects, concurrently: afterwards every object case-b covers is held.
func TestReleasePlacementRace(t *testing.T) {
	for _, sc := range []storeCase{storeCases()[0], storeCases()[4]} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			st := sc.open(t)
			for i := range 20 {
				raceOnce(t, st, fmt.Sprintf("ds%02d", i))
			}
		})
	}
}

func raceOnce(t *testing.T, st providers.Store, dataset string) {
	ctx := testCtx(t)
	var objects []string
	for _, k := range []string{"points/p1", "packs/a", "packs/b", "keys/1"} {
		key := "datasets/" + dataset + "/" + k
		_, err := st.Put(ctx, key, strings.NewReader(k), providers.PutOptions{})
		require.NoError(t, err)
		objects = append(objects, key)
	}
	tg := Target{Store: st, Mode: ModePrimary, Objects: func(context.Context, string) ([]string, error) { return objects, nil }}
	rec := &recorder{}
	order := func(name string) Order {
		o := holdOrder(name, Selection{Points: []string{"p1"}})
		o.Dataset = dataset
		return o
	}
	_, err := Place(ctx, PlaceOptions{Order: order("case-a"), Points: []Point{p1}, Targets: []Target{tg}, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var placeErr, releaseErr error
	wg.Go(func() {
		_, placeErr = Place(ctx, PlaceOptions{Order: order("case-b"), Points: []Point{p1}, Targets: []Target{tg}, Audit: rec, Now: fixedNow})
	})
	wg.Go(func() {
		_, releaseErr = ReleaseHold(ctx, ReleaseOptions{Dataset: dataset, Name: "case-a", Release: approved("done"), Targets: []Target{tg}, Audit: rec, Now: fixedNow})
	})
	wg.Wait()
	require.NoError(t, placeErr)
	require.NoError(t, releaseErr)
	assertHeld(t, st, objects, true)
	_, err = ReleaseHold(ctx, ReleaseOptions{Dataset: dataset, Name: "case-b", Release: approved("done"), Targets: []Target{tg}, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	assertHeld(t, st, objects, false)
}
