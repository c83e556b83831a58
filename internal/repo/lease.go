package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/providers"
)

// Defaults of the garbage collection protocol (doc.go, "Retention and garbage collection").
const (
	// DefaultLeaseTTL is how long a backup lease lives without a refresh. Backups refresh
	// theirs every quarter of it, and give up (retryably) if they could not for half of it.
	DefaultLeaseTTL = 30 * time.Minute
	// DefaultGCGrace is the least time between condemning a pack and deleting it.
	DefaultGCGrace = time.Hour
	// DefaultCheckpointTTL is how long the checkpoint of a run that holds no live lease is
	// kept for a resume: longer than the 7 days a backup activity may be retried.
	DefaultCheckpointTTL = 8 * 24 * time.Hour
)

// ErrLeaseLapsed fails a backup whose lease went unrefreshed for so long that a garbage
// collection may have taken it for dead and deleted packs the backup deduplicated against.
// Its restore point is not written; a retry resumes from the checkpoint, re-checking every
// chunk it reuses.
var ErrLeaseLapsed = errors.New("backup lease lapsed: not refreshed in time, packs it reuses may have been collected")

// ErrGCRunning fails a copy that relies on packs condemned at its destination while a
// garbage collection there, which started before the copy's lease was written, is still
// running: it may delete them. A retry finds them condemned or gone, and copies them again.
// It fails a hold placement (CoverPoint) likewise while a GC that may have missed the
// placement's lease runs: a retry after it covers what that GC left.
var ErrGCRunning = errors.New("a garbage collection of the location started before this copy or hold placement and is still running; retry")

const (
	leaseFormat        = 1
	maxLeaseObject     = 1 << 20
	maxCondemnedObject = 256 << 20
)

// Lease names of runs other than backups: a copy into the store, a garbage collection (a
// hold placement's, hold-, is in hold.go).
const (
	copyLeasePrefix = "copy-"
	gcLeasePrefix   = "gc-"
)

func leasesPrefix(ds string) string       { return datasetPrefix(ds) + "leases/" }
func leaseKey(ds, run string) string      { return leasesPrefix(ds) + run }
func condemnedPrefix(ds string) string    { return datasetPrefix(ds) + "condemned/" }
func condemnedKey(ds, name string) string { return condemnedPrefix(ds) + name }
func isCondemnedName(name string) bool    { _, err := ParsePointID(name); return err == nil }

// lease is datasets/<ds>/leases/<run>: a running backup's (or copy's, copy-<id>, or hold
// placement's, hold-<id>) claim that GC must respect; a running GC holds one too (gc-<id>), so
// that copies and placements can tell it runs. It is
// plain JSON: it holds run IDs, times and condemned list names, nothing secret.
type lease struct {
	Format    int       `json:"format"`
	Dataset   string    `json:"dataset"`
	Run       string    `json:"run"`
	Started   time.Time `json:"started"`
	Refreshed time.Time `json:"refreshed"`
	// Seen names the condemned lists the backup read before it loaded the chunk index: it
	// deduplicates against no pack in them. A pack condemned in no list the lease has seen
	// may be in the backup's index, so GC must not delete it while the lease lives.
	Seen []string `json:"seen"`
}

// live reports whether the lease protects its backup at now.
func (l *lease) live(now time.Time, ttl time.Duration) bool { return now.Sub(l.Refreshed) < ttl }

// hasSeen reports whether the lease saw any of lists.
func (l *lease) hasSeen(lists []string) bool {
	for _, s := range l.Seen {
		for _, n := range lists {
			if s == n {
				return true
			}
		}
	}
	return false
}

// leaseHolder keeps a backup's lease: written before anything is read, refreshed by a
// goroutine, confirmed before the manifest is written and deleted at the end.
type leaseHolder struct {
	r      *Repo
	mu     sync.Mutex // serialises writes, so an old refresh never overwrites newer Seen
	l      lease
	lastOK time.Time
	maxGap time.Duration
	stop   chan struct{}
	done   chan struct{}
}

