//go:build unix

package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walkResult is what a walk saw: the entries passed to fn (with the content of files) and
// the problems.
type walkResult struct {
	Entries  []string
	Contents map[string]string
	Problems []Problem
}

func walkAll(ctx context.Context, snap Snapshot, fn func(e Entry)) (walkResult, error) {
	res := walkResult{Contents: map[string]string{}}
	err := snap.Walk(ctx, "", func(e Entry, r io.Reader) error {
		if fn != nil {
			fn(e)
		}
		res.Entries = append(res.Entries, e.Path)
		if r != nil {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			res.Contents[e.Path] = string(b)
		}
		return nil
	})
	res.Problems = snap.Problems()
	return res, err
}

func problemFor(t *testing.T, problems []Problem, path string) string {
	t.Helper()
	for _, p := range problems {
		if p.Path == path {
			return p.Err
		}
	}
	t.Errorf("no problem reported for %s (problems: %+v)", path, problems)
	return ""
}

// TestDirectoryProblems covers what a walk cannot back up, each made to happen for real at
// the moment that matters (the beforeOpen hook runs between listing and opening):
// special files, an entry deleted after the listing, an entry replaced by another type, a
// directory swapped for a symlink that leads out of the tree, and a file that grows while
// it is read. Each is a Problem, and the walk goes on.
func TestDirectoryProblems(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	outside := filepath.Join(base, "outside")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "dir-to-link"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(src, "vanishing-dir", "child"), 0o755))
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("outside the tree"), 0o600))
	for name, content := range map[string]string{
		"a-ok.txt": "first", "grows.txt": "12345", "swapped": "was a file",
		"vanishing.txt": "gone soon", "z-ok.txt": "last", "dir-to-link/f": "x",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(src, name), []byte(content), 0o644))
	}
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644))
	// Socket paths are limited to about 100 bytes, so listen from inside src.
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.NoError(t, os.Chdir(src))
	l, err := net.Listen("unix", "sock")
	require.NoError(t, os.Chdir(wd))
	require.NoError(t, err)
	defer l.Close()

	snap, err := NewDirectory(src).Snapshot(ctx)
	require.NoError(t, err)
	defer snap.Close()
	snap.(*dirSnapshot).beforeOpen = func(p string) {
		full := filepath.Join(src, p)
		switch p {
		case "vanishing.txt", "vanishing-dir":
			require.NoError(t, os.RemoveAll(full))
		case "swapped":
			require.NoError(t, os.Remove(full))
			require.NoError(t, os.Mkdir(full, 0o755))
		case "dir-to-link":
			require.NoError(t, os.RemoveAll(full))
			require.NoError(t, os.Symlink(outside, full))
		}
	}
	res, err := walkAll(ctx, snap, func(e Entry) {
		if e.Path == "grows.txt" {
			f, err := os.OpenFile(filepath.Join(src, "grows.txt"), os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString("678")
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	})
	require.NoError(t, err)

	assert.Equal(t, []string{"a-ok.txt", "grows.txt", "z-ok.txt"}, res.Entries)
	assert.Equal(t, "12345678", res.Contents["grows.txt"], "what was there when read")
	assert.Len(t, res.Problems, 7)
	assert.Equal(t, "skipped: a named pipe (FIFO) is not a regular file, directory or symlink", problemFor(t, res.Problems, "fifo"))
	assert.Equal(t, "skipped: a socket is not a regular file, directory or symlink", problemFor(t, res.Problems, "sock"))
	assert.Contains(t, problemFor(t, res.Problems, "vanishing.txt"), "no such file or directory")
	assert.Contains(t, problemFor(t, res.Problems, "vanishing-dir"), "no such file or directory")
	assert.Equal(t, "changed during backup: replaced between listing and opening", problemFor(t, res.Problems, "swapped"))
	assert.Contains(t, problemFor(t, res.Problems, "dir-to-link"), "escapes", "a swapped-in symlink is never followed out of the tree")
	assert.Contains(t, problemFor(t, res.Problems, "grows.txt"), "changed during backup: 5 bytes")
	assert.NotContains(t, res.Contents, "dir-to-link/secret")
}

// unprivilegedTreeEnv passes the tree to TestHelperUnprivilegedWalk in a child process.
const unprivilegedTreeEnv = "DRFLOW_SOURCES_UNPRIVILEGED_TREE"

// nobody is the unprivileged uid and gid that the walk runs as when the tests run as root.
const nobody = 65534

// TestDirectoryUnreadable makes files and directories that the walk really cannot read
// (mode 000, and a directory that can be listed but not entered) and checks they are
// reported. Root reads everything regardless of modes (CAP_DAC_OVERRIDE), so when the tests
// run as root the walk runs in a copy of this test binary started as uid/gid 65534
// (nobody): the permission errors then come from the kernel, as they would for a worker
// that runs as an ordinary user.
func TestDirectoryUnreadable(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "locked-dir"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "list-only-dir"), 0o755))
	for name, content := range map[string]string{
		"a-ok.txt": "first", "locked.txt": "secret", "z-ok.txt": "last",
		"locked-dir/inside": "hidden", "list-only-dir/inside": "hidden too",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644))
	}
	require.NoError(t, os.Chmod(filepath.Join(tree, "locked.txt"), 0))
	require.NoError(t, os.Chmod(filepath.Join(tree, "locked-dir"), 0))
	require.NoError(t, os.Chmod(filepath.Join(tree, "list-only-dir"), 0o444)) // r without x
	t.Cleanup(func() {
		_ = os.Chmod(filepath.Join(tree, "locked-dir"), 0o755)
		_ = os.Chmod(filepath.Join(tree, "list-only-dir"), 0o755)
	})

	var res walkResult
	if os.Geteuid() == 0 {
		res = walkAsNobody(t, base, tree)
	} else {
		snap, err := NewDirectory(tree).Snapshot(context.Background())
		require.NoError(t, err)
		defer snap.Close()
		res, err = walkAll(context.Background(), snap, nil)
		require.NoError(t, err)
	}

	assert.Equal(t, []string{"a-ok.txt", "z-ok.txt"}, res.Entries)
	assert.Equal(t, "first", res.Contents["a-ok.txt"])
	assert.Len(t, res.Problems, 3, "%+v", res.Problems)
	assert.Contains(t, problemFor(t, res.Problems, "locked.txt"), "permission denied")
	assert.Contains(t, problemFor(t, res.Problems, "locked-dir"), "permission denied")
	assert.Contains(t, problemFor(t, res.Problems, "list-only-dir"), "permission denied")
}

