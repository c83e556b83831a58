package sources

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"
)

// NewDirectory returns a source that reads the directory tree at root: regular files (their
// content streamed), directories and symlinks (their targets, never followed), with
// permission bits, setuid/setgid/sticky and mtimes. Root itself is not an entry.
func NewDirectory(root string) Source { return &directory{root: root} }

type directory struct{ root string }

func (d *directory) Kind() string { return KindDirectory }

// Snapshot opens root; the walk reads the tree as it is when each entry is reached, so
// DataAsOf is the moment Snapshot was called (no later than any read).
func (d *directory) Snapshot(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	asOf := time.Now()
	// os.Root resolves every name beneath root and refuses symlinks that lead out of it,
	// so a tree rearranged during the walk cannot make it read outside root.
	r, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, fmt.Errorf("directory source: %w", err)
	}
	return &dirSnapshot{root: r, asOf: asOf}, nil
}

type dirSnapshot struct {
	root     *os.Root
	asOf     time.Time
	problems problems
	// beforeOpen, when set, runs just before a listed file or directory is opened. Tests use
	// it to change the tree at exactly that moment.
	beforeOpen func(path string)
}

func (s *dirSnapshot) DataAsOf() time.Time { return s.asOf }

// Facts is empty: what a directory holds is only known once it has been walked.
func (s *dirSnapshot) Facts() map[string]string { return map[string]string{} }

func (s *dirSnapshot) Problems() []Problem { return s.problems.get() }

func (s *dirSnapshot) Close() error { return s.root.Close() }

// Walk visits the tree depth first, siblings sorted by name (see ComparePaths). Problems
// are those of this walk only.
func (s *dirSnapshot) Walk(ctx context.Context, after string, fn func(Entry, io.Reader) error) error {
	s.problems.reset()
	names, err := readNames(s.root)
	if err != nil {
		return fmt.Errorf("list directory source root: %w", err)
	}
	return s.walkDir(ctx, s.root, "", names, after, fn)
}

func readNames(dir *os.Root) ([]string, error) {
	f, err := dir.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func (s *dirSnapshot) walkDir(ctx context.Context, dir *os.Root, rel string, names []string, after string, fn func(Entry, io.Reader) error) error {
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := joinPath(rel, name)
		skip := skipAfter(p, after)
		if skip && !holdsAfter(p, after) {
			continue
		}
		fi, err := dir.Lstat(name)
		if err != nil {
			if !skip {
				s.problems.add(p, "%s", problemErr(err))
			}
			continue
		}
		mode := fi.Mode()
		switch {
		case mode.IsDir():
			err = s.dir(ctx, dir, p, name, fi, skip, after, fn)
		case skip:
			// A non-directory at or before the resume point.
		case mode.IsRegular():
			err = s.file(ctx, dir, p, name, fi, fn)
		case mode&fs.ModeSymlink != 0:
			err = s.symlink(dir, p, name, fi, fn)
		default:
			s.problems.add(p, "skipped: a %s is not a regular file, directory or symlink", describeType(mode))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dir opens, lists and emits a directory, then walks it. A directory that cannot be opened
// or listed is a Problem and is not emitted, since its contents are missing.
func (s *dirSnapshot) dir(ctx context.Context, parent *os.Root, p, name string, fi fs.FileInfo, skip bool, after string, fn func(Entry, io.Reader) error) error {
	if s.beforeOpen != nil {
		s.beforeOpen(p)
	}
	sub, err := parent.OpenRoot(name)
	if err != nil {
		s.problems.add(p, "%s", problemErr(err))
		return nil
	}
	defer sub.Close()
	st, err := sub.Stat(".")
	if err != nil {
		s.problems.add(p, "%s", problemErr(err))
		return nil
	}
	if !os.SameFile(fi, st) {
		s.problems.add(p, "changed during backup: replaced between listing and opening")
		return nil
	}
	names, err := readNames(sub)
	if err != nil {
		s.problems.add(p, "list: %s", problemErr(err))
		return nil
	}
	if !skip {
		e := Entry{Path: p, Type: TypeDir, Mode: st.Mode() & modeBits, ModTime: st.ModTime()}
		if err := fn(e, nil); err != nil {
			return err
		}
	}
	return s.walkDir(ctx, sub, p, names, after, fn)
}

func (s *dirSnapshot) file(ctx context.Context, dir *os.Root, p, name string, fi fs.FileInfo, fn func(Entry, io.Reader) error) error {
	if s.beforeOpen != nil {
		s.beforeOpen(p)
	}
	// O_NONBLOCK: if a FIFO took the file's place since the listing, opening it must not
	// wait for a writer; the SameFile check below then rejects it.
	f, err := dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		s.problems.add(p, "%s", problemErr(err))
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.problems.add(p, "%s", problemErr(err))
		return nil
	}
	if !os.SameFile(fi, st) || !st.Mode().IsRegular() {
		s.problems.add(p, "changed during backup: replaced between listing and opening")
		return nil
	}
	e := Entry{Path: p, Type: TypeFile, Mode: st.Mode() & modeBits, ModTime: st.ModTime(), Size: st.Size(), ChangeTime: changeTime(st)}
	r := &fileReader{ctx: ctx, f: f}
	if err := fn(e, r); err != nil {
		return err
	}
	if r.readErr != nil {
		s.problems.add(p, "read failed after %d bytes, so the entry holds only those: %s", r.n, problemErr(r.readErr))
		return nil
	}
	end, err := f.Stat()
	if err != nil {
		s.problems.add(p, "stat after reading: %s", problemErr(err))
		return nil
	}
	if end.Size() != st.Size() || !end.ModTime().Equal(st.ModTime()) || (r.eof && r.n != st.Size()) {
		s.problems.add(p, "changed during backup: %d bytes and mtime %s when opened, %d bytes and mtime %s after reading %d bytes",
			st.Size(), st.ModTime().Format(time.RFC3339Nano), end.Size(), end.ModTime().Format(time.RFC3339Nano), r.n)
	}
	return nil
}

func (s *dirSnapshot) symlink(dir *os.Root, p, name string, fi fs.FileInfo, fn func(Entry, io.Reader) error) error {
	target, err := dir.Readlink(name)
	if err != nil {
		s.problems.add(p, "%s", problemErr(err))
		return nil
	}
	return fn(Entry{Path: p, Type: TypeSymlink, Mode: fi.Mode() & modeBits, ModTime: fi.ModTime(), Target: target}, nil)
}

// fileReader streams a file to the walk's callback. A read error other than cancellation
// ends the stream early (the entry keeps what was read) and becomes a Problem, so one bad
// sector does not fail every backup of the tree.
type fileReader struct {
	ctx     context.Context
	f       io.Reader
	n       int64
	eof     bool
	readErr error
}

func (r *fileReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.eof || r.readErr != nil {
		return 0, io.EOF
	}
	n, err := r.f.Read(p)
	r.n += int64(n)
	switch {
	case err == io.EOF:
		r.eof = true
	case err != nil:
		r.readErr = err
		err = io.EOF
	}
	return n, err
}

func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "irregular file"
}
