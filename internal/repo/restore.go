package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zeebo/blake3"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
)

// maxFailures bounds the failures a verify collects.
const maxFailures = 1000

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// Progress, if set, is called from one goroutine at a time.
	Progress func(Progress)
	// Actor is recorded in the audit event.
	Actor string
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Point   PointInfo
	Entries int64
	// Bytes is the plaintext written to the sink; Chunks the chunks read for it.
	Bytes  int64
	Chunks int64
	// BytesRead counts the sealed bytes read from packs.
	BytesRead    int64
	ManifestHash string
	// Validation is what the sink's Finish checked against the snapshot's facts.
	Validation sources.Validation
	Duration   time.Duration
}

// Restore writes a restore point to sink. Every chunk is authenticated, decompressed and
// checked against its ID before its first byte reaches the sink, and every file's BLAKE3 is
// checked before the sink sees the end of its content (a mismatch is a read error instead).
// Integrity failures are *IntegrityError, naming the entry and chunk.
func (r *Repo) Restore(ctx context.Context, pointID string, sink sources.Sink, opts RestoreOptions) (RestoreResult, error) {
	start := r.now()
	var res RestoreResult
	if sink == nil {
		return res, fmt.Errorf("restore %s: %w: nil sink", pointID, providers.ErrInvalidArgument)
	}
	res, err := r.restore(ctx, pointID, sink, opts)
	res.Duration = r.now().Sub(start)
	ev := audit.Event{Kind: audit.KindRestore, Outcome: audit.OutcomeOK, Actor: opts.Actor, Point: pointID,
		Bytes: res.Bytes, Chunks: res.Chunks, ManifestHash: res.ManifestHash}
	switch {
	case err != nil:
		err = fmt.Errorf("restore %s of %s: %w", pointID, r.dataset, err)
		ev.Outcome, ev.Reason = audit.OutcomeFailed, failureReason(err)
	case !res.Validation.OK():
		ev.Outcome = audit.OutcomeFailed
		ev.Reason = fmt.Sprintf("restored %d entries; validation found %d mismatches (%s)", res.Entries,
			len(res.Validation.Mismatches), res.Validation.Checked)
	default:
		ev.Reason = fmt.Sprintf("restored %d entries; validation: %s", res.Entries, res.Validation.Checked)
	}
	actx, cancel := auditContext(ctx)
	defer cancel()
	if aerr := r.record(actx, ev); aerr != nil {
		return res, errors.Join(err, aerr)
	}
	return res, err
}

// failureReason renders an error for audit events: integrity failures by chunk and pack,
// everything else by class.
func failureReason(err error) string {
	var ie *IntegrityError
	if errors.As(err, &ie) {
		return ie.auditReason()
	}
	return errorClass(err)
}

func (r *Repo) fetchers() int { return max(4, 2*r.workers) }

func (r *Repo) restore(ctx context.Context, pointID string, sink sources.Sink, opts RestoreOptions) (RestoreResult, error) {
	var res RestoreResult
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetchers := r.fetchers()
	rd, cleanup, err := r.openReader(ctx, pointID, fetchers)
	if err != nil {
		return res, err
	}
	defer cleanup()
	h := rd.ms.header
	res.Point = PointInfo{ID: h.PointID, DataAsOf: h.DataAsOf, Created: h.Created}
	wait := rd.start(ctx, fetchers)
	prog := progressor{fn: opts.Progress, now: r.now, p: Progress{Phase: PhaseRestore, BytesTotal: h.Totals.Bytes, EntriesTotal: h.Totals.Entries}}
	prog.report(true)
	err = rd.restoreTo(ctx, sink, &res, &prog)
	if err != nil {
		cancel()
		rd.drain()
		res.BytesRead = rd.bytesRead
		return res, rootCause(err, wait())
	}
	if err := wait(); err != nil {
		res.BytesRead = rd.bytesRead
		return res, err
	}
	res.BytesRead = rd.bytesRead
	res.ManifestHash = rd.manifestSum()
	if res.Validation, err = sink.Finish(ctx, h.Facts); err != nil {
		return res, fmt.Errorf("finish sink: %w", err)
	}
	prog.p.Phase = PhaseDone
	prog.report(true)
	return res, nil
}

// rootCause picks the planner's error over the consumer's when the consumer failed because
// the planner stopped (a manifest that failed authentication half-way).
func rootCause(consumer, planner error) error {
	if planner != nil && !errors.Is(planner, context.Canceled) {
		return planner
	}
	return consumer
}

