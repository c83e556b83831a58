package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// Options configure a Repo: one dataset inside one location's store.
type Options struct {
	Store   providers.Store
	Dataset string
	Keys    keys.DataKeys
	// Audit records restore points, restores and verifications. Required: an action that
	// cannot be audited fails closed.
	Audit  audit.Recorder
	Logger *zap.Logger
	// Concurrency is the number of workers that hash, compress and seal chunks, and of
	// parallel range reads on restore; 0 means GOMAXPROCS.
	Concurrency int
	// LeaseTTL is how long a backup lease lives unrefreshed (see doc.go, "Retention and garbage
	// collection"); 0 means DefaultLeaseTTL. Backups and GC of a dataset must agree on it.
	LeaseTTL time.Duration
	// CheckpointEvery is the least time between two checkpoints of a backup; 0 means
	// DefaultCheckpointEvery. Shorter loses less work to a crash and writes more small
	// objects.
	CheckpointEvery time.Duration
}

// DefaultCheckpointEvery is the least time between two checkpoints of a backup. A crash
// loses at most this much progress: the packs written meanwhile are found again by dedup.
const DefaultCheckpointEvery = 5 * time.Second

// Repo is one dataset's repository in one store. Safe for concurrent use; each call reads
// the repository's state afresh.
type Repo struct {
	store   providers.Store
	dataset string
	keys    keys.DataKeys
	audit   audit.Recorder
	log     *zap.Logger
	workers int
	pool    *bufPool

	// Tuning that tests shrink; constants otherwise.
	packTarget      int
	checkpointEvery time.Duration
	// unchangedMargin is how much older than the previous point's DataAsOf a file's ctime
	// must be for the file to count as unchanged (see unchanged.go); tests shorten it.
	unchangedMargin time.Duration
	leaseTTL        time.Duration
	now             func() time.Time
}

// Open returns the repository of opts.Dataset in opts.Store. It does not touch the store.
func Open(opts Options) (*Repo, error) {
	if opts.Store == nil || opts.Keys == nil || opts.Audit == nil {
		return nil, fmt.Errorf("open repository: %w: store, keys and audit recorder are required", providers.ErrInvalidArgument)
	}
	if err := validateName("dataset", opts.Dataset); err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	r := &Repo{
		store:           opts.Store,
		dataset:         opts.Dataset,
		keys:            opts.Keys,
		audit:           opts.Audit,
		log:             opts.Logger,
		workers:         opts.Concurrency,
		pool:            &bufPool{},
		packTarget:      defaultPackTarget,
		checkpointEvery: opts.CheckpointEvery,
		leaseTTL:        opts.LeaseTTL,
		unchangedMargin: defaultUnchangedMargin,
		now:             time.Now,
	}
	if r.leaseTTL <= 0 {
		r.leaseTTL = DefaultLeaseTTL
	}
	if r.checkpointEvery <= 0 {
		r.checkpointEvery = DefaultCheckpointEvery
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.workers <= 0 {
		r.workers = runtime.GOMAXPROCS(0)
	}
	r.log = r.log.With(zap.String("dataset", r.dataset), zap.String("location", opts.Store.Location().Name))
	return r, nil
}

// Dataset is the dataset this repository holds.
func (r *Repo) Dataset() string { return r.dataset }

// Store is the store this repository lives in.
func (r *Repo) Store() providers.Store { return r.store }

// PointInfo identifies a restore point.
type PointInfo struct {
	ID string `json:"id"`
	// DataAsOf is when the source was read; RPO is measured from it.
	DataAsOf time.Time `json:"data_as_of"`
	// Created is when the manifest was written (from Points: the store's modification time).
	Created time.Time `json:"created"`
	// Size is the size of the manifest object (Points only).
	Size int64 `json:"size,omitempty"`
}

// Progress reports a running backup, restore or verify. Counters never decrease during one
// call; a total of -1 is unknown.
type Progress struct {
	Phase         string
	BytesDone     int64
	BytesTotal    int64
	EntriesDone   int64
	EntriesTotal  int64
	BytesUploaded int64
	ChunksNew     int64
	ChunksReused  int64
	// Checkpoints counts the checkpoints a backup has made durable in this run.
	Checkpoints int64
}

// Phases of Progress.
const (
	PhaseIndex    = "index"    // loading the dataset's pack indexes
	PhaseBackup   = "backup"   // reading, chunking and uploading
	PhaseManifest = "manifest" // writing the manifest
	PhaseRestore  = "restore"
	PhaseVerify   = "verify"
	PhaseDone     = "done"
)

// Restore point IDs: DataAsOf in UTC with millisecond precision, then 8 random hex digits, so
// that IDs sort by time and two backups in the same millisecond do not collide.
const pointTimeLayout = "20060102T150405.000Z"

func newPointID(dataAsOf time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random point id: %w", err)
	}
	return dataAsOf.UTC().Format(pointTimeLayout) + "-" + hex.EncodeToString(b[:]), nil
}

