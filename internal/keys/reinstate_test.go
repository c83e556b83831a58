package keys

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyringReinstateUndoesRevocationOnlyWithAQuorum(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	k := openKeyring(t, keyringPath(t), rec, clk)
	w, err := k.Wrap(ctx, []byte("a data key"), nil)
	require.NoError(t, err)
	shares, err := k.Export(ctx, 0, 2, 3)
	require.NoError(t, err)

	require.NoError(t, k.Revoke(ctx, "kill switch drill"))
	_, err = k.Unwrap(ctx, w, nil)
	require.ErrorIs(t, err, ErrRevoked, "revocation fails closed")
	_, err = k.Import(ctx, shares[:2])
	require.ErrorIs(t, err, ErrRevoked, "Import does not undo a revocation")

	_, err = k.Reinstate(ctx, shares[:1])
	require.ErrorContains(t, err, "1 shares given, 2 needed")
	bad := append([]KEKShare{}, shares[:2]...)
	bad[1].Share = append([]byte{}, bad[1].Share...)
	bad[1].Share[3] ^= 1
	_, err = k.Reinstate(ctx, bad)
	require.ErrorIs(t, err, ErrIntegrity, "corrupted shares are refused")
	_, err = k.Unwrap(ctx, w, nil)
	require.ErrorIs(t, err, ErrRevoked, "a failed reinstate leaves the keyring revoked")

	rec.reset()
	v, err := k.Reinstate(ctx, []KEKShare{shares[2], shares[0]})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), v)
	got, err := k.Unwrap(ctx, w, nil)
	require.NoError(t, err)
	assert.Equal(t, []byte("a data key"), got)
	assert.Equal(t, []string{"reinstate ok"}, rec.ops())
	assert.Equal(t, k.versionID(1), k.ID(), "the reinstated version is active again")

	again, err := k.Reinstate(ctx, shares[:2])
	require.NoError(t, err, "on a keyring that is not revoked it imports, a no-op for a version it holds")
	assert.Equal(t, uint32(1), again)
}
