package repo

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/azblob"
	"github.com/drflow/drflow/providers/azblob/azbtest"
	"github.com/drflow/drflow/providers/gcs"
	"github.com/drflow/drflow/providers/gcs/gcstest"
	"github.com/drflow/drflow/providers/s3"
)

// holdStore is a kind of store the hold enforcement tests run on. open starts what the kind
// needs and returns a function that opens a store of it by name (a prefix or container).
type holdStore struct {
	name string
	// provider: the store enforces legal holds itself, and the tests set them as the hold
	// lifecycle does. Otherwise only drflow's hold records protect the data.
	provider bool
	open     func(t *testing.T) func(name string) providers.Store
}

func holdStores() []holdStore {
	return []holdStore{
		{"local, records only", false, func(t *testing.T) func(string) providers.Store {
			root := t.TempDir()
			return func(name string) providers.Store { return openStore(t, filepath.Join(root, name), name, "EU") }
		}},
		{"MinIO with Object Lock", true, openMinIO},
		{"fake-gcs-server", false, openFakeGCS},
		{"Azurite", false, openAzurite},
		// The request-checking fakes enforce holds as Cloud Storage and Azure Blob do.
		{"Cloud Storage protocol", true, openGCSProtocol},
		{"Azure Blob protocol", true, openAzureProtocol},
	}
}

func openMinIO(t *testing.T) func(string) providers.Store {
	srv := testservers.MinIO(t)
	srv.CreateBucket(t, "holds", true)
	return func(name string) providers.Store {
		st, err := s3.Open(context.Background(), s3.Options{Bucket: "holds", Prefix: name, Endpoint: srv.Endpoint, Region: srv.Region,
			PathStyle: true, Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
			Location: providers.Location{Name: name, Region: "eu-west-1", Jurisdiction: "EU"}})
		require.NoError(t, err)
		require.True(t, st.Capabilities().ServerEnforced, st.Capabilities().Note)
		return st
	}
}