// acquireLease writes the lease of run (seeing no condemned list yet) and starts refreshing it.
func (r *Repo) acquireLease(ctx context.Context, run string) (*leaseHolder, error) {
	now := r.now()
	h := &leaseHolder{r: r, l: lease{Format: leaseFormat, Dataset: r.dataset, Run: run, Started: now, Refreshed: now},
		lastOK: now, stop: make(chan struct{}), done: make(chan struct{})}
	if err := h.write(ctx); err != nil {
		return nil, err
	}
	go h.loop(ctx)
	return h, nil
}

func (h *leaseHolder) write(ctx context.Context) error {
	b, err := json.Marshal(&h.l)
	if err != nil {
		return fmt.Errorf("encode lease: %w", err)
	}
	if _, err := h.r.store.Put(ctx, leaseKey(h.r.dataset, h.l.Run), bytes.NewReader(b), providers.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write lease %s: %w", h.l.Run, err)
	}
	return nil
}

// refresh rewrites the lease with the current time (and seen, if not nil).
func (h *leaseHolder) refresh(ctx context.Context, seen []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.r.now()
	h.l.Refreshed = now
	if seen != nil {
		h.l.Seen = seen
	}
	if err := h.write(ctx); err != nil {
		return err
	}
	h.maxGap = max(h.maxGap, now.Sub(h.lastOK))
	h.lastOK = now
	return nil
}

func (h *leaseHolder) loop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(max(h.r.leaseTTL/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := h.refresh(ctx, nil); err != nil && ctx.Err() == nil {
				h.r.log.Warn("could not refresh lease", zap.String("run", h.l.Run), zap.Error(err))
			}
		case <-h.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// confirm refreshes the lease and fails with ErrLeaseLapsed if it ever went unrefreshed for
// half its TTL: GC on a host whose clock runs ahead may have taken it for dead.
func (h *leaseHolder) confirm(ctx context.Context) error {
	if err := h.refresh(ctx, nil); err != nil {
		return err
	}
	h.mu.Lock()
	gap := h.maxGap
	h.mu.Unlock()
	if gap >= h.r.leaseTTL/2 {
		return fmt.Errorf("%w (%s without a refresh, lease TTL %s)", ErrLeaseLapsed, gap.Round(time.Second), h.r.leaseTTL)
	}
	return nil
}

// release stops refreshing and deletes the lease.
func (h *leaseHolder) release(ctx context.Context) {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := h.r.store.Delete(ctx, leaseKey(h.r.dataset, h.l.Run)); err != nil && !isNotFound(err) {
		// It dies by itself after its TTL.
		h.r.log.Warn("could not delete lease", zap.String("run", h.l.Run), zap.Error(err))
	}
}

// readLeases reads every lease of the dataset.
func (r *Repo) readLeases(ctx context.Context) ([]lease, error) {
	prefix := leasesPrefix(r.dataset)
	var runs []string
	if err := r.store.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		runs = append(runs, strings.TrimPrefix(oi.Key, prefix))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list leases of %s: %w", r.dataset, err)
	}
	var out []lease
	for _, run := range runs {
		l, err := r.readLease(ctx, run)
		if err != nil {
			return nil, err
		}
		if l != nil {
			out = append(out, *l)
		}
	}
	return out, nil
}

// readLease reads the lease of run; nil if there is none. An unreadable lease counts as
// refreshed now and as having seen nothing: it blocks every deletion until someone deletes
// it, which GC does not.
func (r *Repo) readLease(ctx context.Context, run string) (*lease, error) {
	b, err := readSmall(ctx, r.store, leaseKey(r.dataset, run), maxLeaseObject)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", run, err)
	}
	var l lease
	if err := json.Unmarshal(b, &l); err != nil || l.Format != leaseFormat || l.Run != run || l.Dataset != r.dataset {
		r.log.Warn("unreadable lease blocks pack deletion", zap.String("run", run))
		now := r.now()
		l = lease{Format: leaseFormat, Dataset: r.dataset, Run: run, Started: now, Refreshed: now}
	}
	return &l, nil
}

