package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var _ FileSink = (*DirectorySink)(nil)

// DirectorySink restores entries into a directory that it creates or that is empty, so a
// restore never mixes with or overwrites existing data.
//
// Every entry path is checked (relative, no "." or ".." segments) and resolved one directory
// at a time without following symlinks, so neither a crafted path nor a symlink that the
// restore itself created can make it write outside root or through a link. A file is created
// under its own name with O_EXCL (never over anything, never through a link), owner-only,
// and gets its mode and mtime once its content is complete; if the content fails its check
// or the write fails, the file is removed, so no file with wrong content stays under its
// name. (Writing to a temporary name and renaming it would cost a second change of the
// directory per file, and concurrent writers contend on the directory's lock for each.)
// Directories are created owner-only (0700) so that the restore
// can fill them whatever their final mode; Finish then applies their modes and mtimes,
// children before parents, so that writing a child does not disturb its parent's mtime.
// Parents that a restore point does not list (object stores have no directories) are created
// 0700 and keep that mode. Symlink mtimes are not restored (the standard library cannot set
// them without following the link), and files are not fsynced: an interrupted restore is
// started again into a fresh target.
//
// Files may be written concurrently (FileSink): PrepareFile, called in order, resolves the
// parent directory and keeps its handle open until the file's write returns.
type DirectorySink struct {
	root *os.Root
	// open is the chain of directories from root to the parent of the last entry written:
	// entries arrive depth first, so consecutive entries share most of it.
	open []*openDir
	dirs []dirMeta
	// last is the previous entry's path: entries arrive sorted, so a path restored twice
	// (a damaged or crafted restore point) is caught before a second write could replace
	// the first.
	last     string
	lastType EntryType

	mu                     sync.Mutex // guards openDir.refs
	files, symlinks, bytes atomic.Int64
}

type openDir struct {
	name string
	root *os.Root
	// refs counts the chain's hold on root (1 while it is in open) and each prepared file
	// not yet written; the last release closes it.
	refs int
}

type dirMeta struct {
	path    string
	mode    fs.FileMode
	modTime time.Time
}

// NewDirectorySink creates root (0700, with missing parents) or checks that it is empty.
func NewDirectorySink(root string) (*DirectorySink, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("restore target %s: %w", root, err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", root, err)
	}
	f, err := r.Open(".")
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("restore target %s: %w", root, err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		r.Close()
		return nil, fmt.Errorf("restore target %s: %w", root, err)
	}
	if len(names) > 0 {
		r.Close()
		return nil, fmt.Errorf("restore target %s is not empty (it holds %q): refusing to restore over existing data; choose a new or empty directory", root, names[0])
	}
	return &DirectorySink{root: r, open: []*openDir{{root: r, refs: 1}}}, nil
}

// Write restores one entry. Its parent directories are created if the restore point does
// not list them.
func (s *DirectorySink) Write(ctx context.Context, e Entry, content io.Reader) error {
	if e.Type == TypeFile {
		w, err := s.PrepareFile(ctx, e)
		if err != nil {
			return err
		}
		return w(ctx, content)
	}
	d, name, err := s.enter(ctx, e)
	if err != nil {
		return err
	}
	switch e.Type {
	case TypeDir:
		err = s.writeDir(d.root, e, name)
	case TypeSymlink:
		err = s.writeSymlink(d.root, e, name)
	default:
		err = fmt.Errorf("unknown entry type %d", e.Type)
	}
	if err != nil {
		return fmt.Errorf("restore %s %s: %w", e.Type, e.Path, err)
	}
	return nil
}

// PrepareFile checks a file entry and opens its parent directory, creating it if the restore
// point does not list it; the returned FileWrite writes the file there, on any goroutine.
func (s *DirectorySink) PrepareFile(ctx context.Context, e Entry) (FileWrite, error) {
	if e.Type != TypeFile {
		return nil, fmt.Errorf("restore %s: a %s is not a file", e.Path, e.Type)
	}
	d, name, err := s.enter(ctx, e)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	d.refs++
	s.mu.Unlock()
	return func(ctx context.Context, content io.Reader) error {
		defer s.release(d)
		if err := s.writeFile(ctx, d.root, e, name, content); err != nil {
			return fmt.Errorf("restore %s %s: %w", e.Type, e.Path, err)
		}
		return nil
	}, nil
}

