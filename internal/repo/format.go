package repo

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// Format version 1 of the repository; see doc.go for the layout.
const formatVersion = 1

// Chunking parameters (FastCDC, keyed gear table).
const (
	minChunk = 256 << 10
	avgChunk = 1 << 20
	maxChunk = 4 << 20
)

// Pack parameters.
const (
	defaultPackTarget = 16 << 20 // a pack is closed once it holds this many bytes
	maxPackBlobs      = 1 << 16  // ... or this many blobs, which bounds its index
	maxInflightPacks  = 2        // pack uploads in flight
	packIDLen         = 16
)

// Object magics: the first four bytes of every object drflow seals, followed by a version byte
// and the key epoch (big endian), all in the clear so that a reader knows which key opens it.
const (
	magicManifest   = "DRFM"
	magicIndex      = "DRFI"
	magicCheckpoint = "DRFC"
	magicRunDone    = "DRFD"
	preambleSize    = 4 + 1 + 4
)

// Blob flags, stored in the index and bound into each blob's AAD.
const (
	flagZstd  uint8 = 1 << 0
	knownFlag       = flagZstd
)

// Index record: chunk ID, offset, sealed length, plaintext length (all uint32 BE), flags.
const (
	indexRecordSize = 32 + 4 + 4 + 4 + 1
	// maxIndexObject bounds what a reader accepts as an index object.
	maxIndexObject = preambleSize + 64 + 4 + maxPackBlobs*indexRecordSize
)

// Domain separation for everything sealed with a dataset's DataKey: no sealed object of one
// kind opens as another.
const (
	aadBlob       = "drflow blob v1\x00"
	aadIndex      = "drflow pack index v1\x00"
	aadFrame      = "drflow manifest frame v1\x00"
	aadCheckpoint = "drflow checkpoint v1\x00"
	aadRunDone    = "drflow run done v1\x00"
	gearKeyInput  = "drflow fastcdc gear key v1"
)

// Object keys inside a store.
func datasetPrefix(ds string) string      { return "datasets/" + ds + "/" }
func keysPrefix(ds string) string         { return datasetPrefix(ds) + "keys/" }
func packsPrefix(ds string) string        { return datasetPrefix(ds) + "packs/" }
func indexPrefix(ds string) string        { return datasetPrefix(ds) + "index/" }
func pointsPrefix(ds string) string       { return datasetPrefix(ds) + "points/" }
func checkpointsPrefix(ds string) string  { return datasetPrefix(ds) + "checkpoints/" }
func catalogPrefix(ds string) string      { return datasetPrefix(ds) + "catalog/" }
func pointKey(ds, id string) string       { return pointsPrefix(ds) + id }
func catalogKey(ds, id string) string     { return catalogPrefix(ds) + id + ".json" }
func runPrefix(ds, run string) string     { return checkpointsPrefix(ds) + run + "/" }
func checkpointKey(ds, run string) string { return runPrefix(ds, run) + "state" }
func runDoneKey(ds, run string) string    { return runPrefix(ds, run) + "done" }
func framePartKey(ds, run string, idx uint32) string {
	return fmt.Sprintf("%sframes/%08d", runPrefix(ds, run), idx)
}

// packID names a pack. It is random, not a content hash, because a pack is streamed to the
// store before its content is known.
type packID [packIDLen]byte

func newPackID() (packID, error) {
	var id packID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("random pack id: %w", err)
	}
	return id, nil
}

func (id packID) String() string { return hex.EncodeToString(id[:]) }

func parsePackID(s string) (packID, error) {
	var id packID
	if len(s) != 2*packIDLen {
		return id, fmt.Errorf("pack id %q: want %d hex characters", s, 2*packIDLen)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("pack id %q: %w", s, err)
	}
	if id.String() != s { // upper-case hex would name the same pack twice
		return id, fmt.Errorf("pack id %q: not lower-case hex", s)
	}
	return id, nil
}

func packKey(ds string, id packID) string {
	s := id.String()
	return packsPrefix(ds) + s[:2] + "/" + s
}

func indexKey(ds string, id packID) string { return indexPrefix(ds) + id.String() }

