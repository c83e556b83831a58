package local

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

var chunk = strings.Repeat("m", segmentChunk) // one full-length segment chunk

// collisionKeys are keys that a naive or sloppy key-to-path mapping would make collide.
func collisionKeys() []string {
	return []string{
		"a", "a/b", "a.x", "a/b/c", "a.x/b", "a/b.x",
		"A", "A/B", "!a", "a!", "%61", "a%", "a%2",
		"a+", "a+/b", "a@data", "a@meta", "a@data/b", "a%40data", "a/b@data",
		"a b", "a~", "a=,", "ü", "\xff", "...", "a.",
		chunk, chunk + "/x", chunk + "x", chunk + "+", chunk + chunk, chunk + chunk + "/x", chunk + chunk + "x",
		chunk[:segmentChunk-1] + "+",
		// Tails after a long segment's continuation that the file system would resolve.
		"x", chunk + "x/y", chunk + ".", chunk + "..", chunk + "./x", chunk + "../x", chunk + "x/..y",
	}
}

func TestKeyPath(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"a", "a"},
		{"a/b", "a/b"},
		{"a.x", "a.x"},
		{"...", "..."},
		{"A", "!a"},
		{"Ab/Cd", "!ab/!cd"},
		{"a b", "a%20b"},
		{"a!b", "a%21b"},
		{"a%41", "a%2541"},
		{"a@data", "a%40data"},
		{"a+", "a%2b"},
		{"~=,-._", "~=,-._"},
		{"ü", "%c3%bc"},
		{"\x7e\x80", "~%80"},
		{chunk, chunk},
		{chunk + "y", chunk + "+/y"},
		{chunk + chunk, chunk + "+/" + chunk},
		{"d/" + chunk + "Yz/e", "d/" + chunk + "+/!yz/e"},
		{chunk + ".", chunk + "+/%2e"},
		{chunk + "../x", chunk + "+/%2e%2e/x"},
		{chunk + "...", chunk + "+/..."},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			require.NoError(t, providers.ValidateKey(tt.give))
			assert.Equal(t, tt.want, keyPath(tt.give))
			got, err := keyFromPath(tt.want + dataSuffix)
			require.NoError(t, err)
			assert.Equal(t, tt.give, got)
		})
	}
}

func TestKeyPathsNeverCollide(t *testing.T) {
	files := map[string]string{} // file path -> key
	dirs := map[string]string{}  // directory path -> a key below it
	for _, key := range collisionKeys() {
		require.NoError(t, providers.ValidateKey(key), key)
		p := keyPath(key)
		for _, f := range []string{p + dataSuffix, p + metaSuffix} {
			other, dup := files[f]
			require.False(t, dup, "%q and %q both map to %q", key, other, f)
			files[f] = key
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = key
		}
		// Case-insensitive file systems must keep "A" and "a" apart.
		assert.Equal(t, strings.ToLower(p), p, "path of %q has upper case", key)
		assert.Equal(t, path.Clean(p), p, "path of %q has a '.' or '..' name", key)
		got, err := keyFromPath(p + dataSuffix)
		require.NoError(t, err)
		assert.Equal(t, key, got, "round trip")
	}
	for f, key := range files {
		other, clash := dirs[f]
		assert.False(t, clash, "file of %q is also a directory of %q: %s", key, other, f)
	}
}

func TestDecodeNameRejectsNonCanonical(t *testing.T) {
	for _, give := range []string{
		"A",             // upper case is "!a"
		"%41",           // "A" escaped the wrong way
		"%61",           // "a" needs no escape
		"%2A",           // upper-case hex
		"%2",            // truncated escape
		"%zz",           // not hex
		"!A", "!1", "!", // "!" takes a lower-case letter
		"a+b", "a@b", "a/b", "a b", "\xff",
		".", "..", "%2ex", "%2e%2e%2e", // dots are escaped exactly when the name is "." or ".."
	} {
		_, ok := decodeName(give)
		assert.False(t, ok, "%q", give)
	}
	for _, give := range []string{"", "a", "!a", "%2a", "%ff", "a.b-c_d~e=f,g", "%2e", "%2e%2e", "..."} {
		got, ok := decodeName(give)
		require.True(t, ok, "%q", give)
		assert.Equal(t, give, string(appendEncoded(nil, got)))
	}
}

func TestKeyFromPathRejectsStrays(t *testing.T) {
	for _, give := range []string{
		"a",                    // no suffix
		"a@meta",               // metadata, not an object
		"@data",                // empty segment
		"a+/b@data",            // continuation shorter than a chunk
		chunk + "/b+@data",     // "+" on a file
		chunk + "x@data",       // segment longer than a chunk, not split
		"a@data/b@data",        // a file used as a directory
		chunk + "+/" + "@data", // empty tail after a continuation
	} {
		_, err := keyFromPath(give)
		assert.Error(t, err, "%q", give)
	}
}

