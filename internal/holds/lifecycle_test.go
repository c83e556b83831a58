package holds

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// TestHoldLifecycle places two holds over one point on every kind of store, releases them
// one after the other and reads the objects back after each step: the provider hold stays
// while any hold covers an object and goes with the last, wherever the store can hold.
func TestHoldLifecycle(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			st := sc.open(t)
			assert.Equal(t, sc.claimed, Enforcement(st.Capabilities()), st.Capabilities().Note)
			runLifecycle(t, st, sc)
		})
	}
}

func runLifecycle(t *testing.T, st providers.Store, sc storeCase) {
	obj1 := writePoint(t, st, "p1", "aa/1", "shared")
	obj2 := writePoint(t, st, "p2", "bb/2", "shared")
	targets := []Target{target(st, ModePrimary)}
	rec := &recorder{}
	recordsA := placeTwo(t, st, sc, targets, rec, obj1)
	releaseBoth(t, st, sc, targets, rec, obj1, obj2, recordsA)
}

// placeTwo places case-a over p1 and case-b over p1 and p2, and returns case-a's records.
func placeTwo(t *testing.T, st providers.Store, sc storeCase, targets []Target, rec *recorder, obj1 []string) []string {
	ctx := testCtx(t)
	loc := st.Location().Name
	enforcement := sc.effective
	enforced := enforcement != EnforcedByDrflow
	note := enforcementText(st, enforcement)
	if sc.claimed != sc.effective {
		note = "the store accepted the provider hold but does not report it back: only drflow's hold records protect the objects"
	}
	place := func(o Order) PlaceReport {
		rep, err := Place(ctx, PlaceOptions{Order: o, Points: []Point{p1, p2, p3}, Targets: targets, Audit: rec, Now: fixedNow})
		require.NoError(t, err)
		return rep
	}

	repA := place(holdOrder("case-a", Selection{Points: []string{"p1", "p9"}}))
	assert.Equal(t, []string{"p1"}, repA.Points)
	assert.Equal(t, []string{"p9"}, repA.Unknown, "named by the order, not a restore point of the dataset")
	require.Len(t, repA.Locations, 1)
	lp := repA.Locations[0]
	assert.Equal(t, LocationPlacement{Location: loc, Mode: ModePrimary, Enforcement: enforcement, ServerEnforced: enforcement == EnforcedByServer,
		Covered: []string{"p1"}, Objects: len(obj1), Note: note}, lp)
	if enforcement == EnforcedByServer {
		assert.Equal(t, []string{loc}, repA.ServerEnforced)
	} else {
		assert.Equal(t, []string{loc}, repA.DrflowEnforced)
	}
	assert.Equal(t, []string{"placed ok", "applied ok " + loc}, rec.take())
	assertHeld(t, st, obj1, enforced)
	recordsA, err := Records(st, ds).RecordKeys(ctx, "case-a")
	require.NoError(t, err)
	assert.Len(t, recordsA, 2, "order and coverage")
	assertHeld(t, st, recordsA, enforced)
	assertHeld(t, st, []string{"datasets/ds/packs/bb/2"}, false)
	if enforced {
		assert.ErrorIs(t, st.Delete(ctx, "datasets/ds/packs/aa/1"), providers.ErrImmutable)
		_, err := st.Put(ctx, pointKey("p1"), strings.NewReader("tampered"), providers.PutOptions{})
		assert.ErrorIs(t, err, providers.ErrImmutable)
		assert.ErrorIs(t, st.Delete(ctx, recordsA[0]), providers.ErrImmutable, "the hold's own records are held")
	}

	repB := place(holdOrder("case-b", Selection{From: p1.DataAsOf, To: p2.DataAsOf}))
	assert.Equal(t, []string{"p1", "p2"}, repB.Points)
	assert.Equal(t, len(obj1)+2, repB.Objects, "p2 adds its own pack and manifest")
	rec.take()
	return recordsA
}

