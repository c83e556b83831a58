package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/semaphore"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
)

// Read-side limits: the chunks fetched ahead of the consumer hold at most readWindow bytes
// (sealed plus plaintext), and one range read covers at most maxGroupSealed bytes of a pack.
const (
	readWindow     = 32 << 20
	maxGroupSealed = 4 << 20
	maxGroupPlain  = 8 << 20
	maxGroupGap    = 64 << 10 // bytes of unrelated blobs worth reading to avoid a second request
	maxPendingOps  = 4096
)

type opKind uint8

const (
	opEntry opKind = iota + 1
	opChunk
	opEnd
)

// op is one step of a restore point in manifest order, for the consumer.
type op struct {
	kind  opKind
	entry sources.Entry
	chunk *chunkFuture
	size  int64
	hash  [32]byte
}

// chunkFuture is a chunk being fetched; done is closed once plain or err is set.
type chunkFuture struct {
	ref    chunkRef
	entry  string
	loc    blobLoc
	pack   packRef
	done   chan struct{}
	plain  *[]byte
	err    error
	weight int64 // plaintext bytes held against the read window until released
}

// fetchGroup is one range read of a pack covering one or more chunks.
type fetchGroup struct {
	pack   packRef
	off    int64
	end    int64
	plain  int64
	chunks []*chunkFuture
}

// reader streams a restore point: a planner goroutine decodes the manifest, looks up chunks
// and groups adjacent blobs into range reads; fetchers read, open, decompress and verify;
// the consumer takes ops in manifest order from ops.
type reader struct {
	r      *Repo
	ms     *manifestStream
	idx    *chunkIndex
	keyFor *keyCache
	dec    *zstd.Decoder
	window *semaphore.Weighted
	ops    chan op
	fetch  chan *fetchGroup
	// sample, if set, selects the chunks to read; entries and ends are then not emitted.
	sample func(keys.ChunkID) bool
	// errc receives the planner's error (or nil) once it is done.
	errc chan error

	manifestHash hash.Hash
	bytesRead    int64 // sealed bytes read, by the fetchers (atomic not needed: read after wait)
}

// openReader opens the manifest and loads the index. Call start to run it.
func (r *Repo) openReader(ctx context.Context, pointID string, concurrency int) (*reader, func(), error) {
	if _, err := ParsePointID(pointID); err != nil {
		return nil, nil, err
	}
	rc, err := r.store.Get(ctx, pointKey(r.dataset, pointID), providers.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("open restore point %s of %s: %w", pointID, r.dataset, err)
	}
	dec, err := newFrameDecoder(concurrency + 1)
	if err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("zstd decoder: %w", err)
	}
	cleanup := func() {
		_ = rc.Close()
		dec.Close()
	}
	h := sha256.New()
	keyFor := newKeyCache(ctx, r.keys, r.store, r.dataset)
	ms, err := openManifestStream(io.TeeReader(storeReader{rc}, h), r.dataset, pointID, dec, keyFor.get)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	idx, err := r.loadReadIndex(ctx, keyFor)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	rd := &reader{r: r, ms: ms, idx: idx, keyFor: keyFor, dec: dec, window: semaphore.NewWeighted(readWindow),
		manifestHash: h}
	return rd, cleanup, nil
}

// loadReadIndex loads every pack index for reading, condemned packs last: a chunk that has a
// copy outside them is read from that copy, which GC keeps.
func (r *Repo) loadReadIndex(ctx context.Context, keyFor *keyCache) (*chunkIndex, error) {
	condemned, _, err := r.loadCondemned(ctx)
	if err != nil {
		return nil, err
	}
	idx, err := r.loadIndex(ctx, keyFor, nil, func(id packID) bool { return !condemned[id] }, nil)
	if err != nil || len(condemned) == 0 {
		return idx, err
	}
	return idx, r.loadIndexInto(ctx, idx, keyFor, nil, func(id packID) bool { return condemned[id] }, nil)
}

// start runs planner and fetchers until the manifest is exhausted or ctx is done. The caller
// consumes ops until it is closed, then calls wait.
func (rd *reader) start(ctx context.Context, fetchers int) (wait func() error) {
	rd.ops = make(chan op, 256)
	rd.fetch = make(chan *fetchGroup, fetchers)
	rd.errc = make(chan error, 1)
	done := make(chan struct{})
	read := make([]int64, fetchers)
	for i := range fetchers {
		go func() {
			defer func() { done <- struct{}{} }()
			for g := range rd.fetch {
				read[i] += rd.fetchGroup(ctx, g)
			}
		}()
	}
	go func() {
		err := rd.plan(ctx)
		close(rd.fetch)
		close(rd.ops)
		rd.errc <- err
	}()
	return func() error {
		err := <-rd.errc
		for range fetchers {
			<-done
		}
		for _, n := range read {
			rd.bytesRead += n
		}
		return err
	}
}