// ParsePointID returns the DataAsOf encoded in a restore point ID.
func ParsePointID(id string) (time.Time, error) {
	ts, suffix, ok := strings.Cut(id, "-")
	if !ok || len(ts) != len(pointTimeLayout) || len(suffix) != 8 {
		return time.Time{}, fmt.Errorf("%w: restore point id %q: want %s-xxxxxxxx", providers.ErrInvalidArgument, id, pointTimeLayout)
	}
	if _, err := hex.DecodeString(suffix); err != nil || strings.ToLower(suffix) != suffix {
		return time.Time{}, fmt.Errorf("%w: restore point id %q: suffix is not lower-case hex", providers.ErrInvalidArgument, id)
	}
	t, err := time.Parse(pointTimeLayout, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: restore point id %q: %v", providers.ErrInvalidArgument, id, err)
	}
	return t, nil
}

// Points lists the dataset's restore points, oldest first. It reads no manifest.
func (r *Repo) Points(ctx context.Context) ([]PointInfo, error) {
	return listPoints(ctx, r.store, r.dataset, r.log)
}

// StorePoints lists the restore points (manifests) of dataset in st, oldest first, without
// opening the repository: no key is needed. Evidence packs read placement this way.
func StorePoints(ctx context.Context, st providers.Store, dataset string) ([]PointInfo, error) {
	return listPoints(ctx, st, dataset, zap.NewNop())
}

func listPoints(ctx context.Context, st providers.Store, dataset string, log *zap.Logger) ([]PointInfo, error) {
	prefix := pointsPrefix(dataset)
	var points []PointInfo
	err := st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		id := strings.TrimPrefix(oi.Key, prefix)
		t, err := ParsePointID(id)
		if err != nil {
			log.Warn("ignoring object that is not a restore point", zap.String("key", oi.Key))
			return nil
		}
		points = append(points, PointInfo{ID: id, DataAsOf: t, Created: oi.ModTime, Size: oi.Size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list restore points of %s: %w", dataset, err)
	}
	sortPoints(points)
	return points, nil
}

// sortPoints orders points oldest first (ties by ID).
func sortPoints(points []PointInfo) {
	sort.SliceStable(points, func(i, j int) bool {
		if !points[i].DataAsOf.Equal(points[j].DataAsOf) {
			return points[i].DataAsOf.Before(points[j].DataAsOf)
		}
		return points[i].ID < points[j].ID
	})
}

// Manifest reads the header of a restore point's manifest (its first frame only).
func (r *Repo) Manifest(ctx context.Context, pointID string) (*ManifestHeader, error) {
	ms, closeFn, err := r.openManifest(ctx, pointID, 1)
	if err != nil {
		return nil, err
	}
	closeFn()
	return ms.header, nil
}

// openManifest opens a manifest for streaming. The returned func closes it.
func (r *Repo) openManifest(ctx context.Context, pointID string, concurrency int) (*manifestStream, func(), error) {
	if _, err := ParsePointID(pointID); err != nil {
		return nil, nil, err
	}
	rc, err := r.store.Get(ctx, pointKey(r.dataset, pointID), providers.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("open restore point %s of %s: %w", pointID, r.dataset, err)
	}
	dec, err := newFrameDecoder(concurrency)
	if err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("zstd decoder: %w", err)
	}
	closeFn := func() {
		_ = rc.Close()
		dec.Close()
	}
	keyFor := newKeyCache(ctx, r.keys, r.store, r.dataset)
	ms, err := openManifestStream(storeReader{rc}, r.dataset, pointID, dec, keyFor.get)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return ms, closeFn, nil
}

