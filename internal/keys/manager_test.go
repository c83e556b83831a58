package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// env is one keyring shared by several "processes" and a repository store.
type env struct {
	ctx  context.Context
	rec  *recorder
	clk  *clock
	path string
	st   providers.Store
}

func newEnv(t *testing.T) *env {
	return &env{ctx: context.Background(), rec: &recorder{}, clk: newClock(), path: keyringPath(t), st: newStore(t, "eu-primary")}
}

// keyring opens the shared keyring as a new process would.
func (e *env) keyring(t *testing.T) *Keyring { return openKeyring(t, e.path, e.rec, e.clk) }

// manager starts a new process: its own keyring handle and an empty cache.
func (e *env) manager(t *testing.T) *Manager { return newManager(t, e.keyring(t), e.rec, e.clk) }

func getObject(t *testing.T, st providers.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func putObject(t *testing.T, st providers.Store, key string, b []byte) {
	t.Helper()
	_, err := st.Put(context.Background(), key, bytes.NewReader(b), providers.PutOptions{})
	require.NoError(t, err)
}

func listKeys(t *testing.T, st providers.Store, prefix string) []string {
	t.Helper()
	var out []string
	require.NoError(t, st.List(context.Background(), prefix, func(oi providers.ObjectInfo) error {
		out = append(out, oi.Key)
		return nil
	}))
	return out
}

// sealChunk stores plaintext as a chunk the way the engine does: named by its ChunkID,
// sealed with the key, bound to its name.
func sealChunk(t *testing.T, st providers.Store, key *DataKey, plaintext []byte) string {
	t.Helper()
	id := key.ChunkID(plaintext)
	name := "datasets/" + key.Dataset() + "/chunks/" + id.String()
	putObject(t, st, name, key.Seal(nil, plaintext, []byte(name)))
	return name
}

func openChunk(t *testing.T, st providers.Store, key *DataKey, name string) ([]byte, error) {
	t.Helper()
	return key.Open(nil, getObject(t, st, name), []byte(name))
}

func TestManagerCurrentCreatesEpochOne(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	e.rec.reset()

	key, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, "payroll", key.Dataset())
	assert.Equal(t, uint32(1), key.Epoch())
	assert.Equal(t, []string{"datasets/payroll/keys/0000000001.json"}, listKeys(t, e.st, "datasets/"))

	var obj keyObject
	require.NoError(t, json.Unmarshal(getObject(t, e.st, KeyObjectKey("payroll", 1)), &obj))
	assert.Equal(t, keyObject{
		Format: keyObjectFormat, Dataset: "payroll", Epoch: 1, KEKID: "eu-kek/v1", Jurisdiction: "EU",
		WrappedDEK: obj.WrappedDEK, Created: e.clk.Now(),
	}, obj)
	assert.Len(t, obj.WrappedDEK, 12+SecretSize+16)

	again, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Same(t, key, again, "cached")
	byEpoch, err := m.Epoch(e.ctx, e.st, "payroll", 1)
	require.NoError(t, err)
	assert.Same(t, key, byEpoch)

	other, err := e.manager(t).Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	plain := []byte("content")
	assert.Equal(t, key.ChunkID(plain), other.ChunkID(plain), "another process unwraps the same DEK")
	sealed := key.Seal(nil, plain, nil)
	got, err := other.Open(nil, sealed, nil)
	require.NoError(t, err)
	assert.Equal(t, plain, got)

	assert.Equal(t, []string{"wrap ok", "unwrap ok"}, e.rec.ops())
	ev := e.rec.all()[0]
	assert.Equal(t, audit.Event{
		Kind: audit.KindKey, Outcome: audit.OutcomeOK, Actor: "test", Dataset: "payroll", Location: "eu-primary",
		Jurisdiction: "EU", Operation: "wrap", KeyID: "eu-kek/v1", KeyEpoch: 1, Reason: "new data key", Time: e.clk.Now(),
	}, ev)
}

func TestManagerArgumentsAndMissingEpochs(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	_, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)

	_, err = m.Epoch(e.ctx, e.st, "payroll", 2)
	require.ErrorIs(t, err, providers.ErrNotFound)
	_, err = m.Epoch(e.ctx, e.st, "billing", 1)
	require.ErrorIs(t, err, providers.ErrNotFound, "a dataset without keys")
	_, err = m.Epoch(e.ctx, e.st, "payroll", 0)
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	for _, bad := range []string{"", "a/b", "..", "."} {
		_, err := m.Current(e.ctx, e.st, bad)
		require.ErrorIs(t, err, providers.ErrInvalidArgument, "%q", bad)
	}
	_, err = NewManager(ManagerOptions{Recorder: e.rec})
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = NewManager(ManagerOptions{KEK: e.keyring(t)})
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
}

