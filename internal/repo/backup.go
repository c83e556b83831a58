package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc-v1.0.0
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
)

const (
	chunkerAlgorithm = "fastcdc-v1.0.0"
	// maxPendingFrames bounds the sealed entry frames held in memory while the packs they
	// reference are still uploading.
	maxPendingFrames = 8
	// resultProblems bounds the problems returned in a BackupResult (all are in the manifest).
	resultProblems = 1000
	// problemPoll is how many entries the walker reads between looks at Snapshot.Problems.
	problemPoll = 1024
	// reportEvery throttles Progress callbacks.
	reportEvery = 50 * time.Millisecond
)

// BackupOptions tune a backup.
type BackupOptions struct {
	// RunID names the run's checkpoint. A backup with the RunID of an interrupted one resumes
	// it: same restore point ID and DataAsOf, entries up to the checkpoint kept, packs
	// already uploaded reused. Empty: a random run ID (the run cannot be resumed).
	RunID string
	// Progress, if set, is called from one goroutine at a time.
	Progress func(Progress)
	// Actor is recorded in the audit event (a workflow ID, a user).
	Actor string
	// Description describes the source for the manifest header; it must not contain customer
	// data.
	Description string
	// ForceReread reads every file, also those unchanged since the previous restore point.
	ForceReread bool
	// RereadPercent is the share of unchanged files read anyway, chosen afresh each run
	// (0: DefaultRereadPercent; negative: none).
	RereadPercent float64
}

// BackupResult describes a written restore point.
type BackupResult struct {
	Point   PointInfo
	RunID   string
	Entries int64
	// BytesRead is what this run read from the source; BytesSkipped what a resumed run took
	// from its checkpoint without reading.
	BytesRead    int64
	BytesSkipped int64
	// FilesUnchanged and BytesUnchanged are the files (and their bytes) that had not changed
	// since the previous restore point and were not read again; SampledRereads the unchanged
	// ones read all the same (BackupOptions.RereadPercent).
	FilesUnchanged int64
	BytesUnchanged int64
	SampledRereads int64
	// BytesUploaded counts the sealed chunk bytes this run wrote to packs.
	BytesUploaded int64
	ChunksNew     int64
	ChunksReused  int64
	Totals        Totals
	// Problems lists (up to 1000 of) the entries the source could not read; ProblemCount
	// counts all of them.
	Problems     []sources.Problem
	ProblemCount int64
	// ManifestHash is the hex SHA-256 of the stored manifest object.
	ManifestHash string
	ManifestSize int64
	KeyEpoch     uint32
	// Resumed reports a run that continued a checkpoint; ResumedFrom is the checkpoint's last
	// entry path (operator information: it names a file).
	Resumed     bool
	ResumedFrom string
	Duration    time.Duration
}

// Backup reads src and writes a new restore point. See the package documentation for the
// pipeline and the checkpoint protocol.
func (r *Repo) Backup(ctx context.Context, src sources.Source, opts BackupOptions) (BackupResult, error) {
	start := r.now()
	if src == nil {
		return BackupResult{}, fmt.Errorf("backup %s: %w: nil source", r.dataset, providers.ErrInvalidArgument)
	}
	run := opts.RunID
	if run == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return BackupResult{}, fmt.Errorf("random run id: %w", err)
		}
		run = "run-" + hex.EncodeToString(b[:])
	}
	if err := validateName("run id", run); err != nil {
		return BackupResult{}, fmt.Errorf("backup %s: %w", r.dataset, err)
	}
	b := &backup{r: r, opts: opts, runID: run, keyFor: newKeyCache(ctx, r.keys, r.store, r.dataset)}
	res, err := b.execute(ctx, src)
	res.RunID = run
	res.Duration = r.now().Sub(start)
	var af *auditFailure
	if errors.As(err, &af) {
		// The restore point is written; only its audit event is missing.
		return res, fmt.Errorf("backup %s: restore point %s written, but: %w", r.dataset, res.Point.ID, af.err)
	}
	if err != nil {
		err = fmt.Errorf("backup %s: %w", r.dataset, err)
		actx, cancel := auditContext(ctx)
		defer cancel()
		ev := audit.Event{Kind: audit.KindRestorePoint, Outcome: audit.OutcomeFailed, Actor: opts.Actor,
			Point: b.pointID, KeyEpoch: res.KeyEpoch, Bytes: res.BytesUploaded, Chunks: res.ChunksNew,
			Reason: "backup failed: " + errorClass(err)}
		if aerr := r.record(actx, ev); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return res, err
	}
	return res, nil
}

// auditFailure marks an error recording the audit event of a completed action.
type auditFailure struct{ err error }

func (a *auditFailure) Error() string { return a.err.Error() }
func (a *auditFailure) Unwrap() error { return a.err }

type itemKind uint8

const (
	itemStart itemKind = iota + 1
	itemChunk
	itemEnd
	itemProblems
	// itemRef is a chunk of an unchanged file, referenced without reading it again.
	itemRef
)

// item is one step of the ordered stream from the walker to the assembler.
type item struct {
	kind     itemKind
	entry    sources.Entry
	chunk    *chunkTask
	ref      chunkRef
	size     int64
	hash     [32]byte
	problems []sources.Problem
}

// chunkTask is one chunk on its way through a worker. The worker closes done when id (and,
// unless known, sealed and flags) are set.
type chunkTask struct {
	plain  *[]byte
	n      int
	done   chan struct{}
	id     keys.ChunkID
	known  bool // already in the index when the worker looked: not sealed
	sealed *[]byte
	flags  uint8
}

// openPack is the pack the assembler is appending to, streamed to the store.
type openPack struct {
	ref     packRef
	idx     uint32 // in chunkIndex.packs
	pw      *io.PipeWriter
	size    int64
	entries []indexEntry
	indexCh chan []byte // hands the sealed index to the upload once the pack is complete
}

type packDone struct {
	seq uint64
	err error
}

