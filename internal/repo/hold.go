package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// holdLeasePrefix names the lease that CoverPoint holds while it lists and covers a point.
const holdLeasePrefix = "hold-"

// PointObjects lists the store keys of every object that restore point pointID needs in this
// repository's store, sorted: its manifest, every pack holding a chunk the manifest
// references with the pack's index (every copy: a chunk may sit in several packs until GC
// collects the duplicates), and every wrapped key object of the dataset. The manifest is
// sealed, so this needs the dataset's data keys, as Verify does; since Copy keeps every
// object's name, a Repo opened on a replica's store with the home keys lists the replica's
// objects. A missing point is providers.ErrNotFound.
//
// To record a legal hold's coverage while a GC may run, use CoverPoint.
func (r *Repo) PointObjects(ctx context.Context, pointID string) ([]string, error) {
	refs, err := r.pointChunks(ctx, pointID)
	if err != nil {
		return nil, err
	}
	objects, err := r.packsHolding(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("objects of restore point %s of %s: %w", pointID, r.dataset, err)
	}
	objects = append(objects, pointKey(r.dataset, pointID))
	err = r.store.List(ctx, keys.KeysPrefix(r.dataset), func(oi providers.ObjectInfo) error {
		objects = append(objects, oi.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objects of restore point %s of %s: list wrapped keys: %w", pointID, r.dataset, err)
	}
	sort.Strings(objects)
	return slices.Compact(objects), nil
}

// pointChunks reads a manifest and returns the set of chunks it references.
func (r *Repo) pointChunks(ctx context.Context, pointID string) (map[keys.ChunkID]bool, error) {
	ms, closeFn, err := r.openManifest(ctx, pointID, 1)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	refs := map[keys.ChunkID]bool{}
	var ev event
	for {
		err := ms.next(&ev)
		if err == io.EOF {
			return refs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read restore point %s of %s: %w", pointID, r.dataset, err)
		}
		if ev.typ == recChunks {
			for _, ref := range ev.refs {
				refs[ref.ID] = true
			}
		}
	}
}

// packsHolding reads every pack index and returns the keys of the packs (those that exist)
// and indexes that hold any of refs.
func (r *Repo) packsHolding(ctx context.Context, refs map[keys.ChunkID]bool) ([]string, error) {
	ids, err := listIndexes(ctx, r.store, r.dataset, r.log)
	if err != nil {
		return nil, err
	}
	keyFor := newKeyCache(ctx, r.keys, r.store, r.dataset)
	var mu sync.Mutex
	var holding []packID
	err = forEach(ctx, ids, max(4, 2*r.workers), func(ctx context.Context, id packID) error {
		obj, err := readSmall(ctx, r.store, indexKey(r.dataset, id), maxIndexObject)
		if isNotFound(err) {
			return nil // collected by GC after the listing
		}
		if err != nil {
			return fmt.Errorf("read pack index: %w", err)
		}
		_, entries, err := openIndex(obj, id, keyFor.get)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(entries, func(e indexEntry) bool { return refs[e.ID] }) {
			mu.Lock()
			holding = append(holding, id)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Packs are listed after their indexes were read: GC deletes the index first, so a pack
	// listed here next to an index read above is the pack that index describes.
	packs, err := listKeys(ctx, r.store, packsPrefix(r.dataset))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range holding {
		out = append(out, indexKey(r.dataset, id))
		if pk := packKey(r.dataset, id); packs[pk] {
			out = append(out, pk)
		} else {
			r.log.Warn("a restore point's pack is missing", zap.String("pack", id.String()))
		}
	}
	return out, nil
}

// CatalogObjects lists the store keys of restore point pointID of dataset in st, a
// metadata-only location: its catalog entry. A missing entry is providers.ErrNotFound.
func CatalogObjects(ctx context.Context, st providers.Store, dataset, pointID string) ([]string, error) {
	if err := validateName("dataset", dataset); err != nil {
		return nil, fmt.Errorf("catalog objects: %w", err)
	}
	if _, err := ParsePointID(pointID); err != nil {
		return nil, fmt.Errorf("catalog objects: %w", err)
	}
	key := catalogKey(dataset, pointID)
	if _, err := st.Stat(ctx, key); err != nil {
		return nil, fmt.Errorf("catalog entry of %s/%s at %s: %w", dataset, pointID, st.Location().Name, err)
	}
	return []string{key}, nil
}

// CoverPoint records in book (the hold records of this repository's store) that hold name
// covers restore point pointID, with every object PointObjects lists, and returns those
// objects and the record written ("" if all were recorded already). Set the provider holds
// after it returns.
//
// It is safe against a GC of the store as a copy is: it holds a lease that has seen no
// condemned list from before it lists anything until the coverage is recorded, so a GC that
// reads the leases meanwhile deletes no pack; and it fails with the retryable ErrGCRunning,
// recording nothing, if a GC that may have missed the lease is running. A GC that starts
// later reads the coverage and keeps every object it names.
func (r *Repo) CoverPoint(ctx context.Context, book *holds.Book, name, pointID string, now time.Time) (objects []string, record string, err error) {
	if book == nil || book.Store().Location() != r.store.Location() {
		return nil, "", fmt.Errorf("cover restore point %s: %w: the hold records must be those of the repository's store", pointID, providers.ErrInvalidArgument)
	}
	dataAsOf, err := ParsePointID(pointID)
	if err != nil {
		return nil, "", err
	}
	run, err := newPointID(r.now())
	if err != nil {
		return nil, "", err
	}
	lease, err := r.acquireLease(ctx, holdLeasePrefix+run)
	if err != nil {
		return nil, "", err
	}
	defer lease.release(ctx)
	// A GC writes its lease before it reads the others: either it sees this lease, or this
	// reading sees its lease.
	if gc, err := r.liveGC(ctx); err != nil {
		return nil, "", err
	} else if gc != "" {
		return nil, "", fmt.Errorf("cover restore point %s of %s at %s: %w (run %s)", pointID, r.dataset, r.store.Location().Name, ErrGCRunning, gc)
	}
	if objects, err = r.PointObjects(ctx, pointID); err != nil {
		return nil, "", err
	}
	if err := lease.confirm(ctx); err != nil {
		return nil, "", err
	}
	if record, err = book.Cover(ctx, name, pointID, dataAsOf, objects, now); err != nil {
		return nil, "", err
	}
	return objects, record, nil
}

// liveGC names a GC run whose lease is live, or "".
func (r *Repo) liveGC(ctx context.Context) (string, error) {
	leases, err := r.readLeases(ctx)
	if err != nil {
		return "", err
	}
	for _, l := range leases {
		if strings.HasPrefix(l.Run, gcLeasePrefix) && l.live(r.now(), r.leaseTTL) {
			return strings.TrimPrefix(l.Run, gcLeasePrefix), nil
		}
	}
	return "", nil
}

// holdCheck answers, for one dataset in one store, which active holds cover an object, from
// the hold records there. refresh re-reads them only when their listing changed, so that GC
// can check before every deletion.
type holdCheck struct {
	st      providers.Store
	dataset string
	records []string // the record keys the guard was read after
	guard   *holds.Guard
}

func readHoldCheck(ctx context.Context, st providers.Store, dataset string) (*holdCheck, error) {
	h := &holdCheck{st: st, dataset: dataset}
	if err := h.refresh(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// refresh lists the hold records and re-reads them if any appeared or went since the last
// reading. The listing comes first: a record that lands between the two is read now and
// makes the next refresh read again.
func (h *holdCheck) refresh(ctx context.Context) error {
	var recs []string
	err := h.st.List(ctx, holds.Prefix(h.dataset), func(oi providers.ObjectInfo) error {
		recs = append(recs, oi.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list legal holds of %s: %w", h.dataset, err)
	}
	if h.guard != nil && slices.Equal(recs, h.records) {
		return nil
	}
	g, err := holds.Records(h.st, h.dataset).Guard(ctx)
	if err != nil {
		return err
	}
	h.records, h.guard = recs, g
	return nil
}

// objects names the active holds that cover any of keys, sorted, or nil.
func (h *holdCheck) objects(keys ...string) []string {
	var names []string
	for _, k := range keys {
		names = append(names, h.guard.ObjectHolds(k)...)
	}
	return sortedNames(names)
}

func sortedNames(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// pointHolds names the active holds that protect restore point pt, whose object here is key:
// those whose coverage names the point or the object, and those whose order selects it while
// its coverage may not be recorded yet (a placement records the order first).
func pointHolds(g *holds.Guard, pt PointInfo, key string) []string {
	names := append(slices.Clone(g.PointHolds(pt.ID)), g.ObjectHolds(key)...)
	for _, o := range g.Active() {
		s := o.Selection
		newer := !pt.DataAsOf.Before(o.PlacedAt) || !pt.Created.IsZero() && !pt.Created.Before(o.PlacedAt)
		if s.Matches(pt.ID, pt.DataAsOf) || s.Ongoing && newer {
			names = append(names, o.Name)
		}
	}
	return sortedNames(names)
}

// protection describes what protects an object from deletion at now, or "": the named holds
// of drflow's records, a legal hold the store reports, an active retention.
func protection(names []string, info providers.ObjectInfo, now time.Time) string {
	var why []string
	switch {
	case len(names) > 0:
		why = append(why, holds.Reason(names))
	case info.LegalHold:
		why = append(why, "legal hold")
	}
	if info.Retention.Active(now) {
		why = append(why, fmt.Sprintf("%s retention until %s", info.Retention.Mode, info.Retention.Until.UTC().Format(time.RFC3339)))
	}
	return strings.Join(why, "; ")
}

// holdError refuses to overwrite or delete an object that a legal hold or a retention
// protects. It wraps providers.ErrImmutable and says only what kind of object it is, its key
// (repository keys carry no customer data) and what protects it, so that it can go into an
// audit event as it is.
type holdError struct {
	kind, key, location, why string
}

func heldError(kind, key string, loc providers.Location, why string) error {
	return &holdError{kind: kind, key: key, location: loc.Name, why: why}
}

func (e *holdError) Error() string {
	return fmt.Sprintf("%s %s at %s is under %s: %v; refusing to overwrite it", e.kind, e.key, e.location, e.why, providers.ErrImmutable)
}

func (e *holdError) Unwrap() error { return providers.ErrImmutable }

// refusal renders a refusal for an audit event: the holdError if there is one, else the
// error's class.
func refusal(err error) string {
	var he *holdError
	if errors.As(err, &he) {
		return he.Error()
	}
	return errorClass(err)
}