// enter checks e's path, refuses a path restored just before, and opens e's parent.
func (s *DirectorySink) enter(ctx context.Context, e Entry) (*openDir, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if s.root == nil {
		return nil, "", fmt.Errorf("restore %s: sink is closed", e.Path)
	}
	if err := checkPath(e.Path); err != nil {
		return nil, "", fmt.Errorf("restore: %w", err)
	}
	// A file's write may still be under way when the next entry arrives, so a second entry of
	// the same path is refused here rather than by the write's own check. Directories and
	// symlinks are created at once and find what is there.
	if e.Path == s.last && (e.Type == TypeFile || s.lastType == TypeFile) {
		return nil, "", fmt.Errorf("restore %s %s: already restored: a %s of that name exists (the restore point lists it twice)", e.Type, e.Path, s.lastType)
	}
	s.last, s.lastType = e.Path, e.Type
	dirPath, name := splitParent(e.Path)
	d, err := s.dir(dirPath, true)
	if err != nil {
		return nil, "", fmt.Errorf("restore %s: %w", e.Path, err)
	}
	return d, name, nil
}

func splitParent(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// dir returns a handle on the directory at p (slash-separated, relative, checked), opening
// each component without following symlinks and, if create is set, creating missing ones.
func (s *DirectorySink) dir(p string, create bool) (*openDir, error) {
	var comps []string
	if p != "" {
		comps = strings.Split(p, "/")
	}
	keep := 1 // s.open[0] is root
	for keep < len(s.open) && keep-1 < len(comps) && s.open[keep].name == comps[keep-1] {
		keep++
	}
	s.truncate(keep)
	for _, name := range comps[keep-1:] {
		parent := s.open[len(s.open)-1].root
		sub, err := openChildDir(parent, name, create)
		if err != nil {
			return nil, fmt.Errorf("parent directory %s: %w", strings.Join(comps[:len(s.open)], "/"), err)
		}
		s.open = append(s.open, &openDir{name: name, root: sub, refs: 1})
	}
	return s.open[len(s.open)-1], nil
}

// truncate leaves the chain's first n directories open and lets go of the rest; a directory
// that a file is still being written into stays open until that write returns.
func (s *DirectorySink) truncate(n int) {
	for _, d := range s.open[n:] {
		s.release(d)
	}
	s.open = s.open[:n]
}

func (s *DirectorySink) release(d *openDir) {
	s.mu.Lock()
	d.refs--
	last := d.refs == 0
	s.mu.Unlock()
	if last {
		d.root.Close()
	}
}

// openChildDir opens the directory name inside parent. It refuses anything but a real
// directory: above all a symlink, which the restore may have created itself.
func openChildDir(parent *os.Root, name string, create bool) (*os.Root, error) {
	fi, err := parent.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := parent.Mkdir(name, 0o700); err != nil {
			return nil, err
		}
		fi, err = parent.Lstat(name)
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("is a %s, not a directory: refusing to write through it", typeName(fi.Mode()))
	}
	sub, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	// Lstat and OpenRoot are two steps; make sure nothing swapped in a symlink between them.
	st, err := sub.Stat(".")
	if err != nil {
		sub.Close()
		return nil, err
	}
	if !os.SameFile(fi, st) {
		sub.Close()
		return nil, errors.New("changed while being opened: refusing to write through it")
	}
	return sub, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "directory"
	}
	return describeType(m)
}

func (s *DirectorySink) writeDir(dir *os.Root, e Entry, name string) error {
	fi, err := dir.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := dir.Mkdir(name, 0o700); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		// Includes a symlink: never let a later child be written through it.
		return fmt.Errorf("a %s of that name was already restored", typeName(fi.Mode()))
	}
	// A directory that exists was created as the parent of an earlier entry: only its mode
	// and mtime are missing.
	s.dirs = append(s.dirs, dirMeta{path: e.Path, mode: e.Mode & modeBits, modTime: e.ModTime})
	return nil
}

