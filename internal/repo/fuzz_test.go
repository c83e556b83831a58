package repo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
)

func fuzzKey(t testing.TB) *keys.DataKey {
	dk, err := newTestKeys().key("fuzz", 1)
	require.NoError(t, err)
	return dk
}

const fuzzPoint = "20261122T213000.123Z-0123abcd"

// sealRawFrame seals body (codec byte || payload, as the fuzzer made it) as frame idx.
func sealRawFrame(dst []byte, dk *keys.DataKey, base []byte, idx uint32, final bool, body []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = dk.Seal(dst, body, frameAAD(base, idx, final))
	w := uint32(len(dst) - start - 4)
	if final {
		w |= finalFrameBit
	}
	binary.BigEndian.PutUint32(dst[start:], w)
	return dst
}

// fuzzManifest builds a manifest object whose (authenticated) header and entry frame bodies
// are the fuzzer's bytes, so that the fuzzer reaches the code that runs after decryption.
func fuzzManifest(dk *keys.DataKey, header []byte, bodies ...[]byte) []byte {
	pre := appendPreamble(nil, magicManifest, dk.Epoch())
	base := frameBase(pre, "fuzz", fuzzPoint)
	m := append([]byte(nil), pre...)
	m = sealRawFrame(m, dk, base, 0, false, header)
	for i, b := range bodies {
		m = sealRawFrame(m, dk, base, uint32(i+1), i == len(bodies)-1, b)
	}
	return m
}

