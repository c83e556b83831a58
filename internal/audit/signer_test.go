package audit

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateSigner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "audit-eu.key")

	key, err := LoadOrCreateSigner(path)
	require.NoError(t, err)
	require.Len(t, key, ed25519.PrivateKeySize)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	leftovers, err := filepath.Glob(filepath.Join(dir, ".audit-key-*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers)

	again, err := LoadOrCreateSigner(path)
	require.NoError(t, err)
	assert.Equal(t, key, again, "the second use loads the same key")
}

func TestLoadOrCreateSignerRefusesExposedKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-eu.key")
	_, err := LoadOrCreateSigner(path)
	require.NoError(t, err)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := LoadOrCreateSigner(path)
		assert.ErrorContains(t, err, "lets group or others at the signing key", "mode %04o", mode)
	}
}

func TestLoadOrCreateSignerRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":   "",
		"not pem": "hello",
		"public":  string(mustEncodePublic(t, PublicKey(newSigner(t)))),
		"bad der": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := LoadOrCreateSigner(path)
			assert.Error(t, err)
		})
	}
	t.Run("directory", func(t *testing.T) {
		_, err := LoadOrCreateSigner(dir)
		assert.ErrorContains(t, err, "not a regular file")
	})
}

func TestLoadOrCreateSignerConcurrentFirstUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-eu.key")
	const n = 16
	keys := make([]ed25519.PrivateKey, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			keys[i], err = LoadOrCreateSigner(path)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		assert.Equal(t, keys[0], k)
	}
}

func TestAuditorVerifiesWithThePublicKeyAlone(t *testing.T) {
	key, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "audit-eu.key"))
	require.NoError(t, err)
	s := newStore(t)
	l := openLog(t, Options{Store: s, Signer: key})
	recordEvents(t, l, 1, 3)

	pemBytes := mustEncodePublic(t, l.PublicKey())
	assert.Contains(t, string(pemBytes), "-----BEGIN PUBLIC KEY-----")
	pub, err := ParsePublicKey(pemBytes)
	require.NoError(t, err)
	rep, err := Verify(context.Background(), s, region, pub)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), rep.Records)

	_, err = ParsePublicKey([]byte("nonsense"))
	assert.Error(t, err)
}

func mustEncodePublic(t *testing.T, pub ed25519.PublicKey) []byte {
	t.Helper()
	b, err := EncodePublicKey(pub)
	require.NoError(t, err)
	return b
}
