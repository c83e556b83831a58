package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// GCOptions tune GC.
type GCOptions struct {
	// Actor is recorded in the audit event.
	Actor string
	// Grace is the least time between condemning a pack and deleting it; 0 means
	// DefaultGCGrace.
	Grace time.Duration
	// CheckpointTTL is how long the checkpoint of a run without a live lease is kept for a
	// resume; 0 means DefaultCheckpointTTL.
	CheckpointTTL time.Duration
	// Progress, if set, is called as manifests and indexes are read (Phase PhaseGC;
	// EntriesDone and EntriesTotal count them).
	Progress func(Progress)
	// Run names the collection's lease (default: a new name per call). A retried attempt of
	// the same collection (the same retention activity) passes the same Run, so it takes over
	// the lease of the attempt it replaces and removes it when done: the lease of an attempt
	// killed mid-run then does not block copies and hold placements until it expires.
	Run string
}

// GCResult describes a garbage collection. Bytes are those of stored objects (sealed,
// compressed), not plaintext.
type GCResult struct {
	// Points and Checkpoints are the manifests and live checkpoints whose chunks were marked.
	Points      int
	Checkpoints int
	// ChunksReferenced counts the distinct chunks they reference; MissingChunks those of
	// them that no pack index lists (damage that GC reports but cannot repair).
	ChunksReferenced int64
	MissingChunks    int64
	// Packs counts the packs and pack indexes found (a pack and its index count once).
	Packs int
	// PacksReferenced hold at least one referenced chunk and stay; PacksPartial of them also
	// hold UnreferencedBytes of chunks nobody references, which only a repack could free.
	PacksReferenced   int
	PacksPartial      int
	UnreferencedBytes int64
	// PacksWithoutIndex are packs with no index object (a backup crashed between the two,
	// or one is uploading right now): garbage unless an index appears.
	PacksWithoutIndex int
	// PacksCondemned were condemned by this run; PacksWaiting were condemned earlier and are
	// not deletable yet (grace period, or a live lease that has not seen them condemned);
	// PacksRescued were condemned earlier and are referenced again.
	PacksCondemned int
	PacksWaiting   int
	PacksRescued   int
	// PacksDeleted were deleted with their indexes, freeing ChunksCollected chunks.
	PacksDeleted    int
	ChunksCollected int64
	// PacksImmutable are condemned packs the store refused to delete (a retention lock, or
	// a provider hold placed after GC last read the hold records): they stay condemned.
	PacksImmutable int
	// PacksHeld are unreferenced packs that an active legal hold covers here (drflow's hold
	// records, whether or not the store enforces the hold): they are neither condemned nor
	// deleted, and leave the condemned list if they were on it. HeldBy names those holds.
	PacksHeld int
	HeldBy    []string
	// CheckpointsDeleted are checkpoints of runs that ended long ago (CheckpointTTL).
	CheckpointsDeleted int
	// LeasesLive are the backups running during GC; LeasesDeleted the dead leases removed.
	LeasesLive    int
	LeasesDeleted int
	// BytesFreed is the size of the packs, indexes and checkpoint objects deleted.
	BytesFreed int64
	Duration   time.Duration
}

// GC collects the packs that no restore point and no live checkpoint references, safely
// against concurrent backups (see doc.go, "Retention and garbage collection"). A pack is
// deleted only by a run after the one that condemned it, once the grace period has passed,
// if it is still unreferenced and every live backup lease has seen it condemned. GC reads
// every manifest and fails, deleting nothing, if one cannot be read. Run one GC of a dataset
// at a time, on the location its backups write to.
func (r *Repo) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGCGrace
	}
	if opts.CheckpointTTL <= 0 {
		opts.CheckpointTTL = DefaultCheckpointTTL
	}
	g := &collector{r: r, opts: opts, now: r.now(), keyFor: newKeyCache(ctx, r.keys, r.store, r.dataset),
		refs: map[keys.ChunkID]bool{}}
	err := g.run(ctx)
	g.res.Duration = r.now().Sub(g.now)
	res := g.res
	ev := audit.Event{Kind: audit.KindGC, Outcome: audit.OutcomeOK, Actor: opts.Actor, Bytes: res.BytesFreed,
		Chunks: res.ChunksCollected, Reason: g.summary()}
	if err != nil {
		err = fmt.Errorf("gc %s: %w", r.dataset, err)
		ev.Outcome, ev.Reason = audit.OutcomeFailed, "gc failed: "+errorClass(err)+"; "+ev.Reason
	}
	actx, cancel := auditContext(ctx)
	defer cancel()
	if aerr := r.record(actx, ev); aerr != nil {
		return res, errors.Join(err, aerr)
	}
	if err == nil {
		r.log.Info("gc done", zap.Int("packs", res.Packs), zap.Int("packs_deleted", res.PacksDeleted),
			zap.Int("packs_condemned", res.PacksCondemned), zap.Int("packs_waiting", res.PacksWaiting),
			zap.Int64("bytes_freed", res.BytesFreed), zap.Int64("unreferenced_bytes", res.UnreferencedBytes),
			zap.Duration("duration", res.Duration))
	}
	return res, err
}