// readManifest decodes a whole manifest and returns the events' count.
func readManifest(dk *keys.DataKey, dec *zstd.Decoder, m []byte) (int, error) {
	ms, err := openManifestStream(bytes.NewReader(m), "fuzz", fuzzPoint, dec, func(e uint32) (*keys.DataKey, error) {
		if e != dk.Epoch() {
			return nil, errors.New("no such epoch")
		}
		return dk, nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var ev event
	for {
		err := ms.next(&ev)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func validHeader(t testing.TB) []byte {
	h := ManifestHeader{Format: manifestVersion, Dataset: "fuzz", PointID: fuzzPoint, KeyEpoch: 1,
		DataAsOf: time.Unix(1, 0).UTC(), Facts: map[string]string{"a": "b"}}
	b, err := json.Marshal(h)
	require.NoError(t, err)
	return append([]byte{codecRaw}, b...)
}

func validRecords() []byte {
	var b []byte
	b = appendRecord(b, recEntry, encodeEntry(nil, sources.Entry{Path: "a/b", Type: sources.TypeFile, Mode: 0o644, ModTime: time.Unix(5, 6)}))
	b = appendRecord(b, recChunks, encodeRefs(nil, []chunkRef{{ID: keys.ChunkID{1}, Len: 10}, {ID: keys.ChunkID{2}, Len: 5}}))
	b = appendRecord(b, recEnd, encodeEnd(nil, 15, [32]byte{3}))
	b = appendRecord(b, recEntry, encodeEntry(nil, sources.Entry{Path: "a/l", Type: sources.TypeSymlink, Target: "b"}))
	b = appendRecord(b, recEnd, encodeEnd(nil, 0, [32]byte{}))
	b = appendRecord(b, recProblem, encodeProblem(nil, sources.Problem{Path: "x", Err: "denied"}))
	return appendRecord(b, recFinal, encodeFinal(nil, 2, 1))
}

func TestFuzzSeedsDecode(t *testing.T) {
	t.Parallel()
	dk := fuzzKey(t)
	dec, err := newFrameDecoder(1)
	require.NoError(t, err)
	defer dec.Close()
	n, err := readManifest(dk, dec, fuzzManifest(dk, validHeader(t), append([]byte{codecRaw}, validRecords()...)))
	require.NoError(t, err)
	require.Equal(t, 7, n)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	comp := append([]byte{codecZstd}, enc.EncodeAll(validRecords(), nil)...)
	n, err = readManifest(dk, dec, fuzzManifest(dk, validHeader(t), comp))
	require.NoError(t, err)
	require.Equal(t, 7, n)

	// A zstd bomb: 64 MiB of zeros compress to a few KiB, but the frame limit stops them.
	bomb := append([]byte{codecZstd}, enc.EncodeAll(make([]byte, 64<<20), nil)...)
	_, err = readManifest(dk, dec, fuzzManifest(dk, validHeader(t), bomb))
	require.ErrorIs(t, err, keys.ErrIntegrity)
	require.ErrorContains(t, err, "decompress")
}

// FuzzManifestDecode feeds hostile, yet authentic, header and entry frames to the manifest
// reader: it must return an error or events, never panic, and never allocate more than the
// frame limits.
func FuzzManifestDecode(f *testing.F) {
	dk := fuzzKey(f)
	dec, err := newFrameDecoder(1)
	require.NoError(f, err)
	enc, err := zstd.NewWriter(nil)
	require.NoError(f, err)
	records := validRecords()
	f.Add(validHeader(f), append([]byte{codecRaw}, records...), false)
	f.Add(validHeader(f), append([]byte{codecZstd}, enc.EncodeAll(records, nil)...), false)
	f.Add(append([]byte{codecZstd}, enc.EncodeAll(validHeader(f)[1:], nil)...), append([]byte{codecRaw}, records...), true)
	f.Add([]byte{codecRaw, '{', '}'}, []byte{codecRaw, recFinal, 2, 0, 0}, false)
	f.Add(validHeader(f), []byte{codecRaw, recChunks, 0xff, 0xff, 0xff, 0xff, 0x0f}, false)
	f.Fuzz(func(t *testing.T, header, body []byte, split bool) {
		bodies := [][]byte{body}
		if split && len(body) > 2 {
			// Two frames: the records may straddle or violate frame boundaries.
			mid := len(body) / 2
			bodies = [][]byte{body[:mid], append([]byte{body[0]}, body[mid:]...)}
		}
		_, _ = readManifest(dk, dec, fuzzManifest(dk, header, bodies...))
		// Also decode the records without the framing, as a raw final frame would be.
		var d recordDecoder
		d.setFrame(body, true)
		var ev event
		for i := 0; i < len(body)+1; i++ {
			if err := d.next(&ev); err != nil {
				break
			}
		}
	})
}

// FuzzPackIndexDecode feeds hostile, authentic index bodies to the index decoder.
func FuzzPackIndexDecode(f *testing.F) {
	dk := fuzzKey(f)
	id := packID{1, 2, 3}
	good := []indexEntry{
		{ID: keys.ChunkID{1}, Offset: 0, SealedLen: 100 + uint32(dk.Overhead()), PlainLen: 100},
		{ID: keys.ChunkID{2}, Offset: 128, SealedLen: 50 + uint32(dk.Overhead()), PlainLen: 400, Flags: flagZstd},
	}
	obj := sealIndex(dk, id, good)
	body, err := dk.Open(nil, obj[preambleSize:], indexAAD(obj[:preambleSize], id))
	require.NoError(f, err)
	f.Add(body)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := decodeIndex(body, dk.Overhead())
		if err == nil {
			if 4+len(entries)*indexRecordSize != len(body) {
				t.Fatalf("%d entries from %d bytes", len(entries), len(body))
			}
			for _, e := range entries {
				if e.PlainLen == 0 || e.PlainLen > maxChunk {
					t.Fatalf("accepted plaintext length %d", e.PlainLen)
				}
			}
		}
		// The same body sealed as an index object goes through openIndex.
		pre := appendPreamble(nil, magicIndex, dk.Epoch())
		sealed := dk.Seal(pre, body, indexAAD(pre, id))
		_, _, _ = openIndex(sealed, id, func(uint32) (*keys.DataKey, error) { return dk, nil })
		// And unsealed garbage must fail authentication, not crash.
		_, _, _ = openIndex(append(appendPreamble(nil, magicIndex, 1), body...), id, func(uint32) (*keys.DataKey, error) { return dk, nil })
	})
}

// FuzzBlobDecode feeds hostile, authentic blob payloads (and index claims about them) to the
// restore path that opens, decompresses and checks chunks.
func FuzzBlobDecode(f *testing.F) {
	dk := fuzzKey(f)
	dec, err := newFrameDecoder(1)
	require.NoError(f, err)
	enc, err := zstd.NewWriter(nil)
	require.NoError(f, err)
	rd := &reader{r: &Repo{pool: &bufPool{}}, dec: dec, keyFor: &keyCache{byEpoch: map[uint32]*keys.DataKey{1: dk}}}
	plain := bytes.Repeat([]byte("drflow "), 100)
	f.Add(plain, uint32(len(plain)), uint8(0))
	f.Add(enc.EncodeAll(plain, nil), uint32(len(plain)), flagZstd)
	f.Add(enc.EncodeAll(make([]byte, 8<<20), nil), uint32(maxChunk), flagZstd)
	f.Fuzz(func(t *testing.T, payload []byte, plainLen uint32, flags uint8) {
		id := dk.ChunkID(payload)
		if flags&flagZstd != 0 {
			id = keys.ChunkID{7}
		}
		sealed := dk.Seal(nil, payload, blobAAD(nil, id, flags))
		e := indexEntry{ID: id, SealedLen: uint32(len(sealed)), PlainLen: plainLen, Flags: flags}
		if checkBlob(&e, dk.Overhead()) != nil {
			return // the index decoder rejects such a claim before any read
		}
		fut := &chunkFuture{ref: chunkRef{ID: id, Len: plainLen}, pack: packRef{epoch: 1},
			loc: blobLoc{sealedLen: e.SealedLen, plainLen: plainLen, flags: flags}}
		aad := make([]byte, 0, 64)
		out, err := rd.openBlob(sealed, fut, &aad)
		if err == nil {
			if len(*out) != int(plainLen) || dk.ChunkID(*out) != id {
				t.Fatalf("accepted an unverified chunk")
			}
		}
		sealed[len(sealed)/2] ^= 1
		if _, err := rd.openBlob(sealed, fut, &aad); err == nil {
			t.Fatalf("accepted a tampered blob")
		}
	})
}