// plan decodes the manifest into ops, dispatching fetch groups ahead of the ops that wait on
// them.
func (rd *reader) plan(ctx context.Context) error {
	p := planner{rd: rd, ctx: ctx}
	var (
		ev   event
		path string
	)
	for {
		err := rd.ms.next(&ev)
		if err == io.EOF {
			return p.flush()
		}
		if err != nil {
			return err
		}
		switch ev.typ {
		case recEntry:
			path = ev.entry.Path
			if rd.sample == nil {
				err = p.queue(op{kind: opEntry, entry: ev.entry})
			}
		case recEnd:
			if rd.sample == nil {
				err = p.queue(op{kind: opEnd, size: ev.size, hash: ev.hash})
			}
		case recChunks:
			for _, ref := range ev.refs {
				// A sampled verify skips chunks outside the sample, but still reports every
				// chunk that no index lists: that check costs no reads.
				if rd.sample != nil && !rd.sample(ref.ID) && rd.idx.has(ref.ID) {
					continue
				}
				if err = p.chunk(ref, path); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
}

// planner groups the chunks that plan meets into fetch groups (near ranges of one pack) and
// holds back the ops that wait on the open group until it is dispatched.
type planner struct {
	rd      *reader
	ctx     context.Context
	g       *fetchGroup // the open group, not dispatched yet
	pending []op        // ops behind the open group
}

func (p *planner) emit(o op) error {
	select {
	case p.rd.ops <- o:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// flush dispatches the open group (within the read window), then the ops behind it.
func (p *planner) flush() error {
	if g := p.g; g != nil {
		weight := (g.end - g.off) + g.plain
		if err := p.rd.window.Acquire(p.ctx, weight); err != nil {
			return err
		}
		select {
		case p.rd.fetch <- g:
		case <-p.ctx.Done():
			p.rd.window.Release(weight)
			return p.ctx.Err()
		}
		p.g = nil
	}
	for _, o := range p.pending {
		if err := p.emit(o); err != nil {
			return err
		}
	}
	clear(p.pending)
	p.pending = p.pending[:0]
	return nil
}

// queue sends o now if nothing waits, else behind the open group.
func (p *planner) queue(o op) error {
	if p.g == nil && len(p.pending) == 0 {
		return p.emit(o)
	}
	p.pending = append(p.pending, o)
	if len(p.pending) >= maxPendingOps {
		return p.flush()
	}
	return nil
}

// chunk queues the read of one chunk of the entry at path: into the open group when it is
// near the group's range in the same pack, else into a new group. A chunk that no index
// lists, or lists with another length, is an integrity error of its future.
func (p *planner) chunk(ref chunkRef, path string) error {
	f := &chunkFuture{ref: ref, entry: path, done: make(chan struct{})}
	loc, pack, ok := p.rd.idx.lookup(ref.ID)
	switch {
	case !ok:
		f.err = &IntegrityError{Entry: path, Chunk: ref.ID, Reason: "chunk is in no pack index (pack missing or never written)"}
		close(f.done)
	case loc.plainLen != ref.Len:
		f.err = &IntegrityError{Entry: path, Chunk: ref.ID, Pack: pack.id.String(),
			Reason: fmt.Sprintf("index says %d bytes, manifest %d", loc.plainLen, ref.Len)}
		close(f.done)
	default:
		f.loc, f.pack = loc, pack
		start, end := int64(loc.off), int64(loc.off)+int64(loc.sealedLen)
		if g := p.g; g != nil && (g.pack.id != pack.id || start < g.end || start-g.end > maxGroupGap ||
			end-g.off > maxGroupSealed || g.plain+int64(ref.Len) > maxGroupPlain) {
			if err := p.flush(); err != nil {
				return err
			}
		}
		if p.g == nil {
			p.g = &fetchGroup{pack: pack, off: start, end: start}
		}
		p.g.end = end
		p.g.plain += int64(ref.Len)
		f.weight = int64(ref.Len)
		p.g.chunks = append(p.g.chunks, f)
	}
	return p.queue(op{kind: opChunk, chunk: f})
}

// fetchGroup reads one range of a pack and resolves its chunks; it returns the bytes read.
//
//nolint:gocyclo // each way a pack range can fail (missing, short, collected) maps to its own integrity error
func (rd *reader) fetchGroup(ctx context.Context, g *fetchGroup) int64 {
	pool := rd.r.pool
	n := g.end - g.off
	defer rd.window.Release(n) // the sealed bytes; plaintext is released by the consumer
	fail := func(reason string, err error) {
		for _, f := range g.chunks {
			f.err = &IntegrityError{Entry: f.entry, Chunk: f.ref.ID, Pack: g.pack.id.String(), Reason: reason, Err: err}
			close(f.done)
		}
	}
	// A store that cannot be read now says nothing about the data: the error is not an
	// IntegrityError, so the read stops and can be retried.
	failRead := func(err error) {
		for _, f := range g.chunks {
			f.err = fmt.Errorf("read pack %s: %w", g.pack.id, err)
			close(f.done)
		}
	}
	buf := pool.get(int(n))
	defer pool.put(buf)
	data := (*buf)[:n]
	var got int
	for attempt := 1; ; attempt++ {
		rc, err := rd.r.store.Get(ctx, packKey(rd.r.dataset, g.pack.id), providers.GetOptions{Range: &providers.ByteRange{Offset: g.off, Length: n}})
		switch {
		case errors.Is(err, providers.ErrNotFound) && rd.collected(ctx, g.pack.id):
			// Not damage: a GC deleted a duplicate copy after this restore loaded the index.
			for _, f := range g.chunks {
				f.err = fmt.Errorf("%w: pack %s", ErrPackCollected, g.pack.id)
				close(f.done)
			}
			return 0
		case errors.Is(err, providers.ErrNotFound):
			fail("pack missing", err)
			return 0
		case errors.Is(err, providers.ErrInvalidArgument):
			fail("pack truncated", err)
			return 0
		case err != nil:
			failRead(err)
			return 0
		}
		got, err = io.ReadFull(storeReader{rc}, data)
		_ = rc.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			if attempt < readAttempts && rereadable(ctx, err) {
				continue
			}
			failRead(err)
			return int64(got)
		}
		break
	}
	// The object ended before the range did: a truncated pack. The blobs that arrived whole
	// are still checked.
	aad := make([]byte, 0, len(aadBlob)+33)
	for _, f := range g.chunks {
		off := int64(f.loc.off) - g.off
		end := off + int64(f.loc.sealedLen)
		if end > int64(got) {
			f.err = &IntegrityError{Entry: f.entry, Chunk: f.ref.ID, Pack: g.pack.id.String(),
				Reason: fmt.Sprintf("pack truncated (ends %d bytes into a %d-byte blob at offset %d)", max(0, int64(got)-off), f.loc.sealedLen, f.loc.off)}
		} else {
			f.plain, f.err = rd.openBlob(data[off:end], f, &aad)
		}
		if f.err != nil {
			rd.window.Release(f.weight)
			f.weight = 0
		}
		close(f.done)
	}
	return int64(got)
}

// collected reports whether a pack's index is gone too: GC deletes the index first, so a
// missing pack without its index was collected, not lost.
func (rd *reader) collected(ctx context.Context, id packID) bool {
	_, err := rd.r.store.Stat(ctx, indexKey(rd.r.dataset, id))
	return isNotFound(err)
}

// openBlob authenticates, decompresses and checks one blob; nothing it returns is unverified.
func (rd *reader) openBlob(sealed []byte, f *chunkFuture, aad *[]byte) (*[]byte, error) {
	pool := rd.r.pool
	bad := func(reason string, err error) error {
		return &IntegrityError{Entry: f.entry, Chunk: f.ref.ID, Pack: f.pack.id.String(), Reason: reason, Err: err}
	}
	dk, err := rd.keyFor.get(f.pack.epoch)
	if err != nil {
		return nil, err
	}
	*aad = blobAAD((*aad)[:0], f.ref.ID, f.loc.flags)
	plainLen := int(f.loc.plainLen)
	out := pool.get(plainLen)
	if f.loc.flags&flagZstd == 0 {
		p, err := dk.Open((*out)[:0], sealed, *aad)
		if err != nil {
			pool.put(out)
			return nil, bad("authentication failed", nil)
		}
		*out = p
	} else {
		tmp := pool.get(len(sealed))
		defer pool.put(tmp)
		comp, err := dk.Open((*tmp)[:0], sealed, *aad)
		if err != nil {
			pool.put(out)
			return nil, bad("authentication failed", nil)
		}
		*tmp = comp
		p, err := rd.dec.DecodeAll(comp, (*out)[:0:plainLen])
		if err != nil {
			pool.put(out)
			return nil, bad("decompress", err)
		}
		if len(p) > 0 && cap(*out) > 0 && &p[0] == &(*out)[:1][0] {
			*out = (*out)[:len(p)] // keep the buffer's full capacity for the pool
		} else {
			*out = p
		}
	}
	if len(*out) != plainLen {
		pool.put(out)
		return nil, bad(fmt.Sprintf("%d plaintext bytes, want %d", len(*out), plainLen), nil)
	}
	if dk.ChunkID(*out) != f.ref.ID {
		pool.put(out)
		return nil, bad("plaintext does not match its chunk ID", nil)
	}
	return out, nil
}

// release returns a consumed chunk's memory and window share.
func (rd *reader) release(f *chunkFuture) {
	if f.weight > 0 {
		rd.window.Release(f.weight)
		f.weight = 0
	}
	rd.r.pool.put(f.plain)
	f.plain = nil
}

// await waits for a chunk.
func await(ctx context.Context, f *chunkFuture) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain releases every op left after the consumer stopped early, so fetchers and planner
// can finish.
func (rd *reader) drain() {
	for o := range rd.ops {
		if o.kind == opChunk {
			<-o.chunk.done
			rd.release(o.chunk)
		}
	}
}

func (rd *reader) manifestSum() string { return hex.EncodeToString(rd.manifestHash.Sum(nil)) }
