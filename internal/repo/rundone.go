package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

const maxRunDoneObject = 4 << 10

// runDone names the restore point a backup run writes. It is sealed under the run's data key
// at datasets/<ds>/checkpoints/<run>/done, written before the manifest and kept when the
// run's checkpoint is deleted: an attempt retried after an earlier one wrote the manifest (a
// worker killed before it reported success) finds the point and returns it instead of
// writing a second restore point of the same run. GC deletes it with the run's other
// leftovers once the run holds no lease and CheckpointTTL has passed, longer than a backup
// activity is retried.
type runDone struct {
	Format  int    `json:"format"`
	Dataset string `json:"dataset"`
	RunID   string `json:"run_id"`
	PointID string `json:"point_id"`
}

// runAAD binds a run's sealed object to its kind (label), preamble, dataset and run.
func runAAD(label string, pre []byte, dataset, run string) []byte {
	aad := make([]byte, 0, len(label)+len(pre)+len(dataset)+len(run)+4)
	aad = append(aad, label...)
	aad = append(aad, pre...)
	aad = binary.BigEndian.AppendUint16(aad, uint16(len(dataset)))
	aad = append(aad, dataset...)
	aad = binary.BigEndian.AppendUint16(aad, uint16(len(run)))
	return append(aad, run...)
}

// writeRunDone records that run writes restore point point.
func (r *Repo) writeRunDone(ctx context.Context, dk *keys.DataKey, run, point string) error {
	body, err := json.Marshal(runDone{Format: formatVersion, Dataset: r.dataset, RunID: run, PointID: point})
	if err != nil {
		return fmt.Errorf("encode run record: %w", err)
	}
	pre := appendPreamble(nil, magicRunDone, dk.Epoch())
	obj := dk.Seal(pre, body, runAAD(aadRunDone, pre, r.dataset, run))
	if _, err := r.store.Put(ctx, runDoneKey(r.dataset, run), bytes.NewReader(obj), providers.PutOptions{}); err != nil {
		return fmt.Errorf("write run record %s: %w", run, err)
	}
	return nil
}

// loadRunDone returns the restore point run recorded, or "" if it recorded none. A record
// that does not open (damaged, or not drflow's) is ignored, as an unreadable checkpoint is:
// the run then writes its point as if it were the first attempt.
func (r *Repo) loadRunDone(ctx context.Context, run string, keyFor *keyCache) (string, error) {
	obj, err := readSmall(ctx, r.store, runDoneKey(r.dataset, run), maxRunDoneObject)
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read run record %s: %w", run, err)
	}
	point, err := openRunDone(obj, r.dataset, run, keyFor.get)
	if errors.Is(err, ErrFormat) || errors.Is(err, keys.ErrIntegrity) {
		r.log.Warn("ignoring unreadable run record", zap.String("run", run), zap.Error(err))
		return "", nil
	}
	return point, err
}

func openRunDone(obj []byte, dataset, run string, key func(uint32) (*keys.DataKey, error)) (string, error) {
	epoch, err := parsePreamble(obj, magicRunDone)
	if err != nil {
		return "", err
	}
	dk, err := key(epoch)
	if err != nil {
		return "", err
	}
	body, err := dk.Open(nil, obj[preambleSize:], runAAD(aadRunDone, obj[:preambleSize], dataset, run))
	if err != nil {
		return "", err
	}
	var rd runDone
	if err := json.Unmarshal(body, &rd); err != nil {
		return "", fmt.Errorf("%w: run record: %v", ErrFormat, err)
	}
	switch {
	case rd.Format != formatVersion:
		return "", fmt.Errorf("%w: run record format %d", ErrFormat, rd.Format)
	case rd.Dataset != dataset || rd.RunID != run:
		return "", fmt.Errorf("%w: run record names %s/%s", keys.ErrIntegrity, rd.Dataset, rd.RunID)
	}
	if _, err := ParsePointID(rd.PointID); err != nil {
		return "", fmt.Errorf("%w: run record: %v", ErrFormat, err)
	}
	return rd.PointID, nil
}