func TestManagerConcurrentCurrentConverges(t *testing.T) {
	e := newEnv(t)
	e.keyring(t)
	e.rec.reset()
	const n = 16
	managers := make([]*Manager, n)
	for i := range managers {
		managers[i] = e.manager(t)
	}
	ids := make([]ChunkID, n)
	var wg sync.WaitGroup
	for i, m := range managers {
		wg.Go(func() {
			key, err := m.Current(e.ctx, e.st, "payroll")
			if assert.NoError(t, err) {
				assert.Equal(t, uint32(1), key.Epoch())
				ids[i] = key.ChunkID([]byte("x"))
			}
		})
	}
	wg.Wait()
	for i := range ids {
		assert.Equal(t, ids[0], ids[i], "manager %d", i)
	}
	assert.Equal(t, []string{"datasets/payroll/keys/0000000001.json"}, listKeys(t, e.st, "datasets/"))
	wraps := 0
	for _, op := range e.rec.ops() {
		if op == "wrap ok" {
			wraps++
		}
	}
	assert.Equal(t, 1, wraps, "only the winner records a wrap")
}

func TestManagerSwappedOrTamperedKeyObjects(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	_, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	_, err = m.RotateDEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	_, err = m.Current(e.ctx, e.st, "billing")
	require.NoError(t, err)
	p1 := getObject(t, e.st, KeyObjectKey("payroll", 1))
	p2 := getObject(t, e.st, KeyObjectKey("payroll", 2))
	b1 := getObject(t, e.st, KeyObjectKey("billing", 1))

	relabel := func(raw []byte, dataset string, epoch uint32) []byte {
		var obj keyObject
		require.NoError(t, json.Unmarshal(raw, &obj))
		obj.Dataset, obj.Epoch = dataset, epoch
		out, err := json.Marshal(obj)
		require.NoError(t, err)
		return out
	}
	flipWrapped := func(raw []byte) []byte {
		var obj keyObject
		require.NoError(t, json.Unmarshal(raw, &obj))
		obj.WrappedDEK[len(obj.WrappedDEK)-1] ^= 1
		out, err := json.Marshal(obj)
		require.NoError(t, err)
		return out
	}
	tests := []struct {
		name string
		give []byte
	}{
		{"other epoch's object, relabelled", relabel(p2, "payroll", 1)},
		{"other dataset's object, relabelled", relabel(b1, "payroll", 1)},
		{"other epoch's object, as is", p2},
		{"other dataset's object, as is", b1},
		{"flipped bit in wrapped DEK", flipWrapped(p1)},
		{"malformed", []byte("{")},
		{"unknown field", bytes.Replace(p1, []byte(`"format"`), []byte(`"x":1,"format"`), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			putObject(t, e.st, KeyObjectKey("payroll", 1), tt.give)
			t.Cleanup(func() { putObject(t, e.st, KeyObjectKey("payroll", 1), p1) })
			e.rec.reset()
			_, err := e.manager(t).Epoch(e.ctx, e.st, "payroll", 1)
			require.ErrorIs(t, err, ErrIntegrity)
		})
	}

	e.rec.reset()
	putObject(t, e.st, KeyObjectKey("payroll", 1), relabel(p2, "payroll", 1))
	_, err = e.manager(t).Epoch(e.ctx, e.st, "payroll", 1)
	require.ErrorIs(t, err, ErrIntegrity)
	assert.Equal(t, []string{"unwrap failed"}, e.rec.ops(), "a failed unwrap is audited")
}

func TestManagerRevocationFailsClosedAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(t *testing.T, admin *Keyring)
	}{
		{"version", func(t *testing.T, admin *Keyring) {
			require.NoError(t, admin.RevokeVersion(context.Background(), 1, "compromised"))
		}},
		{"whole KEK", func(t *testing.T, admin *Keyring) {
			require.NoError(t, admin.Revoke(context.Background(), "compromised"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.manager(t)
			key, err := m.Current(e.ctx, e.st, "payroll")
			require.NoError(t, err)
			chunk := sealChunk(t, e.st, key, []byte("secret data"))

			tt.revoke(t, e.keyring(t)) // by another process, e.g. the incident runbook
			e.rec.reset()

			_, err = m.Current(e.ctx, e.st, "payroll")
			require.ErrorIs(t, err, ErrRevoked, "a cached key is refused at once, without waiting for the TTL")
			_, err = m.Epoch(e.ctx, e.st, "payroll", 1)
			require.ErrorIs(t, err, ErrRevoked)
			_, err = e.manager(t).Epoch(e.ctx, e.st, "payroll", 1)
			require.ErrorIs(t, err, ErrRevoked, "a new process too")
			_, err = m.RewrapKEK(e.ctx, e.st, "payroll")
			require.Error(t, err, "what only a revoked version wraps cannot be re-wrapped")
			assert.Equal(t, []string{"unwrap denied", "unwrap denied", "unwrap denied", "unwrap denied"}, e.rec.ops())

			// The chunk's ciphertext is still there, but no key for it can be had.
			assert.NotEmpty(t, getObject(t, e.st, chunk))
		})
	}
}

func TestManagerRotateDEK(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	plain := []byte("the same content")
	k1, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	c1 := sealChunk(t, e.st, k1, plain)
	e.rec.reset()

	k2, err := m.RotateDEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, uint32(2), k2.Epoch())
	assert.NotEqual(t, k1.ChunkID(plain), k2.ChunkID(plain), "a new epoch names the same content differently")
	c2 := sealChunk(t, e.st, k2, plain)
	assert.NotEqual(t, c1, c2)

	cur, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, uint32(2), cur.Epoch())
	fresh := e.manager(t)
	cur, err = fresh.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, uint32(2), cur.Epoch())
	old, err := fresh.Epoch(e.ctx, e.st, "payroll", 1)
	require.NoError(t, err)
	got, err := openChunk(t, e.st, old, c1)
	require.NoError(t, err, "old epochs stay readable")
	assert.Equal(t, plain, got)
	assert.Equal(t, []string{"rotate_dek ok", "unwrap ok", "unwrap ok"}, e.rec.ops())
	assert.Equal(t, uint32(2), e.rec.all()[0].KeyEpoch)

	// Two processes rotating at once never overwrite each other's key: each gets an epoch that
	// exists in the store, the same one when they race for the same number, and no number is
	// skipped. (If one finishes before the other lists the epochs, the second rotation is a
	// rotation of its own, as if run later.)
	a, b := e.manager(t), e.manager(t)
	var wg sync.WaitGroup
	keys := make([]*DataKey, 2)
	for i, mm := range []*Manager{a, b} {
		wg.Go(func() {
			k, err := mm.RotateDEK(e.ctx, e.st, "payroll")
			if assert.NoError(t, err) {
				keys[i] = k
			}
		})
	}
	wg.Wait()
	epochs, err := m.Epochs(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	require.Contains(t, [][]uint32{{1, 2, 3}, {1, 2, 3, 4}}, epochs)
	for _, k := range keys {
		stored, err := fresh.Epoch(e.ctx, e.st, "payroll", k.Epoch())
		require.NoError(t, err)
		assert.Equal(t, stored.ChunkID(plain), k.ChunkID(plain), "epoch %d is the key in the store", k.Epoch())
	}
	if len(epochs) == 3 {
		assert.Equal(t, keys[0].ChunkID(plain), keys[1].ChunkID(plain), "racing for epoch 3, both got the winner's key")
	}
}

func TestManagerCacheTTL(t *testing.T) {
	e := newEnv(t)
	a, b := e.manager(t), e.manager(t)
	_, err := a.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	_, err = b.RotateDEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)

	k, err := a.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, uint32(1), k.Epoch(), "within the TTL another process's rotation is not yet seen")
	e.clk.Advance(DefaultCacheTTL)
	k, err = a.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, uint32(2), k.Epoch())
}

