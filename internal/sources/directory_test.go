package sources

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// treeSpec describes a test tree; entries are created in order (parents first), and their
// modes and mtimes applied afterwards, deepest first, so that creating children does not
// disturb them.
type treeSpec struct {
	path    string
	typ     EntryType
	mode    fs.FileMode
	content []byte
	target  string
}

func sampleTree() []treeSpec {
	big := make([]byte, 3<<20+17) // several reads' worth, to exercise streaming
	_, _ = rand.Read(big)
	return []treeSpec{
		{path: "a", typ: TypeDir, mode: 0o755},
		{path: "a/b", typ: TypeDir, mode: 0o750},
		{path: "a/b/file.txt", typ: TypeFile, mode: 0o644, content: []byte("hello\n")},
		{path: "a/b c", typ: TypeDir, mode: 0o700},
		{path: "a/b c/ünïcødé 文件.txt", typ: TypeFile, mode: 0o640, content: []byte("ünïcødé ✓\n")},
		{path: "a/b c/with space", typ: TypeFile, mode: 0o600, content: []byte("spaced")},
		{path: "a/dirlink", typ: TypeSymlink, target: ".."},
		{path: "a-b", typ: TypeFile, mode: 0o600, content: []byte("dash")},
		{path: "a.b", typ: TypeFile, mode: 0o644, content: []byte("dot")},
		{path: "abs-link", typ: TypeSymlink, target: "/etc/passwd"},
		{path: "dangling", typ: TypeSymlink, target: "does/not/exist"},
		{path: "empty", typ: TypeFile, mode: 0o600, content: []byte{}},
		{path: "empty-dir", typ: TypeDir, mode: 0o711},
		{path: "exec.sh", typ: TypeFile, mode: 0o755, content: []byte("#!/bin/sh\necho hi\n")},
		{path: "link", typ: TypeSymlink, target: "a/b/file.txt"},
		{path: "read-only", typ: TypeDir, mode: 0o555},
		{path: "read-only/inside", typ: TypeFile, mode: 0o444, content: []byte("ro")},
		{path: "secret", typ: TypeDir, mode: 0o700},
		{path: "secret/key", typ: TypeFile, mode: 0o600, content: big},
		{path: "setgid", typ: TypeDir, mode: fs.ModeSetgid | 0o775},
		{path: "setgid/f", typ: TypeFile, mode: 0o664, content: []byte("g")},
		{path: "setuid-bin", typ: TypeFile, mode: fs.ModeSetuid | 0o755, content: []byte("x")},
		{path: "shared", typ: TypeDir, mode: fs.ModeSticky | 0o777},
		{path: "up-link", typ: TypeSymlink, target: "../outside"},
	}
}

// sampleOrder is the walk order of sampleTree, written out by hand from the definition
// (depth first, siblings by name bytes) rather than computed with ComparePaths.
var sampleOrder = []string{
	"a", "a/b", "a/b/file.txt", "a/b c", "a/b c/with space", "a/b c/ünïcødé 文件.txt", "a/dirlink",
	"a-b", "a.b", "abs-link", "dangling", "empty", "empty-dir", "exec.sh", "link",
	"read-only", "read-only/inside", "secret", "secret/key", "setgid", "setgid/f",
	"setuid-bin", "shared", "up-link",
}

// specTime gives each entry its own mtime, with nanoseconds.
func specTime(i int) time.Time {
	return time.Unix(1_600_000_000+int64(i)*3601, int64(i)*1_000_123+7)
}

func buildTree(t *testing.T, root string, spec []treeSpec) {
	t.Helper()
	require.NoError(t, os.MkdirAll(root, 0o755))
	for _, s := range spec {
		p := filepath.Join(root, filepath.FromSlash(s.path))
		switch s.typ {
		case TypeDir:
			require.NoError(t, os.Mkdir(p, 0o700))
		case TypeFile:
			require.NoError(t, os.WriteFile(p, s.content, 0o600))
		case TypeSymlink:
			require.NoError(t, os.Symlink(s.target, p))
		}
	}
	for i, s := range slices.Backward(spec) {
		if s.typ == TypeSymlink {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(s.path))
		require.NoError(t, os.Chmod(p, s.mode))
		require.NoError(t, os.Chtimes(p, specTime(i), specTime(i)))
	}
}

// fileState is what a restore must reproduce of one path, read with the standard library
// only, independently of the code under test.
type fileState struct {
	Mode    fs.FileMode // including the type bits
	ModTime time.Time   // zero for symlinks, whose mtimes are not restored
	Content []byte
	Target  string
}

func readTree(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fileState{Mode: fi.Mode(), ModTime: fi.ModTime()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			st.ModTime = time.Time{}
			if st.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if st.Content, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[filepath.ToSlash(rel)] = st
		return nil
	})
	require.NoError(t, err)
	return out
}