func TestLongestKeysFitTheFileSystem(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	keys := []string{
		strings.Repeat("\xff", 1024),              // one segment, every byte escaped
		strings.Repeat("%/", 511) + "%",           // as many escaped segments as fit
		strings.Repeat(chunk+"/", 12) + chunk[:4], // many full-length segments
	}
	for _, key := range keys {
		require.NoError(t, providers.ValidateKey(key))
		for _, name := range strings.Split(keyPath(key)+metaSuffix, "/") {
			require.LessOrEqual(t, len(name), 255, "name too long for the file system")
		}
		_, err := s.Put(ctx, key, strings.NewReader(key), providers.PutOptions{LegalHold: true})
		require.NoError(t, err, "put %d-byte key", len(key))
		assert.Equal(t, []byte(key), read(t, s, key))
	}
	assert.Equal(t, sorted(keys), list(t, s, ""))
}

func FuzzKeyPath(f *testing.F) {
	for _, key := range collisionKeys() {
		f.Add(key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if providers.ValidateKey(key) != nil {
			return
		}
		p := keyPath(key)
		got, err := keyFromPath(p + dataSuffix)
		if err != nil || got != key {
			t.Fatalf("key %q: path %q decodes to %q, %v", key, p, got, err)
		}
		if strings.ToLower(p) != p {
			t.Fatalf("key %q: path %q has upper case", key, p)
		}
		if path.Clean(p) != p {
			t.Fatalf("key %q: path %q is not clean: the file system would resolve it elsewhere", key, p)
		}
		for _, name := range strings.Split(p+metaSuffix, "/") {
			if len(name) > 255 {
				t.Fatalf("key %q: name %q is longer than 255 bytes", key, name)
			}
		}
	})
}

func TestCollidingKeysAreSeparateObjects(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	keys := collisionKeys()
	for _, key := range keys {
		_, err := s.Put(ctx, key, strings.NewReader("content of "+key), providers.PutOptions{})
		require.NoError(t, err, "put %q", key)
	}
	for _, key := range keys {
		assert.Equal(t, []byte("content of "+key), read(t, s, key), "get %q", key)
	}
	assert.Equal(t, sorted(keys), list(t, s, ""))

	require.NoError(t, s.Delete(ctx, "a"))
	assert.Equal(t, []byte("content of a/b"), read(t, s, "a/b"))
	require.NoError(t, s.Delete(ctx, "a/b"))
	assert.Equal(t, []byte("content of a/b/c"), read(t, s, "a/b/c"))
	_, err := s.Stat(ctx, "a")
	assert.ErrorIs(t, err, providers.ErrNotFound)
}

// TestListOrder covers the cases where file names and key order disagree: '.' and '-' sort
// before '/', and keys with long segments interleave with their neighbours' directories.
func TestListOrder(t *testing.T) {
	s := newStore(t)
	keys := []string{
		"a", "a.x", "a/b", "a-", "a0", "a/b.c", "a/b/c", "a/b-", "b", "B", "a\xff", "a\x20",
		chunk, chunk + "/x", chunk + "/y", chunk + "!", chunk + ".", chunk + "z", chunk + "zz/q",
		chunk[:segmentChunk-1], chunk[:segmentChunk-1] + "/k", chunk + chunk + "/r", chunk + chunk,
		chunk + chunk + "x", chunk + "\xc3\xbc", chunk + "/" + chunk + "a", chunk + "/" + chunk,
	}
	putAll(t, s, keys)
	prefixes := []string{"", "a", "a/", "a.", "a/b", "b", "nope", chunk, chunk + "/", chunk + "z", chunk[:40], chunk + chunk}
	for _, prefix := range prefixes {
		assert.Equal(t, filterPrefix(sorted(keys), prefix), list(t, s, prefix), "prefix %q", prefix)
	}
}

func TestListOrderRandomKeys(t *testing.T) {
	s := newStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aAz.-!%@+~/\xff"
	lengths := []int{1, 2, 3, 5, segmentChunk - 1, segmentChunk, segmentChunk + 1, 2 * segmentChunk}
	seen := map[string]bool{}
	var keys []string
	for len(keys) < 150 {
		var segs []string
		for range 1 + rng.IntN(3) {
			n := lengths[rng.IntN(len(lengths))]
			b := make([]byte, n)
			for i := range b {
				// Mostly one letter, so that long segments share prefixes.
				b[i] = 'm'
				if rng.IntN(8) == 0 {
					b[i] = alphabet[rng.IntN(len(alphabet)-1)] // no '/' inside a segment
				}
			}
			segs = append(segs, string(b))
		}
		key := strings.Join(segs, "/")
		if providers.ValidateKey(key) == nil && !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	putAll(t, s, keys)
	want := sorted(keys)
	assert.Equal(t, want, list(t, s, ""))
	for range 30 {
		k := want[rng.IntN(len(want))]
		prefix := k[:rng.IntN(len(k)+1)]
		assert.Equal(t, filterPrefix(want, prefix), list(t, s, prefix), "prefix %q", prefix)
	}
}

func putAll(t *testing.T, s *Store, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	sem := make(chan struct{}, 8)
	for i, key := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, errs[i] = s.Put(context.Background(), key, strings.NewReader(key), providers.PutOptions{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "put %q", keys[i])
	}
}

func list(t *testing.T, s *Store, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.List(context.Background(), prefix, func(o providers.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	return keys
}

func read(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err, "get %q", key)
	defer rc.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, rc)
	require.NoError(t, err)
	return buf.Bytes()
}

func sorted(keys []string) []string {
	out := append([]string(nil), keys...)
	sort.Strings(out)
	return out
}

func filterPrefix(keys []string, prefix string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}
