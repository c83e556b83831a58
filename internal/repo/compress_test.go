package repo

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLooksIncompressible(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	require.NoError(t, err)
	defer enc.Close()
	var text bytes.Buffer
	for i := 0; text.Len() < 1<<20; i++ {
		fmt.Fprintf(&text, "2026-12-03T12:00:%02dZ GET /api/orders/%d 200 %dms\n", i%60, i, i%900)
	}
	random := randomBytes(7, 1<<20)
	scratch := make([]byte, 0, 2<<20)

	assert.True(t, looksIncompressible(enc, random, scratch), "random data is stored raw without compressing it whole")
	assert.False(t, looksIncompressible(enc, text.Bytes(), scratch), "text is compressed")
	mixed := append(append([]byte{}, random[:512<<10]...), text.Bytes()[:512<<10]...)
	assert.False(t, looksIncompressible(enc, mixed, scratch), "a chunk with a compressible part is compressed whole")
	assert.False(t, looksIncompressible(enc, random[:sampleMinSize-1], scratch), "small chunks are always tried")
}