// next returns the next op, or false once the reader is done.
func (rd *reader) next(ctx context.Context) (op, bool, error) {
	select {
	case o, ok := <-rd.ops:
		return o, ok, nil
	case <-ctx.Done():
		return op{}, false, ctx.Err()
	}
}

func (rd *reader) restoreTo(ctx context.Context, sink sources.Sink, res *RestoreResult, prog *progressor) error {
	if fs, ok := sink.(sources.FileSink); ok {
		return rd.restoreFiles(ctx, fs, res, prog)
	}
	cr := &contentReader{rd: rd, ctx: ctx, hasher: blake3.New(), next: rd.next, count: func(bytes, chunks int64) {
		res.Bytes += bytes
		res.Chunks += chunks
		prog.p.BytesDone = res.Bytes
		prog.report(false)
	}}
	for {
		e, ok, err := rd.nextEntry(ctx)
		if err != nil || !ok {
			return err
		}
		if e.Type == sources.TypeFile {
			cr.reset(e.Path)
			if err := sink.Write(ctx, e, cr); err != nil {
				if cr.err != nil {
					return cr.err
				}
				return fmt.Errorf("write %q: %w", e.Path, err)
			}
			if err := cr.finish(); err != nil {
				return err
			}
		} else if err := rd.writeOther(ctx, sink, e); err != nil {
			return err
		}
		res.Entries++
		prog.p.EntriesDone = res.Entries
		prog.report(false)
	}
}

// nextEntry returns the next entry of the restore point; false once there are none.
func (rd *reader) nextEntry(ctx context.Context) (sources.Entry, bool, error) {
	o, ok, err := rd.next(ctx)
	if err != nil || !ok {
		return sources.Entry{}, false, err
	}
	if o.kind != opEntry {
		return sources.Entry{}, false, fmt.Errorf("internal error: op %d outside an entry", o.kind)
	}
	return o.entry, true, nil
}

// writeOther writes a directory or symlink entry and takes its end.
func (rd *reader) writeOther(ctx context.Context, sink sources.Sink, e sources.Entry) error {
	if err := sink.Write(ctx, e, nil); err != nil {
		return fmt.Errorf("write %q: %w", e.Path, err)
	}
	o, ok, err := rd.next(ctx)
	if err != nil {
		return err
	}
	if !ok || o.kind != opEnd {
		return fmt.Errorf("internal error: %s entry %q not followed by its end", e.Type, e.Path)
	}
	return nil
}

// contentReader hands a file's verified chunks to a sink. It returns an error instead of
// io.EOF if the file's size or BLAKE3 differ from the manifest.
type contentReader struct {
	rd     *reader
	ctx    context.Context
	hasher *blake3.Hasher
	// next returns the file's next op (a chunk, or its end); count adds bytes handed over
	// and chunks taken to the restore's totals.
	next  func(context.Context) (op, bool, error)
	count func(bytes, chunks int64)
	path  string
	chunk *chunkFuture
	cur   []byte
	size  int64
	ended bool
	err   error
}

func (c *contentReader) reset(path string) {
	c.path, c.chunk, c.cur, c.size, c.ended, c.err = path, nil, nil, 0, false, nil
	c.hasher.Reset()
}

// fill makes cur non-empty, or sets ended or err.
func (c *contentReader) fill() {
	for len(c.cur) == 0 && !c.ended && c.err == nil {
		if c.chunk != nil {
			c.rd.release(c.chunk)
			c.chunk = nil
		}
		o, ok, err := c.next(c.ctx)
		switch {
		case err != nil:
			c.err = err
		case !ok:
			c.err = fmt.Errorf("internal error: restore of %q ended inside the entry", c.path)
		case o.kind == opChunk:
			if err := await(c.ctx, o.chunk); err != nil {
				// Cancelled: the chunk's fetch still ends (its group was dispatched before its op
				// was emitted) and must have before its memory goes back to the pool.
				<-o.chunk.done
				c.rd.release(o.chunk)
				c.err = err
				return
			}
			c.chunk = o.chunk
			c.cur = *o.chunk.plain
			_, _ = c.hasher.Write(c.cur)
			c.size += int64(len(c.cur))
			c.count(0, 1)
		case o.kind == opEnd:
			var sum [32]byte
			c.hasher.Sum(sum[:0])
			if c.size != o.size || sum != o.hash {
				c.err = &IntegrityError{Entry: c.path, Reason: fmt.Sprintf("file content (%d bytes) does not match its %s", c.size, fileHashName)}
				return
			}
			c.ended = true
		default:
			c.err = fmt.Errorf("internal error: op %d inside entry %q", o.kind, c.path)
		}
	}
}

