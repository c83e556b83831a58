package bench

import (
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func treeHash(t *testing.T, root string) []byte {
	t.Helper()
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		h.Write([]byte(rel))
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	}))
	return h.Sum(nil)
}

func TestGenerateIsDeterministicAndSized(t *testing.T) {
	const size = 8 << 20
	a, err := Generate(t.TempDir(), size, DefaultMix, 7)
	require.NoError(t, err)
	b, err := Generate(t.TempDir(), size, DefaultMix, 7)
	require.NoError(t, err)
	assert.Equal(t, treeHash(t, a.Root), treeHash(t, b.Root), "same seed, same data")
	assert.InDelta(t, size, a.Bytes, 3, "mix fractions add up to the size")
	// Small files are at most 64 KiB each, so there are at least this many.
	assert.GreaterOrEqual(t, a.Files, 2+int(size*DefaultMix.Small)/(64<<10), "small files are many")

	c, err := Generate(t.TempDir(), size, DefaultMix, 8)
	require.NoError(t, err)
	assert.NotEqual(t, treeHash(t, a.Root), treeHash(t, c.Root), "another seed, other data")
}

func TestTextCompressesAndRandomDoesNot(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	require.NoError(t, err)
	sample := func(r io.Reader) float64 {
		buf := make([]byte, 1<<20)
		_, err := io.ReadFull(r, buf)
		require.NoError(t, err)
		return float64(len(enc.EncodeAll(buf, nil))) / float64(len(buf))
	}
	assert.Less(t, sample(newTextReader(1)), 0.5, "text is compressible")
	assert.Greater(t, sample(newRandomReader(1)), 0.99, "random is not")
}

func TestMutateChangesAboutTheFraction(t *testing.T) {
	ds, err := Generate(t.TempDir(), 4<<20, Mix{Text: 0.5, Random: 0.5}, 3)
	require.NoError(t, err)
	before, size := treeHash(t, ds.Root), ds.Bytes
	changed, err := ds.Mutate(0.01, 9)
	require.NoError(t, err)
	assert.InDelta(t, float64(size)*0.01, float64(changed), 1)
	assert.Equal(t, size+changed/2, ds.Bytes, "half of the change is appended")
	assert.NotEqual(t, before, treeHash(t, ds.Root))
}

func TestDiskWriteThroughputCleansUp(t *testing.T) {
	dir := t.TempDir()
	v, err := DiskWriteThroughput(dir)
	require.NoError(t, err)
	assert.Positive(t, v)
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "the probe file is removed")
}