func TestManagerRewrapKEKLeavesChunksAlone(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	k1, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	c1 := sealChunk(t, e.st, k1, []byte("epoch one data"))
	k2, err := m.RotateDEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	c2 := sealChunk(t, e.st, k2, []byte("epoch two data"))
	kb, err := m.Current(e.ctx, e.st, "billing")
	require.NoError(t, err)
	sealChunk(t, e.st, kb, []byte("billing data"))
	putObject(t, e.st, "datasets/payroll/manifests/2025-03-04", []byte("manifest"))

	// Everything but payroll's key objects, as it is now.
	type snap struct {
		etag string
		data []byte
	}
	before := map[string]snap{}
	for _, key := range listKeys(t, e.st, "") {
		if strings.HasPrefix(key, KeysPrefix("payroll")) {
			continue
		}
		info, err := e.st.Stat(e.ctx, key)
		require.NoError(t, err)
		before[key] = snap{info.ETag, getObject(t, e.st, key)}
	}
	require.Len(t, before, 5)

	admin := e.keyring(t)
	_, err = admin.Rotate(e.ctx)
	require.NoError(t, err)
	e.clk.Advance(1)
	e.rec.reset()
	n, err := m.RewrapKEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []string{"wrap ok", "wrap ok"}, e.rec.ops())
	assert.Equal(t, "eu-kek/v2", e.rec.all()[0].KeyID)
	assert.Contains(t, e.rec.all()[0].Reason, "was eu-kek/v1")

	for _, epoch := range []uint32{1, 2} {
		var obj keyObject
		require.NoError(t, json.Unmarshal(getObject(t, e.st, KeyObjectKey("payroll", epoch)), &obj))
		assert.Equal(t, "eu-kek/v2", obj.KEKID)
		require.NotNil(t, obj.Rewrapped)
		assert.Equal(t, e.clk.Now(), *obj.Rewrapped)
	}
	for key, want := range before {
		info, err := e.st.Stat(e.ctx, key)
		require.NoError(t, err)
		assert.Equal(t, want.etag, info.ETag, "%s untouched", key)
		assert.Equal(t, want.data, getObject(t, e.st, key), "%s untouched", key)
	}

	n, err = m.RewrapKEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to re-wrap")

	// With v1 revoked, payroll is still readable through v2 — with the same DEKs — while
	// billing, not re-wrapped, is not.
	other := e.manager(t)
	_, err = other.Current(e.ctx, e.st, "billing") // cached under v1 in another process
	require.NoError(t, err)
	_, err = other.Epoch(e.ctx, e.st, "payroll", 1) // cached with its v2 wrap
	require.NoError(t, err)
	require.NoError(t, admin.RevokeVersion(e.ctx, 1, "rotation complete"))
	for _, mm := range []*Manager{m, other, e.manager(t)} {
		for _, c := range []struct {
			epoch uint32
			name  string
			want  string
		}{{1, c1, "epoch one data"}, {2, c2, "epoch two data"}} {
			k, err := mm.Epoch(e.ctx, e.st, "payroll", c.epoch)
			require.NoError(t, err)
			got, err := openChunk(t, e.st, k, c.name)
			require.NoError(t, err)
			assert.Equal(t, c.want, string(got))
		}
		_, err = mm.Current(e.ctx, e.st, "billing")
		require.ErrorIs(t, err, ErrRevoked)
	}
}

func TestManagerRewrapSeenByCachedProcess(t *testing.T) {
	e := newEnv(t)
	a, b := e.manager(t), e.manager(t)
	_, err := a.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	cached, err := b.Current(e.ctx, e.st, "payroll") // b caches the v1 wrap
	require.NoError(t, err)

	admin := e.keyring(t)
	_, err = admin.Rotate(e.ctx)
	require.NoError(t, err)
	_, err = a.RewrapKEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	require.NoError(t, admin.RevokeVersion(e.ctx, 1, "rotation complete"))

	k, err := b.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err, "b's cached v1 wrap is refused, and b re-reads the v2 wrap")
	assert.Equal(t, cached.ChunkID([]byte("x")), k.ChunkID([]byte("x")))
}