// backup is the state of one Backup call. Fields below "assembler state" belong to the
// assembler goroutine while the pipeline runs, and to Backup's goroutine before and after.
type backup struct {
	r    *Repo
	opts BackupOptions
	// prev is the previous restore point's files, for not reading unchanged ones again.
	prev                           *prevFiles
	filesUnchanged, bytesUnchanged atomic.Int64
	sampledRereads                 int64
	runID                          string
	keyFor                         *keyCache
	lease                          *leaseHolder

	dk       *keys.DataKey
	idx      *chunkIndex
	enc      *zstd.Encoder
	pre      []byte
	pointID  string
	dataAsOf time.Time
	started  time.Time
	attempts int
	after    string
	resumed  bool

	bytesRead atomic.Int64 // by the walker

	// assembler state
	mw           manifestWriter
	pack         *openPack
	nextSeq      uint64
	inflight     int
	doneSeqs     map[uint64]bool
	watermark    uint64 // every pack with seq <= watermark is durable
	durableCh    chan packDone
	uploads      sync.WaitGroup
	runCtx       context.Context
	entry        sources.Entry
	entrySize    int64
	prevPath     string
	refs         []chunkRef
	refsDep      uint64
	scratch      []byte
	totals       Totals
	problems     []sources.Problem
	problemCount int64
	bytesDone    int64
	bytesSkipped int64
	uploaded     int64
	chunksNew    int64
	chunksReused int64
	checkpoints  int64
	cpPath       string // LastPath of the newest checkpoint
	lastCP       time.Time
	lastReport   time.Time
}

func (b *backup) execute(ctx context.Context, src sources.Source) (BackupResult, error) {
	r := b.r
	var res BackupResult
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.runCtx = runCtx
	b.started = r.now()
	b.attempts = 1
	b.doneSeqs = make(map[uint64]bool)
	b.durableCh = make(chan packDone, maxInflightPacks+1)
	b.lastCP = r.now()

	// The lease comes before anything is read: while it lives, GC deletes no pack that this
	// backup may deduplicate against, nor this run's checkpoint.
	lease, err := r.acquireLease(ctx, b.runID)
	if err != nil {
		return res, err
	}
	defer lease.release(ctx)
	b.lease = lease

	// An earlier attempt of this run may have written its restore point and died before it
	// reported: that point is the run's result, not a reason to write another.
	point, lastPath, cp, err := b.earlierAttempt(ctx)
	if err != nil {
		return res, err
	}
	if point != "" {
		return b.finishedEarlier(ctx, point, lastPath)
	}
	if err := b.useDataKey(ctx, cp); err != nil {
		return res, fmt.Errorf("data key: %w", err)
	}
	res.KeyEpoch = b.dk.Epoch()

	b.report(PhaseIndex, true)
	if err := b.loadPackIndex(ctx); err != nil {
		return res, err
	}
	b.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(r.workers+1),
		zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20))
	if err != nil {
		return res, fmt.Errorf("zstd encoder: %w", err)
	}
	defer b.enc.Close()

	snap, err := src.Snapshot(ctx)
	if err != nil {
		return res, fmt.Errorf("snapshot %s source: %w", src.Kind(), err)
	}
	defer snap.Close()
	if b.prev = b.openPrev(ctx); b.prev != nil {
		defer b.prev.close()
	}
	if err := b.startOrResume(ctx, cp, snap); err != nil {
		return res, err
	}

	err = b.pipeline(runCtx, snap)
	if err == nil {
		err = b.finishUploads(runCtx)
	}
	if err != nil {
		if b.pack != nil {
			b.pack.pw.CloseWithError(err) // the pack's Put fails and leaves no object
			b.pack = nil
		}
		cancel()
		b.uploads.Wait()
		return b.result(res), err
	}
	return b.finish(runCtx, src, snap, res)
}

// earlierAttempt reads what earlier attempts of this run left: the restore point one of them
// wrote (with the last path of its checkpoint), or else the checkpoint to resume from. An
// unreadable checkpoint (unknown format, failed authentication) is deleted: the run starts
// over. A checkpoint that cannot be read now (storage, revoked key) fails the attempt.
func (b *backup) earlierAttempt(ctx context.Context) (point, lastPath string, cp *checkpoint, err error) {
	r := b.r
	if point, err := r.loadRunDone(ctx, b.runID, b.keyFor); err != nil {
		return "", "", nil, err
	} else if point != "" {
		exists, err := r.pointExists(ctx, point)
		if err != nil || exists {
			return point, "", nil, err
		}
	}
	cp, err = r.loadCheckpoint(ctx, b.runID, b.keyFor)
	if err != nil && !errors.Is(err, ErrFormat) && !errors.Is(err, keys.ErrIntegrity) {
		return "", "", nil, err // unreadable now (storage, revoked key): retrying may help, or not
	}
	if err != nil {
		r.log.Warn("ignoring unreadable checkpoint; starting over", zap.String("run", b.runID), zap.Error(err))
		return "", "", nil, r.deleteRun(ctx, b.runID)
	}
	if cp == nil {
		return "", "", nil, nil
	}
	exists, err := r.pointExists(ctx, cp.PointID)
	if err != nil || exists {
		return cp.PointID, cp.LastPath, nil, err
	}
	return "", "", cp, nil
}

// useDataKey sets the data key of the run: the interrupted run's (from its checkpoint), or
// the dataset's current one.
func (b *backup) useDataKey(ctx context.Context, cp *checkpoint) error {
	r := b.r
	var err error
	if cp != nil {
		b.dk, err = b.keyFor.get(cp.Epoch)
	} else {
		b.dk, err = r.keys.Current(ctx, r.store, r.dataset)
		if err == nil && (b.dk.Dataset() != r.dataset) {
			err = fmt.Errorf("data key provider returned a key of %s", b.dk.Dataset())
		}
	}
	if err != nil {
		return err
	}
	b.keyFor.put(b.dk)
	return nil
}

