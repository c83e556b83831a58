package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/providers"
)

// DefaultCacheTTL is how long a Manager keeps unwrapped data keys. A KEK revocation still
// takes effect at once on every use (see KEK.Check); the TTL bounds how long this process
// keeps using a key after another process shredded the dataset or rotated its DEK.
const DefaultCacheTTL = time.Minute

const (
	keyObjectFormat  = "drflow-dek-v1"
	tombstoneFormat  = "drflow-shredded-v1"
	tombstoneName    = "SHREDDED"
	maxKeyObjectSize = 64 << 10
	epochDigits      = 10
)

// KeysPrefix is where the wrapped DEKs of dataset live in a repository store. Copying a
// dataset to another location must copy these objects as they are: every location then
// holds the same DEKs, so chunks copied verbatim stay readable and deduplicate.
func KeysPrefix(dataset string) string { return "datasets/" + dataset + "/keys/" }

// KeyObjectKey is the object that holds dataset's wrapped DEK of epoch.
func KeyObjectKey(dataset string, epoch uint32) string {
	return fmt.Sprintf("%s%0*d.json", KeysPrefix(dataset), epochDigits, epoch)
}

// ShreddedKey is the tombstone that Shred leaves, so that a shredded dataset reads as
// ErrDestroyed rather than as one that never had keys.
func ShreddedKey(dataset string) string { return KeysPrefix(dataset) + tombstoneName }

// keyObject is the content of a key object. Only the wrapped DEK is authenticated (its AAD
// binds dataset and epoch; the KEK binds its own version); the other fields are there for
// people and must agree with the object's key.
type keyObject struct {
	Format       string     `json:"format"`
	Dataset      string     `json:"dataset"`
	Epoch        uint32     `json:"epoch"`
	KEKID        string     `json:"kek_id"`
	Jurisdiction string     `json:"jurisdiction"`
	WrappedDEK   []byte     `json:"wrapped_dek"`
	Created      time.Time  `json:"created"`
	Rewrapped    *time.Time `json:"rewrapped,omitempty"`
}

type tombstone struct {
	Format   string    `json:"format"`
	Dataset  string    `json:"dataset"`
	Shredded time.Time `json:"shredded"`
	Epochs   int       `json:"epochs"`
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// KEK wraps the DEKs: the KEK of the home jurisdiction of the datasets this Manager
	// serves. Required.
	KEK KEK
	// Recorder audits every key operation. Required; if it fails, the operation fails.
	Recorder audit.Recorder
	// Actor is recorded as the actor of events; default "drflow keys".
	Actor string
	// Clock stamps key objects and events and ages the cache; nil means time.Now.
	Clock func() time.Time
	// CacheTTL: 0 means DefaultCacheTTL, negative disables the cache.
	CacheTTL time.Duration
}

// Manager keeps datasets' DEKs: it creates, wraps, stores, unwraps, rotates, re-wraps and
// shreds them, and audits each of these. Safe for concurrent use.
//
// Audit order: a key is handed out only after its unwrap is recorded; new key objects are
// recorded once stored (a loser of a creation race records nothing); a shred is recorded
// before anything is deleted. Failed and refused unwraps are recorded too.
type Manager struct {
	kek   KEK
	rec   audit.Recorder
	actor string
	now   func() time.Time
	ttl   time.Duration

	mu      sync.Mutex
	keys    map[epochRef]cachedKey
	current map[datasetRef]cachedEpoch
}

var _ DataKeys = (*Manager)(nil)

type datasetRef struct {
	loc     providers.Location
	dataset string
}

type epochRef struct {
	datasetRef
	epoch uint32
}

type cachedKey struct {
	key     *DataKey
	wrapped Wrapped
	expires time.Time
}

type cachedEpoch struct {
	epoch   uint32
	expires time.Time
}

// NewManager returns a Manager.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.KEK == nil {
		return nil, fmt.Errorf("key manager: %w: no KEK", providers.ErrInvalidArgument)
	}
	if opts.Recorder == nil {
		return nil, fmt.Errorf("key manager: %w: no audit recorder", providers.ErrInvalidArgument)
	}
	m := &Manager{
		kek:     opts.KEK,
		rec:     opts.Recorder,
		actor:   opts.Actor,
		now:     opts.Clock,
		ttl:     opts.CacheTTL,
		keys:    map[epochRef]cachedKey{},
		current: map[datasetRef]cachedEpoch{},
	}
	if m.actor == "" {
		m.actor = "drflow keys"
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.ttl == 0 {
		m.ttl = DefaultCacheTTL
	}
	return m, nil
}