func (c *contentReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.fill()
	if c.err != nil {
		return 0, c.err
	}
	if c.ended {
		return 0, io.EOF
	}
	n := copy(p, c.cur)
	c.advance(n)
	return n, nil
}

// WriteTo lets io.Copy write whole verified chunks without an intermediate buffer.
func (c *contentReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		c.fill()
		if c.err != nil {
			return total, c.err
		}
		if c.ended {
			return total, nil
		}
		n, err := w.Write(c.cur)
		total += int64(n)
		c.advance(n)
		if err != nil {
			return total, err
		}
	}
}

func (c *contentReader) advance(n int) {
	c.cur = c.cur[n:]
	c.count(int64(n), 0)
}

// finish consumes (and verifies) what the sink left unread, so that the stream stays aligned.
func (c *contentReader) finish() error {
	for {
		c.fill()
		if c.err != nil {
			return c.err
		}
		if c.ended {
			return nil
		}
		c.advance(len(c.cur))
	}
}

// progressor throttles Progress callbacks.
type progressor struct {
	fn   func(Progress)
	now  func() time.Time
	last time.Time
	p    Progress
}

func (p *progressor) report(force bool) {
	if p.fn == nil {
		return
	}
	now := p.now()
	if !force && now.Sub(p.last) < reportEvery {
		return
	}
	p.last = now
	p.fn(p.p)
}

// VerifyOptions tune a verify.
type VerifyOptions struct {
	// SamplePercent selects a pseudo-random share of the point's distinct chunks, chosen by
	// Seed so that a verify can be repeated exactly; 0 or >= 100 reads everything and also
	// checks every file's hash. The manifest is always read and authenticated whole, and
	// every chunk reference is looked up in the index.
	SamplePercent float64
	Seed          int64
	// Progress, if set, is called from one goroutine at a time.
	Progress func(Progress)
	Actor    string
}

// VerifyResult describes a verify.
type VerifyResult struct {
	Point   PointInfo
	Entries int64
	// ChunksTotal counts the point's distinct chunks; ChunksChecked those read and checked.
	ChunksTotal   int64
	ChunksChecked int64
	// BytesChecked is the plaintext checked; BytesRead the sealed bytes read from packs.
	BytesChecked int64
	BytesRead    int64
	ManifestHash string
	// Failures lists (up to 1000) chunks or files that failed their checks.
	Failures []*IntegrityError
	Duration time.Duration
}

// OK reports whether nothing failed.
func (v VerifyResult) OK() bool { return len(v.Failures) == 0 }

// Verify reads a restore point without writing it anywhere and checks what Restore checks.
// Chunk failures do not stop it: they are collected in the result, and the error wraps the
// first of them (errors.As finds an *IntegrityError). A manifest that fails authentication
// stops it.
func (r *Repo) Verify(ctx context.Context, pointID string, opts VerifyOptions) (VerifyResult, error) {
	start := r.now()
	res, err := r.verify(ctx, pointID, opts)
	res.Duration = r.now().Sub(start)
	ev := audit.Event{Kind: audit.KindVerify, Outcome: audit.OutcomeOK, Actor: opts.Actor, Point: pointID,
		Bytes: res.BytesChecked, Chunks: res.ChunksChecked, ManifestHash: res.ManifestHash,
		Reason: fmt.Sprintf("%d of %d chunks checked (sample %g%%, seed %d), %d failures", res.ChunksChecked,
			res.ChunksTotal, samplePercent(opts.SamplePercent), opts.Seed, len(res.Failures))}
	switch {
	case err != nil:
		err = fmt.Errorf("verify %s of %s: %w", pointID, r.dataset, err)
		ev.Outcome, ev.Reason = audit.OutcomeFailed, failureReason(err)
	case len(res.Failures) > 0:
		err = fmt.Errorf("verify %s of %s: %d failures, first: %w", pointID, r.dataset, len(res.Failures), res.Failures[0])
		ev.Outcome = audit.OutcomeFailed
		ev.Reason += "; first: " + res.Failures[0].auditReason()
	}
	actx, cancel := auditContext(ctx)
	defer cancel()
	if aerr := r.record(actx, ev); aerr != nil {
		return res, errors.Join(err, aerr)
	}
	return res, err
}

func samplePercent(p float64) float64 {
	if p <= 0 || p >= 100 {
		return 100
	}
	return p
}