func openFakeGCS(t *testing.T) func(string) providers.Store {
	srv := testservers.FakeGCS(t)
	srv.CreateBucket(t, testservers.FakeGCSBucket{Name: "holds"})
	return func(name string) providers.Store {
		st, err := gcs.Open(context.Background(), gcs.Options{Bucket: "holds", Prefix: name, Endpoint: srv.Endpoint,
			Location: providers.Location{Name: name, Jurisdiction: "EU"}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
}

func openAzurite(t *testing.T) func(string) providers.Store {
	srv := testservers.Azurite(t)
	return func(name string) providers.Store {
		srv.CreateContainer(t, name)
		st, err := azblob.Open(context.Background(), azblob.Options{Container: name, ConnectionString: srv.ConnectionString,
			Location: providers.Location{Name: name, Region: "local", Jurisdiction: "EU"}})
		require.NoError(t, err)
		require.False(t, st.Capabilities().LegalHold, "Azurite enforces no holds: only drflow's records protect the data")
		return st
	}
}

func openGCSProtocol(t *testing.T) func(string) providers.Store {
	srv := gcstest.NewServer(t, "holds")
	return func(name string) providers.Store {
		st := gcstest.OpenStoreWith(t, srv, gcs.Options{Prefix: name, Location: providers.Location{Name: name, Jurisdiction: "EU"}})
		require.True(t, st.Capabilities().ServerEnforced, st.Capabilities().Note)
		return st
	}
}

func openAzureProtocol(t *testing.T) func(string) providers.Store {
	srv := azbtest.NewServer(t, "holds")
	return func(name string) providers.Store {
		st := azbtest.OpenStoreWith(t, srv, azblob.Options{Prefix: name + "/", BlockSize: 1 << 20,
			Location: providers.Location{Name: name, Region: "local", Jurisdiction: "EU"}})
		require.True(t, st.Capabilities().ServerEnforced, st.Capabilities().Note)
		return st
	}
}

// holdEnv is a dataset with real keys (a keyring KEK and keys.Manager) on stores of one kind.
type holdEnv struct {
	t        *testing.T
	open     func(string) providers.Store
	provider bool
	audit    *recorder
	kek      *keys.Keyring
	keys     *keys.Manager
}

func newHoldEnv(t *testing.T, kind holdStore) *holdEnv {
	e := &holdEnv{t: t, open: kind.open(t), provider: kind.provider, audit: &recorder{}}
	kek, err := keys.OpenKeyring(context.Background(), keys.KeyringOptions{Path: filepath.Join(t.TempDir(), "keys", "eu.keyring"),
		Name: "eu-kek", Jurisdiction: "EU", Recorder: e.audit})
	require.NoError(t, err)
	e.kek = kek
	e.keys, err = keys.NewManager(keys.ManagerOptions{KEK: kek, Recorder: e.audit, Actor: "test"})
	require.NoError(t, err)
	return e
}

func (e *holdEnv) repo(st providers.Store) *Repo {
	r, err := Open(Options{Store: st, Dataset: "customers", Keys: e.keys, Audit: e.audit, Logger: zaptest.NewLogger(e.t), Concurrency: 2})
	require.NoError(e.t, err)
	r.packTarget = 1 << 20
	r.checkpointEvery = 0
	return r
}

// Every enforcement point, on every kind of store, with and without the store's own holds:
// prune keeps the held point, GC deletes no held pack or index past the grace period, a
// re-copy does not overwrite a held wrapped key, re-wrap and shred refuse, and a restore
// does not overwrite a held object.
func TestHoldEnforcementOnEveryStore(t *testing.T) {
	t.Parallel()
	for _, kind := range holdStores() {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			e := newHoldEnv(t, kind)
			t.Run("prune and GC", e.pruneAndGC)
			if kind.provider {
				t.Run("GC and the store's hold alone", e.gcStoreHoldOnly)
			}
			t.Run("re-copy, re-wrap and shred", e.recopyRewrapShred)
			t.Run("restore over a held object", e.restoreOverHeld)
		})
	}
}

func (e *holdEnv) pruneAndGC(t *testing.T) {
	ctx := context.Background()
	st := e.open("primary")
	r := e.repo(st)
	s := newHoldScene(t, r)
	objects := placeHold(t, r, "case-7", e.provider, s.again)
	assert.Contains(t, objects, keys.KeyObjectKey("customers", 1))
	for _, k := range s.condemnedKeys() {
		require.Contains(t, objects, k)
	}

	pr, err := r.Prune(ctx, RetentionPolicy{KeepLast: 1}, PruneOptions{Actor: "test"})
	require.NoError(t, err)
	require.Len(t, pr.Pruned, 1)
	require.Len(t, pr.Held, 1)
	assert.Equal(t, s.again, pr.Held[0].ID)
	assert.Equal(t, "legal hold case-7", pr.Held[0].Reason)
	assert.Equal(t, audit.OutcomeDenied, pointEvent(e.audit, audit.KindPrune, s.again).Outcome)

	for i := range 3 {
		s.clk.Add(2 * time.Hour)
		g, err := r.GC(ctx, GCOptions{Actor: "test"})
		require.NoError(t, err)
		assert.Equal(t, len(s.condemned), g.PacksHeld, "run %d", i)
		assert.Equal(t, []string{"case-7"}, g.HeldBy)
		assert.Zero(t, g.PacksImmutable, "drflow's records keep them before the store is asked")
		if i == 1 {
			assert.Positive(t, g.PacksDeleted, "the pruned point's packs go")
		}
	}
	requireObjectsExist(t, st, objects)
	v, err := r.Verify(ctx, s.again, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, v.OK(), v.Failures)
	(&fixture{t: t}).restoreEqual(r, s.again, tree(1))
}

// gcStoreHoldOnly: packs held by the store but not (yet) in drflow's records, as when a
// placement set the provider hold after GC last read the records: the store refuses, GC
// keeps them condemned and does not fail.
func (e *holdEnv) gcStoreHoldOnly(t *testing.T) {
	ctx := context.Background()
	st := e.open("store-hold")
	r := e.repo(st)
	s := newHoldScene(t, r)
	for _, k := range s.condemnedKeys() {
		require.NoError(t, st.SetLegalHold(ctx, k, true))
	}
	s.clk.Add(2 * time.Hour)
	g, err := r.GC(ctx, GCOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, len(s.condemned), g.PacksImmutable)
	assert.Zero(t, g.PacksDeleted)
	requireObjectsExist(t, st, s.condemnedKeys())
}

func (e *holdEnv) recopyRewrapShred(t *testing.T) {
	ctx := context.Background()
	home := openStore(t, t.TempDir(), "eu-primary", "EU")
	dst := e.open("replica")
	src := newMemSource(tree(5))
	res, err := e.repo(home).Backup(ctx, src, BackupOptions{Actor: "test"})
	require.NoError(t, err)
	point := res.Point.ID
	_, err = Copy(ctx, home, dst, "customers", point, CopyOptions{Audit: e.audit, Actor: "test"})
	require.NoError(t, err)
	placeHold(t, e.repo(dst), "case-8", e.provider, point)
	keyObj := keys.KeyObjectKey("customers", 1)
	before := readObject(t, dst, keyObj)

	// A KEK rotation re-wraps the key at home; the replica's held copy is not replaced.
	_, err = e.kek.Rotate(ctx)
	require.NoError(t, err)
	n, err := e.keys.RewrapKEK(ctx, home, "customers")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = Copy(ctx, home, dst, "customers", point, CopyOptions{Audit: e.audit, Actor: "test"})
	require.ErrorIs(t, err, providers.ErrImmutable)
	assert.ErrorContains(t, err, "wrapped key object")
	assert.ErrorContains(t, err, "legal hold case-8")
	ev := e.audit.last(audit.KindCopy)
	assert.Equal(t, audit.OutcomeDenied, ev.Outcome)
	assert.Contains(t, ev.Reason, "legal hold case-8")
	assert.Equal(t, before, readObject(t, dst, keyObj), "the held key object is unchanged")

	// Re-wrapping the replica's key in place is refused too: it keeps its v1 wrapping.
	rep, err := e.keys.RewrapKEKReport(ctx, dst, "customers")
	require.NoError(t, err)
	assert.Zero(t, rep.Rewrapped)
	require.Len(t, rep.Held, 1)
	assert.Equal(t, keys.HeldKey{Epoch: 1, KEKID: "eu-kek/v1", Reason: "legal hold case-8"}, rep.Held[0])
	_, err = e.keys.RewrapKEK(ctx, dst, "customers")
	require.ErrorIs(t, err, providers.ErrImmutable)
	assert.Equal(t, before, readObject(t, dst, keyObj))

	// Shredding the dataset is refused before anything is destroyed, at home too.
	err = e.keys.Shred(ctx, "customers", home, dst)
	require.ErrorIs(t, err, providers.ErrImmutable)
	assert.ErrorContains(t, err, "legal hold case-8")
	shred := e.audit.lastOp("shred")
	assert.Equal(t, audit.OutcomeDenied, shred.Outcome)
	assert.Contains(t, shred.Reason, "legal hold case-8")
	for _, st := range []providers.Store{home, dst} {
		_, err := st.Stat(ctx, keys.ShreddedKey("customers"))
		require.ErrorIs(t, err, providers.ErrNotFound, "no tombstone in %s", st.Location().Name)
		v, err := e.repo(st).Verify(ctx, point, VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, v.OK(), "%s still reads", st.Location().Name)
	}
}

func (e *holdEnv) restoreOverHeld(t *testing.T) {
	ctx := context.Background()
	st := e.open("data")
	r := e.repo(st)
	res, err := r.Backup(ctx, newMemSource(tree(6)), BackupOptions{Actor: "test"})
	require.NoError(t, err)
	target := e.open("target")
	const key = "out/e.bin"
	_, err = target.Put(ctx, key, bytes.NewReader([]byte("evidence")), providers.PutOptions{})
	require.NoError(t, err)
	// Where the store has holds, hold the object; elsewhere it is only there.
	_ = target.SetLegalHold(ctx, key, true)
	info, err := target.Stat(ctx, key)
	require.NoError(t, err)

	_, err = r.Restore(ctx, res.Point.ID, sources.NewObjectsSink(target, "out/"), RestoreOptions{Actor: "test"})
	if info.LegalHold {
		require.ErrorIs(t, err, providers.ErrImmutable)
		assert.ErrorContains(t, err, "legal hold")
	} else {
		require.ErrorIs(t, err, providers.ErrExists)
	}
	assert.Equal(t, []byte("evidence"), readObject(t, target, key), "the existing object is intact")
	t.Logf("%s: restore refused: %v", target.Location().Name, err)
}

// lastOp returns the last key event of operation op.
func (r *recorder) lastOp(op string) audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Kind == audit.KindKey && r.events[i].Operation == op {
			return r.events[i]
		}
	}
	return audit.Event{}
}

// A backup and a GC during a placement lose nothing where only drflow's records hold
// (fake-gcs-server, Azurite) and where the store holds too (MinIO, the protocol fakes).
func TestBackupAndGCDuringPlacementOnServers(t *testing.T) {
	t.Parallel()
	for _, kind := range holdStores()[1:] {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			e := newHoldEnv(t, kind)
			runDuringPlacement(t, e.repo(e.open("concurrent")), e.provider)
		})
	}
}
