package sources

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

var _ Sink = (*DirectorySink)(nil)

// DirectorySink restores entries into a directory that it creates or that is empty, so a
// restore never mixes with or overwrites existing data.
//
// Every entry path is checked (relative, no "." or ".." segments) and resolved one directory
// at a time without following symlinks, so neither a crafted path nor a symlink that the
// restore itself created can make it write outside root or through a link. Files are written
// under a temporary name in their directory and renamed into place once complete, with their
// mode and mtime already set. Directories are created owner-only (0700) so that the restore
// can fill them whatever their final mode; Finish then applies their modes and mtimes,
// children before parents, so that writing a child does not disturb its parent's mtime.
// Parents that a restore point does not list (object stores have no directories) are created
// 0700 and keep that mode. Symlink mtimes are not restored (the standard library cannot set
// them without following the link), and files are not fsynced: an interrupted restore is
// started again into a fresh target.
type DirectorySink struct {
	root *os.Root
	// open is the chain of directories from root to the parent of the last entry written:
	// entries arrive depth first, so consecutive entries share most of it.
	open []openDir
	dirs []dirMeta

	files, symlinks, bytes int64
}

type openDir struct {
	name string
	root *os.Root
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
	return &DirectorySink{root: r, open: []openDir{{root: r}}}, nil
}

// Write restores one entry. Its parent directories are created if the restore point does
// not list them.
func (s *DirectorySink) Write(ctx context.Context, e Entry, content io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.root == nil {
		return fmt.Errorf("restore %s: sink is closed", e.Path)
	}
	if err := checkPath(e.Path); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	dirPath, name := splitParent(e.Path)
	dir, err := s.dir(dirPath, true)
	if err != nil {
		return fmt.Errorf("restore %s: %w", e.Path, err)
	}
	switch e.Type {
	case TypeDir:
		err = s.writeDir(dir, e, name)
	case TypeFile:
		err = s.writeFile(ctx, dir, e, name, content)
	case TypeSymlink:
		err = s.writeSymlink(dir, e, name)
	default:
		err = fmt.Errorf("unknown entry type %d", e.Type)
	}
	if err != nil {
		return fmt.Errorf("restore %s %s: %w", e.Type, e.Path, err)
	}
	return nil
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
func (s *DirectorySink) dir(p string, create bool) (*os.Root, error) {
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
		s.open = append(s.open, openDir{name: name, root: sub})
	}
	return s.open[len(s.open)-1].root, nil
}

func (s *DirectorySink) truncate(n int) {
	for _, d := range s.open[n:] {
		d.root.Close()
	}
	s.open = s.open[:n]
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
	if _, err := dir.Lstat(name); err == nil {
		return errors.New("already restored")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, f, err := createTemp(dir)
	if err != nil {
		return err
	}
	placed := false
	defer func() {
		if !placed {
			f.Close()
			dir.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: content})
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
	if !e.ModTime.IsZero() {
		if err := dir.Chtimes(tmp, e.ModTime, e.ModTime); err != nil {
			return err
		}
	}
	if err := dir.Rename(tmp, name); err != nil {
		return err
	}
	placed = true
	s.files++
	s.bytes += n
	return nil
}

// createTemp creates an owner-only file under a random name that no entry of a restore point
// is expected to use. O_EXCL makes it fail, rather than follow, if anything holds the name.
func createTemp(dir *os.Root) (string, *os.File, error) {
	for range 10 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, err
		}
		name := ".drflow-restore-" + hex.EncodeToString(b[:]) + ".tmp"
		f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, errors.New("could not find a free temporary name")
}

func (s *DirectorySink) writeSymlink(dir *os.Root, e Entry, name string) error {
	if e.Target == "" {
		return errors.New("empty symlink target")
	}
	// The target is stored as is, absolute or leading out of root: the sink never follows it.
	if err := dir.Symlink(e.Target, name); err != nil {
		return err
	}
	s.symlinks++
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
		s.files, s.bytes, len(s.dirs), s.symlinks)}, nil
}

func (s *DirectorySink) finishDir(d dirMeta) error {
	parentPath, name := splitParent(d.path)
	parent, err := s.dir(parentPath, false)
	if err != nil {
		return err
	}
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
