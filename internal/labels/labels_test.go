package labels

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
)

func load(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	yaml := `jurisdictions:
  - {name: EU, regions: [eu-west-1]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}
locations:
  - {name: eu-primary, provider: local, path: stores/eu-primary, region: eu-west-1}
policies:
  - {name: eu-only, home: EU}
tiers:
  - {name: tier1, level: 1, rpo: 15m, rto: 1h, backup_every: 5m}
datasets:
  - {name: orders, classification: internal, policy: eu-only, tier: tier1, primary: eu-primary, source: {type: directory, path: src}}
  - {name: payroll, classification: personal, policy: eu-only, tier: tier1, primary: eu-primary, source: {type: directory, path: src}}
` + extra
	path := filepath.Join(dir, "drflow.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	return cfg
}

func TestNamesByDefault(t *testing.T) {
	l, err := New(load(t, ""))
	require.NoError(t, err)
	assert.False(t, l.Hashed())
	assert.Equal(t, "orders", l.Dataset("orders"))
	var zero *Labeler
	assert.Equal(t, "orders", zero.Dataset("orders"), "a nil labeler names")
}

func TestHashedLabels(t *testing.T) {
	cfg := load(t, "codec: {key_file: keys/payload.keyring}\nsearch_attributes: hashed\n")
	_, err := New(cfg)
	require.Error(t, err, "the keyring does not exist yet")

	ring, err := codec.CreateKeyring(cfg.CodecKeyFile, time.Now())
	require.NoError(t, err)
	l, err := New(cfg)
	require.NoError(t, err)
	require.True(t, l.Hashed())
	a, b := l.Dataset("orders"), l.Dataset("payroll")
	assert.True(t, strings.HasPrefix(a, Prefix), a)
	assert.Len(t, a, len(Prefix)+hexDigits)
	assert.NotEqual(t, a, b)
	assert.Equal(t, a, l.Dataset("orders"), "stable")
	assert.Equal(t, map[string]string{a: "orders", b: "payroll"}, l.Names(cfg))

	// Rotating the keyring keeps every label: the hash key comes from the first key.
	_, err = codec.RotateKeyring(cfg.CodecKeyFile, time.Now())
	require.NoError(t, err)
	again, err := New(cfg)
	require.NoError(t, err)
	assert.Equal(t, a, again.Dataset("orders"))

	// Another deployment's keyring gives other labels: without the keyring a label says nothing.
	other, err := codec.CreateKeyring(filepath.Join(t.TempDir(), "other.keyring"), time.Now())
	require.NoError(t, err)
	assert.NotEqual(t, a, FromKeyring(other).Dataset("orders"))
	assert.Equal(t, a, FromKeyring(ring).Dataset("orders"))
}

func TestHashedNeedsTheKeyring(t *testing.T) {
	t.Setenv(config.EnvCodecKeyFile, "")
	_, err := New(load(t, "search_attributes: hashed\n"))
	require.ErrorContains(t, err, "needs the payload keyring")
}

func TestBadMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drflow.yaml")
	require.NoError(t, os.WriteFile(path, []byte("search_attributes: secret\n"), 0o644))
	_, err := config.Load(path)
	require.ErrorContains(t, err, `search_attributes: "secret" is not "names"`)
}
