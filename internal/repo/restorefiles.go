package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"

	"github.com/drflow/drflow/internal/sources"
)

// restoreWriters is how many files a restore writes at once into a sink that can
// (sources.FileSink). Creating, writing, chmod-ing, timestamping and renaming a file are
// system calls that mostly wait on the kernel and the disk, so with one writer a tree of
// many small files is restored at the pace of those calls, one after the other. More writers
// than cores keep the cores and the disk busy.
var restoreWriters = 8

// jobOps is how many of a file's ops the consumer may queue for its writer: enough for a
// small file's chunks and end, so that the consumer rarely waits on a writer.
const jobOps = 16

// fileJob is one file handed to a writer: its prepared write, and its chunks and end as the
// consumer takes them from the reader, in order.
type fileJob struct {
	seq   int // the file's place among the restore's files
	path  string
	write sources.FileWrite
	ops   chan op
}

// restoreFiles restores into a sink that writes several files at once. One goroutine (this
// one) takes ops in manifest order, creates directories and symlinks itself, prepares each
// file in order and hands it with its chunk ops to a pool of writers. Each writer checks
// every chunk (the fetchers authenticated and decompressed it and checked its ID) and the
// whole file's size and BLAKE3 before the sink puts the file under its name, as the
// sequential path does. Memory stays bounded by the read window: a chunk's plaintext is
// released once its writer has written it. The first error stops everything.
func (rd *reader) restoreFiles(ctx context.Context, sink sources.FileSink, res *RestoreResult, prog *progressor) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		bytes, chunks atomic.Int64
		wg            sync.WaitGroup
		mu            sync.Mutex
		firstErr      error
		firstSeq      = -1
	)
	// The first failure stops the restore. Of the failures that follow before the writers
	// stop, the one earliest in the restore point wins (not a cancellation), so that the
	// error names the same file as a sequential restore would where it can.
	fail := func(seq int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil || errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled) ||
			seq < firstSeq && !errors.Is(err, context.Canceled) {
			firstErr, firstSeq = err, seq
		}
		cancel()
	}
	jobs := make(chan *fileJob, restoreWriters)
	for range restoreWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := jobWriter{rd: rd, hasher: blake3.New(), bytes: &bytes, chunks: &chunks}
			for j := range jobs {
				if err := w.run(ctx, j); err != nil {
					fail(j.seq, err)
				}
			}
		}()
	}
	err := rd.dispatch(ctx, sink, jobs, res, func() {
		prog.p.BytesDone = bytes.Load()
		prog.p.EntriesDone = res.Entries
		prog.report(false)
	})
	if err != nil {
		cancel() // the writers stop too: the restore has failed
	}
	close(jobs)
	wg.Wait()
	res.Bytes, res.Chunks = bytes.Load(), chunks.Load()
	prog.p.BytesDone = res.Bytes
	if firstErr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return firstErr // a writer's failure cancelled the consumer
	}
	return err
}

// dispatch takes the reader's ops in order: directories and symlinks are written at once,
// files are prepared and queued for the writers with their ops.
func (rd *reader) dispatch(ctx context.Context, sink sources.FileSink, jobs chan<- *fileJob, res *RestoreResult, report func()) error {
	for {
		e, ok, err := rd.nextEntry(ctx)
		if err != nil || !ok {
			return err
		}
		if e.Type != sources.TypeFile {
			err = rd.writeOther(ctx, sink, e)
		} else {
			err = rd.queueFile(ctx, sink, jobs, e, int(res.Entries))
		}
		if err != nil {
			return err
		}
		res.Entries++
		report()
	}
}

// queueFile prepares file e, queues it for a writer and forwards its ops to it. The job's ops
// channel is closed whatever happens, so its writer never waits for ops that will not come.
func (rd *reader) queueFile(ctx context.Context, sink sources.FileSink, jobs chan<- *fileJob, e sources.Entry, seq int) error {
	write, err := sink.PrepareFile(ctx, e)
	if err != nil {
		return fmt.Errorf("write %q: %w", e.Path, err)
	}
	j := &fileJob{seq: seq, path: e.Path, write: write, ops: make(chan op, jobOps)}
	select {
	case jobs <- j:
	case <-ctx.Done():
		// The prepared write must still run once, to let go of what it holds; it fails at once.
		_ = write(ctx, errReader{ctx.Err()})
		return ctx.Err()
	}
	defer close(j.ops)
	for {
		o, ok, err := rd.next(ctx)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("internal error: restore of %q ended inside the entry", e.Path)
		case o.kind != opChunk && o.kind != opEnd:
			return fmt.Errorf("internal error: op %d inside entry %q", o.kind, e.Path)
		}
		select {
		case j.ops <- o:
		case <-ctx.Done():
			if o.kind == opChunk {
				<-o.chunk.done
				rd.release(o.chunk)
			}
			return ctx.Err()
		}
		if o.kind == opEnd {
			return nil
		}
	}
}

// jobWriter writes files for restoreFiles, one at a time.
type jobWriter struct {
	rd            *reader
	hasher        *blake3.Hasher
	bytes, chunks *atomic.Int64
}

// run writes one file through the sink's prepared write, then consumes (and checks) whatever
// the write left unread and releases every op of the job, whatever happened.
func (w *jobWriter) run(ctx context.Context, j *fileJob) error {
	cr := &contentReader{rd: w.rd, ctx: ctx, hasher: w.hasher, path: j.path,
		next: func(ctx context.Context) (op, bool, error) {
			select {
			case o, ok := <-j.ops:
				return o, ok, nil
			case <-ctx.Done():
				return op{}, false, ctx.Err()
			}
		},
		count: func(bytes, chunks int64) {
			w.bytes.Add(bytes)
			w.chunks.Add(chunks)
		},
	}
	cr.reset(j.path)
	defer func() {
		if cr.chunk != nil {
			w.rd.release(cr.chunk)
			cr.chunk = nil
		}
		for o := range j.ops {
			if o.kind == opChunk {
				<-o.chunk.done
				w.rd.release(o.chunk)
			}
		}
	}()
	if ctx.Err() != nil {
		_ = j.write(ctx, errReader{ctx.Err()})
		return nil // the restore failed elsewhere; that error is the one reported
	}
	err := j.write(ctx, cr)
	if cr.err != nil {
		return cr.err // what the content said is the cause; the sink only passed it on
	}
	if err != nil {
		return fmt.Errorf("write %q: %w", j.path, err)
	}
	return cr.finish()
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

var _ io.Reader = errReader{}
