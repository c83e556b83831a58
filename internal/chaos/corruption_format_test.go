package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// The parts of repository format version 1 (internal/repo/doc.go) that the corruption trials
// need to find chunk boundaries in a pack: an index object is preamble ("DRFI", version,
// key epoch) || Seal(count || count × (chunk ID, offset, sealed length, plaintext length,
// flags)) with AAD = domain || preamble || pack ID; a pack is its blobs, then the index object
// and its length as a trailer.
const (
	corrIndexMagic     = "DRFI"
	corrIndexAAD       = "drflow pack index v1\x00"
	corrPreambleLen    = 4 + 1 + 4
	corrIndexRecordLen = 32 + 4 + 4 + 4 + 1
	corrTrailerWord    = 4
)

// corrBlob is one sealed blob of a pack.
type corrBlob struct{ off, n int64 }

// corrPack is a pack's blobs as its index lists them.
type corrPack struct {
	key, id, indexKey string
	blobs             []corrBlob
	// blobsEnd is where the blobs end and the trailer starts.
	blobsEnd int64
}

// corrDecodePack opens a pack's index object with the dataset's data key and checks that
// the blobs it lists fill the pack up to its trailer, a copy of that index object.
func corrDecodePack(ctx context.Context, mgr *keys.Manager, st providers.Store, ds, key, indexKey, id string, pack, index []byte) (*corrPack, error) {
	pid, err := hex.DecodeString(id)
	if err != nil || len(pid) != 16 {
		return nil, fmt.Errorf("pack %s: not a pack ID", key)
	}
	if len(index) < corrPreambleLen || string(index[:4]) != corrIndexMagic || index[4] != 1 {
		return nil, fmt.Errorf("index %s: not a version 1 index object", indexKey)
	}
	dk, err := mgr.Epoch(ctx, st, ds, binary.BigEndian.Uint32(index[5:corrPreambleLen]))
	if err != nil {
		return nil, err
	}
	aad := append(append([]byte(corrIndexAAD), index[:corrPreambleLen]...), pid...)
	body, err := dk.Open(nil, index[corrPreambleLen:], aad)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", indexKey, err)
	}
	if len(body) < 4 {
		return nil, fmt.Errorf("index %s: short body", indexKey)
	}
	n := int(binary.BigEndian.Uint32(body))
	if len(body) != 4+n*corrIndexRecordLen {
		return nil, fmt.Errorf("index %s: %d records in %d bytes", indexKey, n, len(body))
	}
	p := &corrPack{key: key, id: id, indexKey: indexKey}
	for i := range n {
		r := body[4+i*corrIndexRecordLen:]
		off, sealed := int64(binary.BigEndian.Uint32(r[32:])), int64(binary.BigEndian.Uint32(r[36:]))
		if off != p.blobsEnd {
			return nil, fmt.Errorf("pack %s: blob %d at %d, want %d (blobs are contiguous)", key, i, off, p.blobsEnd)
		}
		p.blobs = append(p.blobs, corrBlob{off: off, n: sealed})
		p.blobsEnd = off + sealed
	}
	trailer := pack[p.blobsEnd:]
	if len(trailer) != len(index)+corrTrailerWord || !bytes.Equal(trailer[:len(index)], index) ||
		binary.BigEndian.Uint32(trailer[len(index):]) != uint32(len(index)) {
		return nil, fmt.Errorf("pack %s: the blobs are not followed by the index object and its length", key)
	}
	return p, nil
}