func TestManagerShred(t *testing.T) {
	e := newEnv(t)
	replica := newStore(t, "eu-replica")
	m := e.manager(t)
	k1, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	chunk1 := sealChunk(t, e.st, k1, []byte("personal data, epoch 1"))
	k2, err := m.RotateDEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	chunk2 := sealChunk(t, e.st, k2, []byte("personal data, epoch 2"))
	kb, err := m.Current(e.ctx, e.st, "billing")
	require.NoError(t, err)
	billingChunk := sealChunk(t, e.st, kb, []byte("billing"))
	// Replication copies chunks and key objects as they are.
	for _, key := range listKeys(t, e.st, "datasets/payroll/") {
		putObject(t, replica, key, getObject(t, e.st, key))
	}
	_, err = m.Epoch(e.ctx, replica, "payroll", 2)
	require.NoError(t, err, "the replica is restorable before the shred")
	kek := e.keyring(t)
	require.Equal(t, 2, openableChunks(t, kek, e.st, chunk1, chunk2))
	require.Equal(t, 2, openableChunks(t, kek, replica, chunk1, chunk2))

	_, err = m.Epoch(e.ctx, e.st, "never-existed", 1)
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.NotErrorIs(t, err, ErrDestroyed)

	cached := e.manager(t) // another process holding the keys in its cache
	_, err = cached.Epoch(e.ctx, e.st, "payroll", 1)
	require.NoError(t, err)

	e.rec.reset()
	require.NoError(t, m.Shred(e.ctx, "payroll", e.st, replica))
	assert.Equal(t, []string{"shred ok", "shred ok"}, e.rec.ops())
	assert.Equal(t, "eu-replica", e.rec.all()[1].Location)
	assert.Contains(t, e.rec.all()[0].Reason, "destroying 2 wrapped data keys")

	for _, st := range []providers.Store{e.st, replica} {
		assert.Equal(t, []string{ShreddedKey("payroll")}, listKeys(t, st, KeysPrefix("payroll")), "only the tombstone is left")
		for _, mm := range []*Manager{m, e.manager(t)} {
			_, err := mm.Current(e.ctx, st, "payroll")
			require.ErrorIs(t, err, ErrDestroyed)
			_, err = mm.Epoch(e.ctx, st, "payroll", 1)
			require.ErrorIs(t, err, ErrDestroyed)
			_, err = mm.RotateDEK(e.ctx, st, "payroll")
			require.ErrorIs(t, err, ErrDestroyed)
			_, err = mm.RewrapKEK(e.ctx, st, "payroll")
			require.ErrorIs(t, err, ErrDestroyed)
		}
	}
	assert.Equal(t, []string{ShreddedKey("payroll")}, listKeys(t, e.st, KeysPrefix("payroll")), "Current did not make a new key")

	// By any means available: the KEK is intact, yet nothing in either store unwraps to a
	// key that opens the chunks (the same search found both before the shred).
	assert.Zero(t, openableChunks(t, kek, e.st, chunk1, chunk2), "primary")
	assert.Zero(t, openableChunks(t, kek, replica, chunk1, chunk2), "replica")
	assert.NotEmpty(t, getObject(t, e.st, chunk1), "the ciphertext is still there, unreadable")
	assert.NotEmpty(t, getObject(t, e.st, chunk2))
	// A process that cached a key before the shred may use it until its TTL runs out (see
	// Shred); after that, it too is refused.
	e.clk.Advance(DefaultCacheTTL)
	_, err = cached.Epoch(e.ctx, e.st, "payroll", 1)
	require.ErrorIs(t, err, ErrDestroyed)

	// Other datasets are untouched, and shredding again is harmless.
	kb2, err := e.manager(t).Current(e.ctx, e.st, "billing")
	require.NoError(t, err)
	got, err := openChunk(t, e.st, kb2, billingChunk)
	require.NoError(t, err)
	assert.Equal(t, "billing", string(got))
	require.NoError(t, m.Shred(e.ctx, "payroll", e.st))
	require.ErrorIs(t, m.Shred(e.ctx, "payroll"), providers.ErrInvalidArgument, "no store")
}

// openableChunks tries every object of st as a key object, unwraps it with kek for every
// epoch, and counts the chunks of st that a key so obtained opens.
func openableChunks(t *testing.T, kek KEK, st providers.Store, chunks ...string) int {
	t.Helper()
	opened := map[string]bool{}
	for _, key := range listKeys(t, st, "") {
		var obj keyObject
		if json.Unmarshal(getObject(t, st, key), &obj) != nil || len(obj.WrappedDEK) == 0 {
			continue
		}
		for epoch := uint32(1); epoch <= 2; epoch++ {
			secret, err := kek.Unwrap(context.Background(), Wrapped{KEKID: obj.KEKID, Ciphertext: obj.WrappedDEK}, dekAAD("payroll", epoch))
			if err != nil {
				continue
			}
			dk := newTestKey(t, "payroll", epoch, secret)
			for _, c := range chunks {
				if sealed, err := getObjectErr(st, c); err == nil {
					if _, err := dk.Open(nil, sealed, []byte(c)); err == nil {
						opened[c] = true
					}
				}
			}
		}
	}
	return len(opened)
}

