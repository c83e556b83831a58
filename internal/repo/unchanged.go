package repo

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/sources"
)

// A backup does not read a file again that has not changed since the previous restore point
// read it. The rule, in the manner of restic's and kopia's comparison with the parent
// snapshot (and git's index):
//
//   - the previous point (the dataset's newest) lists a file at the same path, with the same
//     size and modification time, and every chunk it references is in this backup's index
//     (same data key epoch, not condemned by GC);
//   - the source knows the file's change time (ctime: the kernel sets it on every change of
//     content, mode, owner, links or name, and it cannot be set back), and it is at least
//     a margin (a second) older than the previous point's DataAsOf, when that backup began
//     reading. A file changed at any time after it, or just before it, is read again;
//   - the file is not among the share RereadPercent of files that each run reads anyway,
//     chosen afresh per run, so that silent damage to a source file (or a clock that went
//     backwards) is still noticed within a few runs; and the backup is not ForceReread.
//
// An unchanged file gets the previous point's chunk references and file hash, as if it had
// been read: restores and verifies cannot tell the difference.

// defaultUnchangedMargin guards against clocks of different resolution (the kernel stamps
// ctime from a coarse clock) and a file changed in the moment the previous walk began.
const defaultUnchangedMargin = time.Second

// DefaultRereadPercent is the share of unchanged files a backup reads anyway.
const DefaultRereadPercent = 2.0

// prevFile is one file of the previous restore point.
type prevFile struct {
	path    string
	modTime time.Time
	size    int64
	hash    [32]byte
	refs    []chunkRef
}

// prevFiles walks the previous point's manifest alongside the source, in the same order.
type prevFiles struct {
	ms      *manifestStream
	close   func()
	asOf    time.Time
	cur     prevFile
	curOK   bool
	inEntry bool
	isFile  bool
	done    bool
}

// openPrevFiles opens the dataset's newest restore point for the comparison, or returns nil
// if there is none or it cannot be read (the backup then reads everything).
func (r *Repo) openPrevFiles(ctx context.Context, exclude string) *prevFiles {
	points, err := r.Points(ctx)
	if err != nil {
		r.log.Warn("cannot list restore points; reading every file", zap.Error(err))
		return nil
	}
	points = slices.DeleteFunc(points, func(p PointInfo) bool { return p.ID == exclude })
	if len(points) == 0 {
		return nil
	}
	prev := points[len(points)-1]
	ms, closeFn, err := r.openManifest(ctx, prev.ID, 1)
	if err != nil {
		r.log.Warn("cannot read the previous restore point; reading every file", zap.String("point", prev.ID), zap.Error(err))
		return nil
	}
	p := &prevFiles{ms: ms, close: closeFn, asOf: ms.header.DataAsOf}
	p.advance()
	return p
}

// advance reads the next whole entry into cur; at the end, or on an error, done is set.
func (p *prevFiles) advance() {
	p.curOK = false
	var ev event
	for !p.done {
		err := p.ms.next(&ev)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.ms = nil
			}
			p.done = true
			return
		}
		switch ev.typ {
		case recEntry:
			p.inEntry, p.isFile = true, ev.entry.Type == sources.TypeFile
			p.cur = prevFile{path: ev.entry.Path, modTime: ev.entry.ModTime, refs: p.cur.refs[:0]}
		case recChunks:
			p.cur.refs = append(p.cur.refs, ev.refs...)
		case recEnd:
			p.inEntry = false
			if p.isFile {
				p.cur.size, p.cur.hash = ev.size, ev.hash
				p.curOK = true
				return
			}
		}
	}
}

// find returns the previous point's file at path, if it has one. Paths must be asked for in
// sources.ComparePaths order.
func (p *prevFiles) find(path string) (*prevFile, bool) {
	for p.curOK && sources.ComparePaths(p.cur.path, path) < 0 {
		p.advance()
	}
	if p.curOK && p.cur.path == path {
		return &p.cur, true
	}
	return nil, false
}

// unchanged returns the previous point's copy of file e if e has not changed since (see the
// rule above), or nil if e must be read.
func (b *backup) unchanged(e sources.Entry) *prevFile {
	p := b.prev
	if p == nil || e.ChangeTime.IsZero() || e.Size < 0 {
		return nil
	}
	pf, ok := p.find(e.Path)
	if !ok || pf.size != e.Size || !pf.modTime.Equal(e.ModTime) || !e.ChangeTime.Before(p.asOf.Add(-b.r.unchangedMargin)) {
		return nil
	}
	if b.rereadSample(e.Path) {
		b.sampledRereads++
		return nil
	}
	for _, ref := range pf.refs {
		if !b.idx.has(ref.ID) {
			return nil
		}
	}
	return pf
}

// rereadSample says whether this run reads path although it seems unchanged: a share of
// RereadPercent of paths, a different share every run.
func (b *backup) rereadSample(path string) bool {
	pct := b.opts.RereadPercent
	if pct == 0 {
		pct = DefaultRereadPercent
	}
	if pct < 0 {
		return false
	}
	h := fnv.New64a()
	_, _ = io.WriteString(h, b.runID)
	_, _ = io.WriteString(h, "\x00")
	_, _ = io.WriteString(h, path)
	return float64(h.Sum64()%10000) < pct*100
}