// KEK is the key-encryption key the Manager wraps with.
func (m *Manager) KEK() KEK { return m.kek }

// Current returns the dataset's newest key epoch in st, creating epoch 1 if the dataset has
// no key yet. Concurrent creators, in any process, converge on one epoch-1 key: the object
// is written with a conditional create and losers read the winner's. ErrDestroyed once the
// dataset was shredded in st: a shredded dataset's name is not given a new key there.
func (m *Manager) Current(ctx context.Context, st providers.Store, dataset string) (*DataKey, error) {
	if err := checkDataset(dataset); err != nil {
		return nil, err
	}
	ref := datasetRef{st.Location(), dataset}
	if e, ok := m.cachedCurrent(ref); ok {
		return m.Epoch(ctx, st, dataset, e)
	}
	if err := m.checkShredded(ctx, st, dataset); err != nil {
		return nil, err
	}
	epochs, err := m.Epochs(ctx, st, dataset)
	if err != nil {
		return nil, err
	}
	var key *DataKey
	if len(epochs) == 0 {
		key, err = m.create(ctx, st, dataset, 1, "wrap")
		if errors.Is(err, providers.ErrExists) {
			key, err = m.load(ctx, st, dataset, 1, false)
		}
	} else {
		key, err = m.epoch(ctx, st, dataset, epochs[len(epochs)-1], false)
	}
	if err != nil {
		return nil, err
	}
	m.setCurrent(ref, key.Epoch())
	return key, nil
}

// Epoch returns an existing epoch's key. ErrRevoked if its KEK is revoked (checked on every
// call, cached or not), ErrDestroyed if the dataset was shredded, providers.ErrNotFound if
// the epoch never existed, ErrIntegrity if its key object was altered or moved.
func (m *Manager) Epoch(ctx context.Context, st providers.Store, dataset string, epoch uint32) (*DataKey, error) {
	if err := checkDataset(dataset); err != nil {
		return nil, err
	}
	if epoch == 0 {
		return nil, fmt.Errorf("data key %s: %w: epoch 0 (epochs start at 1)", dataset, providers.ErrInvalidArgument)
	}
	return m.epoch(ctx, st, dataset, epoch, true)
}

func (m *Manager) epoch(ctx context.Context, st providers.Store, dataset string, epoch uint32, checkShredded bool) (*DataKey, error) {
	ref := epochRef{datasetRef{st.Location(), dataset}, epoch}
	m.mu.Lock()
	c, ok := m.keys[ref]
	if ok && !m.now().Before(c.expires) {
		delete(m.keys, ref)
		ok = false
	}
	m.mu.Unlock()
	if !ok {
		return m.load(ctx, st, dataset, epoch, checkShredded)
	}
	if err := m.kek.Check(ctx, c.wrapped); err != nil {
		// Not necessarily the end: another process may have re-wrapped the key under a
		// version that is still valid. Unwrapping afresh finds out, and fails closed (and
		// audited) if not.
		m.forget(ref)
		return m.load(ctx, st, dataset, epoch, true)
	}
	return c.key, nil
}

