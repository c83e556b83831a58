package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

const maxCheckpointObject = 256 << 10

// checkpoint is the resume state of a backup run, sealed under the run's key epoch at
// datasets/<ds>/checkpoints/<run>/state. The entry frames it covers are the part objects
// checkpoints/<run>/frames/<n>, already sealed for the final manifest.
type checkpoint struct {
	Format   int    `json:"format"`
	Dataset  string `json:"dataset"`
	RunID    string `json:"run_id"`
	PointID  string `json:"point_id"`
	Epoch    uint32 `json:"key_epoch"`
	Attempts int    `json:"attempts"`
	// DataAsOf and Started are those of the first attempt: a resumed restore point is as old
	// as the oldest data in it.
	DataAsOf time.Time `json:"data_as_of"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	// LastPath is the last entry whose records (and chunks) are durable; the resumed walk
	// starts after it. Boundary is where its successor's records start: frames before
	// Boundary.Frame are kept whole, Boundary.Frame up to Offset.
	LastPath string   `json:"last_path"`
	Boundary framePos `json:"boundary"`
}

func checkpointAAD(pre []byte, dataset, run string) []byte {
	return runAAD(aadCheckpoint, pre, dataset, run)
}

func sealCheckpoint(dk *keys.DataKey, cp *checkpoint) ([]byte, error) {
	body, err := json.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	pre := appendPreamble(nil, magicCheckpoint, dk.Epoch())
	return dk.Seal(pre, body, checkpointAAD(pre, cp.Dataset, cp.RunID)), nil
}

func openCheckpoint(obj []byte, dataset, run string, key func(uint32) (*keys.DataKey, error)) (*checkpoint, error) {
	epoch, err := parsePreamble(obj, magicCheckpoint)
	if err != nil {
		return nil, err
	}
	dk, err := key(epoch)
	if err != nil {
		return nil, err
	}
	body, err := dk.Open(nil, obj[preambleSize:], checkpointAAD(obj[:preambleSize], dataset, run))
	if err != nil {
		return nil, err
	}
	var cp checkpoint
	if err := json.Unmarshal(body, &cp); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrFormat, err)
	}
	switch {
	case cp.Format != formatVersion:
		return nil, fmt.Errorf("%w: checkpoint format %d", ErrFormat, cp.Format)
	case cp.Dataset != dataset || cp.RunID != run || cp.Epoch != epoch:
		return nil, fmt.Errorf("%w: checkpoint names %s/%s epoch %d", keys.ErrIntegrity, cp.Dataset, cp.RunID, cp.Epoch)
	case cp.Boundary.Frame < 1 || cp.Boundary.Offset < 0 || cp.Boundary.Offset > maxFramePlain:
		return nil, fmt.Errorf("%w: checkpoint boundary %+v", ErrFormat, cp.Boundary)
	}
	if _, err := ParsePointID(cp.PointID); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrFormat, err)
	}
	return &cp, nil
}

// loadCheckpoint returns the checkpoint of run, or nil if there is none.
func (r *Repo) loadCheckpoint(ctx context.Context, run string, keyFor *keyCache) (*checkpoint, error) {
	obj, err := readSmall(ctx, r.store, checkpointKey(r.dataset, run), maxCheckpointObject)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", run, err)
	}
	cp, err := openCheckpoint(obj, r.dataset, run, keyFor.get)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", run, err)
	}
	return cp, nil
}

func (r *Repo) saveCheckpoint(ctx context.Context, dk *keys.DataKey, cp *checkpoint) error {
	obj, err := sealCheckpoint(dk, cp)
	if err != nil {
		return err
	}
	if _, err := r.store.Put(ctx, checkpointKey(r.dataset, cp.RunID), bytes.NewReader(obj), providers.PutOptions{}); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", cp.RunID, err)
	}
	return nil
}

// deleteRun removes everything a run left under checkpoints/: its checkpoint, frame parts
// and run record.
func (r *Repo) deleteRun(ctx context.Context, run string) error {
	return r.deleteRunObjects(ctx, run, false)
}

// deleteRunState removes a finished run's checkpoint and frame parts but keeps its run
// record, which a retried attempt of the run needs to find its restore point.
func (r *Repo) deleteRunState(ctx context.Context, run string) error {
	return r.deleteRunObjects(ctx, run, true)
}

func (r *Repo) deleteRunObjects(ctx context.Context, run string, keepRecord bool) error {
	var keys []string
	err := r.store.List(ctx, runPrefix(r.dataset, run), func(oi providers.ObjectInfo) error {
		if !keepRecord || oi.Key != runDoneKey(r.dataset, run) {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list checkpoint %s: %w", run, err)
	}
	// The state goes first, so that a crash half-way leaves no checkpoint that points at
	// deleted parts.
	for i, k := range keys {
		if k == checkpointKey(r.dataset, run) {
			keys[0], keys[i] = keys[i], keys[0]
		}
	}
	for _, k := range keys {
		if err := r.store.Delete(ctx, k); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete checkpoint %s: %w", run, err)
		}
	}
	return nil
}

// openPart authenticates a frame part (length word || sealed, not final) and returns its
// records.
func openPart(wire []byte, dk *keys.DataKey, dec *zstd.Decoder, base []byte, idx uint32, out *[]byte) ([]byte, error) {
	if len(wire) < 4 {
		return nil, errors.New("frame part too short")
	}
	w := binary.BigEndian.Uint32(wire)
	if w&finalFrameBit != 0 || int(w) != len(wire)-4 {
		return nil, fmt.Errorf("frame part %d: bad length word", idx)
	}
	body, err := dk.Open(nil, wire[4:], frameAAD(base, idx, false))
	if err != nil {
		return nil, fmt.Errorf("frame part %d: %w", idx, err)
	}
	plain, err := decodeFrameBody(dec, body, out, maxFramePlain)
	if err != nil {
		return nil, fmt.Errorf("frame part %d: %w", idx, err)
	}
	return plain, nil
}