// loadPackIndex loads the index of the packs of the key's epoch that this backup may
// deduplicate against. Condemned packs may be deleted by the next GC: this backup must not
// reuse their chunks. The lease then records which condemned lists it has seen.
func (b *backup) loadPackIndex(ctx context.Context) error {
	r := b.r
	condemned, seen, err := r.loadCondemned(ctx)
	if err != nil {
		return err
	}
	if err := b.lease.refresh(ctx, seen); err != nil {
		return err
	}
	epoch := b.dk.Epoch()
	b.idx, err = r.loadIndex(ctx, b.keyFor, func(e uint32) bool { return e == epoch }, func(id packID) bool { return !condemned[id] }, nil)
	if err != nil {
		return err
	}
	packs, chunks := b.idx.size()
	r.log.Debug("pack index loaded", zap.Int("packs", packs), zap.Int("chunks", chunks))
	return nil
}

// startOrResume resumes the checkpoint cp, or (without one, or when it cannot be resumed)
// starts a new restore point of snap.
func (b *backup) startOrResume(ctx context.Context, cp *checkpoint, snap sources.Snapshot) error {
	r := b.r
	if cp != nil {
		err := b.resume(ctx, cp)
		if err == nil {
			return nil
		}
		r.log.Warn("cannot resume checkpoint; starting over", zap.String("run", b.runID), zap.Error(err))
		if err := r.deleteRun(ctx, b.runID); err != nil {
			return err
		}
		b.resetFresh()
	}
	b.dataAsOf = snap.DataAsOf()
	var err error
	if b.pointID, err = newPointID(b.dataAsOf); err != nil {
		return err
	}
	b.pre = appendPreamble(nil, magicManifest, b.dk.Epoch())
	b.mw = manifestWriter{dk: b.dk, enc: b.enc, base: frameBase(b.pre, r.dataset, b.pointID), idx: 1}
	return nil
}

// openPrev opens the previous restore point to compare unchanged files against, unless the
// run rereads everything.
func (b *backup) openPrev(ctx context.Context) *prevFiles {
	if b.opts.ForceReread {
		return nil
	}
	return b.r.openPrevFiles(ctx, "")
}

// resetFresh forgets a failed resume.
func (b *backup) resetFresh() {
	b.after, b.prevPath, b.cpPath, b.resumed = "", "", "", false
	b.attempts = 1
	b.started = b.r.now()
	b.totals = Totals{}
	b.idx.unsee()
	b.problems, b.problemCount = nil, 0
	b.bytesDone, b.bytesSkipped = 0, 0
}

func (r *Repo) pointExists(ctx context.Context, id string) (bool, error) {
	_, err := r.store.Stat(ctx, pointKey(r.dataset, id))
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat restore point %s: %w", id, err)
	}
	return true, nil
}

// pipeline runs walker, workers and assembler until the walk is done.
func (b *backup) pipeline(ctx context.Context, snap sources.Snapshot) error {
	workers := b.r.workers
	workCh := make(chan *chunkTask, workers)
	orderCh := make(chan item, 4*workers+16)
	// tokens bound the chunks between walker and assembler, and so the memory they hold.
	tokens := make(chan struct{}, 4*workers+4)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return b.walk(gctx, snap, orderCh, workCh, tokens) })
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(workCh)
		}()
	}
	g.Go(func() error { return b.assemble(gctx, orderCh, tokens) })
	err := g.Wait()
	wg.Wait() // the walker closed workCh on its way out
	return err
}

