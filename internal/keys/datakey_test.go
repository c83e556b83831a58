package keys

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestKey(t testing.TB, dataset string, epoch uint32, secret []byte) *DataKey {
	t.Helper()
	k, err := NewDataKey(dataset, epoch, secret)
	require.NoError(t, err)
	return k
}

func fixedSecret(b byte) []byte { return bytes.Repeat([]byte{b}, SecretSize) }

func TestDataKeySealOpenRoundTrip(t *testing.T) {
	k := newTestKey(t, "payroll", 1, fixedSecret(1))
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	tests := []struct {
		name string
		give []byte
		aad  []byte
	}{
		{"empty", nil, nil},
		{"one byte", []byte{7}, []byte("chunk")},
		{"one MiB", big, []byte("manifest")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix:")
			sealed := k.Seal(bytes.Clone(prefix), tt.give, tt.aad)
			require.True(t, bytes.HasPrefix(sealed, prefix), "Seal appends to dst")
			sealed = sealed[len(prefix):]
			assert.Len(t, sealed, len(tt.give)+k.Overhead())

			got, err := k.Open([]byte("out:"), sealed, tt.aad)
			require.NoError(t, err)
			assert.Equal(t, append([]byte("out:"), tt.give...), got, "Open appends to dst")

			again := k.Seal(nil, tt.give, tt.aad)
			assert.NotEqual(t, sealed, again, "random nonces: sealing twice differs")
		})
	}
}

func TestDataKeyOpenRejectsTampering(t *testing.T) {
	k := newTestKey(t, "payroll", 1, fixedSecret(1))
	plain := []byte("the quick brown fox")
	aad := []byte("datasets/payroll/chunks/x")
	sealed := k.Seal(nil, plain, aad)

	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		key    *DataKey
		sealed []byte
		aad    []byte
	}{
		{"flipped nonce bit", k, flip(0), aad},
		{"flipped ciphertext bit", k, flip(12 + 3), aad},
		{"flipped tag bit", k, flip(len(sealed) - 1), aad},
		{"truncated", k, sealed[:len(sealed)-1], aad},
		{"shorter than nonce and tag", k, sealed[:10], aad},
		{"extended", k, append(bytes.Clone(sealed), 0), aad},
		{"aad mismatch", k, sealed, []byte("datasets/payroll/chunks/y")},
		{"aad missing", k, sealed, nil},
		{"other dataset's key", newTestKey(t, "billing", 1, fixedSecret(1)), sealed, aad},
		{"other epoch's key", newTestKey(t, "payroll", 2, fixedSecret(1)), sealed, aad},
		{"other secret", newTestKey(t, "payroll", 1, fixedSecret(2)), sealed, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := tt.key.Open(dst, tt.sealed, tt.aad)
			require.ErrorIs(t, err, ErrIntegrity)
			assert.Equal(t, []byte("keep"), got, "dst is returned unchanged")
		})
	}
}

func TestChunkID(t *testing.T) {
	plain := []byte("same content everywhere")
	base := newTestKey(t, "payroll", 1, fixedSecret(1))
	id := base.ChunkID(plain)

	assert.Equal(t, id, base.ChunkID(plain), "stable for the same key")
	assert.Equal(t, id, newTestKey(t, "payroll", 1, fixedSecret(1)).ChunkID(plain), "stable across instances of the same key")
	assert.NotEqual(t, id, base.ChunkID([]byte("other content")))

	others := []struct {
		name string
		key  *DataKey
	}{
		{"other dataset", newTestKey(t, "billing", 1, fixedSecret(1))},
		{"other epoch", newTestKey(t, "payroll", 2, fixedSecret(1))},
		{"other secret", newTestKey(t, "payroll", 1, fixedSecret(2))},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			assert.NotEqual(t, id, tt.key.ChunkID(plain))
		})
	}

	parsed, err := ParseChunkID(id.String())
	require.NoError(t, err)
	assert.Equal(t, id, parsed)
	for _, bad := range []string{"", "abc", id.String()[:63] + "g", id.String() + "00"} {
		_, err := ParseChunkID(bad)
		assert.Error(t, err, bad)
	}
}

func TestNewDataKeyRejectsWrongSecretSize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		_, err := NewDataKey("payroll", 1, make([]byte, n))
		assert.Error(t, err, "%d bytes", n)
	}
}