// condemnedList is datasets/<ds>/condemned/<name>: packs that a GC run found unreferenced,
// with when each was condemned. Plain JSON: pack IDs are random, nothing in it is secret.
// Its name is the run's time and random digits, like a restore point ID.
type condemnedList struct {
	Format  int             `json:"format"`
	Dataset string          `json:"dataset"`
	Created time.Time       `json:"created"`
	Packs   []condemnedPack `json:"packs"`
}

type condemnedPack struct {
	ID string `json:"id"`
	// Since is when the pack was first condemned; the grace period runs from it.
	Since time.Time `json:"since"`
	// Lists names every condemned list that has held the pack, this one included: a lease
	// that saw any of them deduplicates against the pack no more.
	Lists []string `json:"lists"`
}

// readCondemned reads every condemned list of the dataset. Lists that cannot be read are
// returned by name only (bad): nobody has seen them, so nothing in them is deleted.
func (r *Repo) readCondemned(ctx context.Context) (names, bad []string, packs map[packID]condemnedPack, err error) {
	prefix := condemnedPrefix(r.dataset)
	var all []string
	if err := r.store.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		all = append(all, strings.TrimPrefix(oi.Key, prefix))
		return nil
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("list condemned packs of %s: %w", r.dataset, err)
	}
	sort.Strings(all)
	packs = map[packID]condemnedPack{}
	for _, name := range all {
		list, err := r.readCondemnedList(ctx, name)
		if isNotFound(err) {
			continue // replaced by a newer list meanwhile; that one holds its packs
		}
		if errors.Is(err, ErrFormat) {
			r.log.Warn("ignoring unreadable condemned list", zap.String("list", name), zap.Error(err))
			bad = append(bad, name)
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		names = append(names, name)
		for _, p := range list.Packs {
			id, err := parsePackID(p.ID)
			if err != nil {
				continue // checked by readCondemnedList
			}
			if have, ok := packs[id]; ok {
				if have.Since.Before(p.Since) {
					p.Since = have.Since
				}
				p.Lists = mergeNames(have.Lists, p.Lists)
			}
			packs[id] = p
		}
	}
	return names, bad, packs, nil
}

func (r *Repo) readCondemnedList(ctx context.Context, name string) (*condemnedList, error) {
	if !isCondemnedName(name) {
		return nil, fmt.Errorf("%w: condemned list name %q", ErrFormat, name)
	}
	b, err := readSmall(ctx, r.store, condemnedKey(r.dataset, name), maxCondemnedObject)
	if err != nil {
		return nil, fmt.Errorf("read condemned list %s: %w", name, err)
	}
	var list condemnedList
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%w: condemned list %s: %v", ErrFormat, name, err)
	}
	if list.Format != formatVersion || list.Dataset != r.dataset {
		return nil, fmt.Errorf("%w: condemned list %s: format %d of dataset %q", ErrFormat, name, list.Format, list.Dataset)
	}
	for _, p := range list.Packs {
		if _, err := parsePackID(p.ID); err != nil {
			return nil, fmt.Errorf("%w: condemned list %s: %v", ErrFormat, name, err)
		}
	}
	return &list, nil
}

func (r *Repo) writeCondemned(ctx context.Context, name string, list *condemnedList) error {
	b, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("encode condemned list: %w", err)
	}
	if _, err := r.store.Put(ctx, condemnedKey(r.dataset, name), bytes.NewReader(b),
		providers.PutOptions{IfNotExists: true, ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write condemned list %s: %w", name, err)
	}
	return nil
}

// loadCondemned is what a backup reads before its chunk index: the condemned packs, which it
// must not deduplicate against, and the names of the lists they came from.
func (r *Repo) loadCondemned(ctx context.Context) (map[packID]bool, []string, error) {
	names, _, packs, err := r.readCondemned(ctx)
	if err != nil {
		return nil, nil, err
	}
	skip := make(map[packID]bool, len(packs))
	for id := range packs {
		skip[id] = true
	}
	if names == nil {
		names = []string{}
	}
	return skip, names, nil
}

func mergeNames(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, n := range b {
		found := false
		for _, h := range out {
			if h == n {
				found = true
				break
			}
		}
		if !found {
			out = append(out, n)
		}
	}
	return out
}
