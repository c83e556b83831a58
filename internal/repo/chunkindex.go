package repo

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// packRef is a pack known to the index.
type packRef struct {
	id    packID
	epoch uint32
	// seq is the upload sequence number of a pack written by the running backup; 0 for packs
	// that were durable before it started.
	seq uint64
}

// blobLoc locates a chunk: its pack (an index into chunkIndex.packs) and its blob there.
type blobLoc struct {
	pack      uint32
	off       uint32
	sealedLen uint32
	plainLen  uint32
	flags     uint8
	// seen marks chunks the current backup or verify has met already (padding, not memory).
	seen bool
}

// chunkIndex maps chunk IDs to blobs. Memory is about 80 bytes per chunk (80 MB per TiB at the
// 1 MiB average chunk size): like restic and kopia, drflow keeps the index in memory; the
// number of entries, not the number of files, is what grows with the dataset.
type chunkIndex struct {
	mu    sync.RWMutex
	packs []packRef
	locs  map[keys.ChunkID]blobLoc
}

func newChunkIndex() *chunkIndex {
	return &chunkIndex{locs: make(map[keys.ChunkID]blobLoc)}
}

// lookup returns a chunk's location and pack.
func (x *chunkIndex) lookup(id keys.ChunkID) (blobLoc, packRef, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	loc, ok := x.locs[id]
	if !ok {
		return loc, packRef{}, false
	}
	return loc, x.packs[loc.pack], true
}

func (x *chunkIndex) has(id keys.ChunkID) bool {
	x.mu.RLock()
	_, ok := x.locs[id]
	x.mu.RUnlock()
	return ok
}

// addPack registers a pack and its blobs; chunks already known keep their first location.
func (x *chunkIndex) addPack(p packRef, entries []indexEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := uint32(len(x.packs))
	x.packs = append(x.packs, p)
	for _, e := range entries {
		if _, ok := x.locs[e.ID]; ok {
			continue
		}
		x.locs[e.ID] = blobLoc{pack: n, off: e.Offset, sealedLen: e.SealedLen, plainLen: e.PlainLen, flags: e.Flags}
	}
}

// newPack registers a pack that the running backup is writing; add its blobs with addBlob.
func (x *chunkIndex) newPack(p packRef) uint32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.packs = append(x.packs, p)
	return uint32(len(x.packs) - 1)
}

// addBlob records a blob of a pack being written (as seen), unless the chunk is known; it
// reports whether it added it.
func (x *chunkIndex) addBlob(pack uint32, e indexEntry) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.locs[e.ID]; ok {
		return false
	}
	x.locs[e.ID] = blobLoc{pack: pack, off: e.Offset, sealedLen: e.SealedLen, plainLen: e.PlainLen, flags: e.Flags, seen: true}
	return true
}

// see marks a known chunk as met and reports whether this was the first time, with its
// location.
func (x *chunkIndex) see(id keys.ChunkID) (loc blobLoc, pack packRef, first, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	loc, ok = x.locs[id]
	if !ok {
		return loc, pack, false, false
	}
	if !loc.seen {
		first = true
		l := loc
		l.seen = true
		x.locs[id] = l
	}
	return loc, x.packs[loc.pack], first, true
}

// unsee clears every seen mark.
func (x *chunkIndex) unsee() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, loc := range x.locs {
		if loc.seen {
			loc.seen = false
			x.locs[id] = loc
		}
	}
}

func (x *chunkIndex) size() (packs, chunks int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.packs), len(x.locs)
}

// listIndexes lists the pack IDs that have an index object in st.
func listIndexes(ctx context.Context, st providers.Store, dataset string, log *zap.Logger) ([]packID, error) {
	prefix := indexPrefix(dataset)
	var ids []packID
	err := st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		id, err := parsePackID(strings.TrimPrefix(oi.Key, prefix))
		if err != nil {
			log.Warn("ignoring object that is not a pack index", zap.String("key", oi.Key))
			return nil
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pack indexes of %s: %w", dataset, err)
	}
	return ids, nil
}

// loadIndex reads every pack index of the dataset, in parallel, keeping the packs sealed under
// an epoch that want accepts (nil: all) and that use accepts (nil: all). progress, if set,
// is called after each index. An index deleted after the listing belonged to a pack that GC
// collected.
func (r *Repo) loadIndex(ctx context.Context, keyFor *keyCache, want func(uint32) bool, use func(packID) bool, progress func(done, total int)) (*chunkIndex, error) {
	x := newChunkIndex()
	if err := r.loadIndexInto(ctx, x, keyFor, want, use, progress); err != nil {
		return nil, err
	}
	return x, nil
}

// loadIndexInto is loadIndex into an existing index, whose chunks keep their locations.
func (r *Repo) loadIndexInto(ctx context.Context, x *chunkIndex, keyFor *keyCache, want func(uint32) bool, use func(packID) bool, progress func(done, total int)) error {
	ids, err := listIndexes(ctx, r.store, r.dataset, r.log)
	if err != nil {
		return err
	}
	if use != nil {
		kept := ids[:0]
		for _, id := range ids {
			if use(id) {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	var mu sync.Mutex
	done := 0
	return forEach(ctx, ids, max(4, 2*r.workers), func(ctx context.Context, id packID) error {
		obj, err := readSmall(ctx, r.store, indexKey(r.dataset, id), maxIndexObject)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("load pack index: %w", err)
		}
		found := err == nil
		var epoch uint32
		if found {
			if epoch, err = parsePreamble(obj, magicIndex); err != nil {
				return fmt.Errorf("pack index %s: %w", id, err)
			}
		}
		if found && (want == nil || want(epoch)) {
			_, entries, err := openIndex(obj, id, keyFor.get)
			if err != nil {
				return err
			}
			x.addPack(packRef{id: id, epoch: epoch}, entries)
		}
		if progress != nil {
			mu.Lock()
			done++
			progress(done, len(ids))
			mu.Unlock()
		}
		return nil
	})
}