// collector is the state of one GC run.
type collector struct {
	r      *Repo
	opts   GCOptions
	now    time.Time
	keyFor *keyCache
	res    GCResult

	leases []lease
	live   map[string]bool // runs with a live lease
	holds  *holdCheck      // the active legal holds here

	mu   sync.Mutex
	refs map[keys.ChunkID]bool // referenced chunks; true once an index lists them

	progressDone, progressTotal int64
}

func (g *collector) summary() string {
	s := g.res
	held := fmt.Sprintf("%d held", s.PacksHeld)
	if len(s.HeldBy) > 0 {
		held += " by " + holds.Reason(s.HeldBy)
	}
	return fmt.Sprintf("%d points and %d checkpoints marked; %d packs: %d referenced (%d partly, %d unreferenced bytes), "+
		"%d deleted, %d newly condemned, %d waiting, %d rescued, %d immutable, %s; %d checkpoints and %d leases removed",
		s.Points, s.Checkpoints, s.Packs, s.PacksReferenced, s.PacksPartial, s.UnreferencedBytes,
		s.PacksDeleted, s.PacksCondemned, s.PacksWaiting, s.PacksRescued, s.PacksImmutable, held, s.CheckpointsDeleted, s.LeasesDeleted)
}

func (g *collector) progress(done int64) {
	if g.opts.Progress == nil {
		return
	}
	g.mu.Lock()
	g.progressDone += done
	p := Progress{Phase: PhaseGC, BytesTotal: -1, EntriesDone: g.progressDone, EntriesTotal: g.progressTotal}
	g.mu.Unlock()
	g.opts.Progress(p)
}

// runState is one checkpoint run found under checkpoints/.
type runState struct {
	objects  []providers.ObjectInfo
	hasState bool
	newest   time.Time // the newest object's modification time (store clock)
}

// packState is what GC knows of one pack.
type packState struct {
	hasPack, hasIndex bool
	packSize, idxSize int64
	blobs             int
	sealedBytes       int64 // of all its blobs
	refs              []blobRef
	// keeps counts the referenced chunks whose copy GC keeps in this pack; keptBytes their
	// sealed size. A pack that keeps none is garbage.
	keeps     int
	keptBytes int64
}

// blobRef is a referenced chunk in a pack.
type blobRef struct {
	id        keys.ChunkID
	sealedLen uint32
}

//nolint:gocyclo // GC's phases in order (mark, condemn, grace, sweep), each audited
func (g *collector) run(ctx context.Context) error {
	r := g.r
	// GC holds a lease of its own while it runs, so that a copy into this store, or a hold
	// placement, can tell whether a GC that may not have seen its lease is still running.
	run := g.opts.Run
	if run == "" {
		var err error
		if run, err = newPointID(g.now); err != nil {
			return err
		}
	} else if err := validateName("gc run", run); err != nil {
		return err
	}
	own, err := r.acquireLease(ctx, gcLeasePrefix+run)
	if err != nil {
		return err
	}
	defer own.release(ctx)
	// Leases first: a backup that finishes after this read wrote its manifest before it
	// deleted its lease, so the marking below sees that manifest.
	if err := g.readLeases(ctx, own.l.Run); err != nil {
		return err
	}
	// Then the hold records; the sweep reads them again before it condemns or deletes.
	if g.holds, err = readHoldCheck(ctx, r.store, r.dataset); err != nil {
		return err
	}
	listNames, badLists, condemned, err := r.readCondemned(ctx)
	if err != nil {
		return err
	}
	runs, err := g.listRuns(ctx)
	if err != nil {
		return err
	}
	points, err := r.Points(ctx)
	if err != nil {
		return err
	}
	packs, err := g.listPacks(ctx)
	if err != nil {
		return err
	}
	g.progressTotal = int64(len(points) + len(runs) + len(packs))

	// Mark.
	if err := g.markPoints(ctx, points); err != nil {
		return err
	}
	orphans, err := g.markCheckpoints(ctx, runs)
	if err != nil {
		return err
	}
	g.res.ChunksReferenced = int64(len(g.refs))
	if err := g.scanIndexes(ctx, packs); err != nil {
		return err
	}
	g.chooseCopies(packs, condemned)
	for _, found := range g.refs {
		if !found {
			g.res.MissingChunks++
		}
	}
	if g.res.MissingChunks > 0 {
		r.log.Error("restore points reference chunks that no pack index lists", zap.Int64("chunks", g.res.MissingChunks))
	}
	if err := g.sweep(ctx, packs, condemned, append(listNames, badLists...)); err != nil {
		return err
	}
	if err := g.deleteOrphans(ctx, orphans, runs); err != nil {
		return err
	}
	return g.deleteDeadLeases(ctx)
}

