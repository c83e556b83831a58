package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// modeBits are the parts of a file mode that entries carry and sinks restore.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// ctxReader fails reads once ctx is done, so that a long stream stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// countingReader counts what it passes on and whether it reached the end.
type countingReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

// problemErr describes err for a Problem. A *fs.PathError names a path relative to some
// directory handle, which would only confuse next to Problem.Path, so only its operation and
// cause are kept.
func problemErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Op, pe.Err)
	}
	return err.Error()
}

// problems collects the problems of one walk; safe for concurrent use, since a caller may
// ask for them while a walk runs.
type problems struct {
	mu   sync.Mutex
	list []Problem
}

func (p *problems) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = nil
}

func (p *problems) add(path, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, Problem{Path: path, Err: fmt.Sprintf(format, args...)})
}

func (p *problems) get() []Problem {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Problem(nil), p.list...)
}

// headBuffer keeps the first limit bytes written to it and counts the rest, so that a
// chatty child process cannot exhaust memory while its first error lines are kept.
type headBuffer struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	dropped int64
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.limit - len(b.buf)
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		b.buf = append(b.buf, p[:room]...)
	}
	b.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := string(b.buf)
	if b.dropped > 0 {
		s += fmt.Sprintf("\n[%d more bytes of stderr dropped]", b.dropped)
	}
	return s
}