func (s *DirectorySink) writeFile(ctx context.Context, dir *os.Root, e Entry, name string, content io.Reader) error {
	if content == nil {
		return errors.New("no content")
	}
	// O_EXCL: the name must be new (never an earlier entry, never a symlink to follow).
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return errors.New("already restored")
	}
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			// Content that failed its check, or a write that failed: nothing stays under the
			// entry's name.
			f.Close()
			_ = dir.Remove(name) // best effort: the write's own error is the one to report
		}
	}()
	n, err := copyContent(ctx, f, content)
	if err != nil {
		return err
	}
	// Through the descriptor: the mode lands on the file just written, never on a link.
	if err := f.Chmod(e.Mode & modeBits); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	done = true
	if !e.ModTime.IsZero() {
		if err := dir.Chtimes(name, e.ModTime, e.ModTime); err != nil {
			_ = dir.Remove(name) // best effort, as above
			return err
		}
	}
	s.files.Add(1)
	s.bytes.Add(n)
	return nil
}

// copyBuffers serve copyContent when content cannot write itself.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyContent writes content to f: through content's WriteTo if it has one (a restore hands
// over whole verified chunks that way), else through a pooled buffer. Both stop once ctx is
// done.
func copyContent(ctx context.Context, f *os.File, content io.Reader) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if wt, ok := content.(io.WriterTo); ok {
		return wt.WriteTo(f)
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// The struct hides f's ReadFrom, which would allocate a buffer of its own.
	return io.CopyBuffer(struct{ io.Writer }{f}, ctxReader{ctx: ctx, r: content}, *buf)
}

func (s *DirectorySink) writeSymlink(dir *os.Root, e Entry, name string) error {
	if e.Target == "" {
		return errors.New("empty symlink target")
	}
	// The target is stored as is, absolute or leading out of root: the sink never follows it.
	if err := dir.Symlink(e.Target, name); err != nil {
		return err
	}
	s.symlinks.Add(1)
	return nil
}

// Finish applies directory modes and mtimes, deepest first, and releases the target. There
// are no facts to compare for a directory; Checked says what was written.
func (s *DirectorySink) Finish(ctx context.Context, _ map[string]string) (Validation, error) {
	if s.root == nil {
		return Validation{}, errors.New("finish restore: sink is closed")
	}
	defer s.Close()
	// Entries arrive parents first, so the reverse visits every child before its parent.
	for _, d := range slices.Backward(s.dirs) {
		if err := ctx.Err(); err != nil {
			return Validation{}, err
		}
		if err := s.finishDir(d); err != nil {
			return Validation{}, fmt.Errorf("finish restore of directory %s: %w", d.path, err)
		}
	}
	return Validation{Checked: fmt.Sprintf("wrote %d files (%d bytes), %d directories and %d symlinks",
		s.files.Load(), s.bytes.Load(), len(s.dirs), s.symlinks.Load())}, nil
}

func (s *DirectorySink) finishDir(d dirMeta) error {
	parentPath, name := splitParent(d.path)
	pd, err := s.dir(parentPath, false)
	if err != nil {
		return err
	}
	parent := pd.root
	sub, err := openChildDir(parent, name, false)
	if err != nil {
		return err
	}
	defer sub.Close()
	f, err := sub.Open(".")
	if err != nil {
		return err
	}
	err = f.Chmod(d.mode)
	f.Close()
	if err != nil {
		return err
	}
	if d.modTime.IsZero() {
		return nil
	}
	return parent.Chtimes(name, d.modTime, d.modTime)
}

// Close releases the target's directory handles. Finish calls it; call it directly only to
// abandon a restore.
func (s *DirectorySink) Close() error {
	if s.root == nil {
		return nil
	}
	s.truncate(1)
	err := s.root.Close()
	s.root = nil
	s.open = nil
	return err
}