// readLeases reads the other runs' leases and notes the live ones.
func (g *collector) readLeases(ctx context.Context, own string) error {
	leases, err := g.r.readLeases(ctx)
	if err != nil {
		return err
	}
	g.live = map[string]bool{}
	for _, l := range leases {
		if l.Run == own {
			continue
		}
		g.leases = append(g.leases, l)
		if l.live(g.now, g.r.leaseTTL) {
			g.live[l.Run] = true
			g.res.LeasesLive++
		}
	}
	return nil
}

// sweep condemns, deletes and keeps packs, then replaces the condemned lists it read (old).
// Order matters: doomed packs go first (index, then pack), then the new list is written,
// then the old lists are deleted. A backup that reads the lists before the old ones are gone
// keeps away from every doomed pack; one that reads them after finds no doomed pack left to
// deduplicate against.
func (g *collector) sweep(ctx context.Context, packs map[packID]*packState, condemned map[packID]condemnedPack, old []string) error {
	r := g.r
	name, err := newPointID(g.now)
	if err != nil {
		return err
	}
	// Holds recorded while GC marked: nothing they cover is condemned or deleted.
	if err := g.holds.refresh(ctx); err != nil {
		return err
	}
	next := &condemnedList{Format: formatVersion, Dataset: r.dataset, Created: g.now}
	for id, ps := range packs {
		c, listed, err := g.sweepPack(ctx, id, ps, condemned)
		if err != nil {
			return err
		}
		if listed {
			c.Lists = append(c.Lists, name)
			next.Packs = append(next.Packs, c)
		}
	}
	if len(next.Packs) > 0 {
		sort.Slice(next.Packs, func(i, j int) bool { return next.Packs[i].ID < next.Packs[j].ID })
		if err := r.writeCondemned(ctx, name, next); err != nil {
			return err
		}
	}
	for _, n := range old {
		if err := r.store.Delete(ctx, condemnedKey(r.dataset, n)); err != nil && !isNotFound(err) {
			r.log.Warn("could not delete a replaced condemned list", zap.String("list", n), zap.Error(err))
		}
	}
	return nil
}

// sweepPack decides one pack's fate and returns its entry for the new condemned list, if it
// goes there.
func (g *collector) sweepPack(ctx context.Context, id packID, ps *packState, condemned map[packID]condemnedPack) (condemnedPack, bool, error) {
	c, wasCondemned := condemned[id]
	switch {
	case ps.keeps > 0:
		g.res.PacksReferenced++
		if ps.keeps < ps.blobs {
			g.res.PacksPartial++
			g.res.UnreferencedBytes += ps.sealedBytes - ps.keptBytes
		}
		if !ps.hasPack {
			g.r.log.Error("referenced pack is missing", zap.String("pack", id.String()))
		}
		if wasCondemned {
			g.res.PacksRescued++
		}
		return c, false, nil
	case g.held(id):
		// Like a rescued pack, a held one leaves the list: backups may use it again, and once
		// the hold is released a later run condemns it afresh if nothing references it.
		return c, false, nil
	case wasCondemned && g.deletable(c):
		out, err := g.deletePack(ctx, id, ps)
		if err != nil || out != packImmutable {
			return c, false, err
		}
		g.res.PacksImmutable++
	case wasCondemned:
		g.res.PacksWaiting++
	default:
		g.res.PacksCondemned++
		c = condemnedPack{ID: id.String(), Since: g.now}
	}
	return c, true, nil
}