func TestDirectoryRoundTrip(t *testing.T) {
	ctx := context.Background()
	spec := sampleTree()
	src := filepath.Join(t.TempDir(), "src")
	buildTree(t, src, spec)
	dst := filepath.Join(t.TempDir(), "restore", "here")

	source := NewDirectory(src)
	assert.Equal(t, KindDirectory, source.Kind())
	before := time.Now()
	snap, err := source.Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()
	assert.False(t, snap.DataAsOf().Before(before))
	assert.False(t, snap.DataAsOf().After(time.Now()))
	assert.Empty(t, snap.Facts())

	sink, err := NewDirectorySink(dst)
	require.NoError(t, err)
	entries, err := transfer(ctx, snap, "", sink)
	require.NoError(t, err)
	assert.Empty(t, snap.Problems())
	assert.Equal(t, sampleOrder, paths(entries))

	v, err := sink.Finish(ctx, snap.Facts())
	require.NoError(t, err)
	assert.True(t, v.OK(), "%v", v.Mismatches)
	var files, dirs, links, size int
	for _, s := range spec {
		switch s.typ {
		case TypeFile:
			files++
			size += len(s.content)
		case TypeDir:
			dirs++
		case TypeSymlink:
			links++
		}
	}
	assert.Equal(t, [3]int{11, 8, 5}, [3]int{files, dirs, links})
	assert.Equal(t, fmt.Sprintf("wrote 11 files (%d bytes), 8 directories and 5 symlinks", size), v.Checked)

	// What the walk reported about each entry.
	byPath := map[string]treeSpec{}
	for _, s := range spec {
		byPath[s.path] = s
	}
	for _, e := range entries {
		s := byPath[e.Path]
		assert.Equal(t, s.typ, e.Type, e.Path)
		switch e.Type {
		case TypeFile:
			assert.Equal(t, int64(len(s.content)), e.Size, e.Path)
			assert.Equal(t, s.mode, e.Mode, e.Path)
		case TypeDir:
			assert.Equal(t, s.mode, e.Mode, e.Path)
		case TypeSymlink:
			assert.Equal(t, s.target, e.Target, e.Path)
		}
	}

	// The restored tree, byte for byte, with modes and mtimes (ns).
	want, got := readTree(t, src), readTree(t, dst)
	require.Len(t, got, len(want))
	for p, w := range want {
		g, ok := got[p]
		if !assert.True(t, ok, "%s missing from restore", p) {
			continue
		}
		assert.Equal(t, w.Mode, g.Mode, "%s: mode", p)
		assert.True(t, w.ModTime.Equal(g.ModTime), "%s: mtime %s, want %s", p, g.ModTime, w.ModTime)
		assert.True(t, bytes.Equal(w.Content, g.Content), "%s: content differs", p)
		assert.Equal(t, w.Target, g.Target, "%s: target", p)
	}
	// Spot checks against the spec itself, in case both trees were wrong the same way.
	assert.Equal(t, fs.ModeDir|fs.ModeSetgid|0o775, got["setgid"].Mode)
	assert.Equal(t, fs.ModeDir|fs.ModeSticky|0o777, got["shared"].Mode)
	assert.Equal(t, fs.ModeSetuid|0o755, got["setuid-bin"].Mode)
	assert.True(t, specTime(0).Equal(got["a"].ModTime))
	assert.Equal(t, "/etc/passwd", got["abs-link"].Target)
}

func TestDirectoryResume(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	buildTree(t, src, sampleTree())
	snap, err := NewDirectory(src).Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()
	ds := snap.(*dirSnapshot)

	walk := func(after string) (visited, opened []string) {
		ds.beforeOpen = func(p string) { opened = append(opened, p) }
		err := snap.Walk(ctx, after, func(e Entry, r io.Reader) error {
			visited = append(visited, e.Path)
			return nil
		})
		require.NoError(t, err)
		return visited, opened
	}
	all, _ := walk("")
	require.Equal(t, sampleOrder, all)

	afters := append(slices.Clone(all),
		"a/b/zzz",    // gone since the checkpoint: resume after where it was
		"a/b/file",   // sorts before a/b/file.txt
		"a.",         // between a-b and a.b
		"secret/key", // last entry of a directory
		"zzz",        // after everything
	)
	for _, after := range afters {
		var want []string
		for _, p := range all {
			if ComparePaths(p, after) > 0 {
				want = append(want, p)
			}
		}
		got, opened := walk(after)
		assert.Equal(t, want, got, "after %q", after)
		for _, p := range opened {
			assert.True(t, ComparePaths(p, after) > 0 || holdsAfter(p, after),
				"after %q: opened %q, which sorts before it and does not hold it", after, p)
		}
	}
}

func TestDirectoryWalkStopsOnCallbackError(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	buildTree(t, src, sampleTree())
	snap, err := NewDirectory(src).Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()

	stop := errors.New("stop")
	var seen []string
	err = snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
		seen = append(seen, e.Path)
		if e.Path == "a.b" {
			return stop
		}
		return nil
	})
	assert.Same(t, stop, err)
	assert.Equal(t, "a.b", seen[len(seen)-1])

	cctx, cancel := context.WithCancel(ctx)
	err = snap.Walk(cctx, "", func(e Entry, r io.Reader) error {
		if e.Path == "secret/key" {
			cancel()
			_, err := io.Copy(io.Discard, r)
			return err
		}
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestDirectorySnapshotMissingRoot(t *testing.T) {
	_, err := NewDirectory(filepath.Join(t.TempDir(), "nope")).Snapshot(context.Background())
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

type brokenDisk struct {
	data []byte
	err  error
}

func (d *brokenDisk) Read(p []byte) (int, error) {
	if len(d.data) == 0 {
		return 0, d.err
	}
	n := copy(p, d.data)
	d.data = d.data[n:]
	return n, nil
}

// TestFileReaderEndsOnReadError: a read error (a bad sector) ends the entry's content with
// what was read, for the walk to report, while cancellation still fails the read.
func TestFileReaderEndsOnReadError(t *testing.T) {
	eio := errors.New("input/output error")
	r := &fileReader{ctx: context.Background(), f: &brokenDisk{data: []byte("partial"), err: eio}}
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "partial", string(b))
	assert.Same(t, eio, r.readErr)
	assert.Equal(t, int64(7), r.n)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = &fileReader{ctx: ctx, f: &brokenDisk{data: []byte("x")}}
	_, err = io.ReadAll(r)
	assert.ErrorIs(t, err, context.Canceled)
}