//nolint:gocyclo // one case per entry type and unchanged-file outcome; to split with the backup pipeline's own types
func (b *backup) walk(ctx context.Context, snap sources.Snapshot, orderCh chan<- item, workCh chan<- *chunkTask, tokens chan struct{}) error {
	defer close(workCh)
	defer close(orderCh)
	send := func(it item) error {
		select {
		case orderCh <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	scan := make([]byte, 2*maxChunk)
	ck, err := chunkers.NewChunkerBuffer(chunkerAlgorithm, bytes.NewReader(nil), &chunkers.ChunkerOpts{
		MinSize: minChunk, NormalSize: avgChunk, MaxSize: maxChunk, Key: gearKey(b.dk),
	}, scan)
	if err != nil {
		return fmt.Errorf("chunker: %w", err)
	}
	hasher := blake3.New()
	sentProblems, entries := 0, 0
	forwardProblems := func() error {
		ps := snap.Problems()
		if len(ps) <= sentProblems {
			return nil
		}
		fresh := append([]sources.Problem(nil), ps[sentProblems:]...)
		sentProblems = len(ps)
		return send(item{kind: itemProblems, problems: fresh})
	}

	err = snap.Walk(ctx, b.after, func(e sources.Entry, rd io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if entries++; entries%problemPoll == 0 {
			if err := forwardProblems(); err != nil {
				return err
			}
		}
		if err := send(item{kind: itemStart, entry: e}); err != nil {
			return err
		}
		var size int64
		var sum [32]byte
		if e.Type == sources.TypeFile {
			if pf := b.unchanged(e); pf != nil && rd != nil {
				for _, ref := range pf.refs {
					if err := send(item{kind: itemRef, ref: ref}); err != nil {
						return err
					}
				}
				b.filesUnchanged.Add(1)
				b.bytesUnchanged.Add(pf.size)
				return send(item{kind: itemEnd, size: pf.size, hash: pf.hash})
			}
			hasher.Reset()
			if rd != nil {
				ck.Reset(rd)
				for {
					data, cerr := ck.Next()
					if cerr != nil && cerr != io.EOF {
						return fmt.Errorf("read %q: %w", e.Path, cerr)
					}
					if len(data) > 0 {
						select {
						case tokens <- struct{}{}:
						case <-ctx.Done():
							return ctx.Err()
						}
						buf := b.r.pool.get(len(data))
						*buf = append(*buf, data...)
						_, _ = hasher.Write(data)
						t := &chunkTask{plain: buf, n: len(data), done: make(chan struct{})}
						select {
						case workCh <- t:
						case <-ctx.Done():
							return ctx.Err()
						}
						if err := send(item{kind: itemChunk, chunk: t}); err != nil {
							return err
						}
						size += int64(len(data))
						b.bytesRead.Add(int64(len(data)))
					}
					if cerr == io.EOF {
						break
					}
				}
			}
			hasher.Sum(sum[:0])
		}
		return send(item{kind: itemEnd, size: size, hash: sum})
	})
	if err != nil {
		return fmt.Errorf("walk: %w", err)
	}
	return forwardProblems()
}

// work hashes, compresses and seals chunks.
func (b *backup) work(workCh <-chan *chunkTask) {
	aad := make([]byte, 0, len(aadBlob)+33)
	for t := range workCh {
		b.seal(t, &aad)
		close(t.done)
	}
}

func (b *backup) seal(t *chunkTask, aad *[]byte) {
	pool := b.r.pool
	plain := *t.plain
	t.id = b.dk.ChunkID(plain)
	if b.idx.has(t.id) {
		t.known = true
		pool.put(t.plain)
		t.plain = nil
		return
	}
	n := len(plain)
	data, flags := plain, uint8(0)
	comp := pool.get(n + n>>7 + 1024)
	c := (*comp)[:0]
	if !looksIncompressible(b.enc, plain, c) {
		c = b.enc.EncodeAll(plain, c)
		// Store raw what compression would not shrink by at least 1/32: not worth decompressing.
		if len(c) < n-n/32 {
			data, flags = c, flagZstd
		}
	}
	sealed := pool.get(len(data) + b.dk.Overhead())
	*aad = blobAAD((*aad)[:0], t.id, flags)
	*sealed = b.dk.Seal((*sealed)[:0], data, *aad)
	*comp = c
	pool.put(comp)
	pool.put(t.plain)
	t.plain = nil
	t.sealed, t.flags = sealed, flags
}

// Compressing a chunk costs more than anything else a backup does to it, and is wasted on
// data that is already compressed (media, archives, encrypted files). A chunk is stored raw
// without trying when three samples of it (start, middle, three quarters in) each fail to
// shrink by 1/32, the same bar as for the whole chunk; a chunk with any compressible sample
// is compressed whole and judged on the result.
const (
	sampleLen     = 8 << 10
	sampleMinSize = 4 * sampleLen
)

// looksIncompressible compresses the samples of plain into scratch (which it may grow; its
// content is left undefined) and reports whether none of them shrank enough.
func looksIncompressible(enc *zstd.Encoder, plain, scratch []byte) bool {
	n := len(plain)
	if n < sampleMinSize {
		return false
	}
	for _, off := range [...]int{0, n/2 - sampleLen/2, n*3/4 - sampleLen/2} {
		sample := plain[off : off+sampleLen]
		if c := enc.EncodeAll(sample, scratch[:0]); len(c) < sampleLen-sampleLen/32 {
			return false
		}
	}
	return true
}

func (b *backup) assemble(ctx context.Context, orderCh <-chan item, tokens chan struct{}) error {
	for {
		select {
		case it, ok := <-orderCh:
			if !ok {
				return nil
			}
			if err := b.handle(ctx, it, tokens); err != nil {
				return err
			}
		case d := <-b.durableCh:
			if err := b.onDurable(ctx, d); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *backup) handle(ctx context.Context, it item, tokens chan struct{}) error {
	switch it.kind {
	case itemStart:
		return b.startEntry(it.entry)
	case itemChunk:
		t := it.chunk
		select {
		case <-t.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-tokens
		dep, err := b.storeChunk(ctx, t)
		if err != nil {
			return err
		}
		b.addRef(chunkRef{ID: t.id, Len: uint32(t.n)}, dep)
		return nil
	case itemRef:
		loc, pack, first, ok := b.idx.see(it.ref.ID)
		if !ok {
			return fmt.Errorf("internal error: chunk %s of an unchanged file is not indexed", it.ref.ID)
		}
		if loc.plainLen != it.ref.Len {
			return fmt.Errorf("%w: chunk %s is indexed with %d bytes, the previous restore point says %d", keys.ErrIntegrity, it.ref.ID, loc.plainLen, it.ref.Len)
		}
		b.chunksReused++
		b.count(first, loc.sealedLen)
		b.addRef(it.ref, pack.seq)
		return nil
	case itemEnd:
		return b.endEntry(ctx, it.size, it.hash)
	case itemProblems:
		for _, p := range it.problems {
			b.addProblem(p)
		}
		return nil
	}
	return fmt.Errorf("internal error: item kind %d", it.kind)
}

// addRef adds a chunk reference to the open file entry; dep is the sequence number of the
// pack that must be durable before the reference is (0: durable before this run).
func (b *backup) addRef(ref chunkRef, dep uint64) {
	b.refs = append(b.refs, ref)
	b.refsDep = max(b.refsDep, dep)
	b.entrySize += int64(ref.Len)
	b.bytesDone += int64(ref.Len)
	b.totals.ChunkRefs++
	if len(b.refs) == maxRefsPerRec {
		b.flushRefs()
	}
	b.report(PhaseBackup, false)
}

func (b *backup) addProblem(p sources.Problem) {
	b.scratch = encodeProblem(b.scratch[:0], p)
	b.mw.add(recProblem, b.scratch, 0)
	b.problemCount++
	if len(b.problems) < resultProblems {
		b.problems = append(b.problems, p)
	}
}

func (b *backup) startEntry(e sources.Entry) error {
	switch e.Type {
	case sources.TypeFile, sources.TypeDir:
		e.Target = ""
	case sources.TypeSymlink:
		if len(e.Target) > maxPathLen {
			return fmt.Errorf("symlink %q: target of %d bytes is longer than %d", e.Path, len(e.Target), maxPathLen)
		}
	default:
		return fmt.Errorf("entry %q: unknown type %d", e.Path, e.Type)
	}
	if err := checkEntryPath(e.Path); err != nil {
		return fmt.Errorf("source entry: %w", err)
	}
	// Resuming relies on the walk order; a source that breaks it would make a resumed backup
	// skip or repeat entries.
	if b.prevPath != "" && sources.ComparePaths(e.Path, b.prevPath) <= 0 {
		return fmt.Errorf("source walked %q after %q: not in sources.ComparePaths order", e.Path, b.prevPath)
	}
	b.prevPath = e.Path
	b.entry = e
	b.entrySize = 0
	b.refs, b.refsDep = b.refs[:0], 0
	b.scratch = encodeEntry(b.scratch[:0], e)
	b.mw.add(recEntry, b.scratch, 0)
	return nil
}

func (b *backup) flushRefs() {
	if len(b.refs) == 0 {
		return
	}
	b.scratch = encodeRefs(b.scratch[:0], b.refs)
	b.mw.add(recChunks, b.scratch, b.refsDep)
	b.refs, b.refsDep = b.refs[:0], 0
}

func (b *backup) endEntry(ctx context.Context, size int64, hash [32]byte) error {
	if size != b.entrySize {
		return fmt.Errorf("internal error: entry %q has %d bytes in chunks, %d read", b.entry.Path, b.entrySize, size)
	}
	b.flushRefs()
	b.scratch = encodeEnd(b.scratch[:0], size, hash)
	b.mw.add(recEnd, b.scratch, 0)
	b.mw.endEntry(b.entry.Path)
	b.totals.Entries++
	switch b.entry.Type {
	case sources.TypeFile:
		b.totals.Files++
		b.totals.Bytes += size
	case sources.TypeDir:
		b.totals.Dirs++
	case sources.TypeSymlink:
		b.totals.Symlinks++
	}
	if len(b.mw.closed) > maxPendingFrames {
		if err := b.drainFrames(ctx); err != nil {
			return err
		}
	} else if b.r.checkpointEvery > 0 {
		// Runs that upload nothing new (all chunks known) checkpoint here, on time alone.
		if err := b.maybeCheckpoint(ctx, false); err != nil {
			return err
		}
	}
	b.report(PhaseBackup, false)
	return nil
}

// storeChunk appends a new chunk to the open pack or references the stored copy; it returns
// the sequence number of the pack the chunk is in (0: durable before this run).
func (b *backup) storeChunk(ctx context.Context, t *chunkTask) (uint64, error) {
	defer func() {
		b.r.pool.put(t.sealed)
		t.sealed = nil
	}()
	if loc, pack, first, ok := b.idx.see(t.id); ok {
		if loc.plainLen != uint32(t.n) {
			return 0, fmt.Errorf("%w: chunk %s is indexed with %d bytes, has %d", keys.ErrIntegrity, t.id, loc.plainLen, t.n)
		}
		b.chunksReused++
		b.count(first, loc.sealedLen)
		return pack.seq, nil
	}
	if t.known || t.sealed == nil {
		return 0, fmt.Errorf("internal error: chunk %s neither indexed nor sealed", t.id)
	}
	if err := b.ensurePack(ctx); err != nil {
		return 0, err
	}
	p := b.pack
	sealed := *t.sealed
	e := indexEntry{ID: t.id, Offset: uint32(p.size), SealedLen: uint32(len(sealed)), PlainLen: uint32(t.n), Flags: t.flags}
	if _, err := p.pw.Write(sealed); err != nil {
		return 0, fmt.Errorf("write pack %s: %w", p.ref.id, err)
	}
	b.idx.addBlob(p.idx, e)
	p.entries = append(p.entries, e)
	p.size += int64(len(sealed))
	b.chunksNew++
	b.uploaded += int64(len(sealed))
	b.count(true, e.SealedLen)
	if p.size >= int64(b.r.packTarget) || len(p.entries) >= maxPackBlobs {
		if err := b.closePack(); err != nil {
			return 0, err
		}
	}
	return p.ref.seq, nil
}

// count adds a chunk reference to the totals; distinct chunks (first) also count as stored.
func (b *backup) count(first bool, sealedLen uint32) {
	if first {
		b.totals.Chunks++
		b.totals.StoredBytes += int64(sealedLen)
	}
}

// ensurePack opens a pack upload, first waiting while maxInflightPacks are in flight.
func (b *backup) ensurePack(ctx context.Context) error {
	if b.pack != nil {
		return nil
	}
	for b.inflight >= maxInflightPacks {
		if err := b.awaitDurable(ctx); err != nil {
			return err
		}
	}
	id, err := newPackID()
	if err != nil {
		return err
	}
	b.nextSeq++
	ref := packRef{id: id, epoch: b.dk.Epoch(), seq: b.nextSeq}
	pr, pw := io.Pipe()
	p := &openPack{ref: ref, idx: b.idx.newPack(ref), pw: pw, indexCh: make(chan []byte, 1)}
	b.pack = p
	b.inflight++
	b.uploads.Add(1)
	go b.upload(p, pr)
	return nil
}

// upload streams a pack into the store, then writes its index; the pack is durable when both
// are.
func (b *backup) upload(p *openPack, pr *io.PipeReader) {
	defer b.uploads.Done()
	ctx := b.runCtx
	done := func(err error) { b.durableCh <- packDone{seq: p.ref.seq, err: err} }
	_, err := b.r.store.Put(ctx, packKey(b.r.dataset, p.ref.id), pr,
		providers.PutOptions{IfNotExists: true, ContentType: "application/octet-stream"})
	if err != nil {
		pr.CloseWithError(err)
		done(fmt.Errorf("upload pack %s: %w", p.ref.id, err))
		return
	}
	_ = pr.Close()
	var obj []byte
	select {
	case obj = <-p.indexCh:
	case <-ctx.Done():
		done(ctx.Err())
		return
	}
	if _, err := b.r.store.Put(ctx, indexKey(b.r.dataset, p.ref.id), bytes.NewReader(obj),
		providers.PutOptions{IfNotExists: true, ContentType: "application/octet-stream"}); err != nil {
		done(fmt.Errorf("write index of pack %s: %w", p.ref.id, err))
		return
	}
	done(nil)
}

// closePack ends the open pack with its trailer (the sealed index and its length) and lets
// the upload finish.
func (b *backup) closePack() error {
	p := b.pack
	b.pack = nil
	if b.r.now().Sub(b.lastCP) >= b.r.checkpointEvery {
		// A checkpoint is due: cut the entry stream here, so that the frame becomes a part
		// as soon as this pack is durable (its records reference no later pack).
		b.mw.closeFrame()
	}
	obj := sealIndex(b.dk, p.ref.id, p.entries)
	p.indexCh <- obj
	trailer := make([]byte, 0, len(obj)+4)
	trailer = append(trailer, obj...)
	trailer = binary.BigEndian.AppendUint32(trailer, uint32(len(obj)))
	if _, err := p.pw.Write(trailer); err != nil {
		return fmt.Errorf("write pack %s: %w", p.ref.id, err)
	}
	return p.pw.Close()
}

func (b *backup) awaitDurable(ctx context.Context) error {
	select {
	case d := <-b.durableCh:
		return b.onDurable(ctx, d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *backup) onDurable(ctx context.Context, d packDone) error {
	b.inflight--
	if d.err != nil {
		return d.err
	}
	b.doneSeqs[d.seq] = true
	for b.doneSeqs[b.watermark+1] {
		delete(b.doneSeqs, b.watermark+1)
		b.watermark++
	}
	return b.maybeCheckpoint(ctx, false)
}

// maybeCheckpoint uploads the entry frames whose packs are durable and records the new resume
// position, at most once per checkpointEvery unless forced.
func (b *backup) maybeCheckpoint(ctx context.Context, force bool) error {
	if !force && b.r.now().Sub(b.lastCP) < b.r.checkpointEvery {
		return nil
	}
	mw := &b.mw
	if mw.lastPath != "" && mw.lastPath != b.cpPath && mw.dep <= b.watermark && len(mw.buf) > 0 {
		mw.closeFrame() // its completed entries are durable: let them count now
	}
	n := 0
	for n < len(mw.closed) && mw.closed[n].dep <= b.watermark {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, f := range mw.closed[:n] {
		if _, err := b.r.store.Put(ctx, framePartKey(b.r.dataset, b.runID, f.idx), bytes.NewReader(f.wire), providers.PutOptions{}); err != nil {
			return fmt.Errorf("write checkpoint %s frame %d: %w", b.runID, f.idx, err)
		}
		mw.uploaded = f.idx
	}
	last := mw.closed[n-1]
	rest := copy(mw.closed, mw.closed[n:])
	clear(mw.closed[rest:])
	mw.closed = mw.closed[:rest]
	if last.lastPath == "" || last.lastPath == b.cpPath {
		return nil
	}
	now := b.r.now()
	cp := &checkpoint{
		Format: formatVersion, Dataset: b.r.dataset, RunID: b.runID, PointID: b.pointID, Epoch: b.dk.Epoch(),
		Attempts: b.attempts, DataAsOf: b.dataAsOf, Started: b.started, Updated: now,
		LastPath: last.lastPath, Boundary: last.boundary,
	}
	if err := b.r.saveCheckpoint(ctx, b.dk, cp); err != nil {
		return err
	}
	b.cpPath, b.lastCP = last.lastPath, now
	b.checkpoints++
	b.report(PhaseBackup, true)
	return nil
}

// drainFrames bounds the frames held in memory: it checkpoints what is durable and, if frames
// still wait, closes the open pack and waits for every upload.
func (b *backup) drainFrames(ctx context.Context) error {
	if err := b.maybeCheckpoint(ctx, true); err != nil {
		return err
	}
	if len(b.mw.closed) <= maxPendingFrames/2 {
		return nil
	}
	if b.pack != nil {
		if err := b.closePack(); err != nil {
			return err
		}
	}
	for b.inflight > 0 {
		if err := b.awaitDurable(ctx); err != nil {
			return err
		}
	}
	return b.maybeCheckpoint(ctx, true)
}

// finishUploads closes the last pack and waits until every pack is durable.
func (b *backup) finishUploads(ctx context.Context) error {
	if b.pack != nil {
		if err := b.closePack(); err != nil {
			return err
		}
	}
	for b.inflight > 0 {
		if err := b.awaitDurable(ctx); err != nil {
			return err
		}
	}
	b.uploads.Wait()
	return nil
}

// finish writes the manifest, removes the checkpoint and audits the restore point.
func (b *backup) finish(ctx context.Context, src sources.Source, snap sources.Snapshot, res BackupResult) (BackupResult, error) {
	r := b.r
	b.report(PhaseManifest, true)
	b.scratch = encodeFinal(b.scratch[:0], b.totals.Entries, b.problemCount)
	b.mw.add(recFinal, b.scratch, 0)
	final := b.mw.sealFinal()

	created := r.now()
	first := b.problems
	if len(first) > headerProblems {
		first = first[:headerProblems]
	}
	h := ManifestHeader{
		Format: manifestVersion, Dataset: r.dataset, PointID: b.pointID,
		DataAsOf: b.dataAsOf.UTC(), Started: b.started.UTC(), Created: created.UTC(), Attempts: b.attempts,
		SourceKind: src.Kind(), SourceDescription: b.opts.Description, KeyEpoch: b.dk.Epoch(), KEKID: r.kekID(),
		Chunker:  fmt.Sprintf("%s min=%d avg=%d max=%d", chunkerName, minChunk, avgChunk, maxChunk),
		FileHash: fileHashName, Facts: snap.Facts(), Problems: first, ProblemCount: b.problemCount,
		Totals: b.totals,
	}
	hj, err := json.Marshal(&h)
	if err != nil {
		return b.result(res), fmt.Errorf("encode manifest header: %w", err)
	}
	if len(hj) > maxHeaderPlain {
		return b.result(res), fmt.Errorf("manifest header is %d bytes (facts too large), limit %d", len(hj), maxHeaderPlain)
	}
	header := sealFrame(nil, b.dk, b.enc, b.mw.base, 0, false, hj)

	// A lease that lapsed may have let GC delete a pack this point reuses: no manifest then.
	if err := b.lease.confirm(ctx); err != nil {
		return b.result(res), err
	}
	// A cancelled backup commits nothing, however little was left: stores need not check
	// the context on a small write.
	if err := ctx.Err(); err != nil {
		return b.result(res), err
	}
	// The run record first: an attempt retried after the manifest is written finds it.
	if err := r.writeRunDone(ctx, b.dk, b.runID, b.pointID); err != nil {
		return b.result(res), err
	}
	sum, size, err := b.writeManifest(ctx, header, final)
	if err != nil {
		return b.result(res), err
	}
	if err := r.deleteRunState(ctx, b.runID); err != nil {
		// The restore point is complete; a stale checkpoint only costs space and is found
		// (and removed) by the next backup with this run ID.
		r.log.Warn("could not delete checkpoint", zap.String("run", b.runID), zap.Error(err))
	}
	res = b.result(res)
	res.Point = PointInfo{ID: b.pointID, DataAsOf: h.DataAsOf, Created: h.Created, Size: size}
	res.ManifestHash, res.ManifestSize = sum, size
	b.report(PhaseDone, true)
	err = r.record(ctx, audit.Event{
		Kind: audit.KindRestorePoint, Outcome: audit.OutcomeOK, Actor: b.opts.Actor, Point: b.pointID,
		KeyID: h.KEKID, KeyEpoch: b.dk.Epoch(), Bytes: b.totals.Bytes, Chunks: b.totals.Chunks, ManifestHash: sum,
		Reason: fmt.Sprintf("%d entries, %d bytes uploaded in %d new chunks, %d chunks reused, %d files unchanged and not read, %d problems, attempt %d",
			b.totals.Entries, b.uploaded, b.chunksNew, b.chunksReused, b.filesUnchanged.Load(), b.problemCount, b.attempts),
	})
	if err != nil {
		return res, &auditFailure{err}
	}
	return res, nil
}

func (b *backup) result(res BackupResult) BackupResult {
	res.Entries = b.totals.Entries
	res.BytesRead = b.bytesRead.Load()
	res.BytesSkipped = b.bytesSkipped
	res.FilesUnchanged, res.BytesUnchanged = b.filesUnchanged.Load(), b.bytesUnchanged.Load()
	res.SampledRereads = b.sampledRereads
	res.BytesUploaded = b.uploaded
	res.ChunksNew = b.chunksNew
	res.ChunksReused = b.chunksReused
	res.Totals = b.totals
	res.Problems = b.problems
	res.ProblemCount = b.problemCount
	res.Resumed = b.resumed
	if b.resumed {
		res.ResumedFrom = b.after
	}
	if b.dk != nil {
		res.KeyEpoch = b.dk.Epoch()
	}
	return res
}

// writeManifest streams preamble, header, the checkpointed frame parts (re-read and
// authenticated), the frames still in memory and the final frame into one conditional Put.
func (b *backup) writeManifest(ctx context.Context, header, final []byte) (string, int64, error) {
	r := b.r
	pr, pw := io.Pipe()
	h := sha256.New()
	var size int64
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := &countWriter{w: io.MultiWriter(pw, h)}
		werr = func() error {
			if _, err := w.Write(b.pre); err != nil {
				return err
			}
			if _, err := w.Write(header); err != nil {
				return err
			}
			for i := uint32(1); i <= b.mw.uploaded; i++ {
				wire, err := readSmall(ctx, r.store, framePartKey(r.dataset, b.runID, i), maxFramePlain+frameSlack+4)
				if err != nil {
					return fmt.Errorf("read checkpoint frame %d: %w", i, err)
				}
				if err := checkPart(wire, b.dk, b.mw.base, i); err != nil {
					return err
				}
				if _, err := w.Write(wire); err != nil {
					return err
				}
			}
			for _, f := range b.mw.closed {
				if _, err := w.Write(f.wire); err != nil {
					return err
				}
			}
			_, err := w.Write(final)
			return err
		}()
		size = w.n
		pw.CloseWithError(werr)
	}()
	key := pointKey(r.dataset, b.pointID)
	_, err := r.store.Put(ctx, key, pr, providers.PutOptions{IfNotExists: true, ContentType: "application/octet-stream"})
	pr.CloseWithError(err)
	<-done
	sum := hex.EncodeToString(h.Sum(nil))
	if err != nil && werr == nil && ctx.Err() == nil {
		// A write can take effect although its answer is lost (the connection broke after
		// the store had the object); the retry of the conditional create then meets this very
		// manifest. The point ID is this run's own, so the same bytes under it mean the point
		// is written: failing here would make the next attempt write a second point.
		if have, _, herr := hashObject(ctx, r.store, key); herr == nil && have == sum {
			r.log.Info("manifest found written by an attempt whose answer was lost", zap.String("point", b.pointID))
			err = nil
		}
	}
	if err != nil {
		return "", 0, fmt.Errorf("write manifest %s: %w", b.pointID, err)
	}
	return sum, size, nil
}

// checkPart authenticates a frame part before it goes into a manifest.
func checkPart(wire []byte, dk *keys.DataKey, base []byte, idx uint32) error {
	if len(wire) < 4 || binary.BigEndian.Uint32(wire) != uint32(len(wire)-4) {
		return manifestError("checkpoint", int(idx), "frame part has a bad length word")
	}
	if _, err := dk.Open(nil, wire[4:], frameAAD(base, idx, false)); err != nil {
		return manifestError("checkpoint", int(idx), "frame part failed authentication")
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// resume restores the state of a checkpoint: the manifest frames before its boundary are
// re-read (and authenticated) to rebuild totals and the set of chunks the point references.
//
//nolint:gocyclo // each check that a checkpoint still matches the store; to split with the backup pipeline's own types
func (b *backup) resume(ctx context.Context, cp *checkpoint) error {
	r := b.r
	b.pointID, b.dataAsOf, b.started = cp.PointID, cp.DataAsOf, cp.Started
	b.attempts = cp.Attempts + 1
	b.pre = appendPreamble(nil, magicManifest, b.dk.Epoch())
	b.mw = manifestWriter{dk: b.dk, enc: b.enc, base: frameBase(b.pre, r.dataset, b.pointID), idx: cp.Boundary.Frame}
	dec, err := newFrameDecoder(1)
	if err != nil {
		return err
	}
	defer dec.Close()
	var d recordDecoder
	var out []byte
	var ev event
	var typ sources.EntryType
	for i := uint32(1); i <= cp.Boundary.Frame; i++ {
		if i == cp.Boundary.Frame && cp.Boundary.Offset == 0 {
			break
		}
		wire, err := readSmall(ctx, r.store, framePartKey(r.dataset, b.runID, i), maxFramePlain+frameSlack+4)
		if err != nil {
			return fmt.Errorf("read frame %d: %w", i, err)
		}
		plain, err := openPart(wire, b.dk, dec, b.mw.base, i, &out)
		if err != nil {
			return err
		}
		if i == cp.Boundary.Frame {
			if cp.Boundary.Offset > len(plain) {
				return fmt.Errorf("boundary %d beyond frame %d of %d bytes", cp.Boundary.Offset, i, len(plain))
			}
			plain = plain[:cp.Boundary.Offset]
			b.mw.buf = append(b.mw.buf[:0], plain...)
		}
		d.setFrame(plain, false)
		for {
			err := d.next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("frame %d: %w", i, err)
			}
			switch ev.typ {
			case recEntry:
				typ = ev.entry.Type
			case recChunks:
				for _, ref := range ev.refs {
					loc, _, first, ok := b.idx.see(ref.ID)
					if !ok {
						return fmt.Errorf("chunk %s of the checkpoint is in no pack index", ref.ID)
					}
					b.totals.ChunkRefs++
					b.count(first, loc.sealedLen)
				}
			case recEnd:
				b.totals.Entries++
				switch typ {
				case sources.TypeFile:
					b.totals.Files++
					b.totals.Bytes += ev.size
				case sources.TypeDir:
					b.totals.Dirs++
				case sources.TypeSymlink:
					b.totals.Symlinks++
				}
			case recProblem:
				b.problemCount++
				if len(b.problems) < resultProblems {
					b.problems = append(b.problems, ev.problem)
				}
			}
		}
	}
	if d.inEntry {
		return errors.New("checkpoint boundary is inside an entry")
	}
	b.mw.uploaded = cp.Boundary.Frame - 1
	b.mw.lastPath = cp.LastPath
	b.after, b.prevPath, b.cpPath = cp.LastPath, cp.LastPath, cp.LastPath
	b.bytesSkipped, b.bytesDone = b.totals.Bytes, b.totals.Bytes
	b.resumed = true
	r.log.Info("resuming backup from checkpoint", zap.String("run", b.runID), zap.String("point", b.pointID),
		zap.Int64("entries", b.totals.Entries), zap.Int64("bytes", b.totals.Bytes))
	return nil
}

// finishedEarlier handles a run whose restore point an earlier attempt wrote (found by its
// run record or its checkpoint): it reports that point, resumed from resumedFrom.
func (b *backup) finishedEarlier(ctx context.Context, pointID, resumedFrom string) (BackupResult, error) {
	r := b.r
	b.pointID = pointID
	ms, closeFn, err := r.openManifest(ctx, pointID, 1)
	if err != nil {
		return BackupResult{}, err
	}
	h := ms.header
	closeFn()
	sum, size, err := hashObject(ctx, r.store, pointKey(r.dataset, pointID))
	if err != nil {
		return BackupResult{}, err
	}
	if err := r.deleteRunState(ctx, b.runID); err != nil {
		return BackupResult{}, err
	}
	res := BackupResult{
		Point:   PointInfo{ID: h.PointID, DataAsOf: h.DataAsOf, Created: h.Created, Size: size},
		Entries: h.Totals.Entries, BytesSkipped: h.Totals.Bytes, Totals: h.Totals, Problems: h.Problems,
		ProblemCount: h.ProblemCount, ManifestHash: sum, ManifestSize: size, KeyEpoch: h.KeyEpoch,
		Resumed: true, ResumedFrom: resumedFrom,
	}
	err = r.record(ctx, audit.Event{
		Kind: audit.KindRestorePoint, Outcome: audit.OutcomeOK, Actor: b.opts.Actor, Point: h.PointID,
		KeyEpoch: h.KeyEpoch, Bytes: h.Totals.Bytes, Chunks: h.Totals.Chunks, ManifestHash: sum,
		Reason: "restore point completed by an earlier attempt of this run",
	})
	if err != nil {
		return res, &auditFailure{err}
	}
	return res, nil
}

// hashObject returns the hex SHA-256 and size of an object.
func hashObject(ctx context.Context, st providers.Store, key string) (string, int64, error) {
	rc, err := st.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func (b *backup) report(phase string, force bool) {
	if b.opts.Progress == nil {
		return
	}
	now := b.r.now()
	if !force && now.Sub(b.lastReport) < reportEvery {
		return
	}
	b.lastReport = now
	p := Progress{
		Phase: phase, BytesDone: b.bytesDone, BytesTotal: -1, EntriesDone: b.totals.Entries, EntriesTotal: -1,
		BytesUploaded: b.uploaded, ChunksNew: b.chunksNew, ChunksReused: b.chunksReused, Checkpoints: b.checkpoints,
	}
	if phase == PhaseDone {
		p.BytesTotal, p.EntriesTotal = p.BytesDone, p.EntriesDone
	}
	b.opts.Progress(p)
}