// held reports whether an active hold covers the pack or its index (counting it as held).
func (g *collector) held(id packID) bool {
	names := g.holds.objects(packKey(g.r.dataset, id), indexKey(g.r.dataset, id))
	if len(names) == 0 {
		return false
	}
	g.res.PacksHeld++
	g.res.HeldBy = sortedNames(append(g.res.HeldBy, names...))
	return true
}

// What deletePack did with a pack.
type packOutcome int

const (
	packDeleted   packOutcome = iota
	packHeld                  // an active hold covers it: kept
	packImmutable             // the store refused: it stays condemned
)

// deletePack deletes a condemned pack's index, then the pack. Right before each deletion it
// checks the hold records again, so that a hold recorded since the sweep began keeps the
// pack; a store that refuses (a retention lock, or a provider hold set meanwhile) keeps it
// too. Neither is an error.
func (g *collector) deletePack(ctx context.Context, id packID, ps *packState) (packOutcome, error) {
	r := g.r
	pk, ik := packKey(r.dataset, id), indexKey(r.dataset, id)
	for _, obj := range []struct {
		has  bool
		key  string
		size int64
	}{{ps.hasIndex, ik, ps.idxSize}, {ps.hasPack, pk, ps.packSize}} {
		if !obj.has {
			continue
		}
		if err := g.holds.refresh(ctx); err != nil {
			return 0, err
		}
		if g.held(id) {
			return packHeld, nil
		}
		err := r.store.Delete(ctx, obj.key)
		switch {
		case errors.Is(err, providers.ErrImmutable):
			r.log.Warn("store refused to delete a condemned pack", zap.String("pack", id.String()))
			return packImmutable, nil
		case err != nil && !isNotFound(err):
			return 0, fmt.Errorf("delete pack %s: %w", id, err)
		case err == nil:
			g.res.BytesFreed += obj.size
		}
	}
	g.res.PacksDeleted++
	g.res.ChunksCollected += int64(ps.blobs)
	return packDeleted, nil
}

// deleteOrphans deletes the checkpoints of runs that ended long ago, unless the run took a
// lease since GC read the leases (it is being resumed).
func (g *collector) deleteOrphans(ctx context.Context, orphans []string, runs map[string]*runState) error {
	r := g.r
	for _, run := range orphans {
		if l, err := r.readLease(ctx, run); err != nil {
			return err
		} else if l != nil && l.live(g.now, r.leaseTTL) {
			continue
		}
		if err := r.deleteRun(ctx, run); err != nil {
			return err
		}
		g.res.CheckpointsDeleted++
		for _, oi := range runs[run].objects {
			g.res.BytesFreed += oi.Size
		}
	}
	return nil
}

// deleteDeadLeases removes leases that were dead when GC started and still are.
func (g *collector) deleteDeadLeases(ctx context.Context) error {
	r := g.r
	for _, l := range g.leases {
		if g.live[l.Run] {
			continue
		}
		now, err := r.readLease(ctx, l.Run)
		if err != nil {
			return err
		}
		if now == nil || now.live(g.now, r.leaseTTL) {
			continue
		}
		if err := r.store.Delete(ctx, leaseKey(r.dataset, l.Run)); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete dead lease %s: %w", l.Run, err)
		}
		g.res.LeasesDeleted++
	}
	return nil
}

// deletable reports whether a condemned pack may go now: its grace period has passed and every
// live backup has seen it condemned (so none deduplicates against it).
func (g *collector) deletable(c condemnedPack) bool {
	if g.now.Sub(c.Since) < g.opts.Grace {
		return false
	}
	for _, l := range g.leases {
		if g.live[l.Run] && !l.hasSeen(c.Lists) {
			return false
		}
	}
	return true
}

// listRuns groups the objects under checkpoints/ by run.
func (g *collector) listRuns(ctx context.Context) (map[string]*runState, error) {
	prefix := checkpointsPrefix(g.r.dataset)
	runs := map[string]*runState{}
	err := g.r.store.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		run, rest, ok := strings.Cut(strings.TrimPrefix(oi.Key, prefix), "/")
		if !ok {
			return nil
		}
		rs := runs[run]
		if rs == nil {
			rs = &runState{}
			runs[run] = rs
		}
		rs.objects = append(rs.objects, oi)
		rs.hasState = rs.hasState || rest == "state"
		if oi.ModTime.After(rs.newest) {
			rs.newest = oi.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints of %s: %w", g.r.dataset, err)
	}
	return runs, nil
}

