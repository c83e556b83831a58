package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDirectorySinkTarget(t *testing.T) {
	base := t.TempDir()

	// A new target is created owner-only, with its parents.
	fresh := filepath.Join(base, "new", "target")
	s, err := NewDirectorySink(fresh)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	fi, err := os.Stat(fresh)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())

	// An empty directory is fine.
	s, err = NewDirectorySink(fresh)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Anything in it, even a hidden file, is data that a restore must not touch.
	require.NoError(t, os.WriteFile(filepath.Join(fresh, ".keep"), []byte("precious"), 0o600))
	_, err = NewDirectorySink(fresh)
	require.ErrorContains(t, err, "is not empty")
	require.ErrorContains(t, err, `".keep"`)
	b, err := os.ReadFile(filepath.Join(fresh, ".keep"))
	require.NoError(t, err)
	assert.Equal(t, "precious", string(b))

	// A file is no target at all.
	_, err = NewDirectorySink(filepath.Join(fresh, ".keep"))
	require.Error(t, err)
}

// TestDirectorySinkRejectsEscapes writes crafted entries into a sink, each after some
// setup entries, and checks that the restore refuses them and nothing appears outside.
func TestDirectorySinkRejectsEscapes(t *testing.T) {
	file := func(p string) Entry { return Entry{Path: p, Type: TypeFile, Mode: 0o600} }
	dir := func(p string) Entry { return Entry{Path: p, Type: TypeDir, Mode: 0o755} }
	link := func(p, target string) Entry { return Entry{Path: p, Type: TypeSymlink, Target: target} }

	tests := []struct {
		name    string
		setup   []Entry
		give    Entry
		wantErr string
	}{
		{name: "dot dot", give: file("../evil"), wantErr: "invalid entry path"},
		{name: "dot dot inside", setup: []Entry{dir("a")}, give: file("a/../../evil"), wantErr: "invalid entry path"},
		{name: "absolute", give: file("/tmp/evil"), wantErr: "invalid entry path"},
		{name: "empty", give: file(""), wantErr: "invalid entry path"},
		{name: "dot", give: dir("."), wantErr: "invalid entry path"},
		{name: "empty segment", give: file("a//b"), wantErr: "invalid entry path"},
		{name: "through absolute symlink", setup: []Entry{link("l", "OUTSIDE")}, give: file("l/evil"), wantErr: "is a symlink, not a directory"},
		{name: "through relative symlink out", setup: []Entry{link("l", "../outside")}, give: file("l/evil"), wantErr: "is a symlink, not a directory"},
		{name: "through symlink to root", setup: []Entry{link("l", ".")}, give: dir("l/x"), wantErr: "is a symlink, not a directory"},
		{name: "through symlink in root", setup: []Entry{dir("d"), link("l", "d")}, give: file("l/f"), wantErr: "is a symlink, not a directory"},
		{name: "deep through symlink", setup: []Entry{dir("a"), link("a/l", "/")}, give: file("a/l/b/c"), wantErr: "is a symlink, not a directory"},
		{name: "directory over symlink", setup: []Entry{link("d", "OUTSIDE")}, give: dir("d"), wantErr: "symlink of that name was already restored"},
		{name: "file over symlink", setup: []Entry{link("f", "OUTSIDE/victim")}, give: file("f"), wantErr: "already restored"},
		{name: "file over file", setup: []Entry{file("f")}, give: file("f"), wantErr: "already restored"},
		{name: "symlink over file", setup: []Entry{file("f")}, give: link("f", "x"), wantErr: "exists"},
		{name: "inside a file", setup: []Entry{file("f")}, give: file("f/g"), wantErr: "is a file, not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			require.NoError(t, os.Mkdir(outside, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("keep me"), 0o644))
			s, err := NewDirectorySink(filepath.Join(base, "target"))
			require.NoError(t, err)
			defer s.Close()
			write := func(e Entry) error {
				e.Target = strings.ReplaceAll(e.Target, "OUTSIDE", outside)
				var content *strings.Reader
				if e.Type == TypeFile {
					content = strings.NewReader("evil")
					return s.Write(ctx, e, content)
				}
				return s.Write(ctx, e, nil)
			}
			for _, e := range tt.setup {
				require.NoError(t, write(e))
			}
			err = write(tt.give)
			require.ErrorContains(t, err, tt.wantErr)

			entries, err := os.ReadDir(outside)
			require.NoError(t, err)
			require.Len(t, entries, 1, "nothing new outside the target")
			b, err := os.ReadFile(filepath.Join(outside, "victim"))
			require.NoError(t, err)
			assert.Equal(t, "keep me", string(b))
			_, err = os.Lstat(filepath.Join(base, "evil"))
			assert.ErrorIs(t, err, fs.ErrNotExist)
			// No temporary file is left behind by a refused or failed write.
			err = filepath.WalkDir(filepath.Join(base, "target"), func(p string, d fs.DirEntry, err error) error {
				assert.NotContains(t, p, ".drflow-restore-")
				return err
			})
			require.NoError(t, err)
		})
	}
}