// walkAsNobody runs TestHelperUnprivilegedWalk as nobody on tree and returns its result.
func walkAsNobody(t *testing.T, base, tree string) walkResult {
	t.Helper()
	// nobody must reach the tree and run a copy of the test binary, so open up the test's
	// own temporary directories (TempDir makes them 0700) and check the ones above them.
	for _, d := range []string{filepath.Dir(base), base} {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	for d := filepath.Dir(filepath.Dir(base)); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		if fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("uid %d cannot traverse %s (mode %v), which holds the test's temporary directory; set TMPDIR to a directory below world-traversable ones", nobody, d, fi.Mode())
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(base, "sources.test")
	data, err := os.ReadFile(self)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))

	cmd := exec.Command(bin, "-test.run=^TestHelperUnprivilegedWalk$", "-test.count=1")
	cmd.Dir = base
	for _, kv := range os.Environ() {
		// A coverage directory would not be writable by nobody.
		if !strings.HasPrefix(kv, "GOCOVERDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, unprivilegedTreeEnv+"="+tree)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child walk as uid %d:\n%s", nobody, out)
	for _, line := range strings.Split(string(out), "\n") {
		if js, ok := strings.CutPrefix(line, "WALK-RESULT "); ok {
			var res walkResult
			require.NoError(t, json.Unmarshal([]byte(js), &res))
			return res
		}
	}
	t.Fatalf("child walk printed no result:\n%s", out)
	return walkResult{}
}

// TestHelperUnprivilegedWalk is not a test of its own: TestDirectoryUnreadable runs it in a
// child process as nobody. Without the environment variable it has nothing to do.
func TestHelperUnprivilegedWalk(t *testing.T) {
	tree := os.Getenv(unprivilegedTreeEnv)
	if tree == "" {
		return
	}
	require.NotEqual(t, 0, os.Geteuid(), "the helper must not run as root")
	snap, err := NewDirectory(tree).Snapshot(context.Background())
	require.NoError(t, err)
	defer snap.Close()
	res, err := walkAll(context.Background(), snap, nil)
	require.NoError(t, err)
	js, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Printf("WALK-RESULT %s\n", js)
}