// listPacks lists packs/ and index/.
func (g *collector) listPacks(ctx context.Context) (map[packID]*packState, error) {
	r := g.r
	packs := map[packID]*packState{}
	get := func(id packID) *packState {
		ps := packs[id]
		if ps == nil {
			ps = &packState{}
			packs[id] = ps
		}
		return ps
	}
	prefix := packsPrefix(r.dataset)
	err := r.store.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, prefix)
		id, err := parsePackID(rest[strings.LastIndexByte(rest, '/')+1:])
		if err != nil || packKey(r.dataset, id) != oi.Key {
			r.log.Warn("ignoring object that is not a pack", zap.String("key", oi.Key))
			return nil
		}
		ps := get(id)
		ps.hasPack, ps.packSize = true, oi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs of %s: %w", r.dataset, err)
	}
	prefix = indexPrefix(r.dataset)
	err = r.store.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		id, err := parsePackID(strings.TrimPrefix(oi.Key, prefix))
		if err != nil {
			return nil // listIndexes warns about it
		}
		ps := get(id)
		ps.hasIndex, ps.idxSize = true, oi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pack indexes of %s: %w", r.dataset, err)
	}
	for _, ps := range packs {
		if ps.hasPack && !ps.hasIndex {
			g.res.PacksWithoutIndex++
		}
	}
	g.res.Packs = len(packs)
	return packs, nil
}

// markPoints adds the chunks of every manifest to refs.
func (g *collector) markPoints(ctx context.Context, points []PointInfo) error {
	var marked sync.Mutex
	return forEach(ctx, points, max(2, g.r.workers), func(ctx context.Context, p PointInfo) error {
		ok, err := g.markManifest(ctx, p.ID)
		if err != nil {
			return err
		}
		if ok {
			marked.Lock()
			g.res.Points++
			marked.Unlock()
		}
		g.progress(1)
		return nil
	})
}

// markManifest marks one manifest's chunks; false if it was deleted meanwhile.
func (g *collector) markManifest(ctx context.Context, point string) (bool, error) {
	ms, closeFn, err := g.r.openManifest(ctx, point, 1)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark restore point %s: %w", point, err)
	}
	defer closeFn()
	var ev event
	var batch []keys.ChunkID
	for {
		err := ms.next(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("mark restore point %s: %w", point, err)
		}
		if ev.typ == recChunks {
			for _, ref := range ev.refs {
				batch = append(batch, ref.ID)
			}
			if len(batch) >= 4096 {
				g.mark(batch)
				batch = batch[:0]
			}
		}
	}
	g.mark(batch)
	return true, nil
}

func (g *collector) mark(ids []keys.ChunkID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if _, ok := g.refs[id]; !ok {
			g.refs[id] = false
		}
	}
}

// markCheckpoints marks the chunks of every checkpoint that a resume may still use, and
// returns the runs whose checkpoints are orphans: no live lease, and older than
// CheckpointTTL.
func (g *collector) markCheckpoints(ctx context.Context, runs map[string]*runState) ([]string, error) {
	var orphans []string
	dec, err := newFrameDecoder(1)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	for run, rs := range runs {
		g.progress(1)
		var cp *checkpoint
		if rs.hasState && validateName("run id", run) == nil {
			cp, err = g.r.loadCheckpoint(ctx, run, g.keyFor)
			switch {
			case errors.Is(err, ErrFormat), errors.Is(err, keys.ErrIntegrity):
				cp = nil // a resume would discard it too
			case err != nil:
				return nil, err
			}
		}
		updated := rs.newest
		if cp != nil {
			updated = cp.Updated
		}
		if !g.live[run] && g.now.Sub(updated) >= g.opts.CheckpointTTL {
			orphans = append(orphans, run)
			continue
		}
		if cp == nil {
			continue // parts without state: a resume cannot use them
		}
		ok, err := g.markCheckpoint(ctx, cp, dec)
		if err != nil {
			return nil, err
		}
		if ok {
			g.res.Checkpoints++
		}
	}
	return orphans, nil
}

