package keys

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/providers"
)

// holdKeys records legal hold name in st over the key objects of epochs of payroll, as the
// hold lifecycle does for a restore point (only drflow's records: no provider hold).
func holdKeys(t *testing.T, st providers.Store, name string, epochs ...uint32) {
	t.Helper()
	ctx := context.Background()
	book := holds.Records(st, "payroll")
	require.NoError(t, book.PutOrder(ctx, holds.Order{Name: name, Dataset: "payroll", Reason: "matter 2026-17",
		RequestedBy: "legal@example.com", PlacedAt: time.Now()}))
	if len(epochs) == 0 {
		return
	}
	var objects []string
	for _, e := range epochs {
		objects = append(objects, KeyObjectKey("payroll", e))
	}
	_, err := book.Cover(ctx, name, "20260101T000000.000Z-00000001", time.Now(), objects, time.Now())
	require.NoError(t, err)
}

func releaseHold(t *testing.T, st providers.Store, name string) {
	t.Helper()
	require.NoError(t, holds.Records(st, "payroll").PutRelease(context.Background(), name, holds.Release{
		Reason: "matter closed", RequestedBy: "legal@example.com", ApprovedBy: []string{"cfo@example.com"}, ReleasedAt: time.Now()}))
}

// A hold recorded at any one location stops the shred everywhere, before anything is
// destroyed; once it is released the shred goes ahead.
func TestShredRefusedByHoldRecords(t *testing.T) {
	e := newEnv(t)
	replica := newStore(t, "eu-replica")
	m := e.manager(t)
	_, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	for _, key := range listKeys(t, e.st, "datasets/payroll/") {
		putObject(t, replica, key, getObject(t, e.st, key))
	}
	holdKeys(t, replica, "case-7") // an order without coverage yet holds the dataset too
	e.rec.reset()

	err = m.Shred(e.ctx, "payroll", e.st, replica)
	require.ErrorIs(t, err, providers.ErrImmutable)
	assert.ErrorContains(t, err, "legal hold case-7")
	assert.Equal(t, []string{"shred denied"}, e.rec.ops())
	ev := e.rec.all()[0]
	assert.Equal(t, "eu-replica", ev.Location)
	assert.Contains(t, ev.Reason, "legal hold case-7")
	for _, st := range []providers.Store{e.st, replica} {
		assert.Equal(t, []string{KeyObjectKey("payroll", 1)}, listKeys(t, st, KeysPrefix("payroll")), "nothing destroyed in %s", st.Location().Name)
		_, err := e.manager(t).Epoch(e.ctx, st, "payroll", 1)
		require.NoError(t, err)
	}

	releaseHold(t, replica, "case-7")
	require.NoError(t, m.Shred(e.ctx, "payroll", e.st, replica))
	for _, st := range []providers.Store{e.st, replica} {
		assert.Equal(t, []string{ShreddedKey("payroll")}, listKeys(t, st, KeysPrefix("payroll")))
	}
}

// A re-wrap leaves a held key object as it is (wrapped by the previous KEK version, which
// still opens it), audits the refusal and reports it; RewrapKEK, which reports only a count,
// fails so that its caller does not revoke that version.
func TestRewrapKEKLeavesHeldKeysAlone(t *testing.T) {
	tests := []struct {
		name    string
		hold    func(t *testing.T, st providers.Store)
		wantWhy string
	}{
		{"drflow's hold records", func(t *testing.T, st providers.Store) { holdKeys(t, st, "case-7", 1) },
			"legal hold case-7"},
		{"the store's legal hold", func(t *testing.T, st providers.Store) {
			require.NoError(t, st.SetLegalHold(context.Background(), KeyObjectKey("payroll", 1), true))
		}, "a legal hold or retention of the store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.manager(t)
			_, err := m.Current(e.ctx, e.st, "payroll")
			require.NoError(t, err)
			_, err = m.RotateDEK(e.ctx, e.st, "payroll")
			require.NoError(t, err)
			tt.hold(t, e.st)
			held := getObject(t, e.st, KeyObjectKey("payroll", 1))
			_, err = e.keyring(t).Rotate(e.ctx)
			require.NoError(t, err)
			e.rec.reset()

			rep, err := m.RewrapKEKReport(e.ctx, e.st, "payroll")
			require.NoError(t, err)
			assert.Equal(t, 1, rep.Rewrapped)
			assert.Equal(t, []HeldKey{{Epoch: 1, KEKID: "eu-kek/v1", Reason: tt.wantWhy}}, rep.Held)
			assert.Equal(t, []string{"wrap denied", "wrap ok"}, e.rec.ops())
			assert.Contains(t, e.rec.all()[0].Reason, tt.wantWhy)
			assert.Equal(t, audit.KindKey, e.rec.all()[0].Kind)
			assert.Equal(t, held, getObject(t, e.st, KeyObjectKey("payroll", 1)), "the held key object is unchanged")
			var obj keyObject
			require.NoError(t, json.Unmarshal(getObject(t, e.st, KeyObjectKey("payroll", 2)), &obj))
			assert.Equal(t, "eu-kek/v2", obj.KEKID)

			n, err := m.RewrapKEK(e.ctx, e.st, "payroll")
			require.ErrorIs(t, err, providers.ErrImmutable)
			assert.ErrorContains(t, err, "eu-kek/v1")
			assert.Zero(t, n)
			_, err = e.manager(t).Epoch(e.ctx, e.st, "payroll", 1)
			require.NoError(t, err, "the held key opens with the previous version")
		})
	}
}