// keyCache fetches each epoch's data key once per operation.
type keyCache struct {
	ctx     context.Context
	keys    keys.DataKeys
	store   providers.Store
	dataset string
	mu      sync.Mutex
	byEpoch map[uint32]*keys.DataKey
}

func newKeyCache(ctx context.Context, dk keys.DataKeys, st providers.Store, dataset string) *keyCache {
	return &keyCache{ctx: ctx, keys: dk, store: st, dataset: dataset, byEpoch: map[uint32]*keys.DataKey{}}
}

func (c *keyCache) get(epoch uint32) (*keys.DataKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.byEpoch[epoch]; ok {
		return k, nil
	}
	k, err := c.keys.Epoch(c.ctx, c.store, c.dataset, epoch)
	if err != nil {
		return nil, fmt.Errorf("data key of %s epoch %d: %w", c.dataset, epoch, err)
	}
	if k.Dataset() != c.dataset || k.Epoch() != epoch {
		return nil, fmt.Errorf("data key provider returned %s epoch %d for %s epoch %d", k.Dataset(), k.Epoch(), c.dataset, epoch)
	}
	c.byEpoch[epoch] = k
	return k, nil
}

func (c *keyCache) put(k *keys.DataKey) {
	c.mu.Lock()
	c.byEpoch[k.Epoch()] = k
	c.mu.Unlock()
}

// kekHolder is implemented by key providers that can say which KEK wraps their DEKs
// (keys.Manager).
type kekHolder interface{ KEK() keys.KEK }

// kekID names the KEK (with its version) that the key provider wraps DEKs with now, or ""
// if the provider does not say.
// TODO(lead): an epoch's own wrapping KEK (it differs for an epoch not yet re-wrapped after
// a KEK rotation) needs an accessor on keys.Manager.
func (r *Repo) kekID() string {
	if h, ok := r.keys.(kekHolder); ok && h.KEK() != nil {
		return h.KEK().ID()
	}
	return ""
}

// errReadCut is a read from a store that ended before the object did: the connection broke,
// not the object, and a retry can succeed.
var errReadCut = errors.New("store read cut short")

// storeReader reads an object from a store. A transport reports a body cut short by the
// connection as io.ErrUnexpectedEOF, which io.ReadFull also makes of an object that ends
// early; storeReader turns the first into errReadCut, so that only an object that really is
// short (a clean io.EOF) counts as truncated, which is damage, not bad luck.
type storeReader struct{ r io.Reader }

func (s storeReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w (%v)", errReadCut, err)
	}
	return n, err
}

// readAttempts is how often a read that the connection broke off is tried: the stores' SDKs
// retry requests that fail, but not a body that ends early, and one such read would
// otherwise fail a whole backup or restore that reads hundreds of objects.
const readAttempts = 3

// rereadable reports whether a read failed because the connection broke mid-body.
func rereadable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && (errors.Is(err, errReadCut) || errors.Is(err, syscall.ECONNRESET))
}

// readSmall reads a whole object of at most limit bytes.
func readSmall(ctx context.Context, st providers.Store, key string, limit int64) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		b, err := readSmallOnce(ctx, st, key, limit)
		if err == nil || attempt == readAttempts || !rereadable(ctx, err) {
			return b, err
		}
	}
}

func readSmallOnce(ctx context.Context, st providers.Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(storeReader{rc}, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrFormat, key, limit)
	}
	return b, nil
}

// record writes an audit event; failing to audit fails the action.
func (r *Repo) record(ctx context.Context, e audit.Event) error {
	loc := r.store.Location()
	e.Dataset = r.dataset
	if e.Location == "" {
		e.Location = loc.Name
		e.Jurisdiction = loc.Jurisdiction
	}
	if err := r.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("audit %s of %s: %w", e.Kind, r.dataset, err)
	}
	return nil
}

// auditContext keeps recording an outcome after the operation's context was cancelled.
func auditContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

func isNotFound(err error) bool { return errors.Is(err, providers.ErrNotFound) }