// markCheckpoint marks the chunks of a checkpoint's frame parts up to its boundary. A part
// that is missing or does not open belongs to a run that is rewriting it (its lease protects
// what it references) or to a checkpoint that a resume would discard: it is skipped.
func (g *collector) markCheckpoint(ctx context.Context, cp *checkpoint, dec *zstd.Decoder) (bool, error) {
	dk, err := g.keyFor.get(cp.Epoch)
	if err != nil {
		return false, fmt.Errorf("checkpoint %s: %w", cp.RunID, err)
	}
	base := frameBase(appendPreamble(nil, magicManifest, cp.Epoch), g.r.dataset, cp.PointID)
	var d recordDecoder
	var out []byte
	var ev event
	var batch []keys.ChunkID
	for i := uint32(1); i <= cp.Boundary.Frame; i++ {
		if i == cp.Boundary.Frame && cp.Boundary.Offset == 0 {
			// The successor starts at the beginning of this frame, which need not exist yet:
			// the resume reads only the frames before it (backup.resume does the same).
			break
		}
		wire, err := readSmall(ctx, g.r.store, framePartKey(g.r.dataset, cp.RunID, i), maxFramePlain+frameSlack+4)
		if isNotFound(err) || errors.Is(err, ErrFormat) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("checkpoint %s frame %d: %w", cp.RunID, i, err)
		}
		plain, err := openPart(wire, dk, dec, base, i, &out)
		if err != nil {
			return false, nil
		}
		d.setFrame(plain, false)
		for {
			err := d.next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				return false, nil
			}
			if ev.typ == recChunks {
				for _, ref := range ev.refs {
					batch = append(batch, ref.ID)
				}
			}
		}
	}
	g.mark(batch)
	return true, nil
}

// scanIndexes reads every pack index and counts, per pack, the blobs that the marked chunks
// use; it also records which marked chunks an index lists.
func (g *collector) scanIndexes(ctx context.Context, packs map[packID]*packState) error {
	r := g.r
	next := make(chan packID)
	eg, gctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		defer close(next)
		for id, ps := range packs {
			if !ps.hasIndex {
				g.progress(1)
				continue
			}
			select {
			case next <- id:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range max(4, 2*r.workers) {
		eg.Go(func() error {
			for id := range next {
				obj, err := readSmall(gctx, r.store, indexKey(r.dataset, id), maxIndexObject)
				if err != nil && !isNotFound(err) {
					return fmt.Errorf("read pack index: %w", err)
				}
				var entries []indexEntry
				if err == nil {
					if _, entries, err = openIndex(obj, id, g.keyFor.get); err != nil {
						return err
					}
				}
				g.mu.Lock()
				ps := packs[id]
				ps.hasIndex = err == nil
				ps.blobs = len(entries)
				for _, e := range entries {
					ps.sealedBytes += int64(e.SealedLen)
					if _, ok := g.refs[e.ID]; ok {
						g.refs[e.ID] = true
						ps.refs = append(ps.refs, blobRef{id: e.ID, sealedLen: e.SealedLen})
					}
				}
				g.mu.Unlock()
				g.progress(1)
			}
			return nil
		})
	}
	return eg.Wait()
}

// chooseCopies picks, for every referenced chunk, the one pack whose copy is kept: a pack
// that a legal hold covers if there is one (it stays anyway, so its duplicates elsewhere can
// go), else a pack that is not condemned (backups that wrote a second copy kept away from the
// condemned one), so that a condemned pack holding only duplicates can still go; then one
// whose pack object exists. Ties go to the lowest pack ID, so that every run chooses alike.
func (g *collector) chooseCopies(packs map[packID]*packState, condemned map[packID]condemnedPack) {
	ids := make([]packID, 0, len(packs))
	held := map[packID]bool{}
	for id, ps := range packs {
		ids = append(ids, id)
		held[id] = ps.hasPack && len(g.holds.objects(packKey(g.r.dataset, id), indexKey(g.r.dataset, id))) > 0
	}
	sort.Slice(ids, func(i, j int) bool {
		if hi, hj := held[ids[i]], held[ids[j]]; hi != hj {
			return hi
		}
		_, ci := condemned[ids[i]]
		_, cj := condemned[ids[j]]
		if ci != cj {
			return !ci
		}
		if hi, hj := packs[ids[i]].hasPack, packs[ids[j]].hasPack; hi != hj {
			return hi
		}
		return bytes.Compare(ids[i][:], ids[j][:]) < 0
	})
	kept := make(map[keys.ChunkID]bool, len(g.refs))
	for _, id := range ids {
		ps := packs[id]
		for _, b := range ps.refs {
			if !kept[b.id] {
				kept[b.id] = true
				ps.keeps++
				ps.keptBytes += int64(b.sealedLen)
			}
		}
		ps.refs = nil
	}
}
