package sources

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/storetest"
)

func localStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.Open(local.Options{Root: t.TempDir(), Location: providers.Location{Name: "test"}})
	require.NoError(t, err)
	return s
}

func put(t *testing.T, s providers.Store, key string, content []byte) {
	t.Helper()
	_, err := s.Put(context.Background(), key, bytes.NewReader(content), providers.PutOptions{})
	require.NoError(t, err)
}

func readObject(t *testing.T, s providers.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func TestObjectsRoundTrip(t *testing.T) {
	ctx := context.Background()
	big := make([]byte, 2<<20+3)
	_, _ = rand.Read(big)
	objects := map[string][]byte{
		"a.b": []byte("dot"), "a/b": []byte("slash"), "a-z/x": []byte("dash"),
		"big": big, "empty": {}, "x y/ünï": []byte("unicode ✓"),
	}
	src := localStore(t)
	for k, v := range objects {
		put(t, src, "data/"+k, v)
	}
	put(t, src, "data-old/x", []byte("not under the prefix"))
	put(t, src, "other", []byte("nor this"))

	source := NewObjects(src, "data") // a folder: same as "data/"
	assert.Equal(t, KindObjects, source.Kind())
	before := time.Now()
	snap, err := source.Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()
	assert.False(t, snap.DataAsOf().Before(before))

	dst := localStore(t)
	sink := NewObjectsSink(dst, "restored/")
	entries, err := transfer(ctx, snap, "", sink)
	require.NoError(t, err)
	assert.Empty(t, snap.Problems())
	// Walk order, not the store's listing order (which has "a-z/x" < "a.b" < "a/b").
	assert.Equal(t, []string{"a/b", "a-z/x", "a.b", "big", "empty", "x y/ünï"}, paths(entries))
	for _, e := range entries {
		assert.Equal(t, TypeFile, e.Type)
		assert.Equal(t, int64(len(objects[e.Path])), e.Size, e.Path)
		assert.False(t, e.ModTime.IsZero(), e.Path)
	}
	v, err := sink.Finish(ctx, snap.Facts())
	require.NoError(t, err)
	assert.True(t, v.OK())
	size := 0
	for _, b := range objects {
		size += len(b)
	}
	assert.Equal(t, fmt.Sprintf("wrote 6 objects (%d bytes)", size), v.Checked)

	var keys []string
	require.NoError(t, dst.List(ctx, "", func(o providers.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	assert.Len(t, keys, len(objects))
	for k, want := range objects {
		assert.True(t, bytes.Equal(want, readObject(t, dst, "restored/"+k)), k)
	}

	// Resume from a checkpoint in walk order.
	var resumed []string
	require.NoError(t, snap.Walk(ctx, "a-z/x", func(e Entry, r io.Reader) error {
		resumed = append(resumed, e.Path)
		return nil
	}))
	assert.Equal(t, []string{"a.b", "big", "empty", "x y/ünï"}, resumed)

	// A restore never overwrites an object.
	again := NewObjectsSink(dst, "restored")
	err = again.Write(ctx, Entry{Path: "a.b", Type: TypeFile}, strings.NewReader("clobber"))
	require.ErrorIs(t, err, providers.ErrExists)
	assert.Equal(t, "dot", string(readObject(t, dst, "restored/a.b")))
}

func TestObjectsProblems(t *testing.T) {
	ctx := context.Background()
	store := localStore(t)
	for _, k := range []string{"a", "gone", "grows", "z"} {
		put(t, store, "p/"+k, []byte("12345"))
	}
	// The objects change at the moment the source reads them.
	racy := storetest.NewFaulty(store)
	racy.On(storetest.MethodGet).Inject(storetest.Before(func(ctx context.Context, c storetest.Call) error {
		switch c.Key {
		case "p/gone":
			require.NoError(t, store.Delete(ctx, c.Key))
		case "p/grows":
			put(t, store, c.Key, []byte("1234567890"))
		}
		return nil
	}))
	snap, err := NewObjects(racy, "p/").Snapshot(ctx)
	require.NoError(t, err)
	var got []string
	err = snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
		got = append(got, e.Path)
		_, err := io.Copy(io.Discard, r)
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "grows", "z"}, got)
	problems := snap.Problems()
	require.Len(t, problems, 2)
	assert.Equal(t, "gone", problems[0].Path)
	assert.Contains(t, problems[0].Err, "vanished between listing and reading")
	assert.Equal(t, Problem{Path: "grows", Err: "changed during backup: listed with 5 bytes, read 10"}, problems[1])
}

func TestObjectsSinkSkipsSymlinks(t *testing.T) {
	ctx := context.Background()
	sink := NewObjectsSink(localStore(t), "")
	require.NoError(t, sink.Write(ctx, Entry{Path: "d", Type: TypeDir}, nil))
	require.NoError(t, sink.Write(ctx, Entry{Path: "d/l", Type: TypeSymlink, Target: "../x"}, nil))
	require.ErrorContains(t, sink.Write(ctx, Entry{Path: "../x", Type: TypeFile}, strings.NewReader("x")), "invalid entry path")
	v, err := sink.Finish(ctx, nil)
	require.NoError(t, err)
	assert.False(t, v.OK())
	assert.Equal(t, []string{"symlink d/l -> ../x not restored: object stores cannot hold symlinks"}, v.Mismatches)
}

// TestObjectsIntoDirectory restores objects, which come without directory entries, into a
// directory.
func TestObjectsIntoDirectory(t *testing.T) {
	ctx := context.Background()
	store := localStore(t)
	put(t, store, "a/b/c", []byte("deep"))
	put(t, store, "a.txt", []byte("top"))
	snap, err := NewObjects(store, "").Snapshot(ctx)
	require.NoError(t, err)
	dst := t.TempDir()
	sink, err := NewDirectorySink(dst)
	require.NoError(t, err)
	_, err = transfer(ctx, snap, "", sink)
	require.NoError(t, err)
	v, err := sink.Finish(ctx, nil)
	require.NoError(t, err)
	assert.True(t, v.OK())
	tree := readTree(t, dst)
	assert.Equal(t, "deep", string(tree["a/b/c"].Content))
	assert.Equal(t, "top", string(tree["a.txt"].Content))
	assert.Equal(t, 0o600, int(tree["a.txt"].Mode))
}

// A restore into a prefix never overwrites an object under legal hold or retention: it fails
// with ErrImmutable (ErrExists for an object nothing protects) and every existing object
// stays as it was, held or not.
func TestObjectsSinkRefusesHeldObjects(t *testing.T) {
	ctx := context.Background()
	dst := localStore(t)
	put(t, dst, "out/held", []byte("evidence"))
	require.NoError(t, dst.SetLegalHold(ctx, "out/held", true))
	put(t, dst, "out/retained", []byte("ledger"))
	require.NoError(t, dst.SetRetention(ctx, "out/retained", providers.Retention{Mode: providers.Governance, Until: time.Now().Add(time.Hour)}))
	put(t, dst, "out/plain", []byte("notes"))
	tests := []struct {
		give     string
		wantErr  error
		wantText string
	}{
		{"held", providers.ErrImmutable, "out/held is under a legal hold"},
		{"retained", providers.ErrImmutable, "out/retained is under governance retention until"},
		{"plain", providers.ErrExists, "the target already holds out/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			sink := NewObjectsSink(dst, "out")
			require.NoError(t, sink.Write(ctx, Entry{Path: "new-" + tt.give, Type: TypeFile}, strings.NewReader("restored")))
			err := sink.Write(ctx, Entry{Path: tt.give, Type: TypeFile}, strings.NewReader("restored"))
			require.ErrorIs(t, err, tt.wantErr)
			assert.ErrorContains(t, err, tt.wantText)
		})
	}
	for k, want := range map[string]string{"out/held": "evidence", "out/retained": "ledger", "out/plain": "notes"} {
		assert.Equal(t, want, string(readObject(t, dst, k)), "%s is intact", k)
	}
	info, err := dst.Stat(ctx, "out/held")
	require.NoError(t, err)
	assert.True(t, info.LegalHold, "and still held")
}