// sampled decides, reproducibly for a seed, whether a chunk is in a sample of percent.
func sampled(seed int64, id keys.ChunkID, percent float64) bool {
	var in [8 + 32]byte
	binary.BigEndian.PutUint64(in[:], uint64(seed))
	copy(in[8:], id[:])
	sum := sha256.Sum256(in[:])
	x := binary.BigEndian.Uint64(sum[:8])
	return float64(x) < percent/100*(1<<64)
}

func (r *Repo) verify(ctx context.Context, pointID string, opts VerifyOptions) (VerifyResult, error) {
	var res VerifyResult
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetchers := r.fetchers()
	rd, cleanup, err := r.openReader(ctx, pointID, fetchers)
	if err != nil {
		return res, err
	}
	defer cleanup()
	h := rd.ms.header
	res.Point = PointInfo{ID: h.PointID, DataAsOf: h.DataAsOf, Created: h.Created}
	percent := samplePercent(opts.SamplePercent)
	full := percent >= 100
	d := distinct{idx: rd.idx, missing: map[keys.ChunkID]struct{}{}}
	if !full {
		rd.sample = func(id keys.ChunkID) bool {
			return d.first(id) && sampled(opts.Seed, id, percent)
		}
	}
	prog := progressor{fn: opts.Progress, now: r.now, p: Progress{Phase: PhaseVerify, BytesTotal: -1, EntriesTotal: h.Totals.Entries}}
	if full {
		prog.p.BytesTotal = h.Totals.Bytes
	}
	prog.report(true)
	wait := rd.start(ctx, fetchers)
	err = rd.check(ctx, full, &d, &res, &prog)
	if err != nil {
		cancel()
		rd.drain()
		res.BytesRead = rd.bytesRead
		return res, rootCause(err, wait())
	}
	err = wait()
	res.BytesRead = rd.bytesRead
	if err != nil {
		return res, err
	}
	if !full {
		res.ChunksTotal = d.n
		res.Entries = h.Totals.Entries
	}
	res.ManifestHash = rd.manifestSum()
	prog.p.Phase = PhaseDone
	prog.report(true)
	return res, nil
}

// distinct counts the distinct chunks of a point, with the index's seen marks (and a set for
// chunks no index lists). One goroutine uses it.
type distinct struct {
	idx     *chunkIndex
	missing map[keys.ChunkID]struct{}
	n       int64
}

func (d *distinct) first(id keys.ChunkID) bool {
	_, _, first, ok := d.idx.see(id)
	if !ok {
		if _, dup := d.missing[id]; !dup {
			d.missing[id] = struct{}{}
			first = true
		}
	}
	if first {
		d.n++
	}
	return first
}

// check consumes the reader's ops, collecting failures.
//
//nolint:gocyclo // each chunk check (authentication, length, decompression, hash) is its own integrity error
func (rd *reader) check(ctx context.Context, full bool, d *distinct, res *VerifyResult, prog *progressor) error {
	hasher := blake3.New()
	var (
		path    string
		typ     sources.EntryType
		size    int64
		entryOK bool
	)
	addFailure := func(err error) error {
		var ie *IntegrityError
		if !errors.As(err, &ie) {
			return err // not a verdict on the data (cancelled, key unavailable): stop
		}
		if len(res.Failures) < maxFailures {
			res.Failures = append(res.Failures, ie)
		}
		return nil
	}
	for {
		o, ok, err := rd.next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch o.kind {
		case opEntry:
			path, typ, size, entryOK = o.entry.Path, o.entry.Type, 0, true
			hasher.Reset()
		case opChunk:
			f := o.chunk
			first := true // in sample mode the planner passes each chunk once
			if full {
				first = d.first(f.ref.ID)
				res.ChunksTotal = d.n
			}
			if err := await(ctx, f); err != nil {
				rd.release(f)
				entryOK = false
				if err := addFailure(err); err != nil {
					return err
				}
				continue
			}
			if full {
				_, _ = hasher.Write(*f.plain)
				size += int64(len(*f.plain))
			}
			if first {
				res.ChunksChecked++
			}
			res.BytesChecked += int64(len(*f.plain))
			rd.release(f)
			prog.p.BytesDone = res.BytesChecked
			prog.report(false)
		case opEnd:
			res.Entries++
			var sum [32]byte
			hasher.Sum(sum[:0])
			if full && typ == sources.TypeFile && entryOK && (size != o.size || sum != o.hash) {
				_ = addFailure(&IntegrityError{Entry: path, Reason: fmt.Sprintf("file content (%d bytes) does not match its %s", size, fileHashName)})
			}
			prog.p.EntriesDone = res.Entries
			prog.report(false)
		}
	}
}