func TestDirectorySinkCreatesMissingParents(t *testing.T) {
	ctx := context.Background()
	dst := t.TempDir()
	s, err := NewDirectorySink(dst)
	require.NoError(t, err)
	mtime := time.Unix(1_700_000_000, 42)
	require.NoError(t, s.Write(ctx, Entry{Path: "x/y/z.txt", Type: TypeFile, Mode: 0o640, ModTime: mtime}, strings.NewReader("deep")))
	require.NoError(t, s.Write(ctx, Entry{Path: "x/w.txt", Type: TypeFile, Mode: 0o600}, strings.NewReader("shallow")))
	v, err := s.Finish(ctx, nil)
	require.NoError(t, err)
	assert.True(t, v.OK())

	fi, err := os.Stat(filepath.Join(dst, "x", "y"))
	require.NoError(t, err)
	assert.Equal(t, fs.ModeDir|0o700, fi.Mode(), "unlisted parents are owner-only")
	fi, err = os.Stat(filepath.Join(dst, "x", "y", "z.txt"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o640), fi.Mode())
	assert.True(t, mtime.Equal(fi.ModTime()))
	b, err := os.ReadFile(filepath.Join(dst, "x", "w.txt"))
	require.NoError(t, err)
	assert.Equal(t, "shallow", string(b))

	require.ErrorContains(t, s.Write(ctx, Entry{Path: "late", Type: TypeDir}, nil), "sink is closed")
}

// Files prepared in order may be written in any order and at once; each directory handle
// stays open until the last write into it has returned, and a failing content leaves
// nothing under the file's name.
func TestDirectorySinkConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "t")
	s, err := NewDirectorySink(target)
	require.NoError(t, err)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	type job struct {
		path  string
		write FileWrite
	}
	var jobs []job
	for d := range 8 {
		dir := fmt.Sprintf("dir-%d", d)
		require.NoError(t, s.Write(ctx, Entry{Path: dir, Type: TypeDir, Mode: 0o750, ModTime: mtime}, nil))
		for f := range 25 {
			p := fmt.Sprintf("%s/file-%02d", dir, f)
			w, err := s.PrepareFile(ctx, Entry{Path: p, Type: TypeFile, Mode: 0o640, ModTime: mtime, Size: int64(len(p))})
			require.NoError(t, err)
			jobs = append(jobs, job{p, w})
		}
	}
	bad, err := s.PrepareFile(ctx, Entry{Path: "dir-7/zz-bad", Type: TypeFile, Mode: 0o600})
	require.NoError(t, err)
	_, err = s.PrepareFile(ctx, Entry{Path: "dir-7/zz-bad", Type: TypeFile, Mode: 0o600})
	require.ErrorContains(t, err, "already restored", "a path listed twice is refused before its first write has run")

	var wg sync.WaitGroup
	for i := len(jobs) - 1; i >= 0; i-- { // last prepared first: the chain has moved on
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			assert.NoError(t, j.write(ctx, strings.NewReader(j.path)))
		}(jobs[i])
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := bad(ctx, io.MultiReader(strings.NewReader("half"), iotest.ErrReader(errors.New("content failed its check"))))
		assert.ErrorContains(t, err, "content failed its check")
	}()
	wg.Wait()
	v, err := s.Finish(ctx, nil)
	require.NoError(t, err)
	assert.Contains(t, v.Checked, "wrote 200 files")

	for _, j := range jobs {
		data, err := os.ReadFile(filepath.Join(target, j.path))
		require.NoError(t, err)
		assert.Equal(t, j.path, string(data))
		fi, err := os.Stat(filepath.Join(target, j.path))
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o640), fi.Mode().Perm())
		assert.True(t, fi.ModTime().Equal(mtime), j.path)
	}
	_, err = os.Lstat(filepath.Join(target, "dir-7", "zz-bad"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "a failed write leaves nothing under the name")
	fi, err := os.Stat(filepath.Join(target, "dir-3"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o750), fi.Mode().Perm())
	assert.True(t, fi.ModTime().Equal(mtime), "directory times are set after its files")
}