// load reads, unwraps and caches an epoch's key.
func (m *Manager) load(ctx context.Context, st providers.Store, dataset string, epoch uint32, checkShredded bool) (*DataKey, error) {
	if checkShredded {
		if err := m.checkShredded(ctx, st, dataset); err != nil {
			return nil, err
		}
	}
	obj, err := m.readKeyObject(ctx, st, dataset, epoch)
	if err != nil {
		return nil, err
	}
	w := Wrapped{KEKID: obj.KEKID, Ciphertext: obj.WrappedDEK}
	secret, err := m.kek.Unwrap(ctx, w, dekAAD(dataset, epoch))
	if err != nil {
		err = fmt.Errorf("data key %s epoch %d in %s: %w", dataset, epoch, st.Location().Name, err)
		return nil, m.recordFailure(ctx, st, "unwrap", dataset, epoch, w.KEKID, err)
	}
	key, err := NewDataKey(dataset, epoch, secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	if err := m.record(ctx, st, "unwrap", dataset, epoch, w.KEKID, ""); err != nil {
		return nil, err
	}
	m.cache(epochRef{datasetRef{st.Location(), dataset}, epoch}, key, w)
	return key, nil
}

// create makes, wraps and stores a new DEK for epoch with a conditional create; it returns
// providers.ErrExists if the epoch appeared meanwhile.
func (m *Manager) create(ctx context.Context, st providers.Store, dataset string, epoch uint32, op string) (*DataKey, error) {
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	w, err := m.kek.Wrap(ctx, secret, dekAAD(dataset, epoch))
	if err != nil {
		err = fmt.Errorf("new data key %s epoch %d: %w", dataset, epoch, err)
		return nil, m.recordFailure(ctx, st, op, dataset, epoch, m.kek.ID(), err)
	}
	key, err := NewDataKey(dataset, epoch, secret)
	if err != nil {
		return nil, err
	}
	obj := keyObject{
		Format: keyObjectFormat, Dataset: dataset, Epoch: epoch, KEKID: w.KEKID,
		Jurisdiction: m.kek.Jurisdiction(), WrappedDEK: w.Ciphertext, Created: m.now().UTC(),
	}
	if err := m.putKeyObject(ctx, st, obj, true); err != nil {
		return nil, err
	}
	reason := "new data key"
	if op == "rotate_dek" {
		reason = fmt.Sprintf("data key rotated: epoch %d starts", epoch)
	}
	if err := m.record(ctx, st, op, dataset, epoch, w.KEKID, reason); err != nil {
		return nil, err
	}
	m.cache(epochRef{datasetRef{st.Location(), dataset}, epoch}, key, w)
	return key, nil
}

// RotateDEK starts a new key epoch for the dataset in st and returns its key. Earlier epochs
// stay readable. Concurrent rotations never overwrite each other's key: two that race for the
// same epoch (a conditional create) both get the winner's key.
func (m *Manager) RotateDEK(ctx context.Context, st providers.Store, dataset string) (*DataKey, error) {
	if err := checkDataset(dataset); err != nil {
		return nil, err
	}
	if err := m.checkShredded(ctx, st, dataset); err != nil {
		return nil, err
	}
	epochs, err := m.Epochs(ctx, st, dataset)
	if err != nil {
		return nil, err
	}
	next := uint32(1)
	if n := len(epochs); n > 0 {
		if epochs[n-1] == math.MaxUint32 {
			return nil, fmt.Errorf("rotate data key %s: epoch %d is the last one", dataset, epochs[n-1])
		}
		next = epochs[n-1] + 1
	}
	key, err := m.create(ctx, st, dataset, next, "rotate_dek")
	if errors.Is(err, providers.ErrExists) {
		key, err = m.load(ctx, st, dataset, next, false)
	}
	if err != nil {
		return nil, err
	}
	m.setCurrent(datasetRef{st.Location(), dataset}, next)
	return key, nil
}

// RewrapKEK re-wraps, under the KEK's current version, every DEK of the dataset in st that
// an older version (or previous KMS key) wrapped, and returns how many it rewrote. Only the
// small key objects change; chunks are not touched, and the DEKs themselves stay the same.
// It is idempotent, so a run interrupted halfway is simply run again. Run it after a KEK
// rotation and before revoking the old version: what is still wrapped only by a revoked
// version cannot be re-wrapped any more.
//
// A key object under legal hold is not rewritten (see RewrapKEKReport); if there is one,
// RewrapKEK re-wraps the others and then fails with providers.ErrImmutable, so that a caller
// that reads only the count does not go on to revoke the version the held key still needs.
func (m *Manager) RewrapKEK(ctx context.Context, st providers.Store, dataset string) (int, error) {
	rep, err := m.RewrapKEKReport(ctx, st, dataset)
	if err == nil && len(rep.Held) > 0 {
		h := rep.Held[0]
		err = fmt.Errorf("re-wrap %s in %s: %w: %d key objects keep their previous wrapping (epoch %d by %s, under %s); "+
			"revoking that KEK version would make them unreadable", dataset, st.Location().Name, providers.ErrImmutable,
			len(rep.Held), h.Epoch, h.KEKID, h.Reason)
	}
	return rep.Rewrapped, err
}

// RewrapReport is what RewrapKEKReport did.
type RewrapReport struct {
	// Rewrapped counts the key objects re-wrapped under the KEK's current version.
	Rewrapped int
	// Held are the key objects that need a re-wrap but are under legal hold or retention:
	// they keep their previous wrapping, which must stay usable (not revoked) while they are
	// held. Each skip is audited as a denied wrap.
	Held []HeldKey
}

// HeldKey is a wrapped key object that a re-wrap left as it was.
type HeldKey struct {
	Epoch uint32
	// KEKID is the KEK version that still wraps it.
	KEKID string
	// Reason names what protects it: "legal hold a, b" (drflow's hold records), "legal hold"
	// or a retention (the store).
	Reason string
}

// RewrapKEKReport is RewrapKEK that reports the key objects it had to leave alone instead of
// failing. A key object that an active hold in st's hold records (internal/holds) covers is
// not rewritten, even where the store cannot enforce the hold; one that the store refuses to
// overwrite is left alone too.
func (m *Manager) RewrapKEKReport(ctx context.Context, st providers.Store, dataset string) (RewrapReport, error) {
	var rep RewrapReport
	if err := checkDataset(dataset); err != nil {
		return rep, err
	}
	if err := m.checkShredded(ctx, st, dataset); err != nil {
		return rep, err
	}
	epochs, err := m.Epochs(ctx, st, dataset)
	if err != nil {
		return rep, err
	}
	guard, err := holds.Records(st, dataset).Guard(ctx)
	if err != nil {
		return rep, fmt.Errorf("re-wrap %s: %w", dataset, err)
	}
	for _, epoch := range epochs {
		done, held, err := m.rewrap(ctx, st, dataset, epoch, guard)
		if err != nil {
			return rep, err
		}
		if held != nil {
			rep.Held = append(rep.Held, *held)
		}
		if done {
			rep.Rewrapped++
		}
	}
	return rep, nil
}

// rewrap re-wraps one epoch's key object if it needs it. A held one is left as it is and
// returned (audited as a denied wrap).
func (m *Manager) rewrap(ctx context.Context, st providers.Store, dataset string, epoch uint32, guard *holds.Guard) (bool, *HeldKey, error) {
	obj, err := m.readKeyObject(ctx, st, dataset, epoch)
	if err != nil {
		return false, nil, err
	}
	old := Wrapped{KEKID: obj.KEKID, Ciphertext: obj.WrappedDEK}
	if !m.kek.NeedsRewrap(old) {
		return false, nil, nil
	}
	if names := guard.ObjectHolds(KeyObjectKey(dataset, epoch)); len(names) > 0 {
		held, err := m.keepHeld(ctx, st, dataset, epoch, old.KEKID, holds.Reason(names))
		return false, held, err
	}
	aad := dekAAD(dataset, epoch)
	secret, err := m.kek.Unwrap(ctx, old, aad)
	if err != nil {
		err = fmt.Errorf("re-wrap %s epoch %d: %w", dataset, epoch, err)
		return false, nil, m.recordFailure(ctx, st, "unwrap", dataset, epoch, old.KEKID, err)
	}
	w, err := m.kek.Wrap(ctx, secret, aad)
	clear(secret)
	if err != nil {
		err = fmt.Errorf("re-wrap %s epoch %d: %w", dataset, epoch, err)
		return false, nil, m.recordFailure(ctx, st, "wrap", dataset, epoch, m.kek.ID(), err)
	}
	now := m.now().UTC()
	obj.KEKID, obj.WrappedDEK, obj.Rewrapped, obj.Jurisdiction = w.KEKID, w.Ciphertext, &now, m.kek.Jurisdiction()
	// Narrow the window in which a re-wrap could bring back a key that Shred just deleted.
	if err := m.checkShredded(ctx, st, dataset); err != nil {
		return false, nil, err
	}
	if err := m.putKeyObject(ctx, st, obj, false); err != nil {
		if errors.Is(err, providers.ErrImmutable) {
			held, err := m.keepHeld(ctx, st, dataset, epoch, old.KEKID, "a legal hold or retention of the store")
			return false, held, err
		}
		return false, nil, err
	}
	m.forget(epochRef{datasetRef{st.Location(), dataset}, epoch})
	reason := fmt.Sprintf("re-wrapped after KEK rotation (was %s)", old.KEKID)
	return true, nil, m.record(ctx, st, "wrap", dataset, epoch, w.KEKID, reason)
}

// keepHeld audits that a held key object keeps its wrapping by kekID.
func (m *Manager) keepHeld(ctx context.Context, st providers.Store, dataset string, epoch uint32, kekID, why string) (*HeldKey, error) {
	e := m.event(st, "wrap", dataset, epoch, kekID)
	e.Outcome = audit.OutcomeDenied
	e.Reason = auditReason(fmt.Sprintf("re-wrap refused: the key object is under %s; it stays wrapped by %s", why, kekID))
	if err := m.rec.Record(ctx, e); err != nil {
		return nil, fmt.Errorf("audit refused re-wrap of %s epoch %d: %w", dataset, epoch, err)
	}
	return &HeldKey{Epoch: epoch, KEKID: kekID, Reason: why}, nil
}

// Shred crypto-shreds the dataset in each store: it records the shred, leaves a tombstone
// (ShreddedKey) and deletes every wrapped DEK of the dataset. From then on Current, Epoch,
// RotateDEK and RewrapKEK fail with ErrDestroyed there, and the dataset's chunks cannot be
// decrypted by anyone: the DEKs existed only wrapped, in these objects. Pass every store
// that holds a copy of the dataset; a copy that is missed stays restorable while the KEK
// that wrapped it lives. Other processes' Managers may use a cached key for up to their
// CacheTTL. Shredding again is harmless.
//
// A legal hold forbids it: if any store has an active hold on the dataset in its hold
// records (internal/holds, enforced here even where the store cannot), or a key object under
// the store's legal hold or retention, the shred is refused (providers.ErrImmutable, audited
// as denied) before anything is destroyed in any store, and the dataset stays readable
// everywhere. A store that cannot be checked refuses the shred too.
func (m *Manager) Shred(ctx context.Context, dataset string, stores ...providers.Store) error {
	if err := checkDataset(dataset); err != nil {
		return err
	}
	if len(stores) == 0 {
		return fmt.Errorf("shred %s: %w: no store given", dataset, providers.ErrInvalidArgument)
	}
	m.forgetDataset(dataset)
	var errs []error
	for _, st := range stores {
		if _, err := m.shredCheck(ctx, st, dataset); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, st := range stores {
		if err := m.shred(ctx, st, dataset); err != nil {
			errs = append(errs, err)
		}
	}
	m.forgetDataset(dataset)
	return errors.Join(errs...)
}

// shredCheck lists the dataset's epochs in st and refuses (audited) if a hold protects the
// dataset there.
func (m *Manager) shredCheck(ctx context.Context, st providers.Store, dataset string) ([]uint32, error) {
	epochs, err := m.Epochs(ctx, st, dataset)
	if err != nil {
		return nil, fmt.Errorf("shred %s: %w", dataset, err)
	}
	guard, err := holds.Records(st, dataset).Guard(ctx)
	if err != nil {
		return nil, fmt.Errorf("shred %s: %w", dataset, err)
	}
	if guard.Any() {
		var names []string
		for _, o := range guard.Active() {
			names = append(names, o.Name)
		}
		err := fmt.Errorf("shred %s in %s: %w: the dataset is under %s", dataset, st.Location().Name, providers.ErrImmutable, holds.Reason(names))
		return nil, m.recordFailure(ctx, st, "shred", dataset, 0, "", err)
	}
	// A legal hold or retention on a key object forbids the shred too. Refuse before the
	// tombstone is written, which would otherwise make held data unreadable.
	for _, e := range epochs {
		info, err := st.Stat(ctx, KeyObjectKey(dataset, e))
		if errors.Is(err, providers.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("shred %s: %w", dataset, err)
		}
		if info.LegalHold || info.Retention.Active(m.now()) {
			err := fmt.Errorf("shred %s in %s: %w: epoch %d's key is under legal hold or retention",
				dataset, st.Location().Name, providers.ErrImmutable, e)
			return nil, m.recordFailure(ctx, st, "shred", dataset, e, "", err)
		}
	}
	return epochs, nil
}

// shred checks st again, right before destroying: a hold placed since the first check of
// every store keeps this one (and those after it) readable.
func (m *Manager) shred(ctx context.Context, st providers.Store, dataset string) error {
	epochs, err := m.shredCheck(ctx, st, dataset)
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("crypto-shred: destroying %d wrapped data keys", len(epochs))
	if err := m.record(ctx, st, "shred", dataset, 0, "", reason); err != nil {
		return fmt.Errorf("shred %s: %w", dataset, err)
	}
	err = m.destroy(ctx, st, dataset, epochs)
	if err != nil {
		if errors.Is(err, providers.ErrImmutable) {
			// A hold placed since the check: keep what it protects readable.
			if derr := st.Delete(ctx, ShreddedKey(dataset)); derr != nil {
				err = errors.Join(err, fmt.Errorf("remove tombstone: %w", derr))
			}
		}
		err = fmt.Errorf("shred %s in %s: %w", dataset, st.Location().Name, err)
		return m.recordFailure(ctx, st, "shred", dataset, 0, "", err)
	}
	return nil
}

func (m *Manager) destroy(ctx context.Context, st providers.Store, dataset string, epochs []uint32) error {
	ts, err := json.Marshal(tombstone{Format: tombstoneFormat, Dataset: dataset, Shredded: m.now().UTC(), Epochs: len(epochs)})
	if err != nil {
		return err
	}
	_, err = st.Put(ctx, ShreddedKey(dataset), bytes.NewReader(ts), providers.PutOptions{IfNotExists: true, ContentType: "application/json"})
	if err != nil && !errors.Is(err, providers.ErrExists) {
		return fmt.Errorf("write tombstone: %w", err)
	}
	// Twice: a key object created concurrently before the tombstone landed is caught by
	// the second listing.
	for range 2 {
		for _, e := range epochs {
			if err := st.Delete(ctx, KeyObjectKey(dataset, e)); err != nil && !errors.Is(err, providers.ErrNotFound) {
				return fmt.Errorf("delete epoch %d: %w", e, err)
			}
		}
		if epochs, err = m.Epochs(ctx, st, dataset); err != nil {
			return err
		}
		if len(epochs) == 0 {
			return nil
		}
	}
	return fmt.Errorf("%d key objects reappeared while shredding", len(epochs))
}

// Epochs lists the dataset's key epochs in st, oldest first.
func (m *Manager) Epochs(ctx context.Context, st providers.Store, dataset string) ([]uint32, error) {
	if err := checkDataset(dataset); err != nil {
		return nil, err
	}
	prefix := KeysPrefix(dataset)
	var epochs []uint32
	err := st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		if e, ok := parseEpochName(strings.TrimPrefix(oi.Key, prefix)); ok {
			epochs = append(epochs, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list key epochs of %s in %s: %w", dataset, st.Location().Name, err)
	}
	return epochs, nil // zero-padded names list in numeric order
}

func parseEpochName(name string) (uint32, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok || len(digits) != epochDigits {
		return 0, false
	}
	e, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || e == 0 {
		return 0, false
	}
	return uint32(e), true
}

func (m *Manager) checkShredded(ctx context.Context, st providers.Store, dataset string) error {
	_, err := st.Stat(ctx, ShreddedKey(dataset))
	switch {
	case err == nil:
		return fmt.Errorf("data keys of %s in %s: %w", dataset, st.Location().Name, ErrDestroyed)
	case errors.Is(err, providers.ErrNotFound):
		return nil
	}
	return fmt.Errorf("check tombstone of %s in %s: %w", dataset, st.Location().Name, err)
}

func (m *Manager) readKeyObject(ctx context.Context, st providers.Store, dataset string, epoch uint32) (keyObject, error) {
	key := KeyObjectKey(dataset, epoch)
	rc, err := st.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return keyObject{}, fmt.Errorf("data key %s epoch %d in %s: %w", dataset, epoch, st.Location().Name, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxKeyObjectSize+1))
	if err != nil {
		return keyObject{}, fmt.Errorf("read %s: %w", key, err)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: key object %s in %s %s", ErrIntegrity, key, st.Location().Name, why)
	}
	if len(raw) > maxKeyObjectSize {
		return keyObject{}, bad("is too large")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var obj keyObject
	if err := dec.Decode(&obj); err != nil {
		return keyObject{}, bad("is malformed")
	}
	if obj.Format != keyObjectFormat {
		return keyObject{}, bad(fmt.Sprintf("has format %q", obj.Format))
	}
	if obj.Dataset != dataset || obj.Epoch != epoch {
		return keyObject{}, bad(fmt.Sprintf("claims to be %s epoch %d", obj.Dataset, obj.Epoch))
	}
	return obj, nil
}

func (m *Manager) putKeyObject(ctx context.Context, st providers.Store, obj keyObject, create bool) error {
	raw, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	key := KeyObjectKey(obj.Dataset, obj.Epoch)
	_, err = st.Put(ctx, key, bytes.NewReader(append(raw, '\n')), providers.PutOptions{IfNotExists: create, ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("write %s in %s: %w", key, st.Location().Name, err)
	}
	return nil
}

// checkDataset accepts names that are one key segment.
func checkDataset(dataset string) error {
	if dataset == "" || strings.Contains(dataset, "/") {
		return fmt.Errorf("%w: dataset name %q must be one non-empty key segment", providers.ErrInvalidArgument, dataset)
	}
	if err := providers.ValidateKey(KeysPrefix(dataset) + tombstoneName); err != nil {
		return fmt.Errorf("dataset name %q: %w", dataset, err)
	}
	return nil
}

func (m *Manager) cachedCurrent(ref datasetRef) (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.current[ref]
	if !ok || !m.now().Before(c.expires) {
		delete(m.current, ref)
		return 0, false
	}
	return c.epoch, true
}

func (m *Manager) setCurrent(ref datasetRef, epoch uint32) {
	if m.ttl < 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.current[ref]; ok && c.epoch > epoch && m.now().Before(c.expires) {
		return // a concurrent rotation already moved on
	}
	m.current[ref] = cachedEpoch{epoch: epoch, expires: m.now().Add(m.ttl)}
}

func (m *Manager) cache(ref epochRef, key *DataKey, w Wrapped) {
	if m.ttl < 0 {
		return
	}
	m.mu.Lock()
	m.keys[ref] = cachedKey{key: key, wrapped: w, expires: m.now().Add(m.ttl)}
	m.mu.Unlock()
}

func (m *Manager) forget(ref epochRef) {
	m.mu.Lock()
	delete(m.keys, ref)
	m.mu.Unlock()
}

func (m *Manager) forgetDataset(dataset string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ref := range m.keys {
		if ref.dataset == dataset {
			delete(m.keys, ref)
		}
	}
	for ref := range m.current {
		if ref.dataset == dataset {
			delete(m.current, ref)
		}
	}
}

func (m *Manager) event(st providers.Store, op, dataset string, epoch uint32, keyID string) audit.Event {
	return audit.Event{
		Kind:         audit.KindKey,
		Outcome:      audit.OutcomeOK,
		Actor:        m.actor,
		Dataset:      dataset,
		Location:     st.Location().Name,
		Jurisdiction: m.kek.Jurisdiction(),
		Operation:    op,
		KeyID:        keyID,
		KeyEpoch:     epoch,
		Time:         m.now().UTC(),
	}
}

// record audits a successful operation; its error means the operation must not take effect
// (or, for a stored key object, must not be handed out).
func (m *Manager) record(ctx context.Context, st providers.Store, op, dataset string, epoch uint32, keyID, reason string) error {
	e := m.event(st, op, dataset, epoch, keyID)
	e.Reason = auditReason(reason)
	if err := m.rec.Record(ctx, e); err != nil {
		return fmt.Errorf("audit %s of %s epoch %d: %w", op, dataset, epoch, err)
	}
	return nil
}

// recordFailure audits a failed or refused operation and returns cause, joined with the
// recorder's error if that failed too.
func (m *Manager) recordFailure(ctx context.Context, st providers.Store, op, dataset string, epoch uint32, keyID string, cause error) error {
	e := m.event(st, op, dataset, epoch, keyID)
	e.Outcome = audit.OutcomeFailed
	if errors.Is(cause, ErrRevoked) || errors.Is(cause, ErrUnknownKEK) || errors.Is(cause, providers.ErrPermission) ||
		errors.Is(cause, providers.ErrImmutable) {
		e.Outcome = audit.OutcomeDenied
	}
	e.Reason = auditReason(cause.Error())
	if err := m.rec.Record(ctx, e); err != nil {
		return errors.Join(cause, fmt.Errorf("audit failed %s: %w", op, err))
	}
	return cause
}