// releaseBoth releases case-a (refused first without a second person), then case-b.
func releaseBoth(t *testing.T, st providers.Store, sc storeCase, targets []Target, rec *recorder, obj1, obj2, recordsA []string) {
	ctx := testCtx(t)
	loc := st.Location().Name
	enforced := sc.effective != EnforcedByDrflow

	// Release of case-a without a second person: refused and audited, nothing written.
	self := approved("case closed")
	self.ApprovedBy = []string{"alice"}
	_, err := ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "case-a", Release: self, Targets: targets, Audit: rec, Now: fixedNow})
	assert.ErrorIs(t, err, ErrRefused)
	assert.Contains(t, rec.last().Reason, "needs the approval of someone other than the requester")
	assert.Equal(t, []string{"refused denied"}, rec.take())
	h, err := Records(st, ds).Get(ctx, "case-a")
	require.NoError(t, err)
	assert.True(t, h.Active())

	// Release of case-a: every object of p1 stays held by case-b; only case-a's records go.
	relA, err := ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "case-a", Release: approved("case closed"), Targets: targets, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	want := LocationRelease{Location: loc, Mode: ModePrimary, Enforcement: sc.claimed, Recorded: true, Objects: len(obj1) + 3,
		StillHeld: len(obj1), HeldBy: map[string]int{"case-b": len(obj1)}}
	if sc.claimed != EnforcedByDrflow {
		want.Lifted = 3 // order, coverage and the release just written
	} else {
		want.Note = "the store holds no objects: only drflow's records changed"
	}
	assert.Equal(t, []LocationRelease{want}, relA.Locations)
	assert.Equal(t, []string{"approved ok", "released ok " + loc}, rec.take())
	assertHeld(t, st, obj1, enforced)
	assertHeld(t, st, recordsA, false)
	checkInspectA(t, st, targets, obj1, recordsA, sc)

	// Release of case-b: the provider holds go with the last hold.
	_, err = ReleaseHold(ctx, ReleaseOptions{Dataset: ds, Name: "case-b", Release: approved("matter settled"), Targets: targets, Audit: rec, Now: fixedNow})
	require.NoError(t, err)
	assertHeld(t, st, append(obj1, obj2...), false)
	require.NoError(t, st.Delete(ctx, "datasets/ds/packs/aa/1"), "deletable once no hold covers it")
	rep, err := Inspect(ctx, ds, "case-b", targets)
	require.NoError(t, err)
	assert.Equal(t, StateReleased, rep.State)
	assert.Empty(t, rep.Problems, "a released hold's missing object is no problem")
	for _, ps := range rep.Locations[0].Points {
		for _, o := range ps.Objects {
			if o.Key == "datasets/ds/packs/aa/1" {
				assert.Equal(t, ObjectState{Key: o.Key}, o, "missing")
			} else {
				assert.Equal(t, ObjectState{Key: o.Key, Present: true, Enforcement: NotHeld}, o)
			}
		}
	}
	sums, err := List(ctx, ds, targets)
	require.NoError(t, err)
	require.Len(t, sums, 2)
	assert.Equal(t, Summary{Name: "case-a", State: StateReleased, RequestedBy: "alice", Reason: "case case-a", PlacedAt: t0,
		ReleasedAt: fixedNow(), Points: []string{"p1"}, Locations: []string{loc}, Released: []string{loc}}, sums[0])
	assert.Equal(t, []string{"p1", "p2"}, sums[1].Points)
}

// checkInspectA reads case-a back after its release, while case-b still covers p1.
func checkInspectA(t *testing.T, st providers.Store, targets []Target, obj1, recordsA []string, sc storeCase) {
	t.Helper()
	enforcement := sc.effective
	rep, err := Inspect(testCtx(t), ds, "case-a", targets)
	require.NoError(t, err)
	assert.Equal(t, StateReleased, rep.State)
	assert.Equal(t, []string{"bob"}, rep.Approvers)
	assert.Equal(t, "case closed", rep.Release.Reason)
	assert.Equal(t, []string{"p1", "p9"}, rep.Order.Selection.Points)
	if sc.claimed == sc.effective {
		assert.Empty(t, rep.Problems)
	} else {
		require.Len(t, rep.Problems, len(obj1))
		assert.Contains(t, rep.Problems[0], "has no provider hold although legal hold case-b covers it")
	}
	require.Len(t, rep.Locations, 1)
	ls := rep.Locations[0]
	enforced := enforcement != EnforcedByDrflow
	assert.Equal(t, LocationState{Location: st.Location().Name, Mode: ModePrimary, Enforcement: sc.claimed, Recorded: true,
		Objects: len(obj1), Held: boolInt(enforced) * len(obj1)}, LocationState{Location: ls.Location, Mode: ls.Mode,
		Enforcement: ls.Enforcement, Recorded: ls.Recorded, Active: ls.Active, Objects: ls.Objects, Missing: ls.Missing, Held: ls.Held})
	require.Len(t, ls.Points, 1)
	assert.Equal(t, "p1", ls.Points[0].ID)
	assert.True(t, p1.DataAsOf.Equal(ls.Points[0].DataAsOf))
	var keys []string
	for _, o := range ls.Points[0].Objects {
		keys = append(keys, o.Key)
		want := ObjectState{Key: o.Key, Present: true, LegalHold: enforced, Enforcement: enforcement, Holds: []string{"case-b"}}
		assert.Equal(t, want, o)
	}
	assert.Equal(t, obj1, keys)
	for _, o := range ls.Records {
		assert.Equal(t, ObjectState{Key: o.Key, Present: true, Enforcement: NotHeld}, o)
		assert.True(t, slices.Contains(recordsA, o.Key) || strings.HasSuffix(o.Key, "/release.json"), o.Key)
	}
	assert.Len(t, ls.Records, 3, "order, coverage, release")
}