func getObjectErr(st providers.Store, key string) ([]byte, error) {
	rc, err := st.Get(context.Background(), key, providers.GetOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestManagerShredRespectsLegalHoldAndRetention(t *testing.T) {
	tests := []struct {
		name    string
		protect func(t *testing.T, st providers.Store, key string)
	}{
		{"legal hold", func(t *testing.T, st providers.Store, key string) {
			require.NoError(t, st.SetLegalHold(context.Background(), key, true))
		}},
		{"retention", func(t *testing.T, st providers.Store, key string) {
			require.NoError(t, st.SetRetention(context.Background(), key, providers.Retention{
				Mode: providers.Governance, Until: time.Now().Add(time.Hour),
			}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.manager(t)
			_, err := m.Current(e.ctx, e.st, "payroll")
			require.NoError(t, err)
			_, err = m.RotateDEK(e.ctx, e.st, "payroll")
			require.NoError(t, err)
			tt.protect(t, e.st, KeyObjectKey("payroll", 2))
			e.rec.reset()

			err = m.Shred(e.ctx, "payroll", e.st)
			require.ErrorIs(t, err, providers.ErrImmutable)
			assert.Equal(t, []string{"shred denied"}, e.rec.ops())
			assert.Equal(t, uint32(2), e.rec.all()[0].KeyEpoch)
			assert.Equal(t, []string{KeyObjectKey("payroll", 1), KeyObjectKey("payroll", 2)}, listKeys(t, e.st, KeysPrefix("payroll")),
				"nothing deleted, no tombstone")
			for _, epoch := range []uint32{1, 2} {
				_, err := e.manager(t).Epoch(e.ctx, e.st, "payroll", epoch)
				require.NoError(t, err, "held data stays readable")
			}
		})
	}
}

func TestManagerAuditFailureFailsClosed(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	_, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	boom := errors.New("audit log unreachable")
	e.rec.setFail(boom)

	// A key already unwrapped (and audited) stays usable from the cache: using it is not a
	// key operation.
	_, err = m.Epoch(e.ctx, e.st, "payroll", 1)
	require.NoError(t, err)

	_, err = m.Current(e.ctx, e.st, "billing")
	require.ErrorIs(t, err, boom, "a new key is not handed out unaudited")
	_, err = e.manager(t).Epoch(e.ctx, e.st, "payroll", 1)
	require.ErrorIs(t, err, boom, "an unwrap is not handed out unaudited")
	_, err = m.RotateDEK(e.ctx, e.st, "payroll")
	require.ErrorIs(t, err, boom)
	err = m.Shred(e.ctx, "payroll", e.st)
	require.ErrorIs(t, err, boom)
	_, err = e.st.Stat(e.ctx, KeyObjectKey("payroll", 1))
	require.NoError(t, err, "nothing is shredded unaudited")
	_, err = e.st.Stat(e.ctx, ShreddedKey("payroll"))
	require.ErrorIs(t, err, providers.ErrNotFound)
}

func TestManagerEventsCarryNoKeyMaterial(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	_, err := m.Current(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	_, err = m.RotateDEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	admin := e.keyring(t)
	_, err = admin.Rotate(e.ctx)
	require.NoError(t, err)
	_, err = m.RewrapKEK(e.ctx, e.st, "payroll")
	require.NoError(t, err)
	_, err = admin.Export(e.ctx, 0, 2, 3)
	require.NoError(t, err)
	_, err = e.manager(t).Epoch(e.ctx, e.st, "payroll", 1)
	require.NoError(t, err)

	var secrets [][]byte
	for _, v := range readRing(t, e.path).Versions {
		secrets = append(secrets, v.Key)
	}
	for _, epoch := range []uint32{1, 2} {
		var obj keyObject
		require.NoError(t, json.Unmarshal(getObject(t, e.st, KeyObjectKey("payroll", epoch)), &obj))
		dek, err := admin.Unwrap(e.ctx, Wrapped{KEKID: obj.KEKID, Ciphertext: obj.WrappedDEK}, dekAAD("payroll", epoch))
		require.NoError(t, err)
		secrets = append(secrets, dek)
	}
	require.Len(t, secrets, 4)
	events := e.rec.json(t)
	for _, s := range secrets {
		for _, enc := range []string{hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s)} {
			assert.NotContains(t, events, enc)
		}
		assert.NotContains(t, events, hex.EncodeToString(s[:8]))
	}
	for _, ev := range e.rec.all() {
		assert.Equal(t, audit.KindKey, ev.Kind)
		assert.Equal(t, "EU", ev.Jurisdiction)
		assert.NotEmpty(t, ev.KeyID)
		assert.NotEmpty(t, ev.Operation)
	}
}