// validateName checks a dataset name or run ID: one key segment of printable ASCII.
func validateName(what, s string) error {
	if s == "" || len(s) > 200 {
		return fmt.Errorf("%w: %s %q must be 1 to 200 characters", providers.ErrInvalidArgument, what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' {
			return fmt.Errorf("%w: %s %q: only printable ASCII without space, '/' or '\\'", providers.ErrInvalidArgument, what, s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%w: %s %q", providers.ErrInvalidArgument, what, s)
	}
	return nil
}

func appendPreamble(dst []byte, magic string, epoch uint32) []byte {
	dst = append(dst, magic...)
	dst = append(dst, formatVersion)
	return binary.BigEndian.AppendUint32(dst, epoch)
}

// parsePreamble checks the magic and version at the start of b and returns the key epoch.
func parsePreamble(b []byte, magic string) (uint32, error) {
	if len(b) < preambleSize {
		return 0, fmt.Errorf("%w: object is %d bytes, shorter than its preamble", ErrFormat, len(b))
	}
	if string(b[:4]) != magic {
		return 0, fmt.Errorf("%w: magic %q, want %q", ErrFormat, b[:4], magic)
	}
	if b[4] != formatVersion {
		return 0, fmt.Errorf("%w: %s version %d, this drflow reads version %d", ErrFormat, magic, b[4], formatVersion)
	}
	epoch := binary.BigEndian.Uint32(b[5:9])
	if epoch == 0 {
		// No writer seals under epoch 0: the preamble is damaged (the key manager would
		// otherwise reject the epoch as an invalid argument, as if the caller had erred).
		return 0, fmt.Errorf("%w: %s key epoch 0 (epochs start at 1)", ErrFormat, magic)
	}
	return epoch, nil
}

// blobAAD binds a blob to its chunk ID and flags, so that a blob cannot be served for another
// chunk and its compression flag cannot be flipped.
func blobAAD(dst []byte, id keys.ChunkID, flags uint8) []byte {
	dst = append(dst, aadBlob...)
	dst = append(dst, id[:]...)
	return append(dst, flags)
}

// gearKey derives the key of the chunker's gear table from the data key, so that chunk
// boundaries (visible as blob sizes) do not fingerprint known files to someone without it.
func gearKey(dk *keys.DataKey) []byte {
	id := dk.ChunkID([]byte(gearKeyInput))
	return id[:]
}

// indexEntry describes one blob of a pack.
type indexEntry struct {
	ID        keys.ChunkID
	Offset    uint32
	SealedLen uint32
	PlainLen  uint32
	Flags     uint8
}

func indexAAD(pre []byte, id packID) []byte {
	aad := make([]byte, 0, len(aadIndex)+len(pre)+packIDLen)
	aad = append(aad, aadIndex...)
	aad = append(aad, pre...)
	return append(aad, id[:]...)
}

// sealIndex returns the index object of a pack: preamble || Seal(count || records).
func sealIndex(dk *keys.DataKey, id packID, entries []indexEntry) []byte {
	body := make([]byte, 0, 4+len(entries)*indexRecordSize)
	body = binary.BigEndian.AppendUint32(body, uint32(len(entries)))
	for _, e := range entries {
		body = append(body, e.ID[:]...)
		body = binary.BigEndian.AppendUint32(body, e.Offset)
		body = binary.BigEndian.AppendUint32(body, e.SealedLen)
		body = binary.BigEndian.AppendUint32(body, e.PlainLen)
		body = append(body, e.Flags)
	}
	pre := appendPreamble(nil, magicIndex, dk.Epoch())
	out := make([]byte, 0, len(pre)+len(body)+dk.Overhead())
	out = append(out, pre...)
	return dk.Seal(out, body, indexAAD(pre, id))
}

// openIndex authenticates and decodes an index object. key returns the data key of an epoch.
// Every error names the pack: the epoch comes from the object's clear preamble, so a damaged
// preamble shows up as a data key that does not exist, which must point at the index rather
// than at the dataset's keys.
func openIndex(obj []byte, id packID, key func(uint32) (*keys.DataKey, error)) (uint32, []indexEntry, error) {
	epoch, err := parsePreamble(obj, magicIndex)
	if err != nil {
		return 0, nil, fmt.Errorf("index of pack %s: %w", id, err)
	}
	dk, err := key(epoch)
	if err != nil {
		return epoch, nil, fmt.Errorf("index of pack %s: %w", id, err)
	}
	body, err := dk.Open(nil, obj[preambleSize:], indexAAD(obj[:preambleSize], id))
	if err != nil {
		return epoch, nil, fmt.Errorf("index of pack %s: %w", id, err)
	}
	entries, err := decodeIndex(body, dk.Overhead())
	if err != nil {
		return epoch, nil, fmt.Errorf("index of pack %s: %w", id, err)
	}
	return epoch, entries, nil
}

// decodeIndex parses an authenticated index body. It rejects anything a correct writer cannot
// produce, so that later code can trust offsets and lengths.
func decodeIndex(body []byte, overhead int) ([]indexEntry, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: index body is %d bytes", ErrFormat, len(body))
	}
	n := binary.BigEndian.Uint32(body)
	rest := body[4:]
	if n > maxPackBlobs || uint64(len(rest)) != uint64(n)*indexRecordSize {
		return nil, fmt.Errorf("%w: index claims %d blobs in %d bytes", ErrFormat, n, len(rest))
	}
	entries := make([]indexEntry, n)
	var end uint64
	for i := range entries {
		r := rest[i*indexRecordSize : (i+1)*indexRecordSize]
		e := &entries[i]
		copy(e.ID[:], r[:32])
		e.Offset = binary.BigEndian.Uint32(r[32:])
		e.SealedLen = binary.BigEndian.Uint32(r[36:])
		e.PlainLen = binary.BigEndian.Uint32(r[40:])
		e.Flags = r[44]
		if err := checkBlob(e, overhead); err != nil {
			return nil, fmt.Errorf("%w: index record %d: %v", ErrFormat, i, err)
		}
		if uint64(e.Offset) < end {
			return nil, fmt.Errorf("%w: index record %d overlaps its predecessor", ErrFormat, i)
		}
		end = uint64(e.Offset) + uint64(e.SealedLen)
	}
	return entries, nil
}

// checkBlob validates the lengths and flags of one blob as a writer produces them: a
// compressed blob is smaller than its plaintext, a raw one exactly as large.
func checkBlob(e *indexEntry, overhead int) error {
	if e.Flags&^knownFlag != 0 {
		return fmt.Errorf("unknown flags %#x", e.Flags)
	}
	if e.PlainLen == 0 || e.PlainLen > maxChunk {
		return fmt.Errorf("plaintext length %d out of range", e.PlainLen)
	}
	payload := int64(e.SealedLen) - int64(overhead)
	switch {
	case e.Flags&flagZstd != 0 && (payload <= 0 || payload >= int64(e.PlainLen)):
		return fmt.Errorf("compressed blob of %d sealed bytes for %d plaintext bytes", e.SealedLen, e.PlainLen)
	case e.Flags&flagZstd == 0 && payload != int64(e.PlainLen):
		return fmt.Errorf("raw blob of %d sealed bytes for %d plaintext bytes", e.SealedLen, e.PlainLen)
	}
	return nil
}
