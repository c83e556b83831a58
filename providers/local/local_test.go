package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) providers.Store {
		return newStore(t)
	}, storetest.Options{})
}

func newStore(t testing.TB, opts ...func(*Options)) *Store {
	t.Helper()
	o := Options{Root: t.TempDir(), Location: providers.Location{Name: "test"}}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := Open(o)
	require.NoError(t, err)
	return s
}

func withRoot(root string) func(*Options) { return func(o *Options) { o.Root = root } }

func TestOpen(t *testing.T) {
	root := filepath.Join(t.TempDir(), "new", "store")
	s := newStore(t, withRoot(root))
	fi, err := os.Stat(root)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "root mode")
	assert.Equal(t, providers.Location{Name: "test", Provider: providers.ProviderLocal, Bucket: root}, s.Location())
	caps := s.Capabilities()
	assert.True(t, caps.Immutable())
	assert.True(t, caps.ConditionalCreate)
	assert.Contains(t, caps.Note, "not hardware WORM")

	// Reopening the same root is how a second worker shares it.
	_ = newStore(t, withRoot(root))

	tests := []struct {
		name string
		give Options
		want error
	}{
		{"empty root", Options{}, providers.ErrInvalidArgument},
		{"other provider", Options{Root: root, Location: providers.Location{Provider: providers.ProviderS3}}, providers.ErrInvalidArgument},
		{"prefix", Options{Root: root, Location: providers.Location{Prefix: "p"}}, providers.ErrInvalidArgument},
		{"bucket is not root", Options{Root: root, Location: providers.Location{Bucket: "/elsewhere"}}, providers.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.give)
			assert.ErrorIs(t, err, tt.want)
		})
	}

	t.Run("other layout", func(t *testing.T) {
		root := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(root, markerName), []byte("drflow local store, layout 2\n"), 0o600))
		_, err := Open(Options{Root: root})
		assert.ErrorIs(t, err, providers.ErrNotSupported)
		assert.ErrorContains(t, err, "layout 2")
	})
}

// failingReader yields n bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	p = p[:min(len(p), r.n)]
	clear(p)
	r.n -= len(p)
	return len(p), nil
}

func TestFailedPutRemovesTempFileAndKeepsPrevious(t *testing.T) {
	broken := errors.New("source broke")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		r    io.Reader
		want error
	}{
		{"source error", context.Background(), &failingReader{n: 3 << 20, err: broken}, broken},
		{"cancelled context", cancelled, &failingReader{n: 3 << 20, err: io.EOF}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.Put(context.Background(), "keep", strings.NewReader("previous"), providers.PutOptions{})
			require.NoError(t, err)

			for _, key := range []string{"keep", "new/dir/obj"} {
				_, err := s.Put(tt.ctx, key, tt.r, providers.PutOptions{LegalHold: true})
				assert.ErrorIs(t, err, tt.want)
			}
			assert.Empty(t, dirNames(t, s.tmp), "temp files left behind")
			assert.Equal(t, []byte("previous"), read(t, s, "keep"))
			stat, err := s.Stat(context.Background(), "keep")
			require.NoError(t, err)
			assert.False(t, stat.LegalHold, "a failed Put must not apply its hold")
			assert.Equal(t, []string{"keep@data"}, dirNames(t, s.objects), "a failed Put must create nothing")
		})
	}
}

func TestCrashLeftoversAreIgnoredAndSwept(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, withRoot(root))
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)

	// A writer that crashed mid-Put and one that crashed between its metadata and data renames.
	crashed := filepath.Join(s.tmp, tempPut+"crashed")
	require.NoError(t, os.WriteFile(crashed, []byte("half an object"), 0o600))
	require.NoError(t, os.Chtimes(crashed, old, old))
	_, err := s.Put(ctx, "orphan", strings.NewReader("x"), providers.PutOptions{LegalHold: true})
	require.NoError(t, err)
	require.NoError(t, os.Remove(s.pathFor("orphan").data))

	// A live writer in another process: its temp file is old but locked.
	live := filepath.Join(s.tmp, tempPut+"live")
	require.NoError(t, os.WriteFile(live, []byte("still writing"), 0o600))
	require.NoError(t, os.Chtimes(live, old, old))
	f, err := os.Open(live)
	require.NoError(t, err)
	defer f.Close()
	locked, err := tryLockFile(f)
	require.NoError(t, err)
	require.True(t, locked)
	// A fresh temp file whose writer has not locked it yet.
	fresh := filepath.Join(s.tmp, tempMeta+"fresh")
	require.NoError(t, os.WriteFile(fresh, nil, 0o600))

	assert.Empty(t, list(t, s, ""), "leftovers must not be listed")
	_, err = s.Stat(ctx, "orphan")
	assert.ErrorIs(t, err, providers.ErrNotFound)
	_, err = s.Stat(ctx, "crashed")
	assert.ErrorIs(t, err, providers.ErrNotFound)

	_ = newStore(t, withRoot(root)) // Open sweeps
	assert.ElementsMatch(t, []string{tempPut + "live", tempMeta + "fresh"}, dirNames(t, s.tmp))

	require.NoError(t, f.Close()) // the live writer dies
	require.NoError(t, s.Sweep(ctx))
	assert.Equal(t, []string{tempMeta + "fresh"}, dirNames(t, s.tmp))

	// The orphaned hold protects nothing: a new object at its key starts without it.
	_, err = s.Put(ctx, "orphan", strings.NewReader("new"), providers.PutOptions{})
	require.NoError(t, err)
	stat, err := s.Stat(ctx, "orphan")
	require.NoError(t, err)
	assert.False(t, stat.LegalHold)
	assert.NoFileExists(t, s.pathFor("orphan").meta)
}

func TestCorruptMetadataFailsClosed(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Put(ctx, "obj", strings.NewReader("evidence"), providers.PutOptions{LegalHold: true})
	require.NoError(t, err)
	meta := s.pathFor("obj").meta
	for _, garbage := range []string{
		"{not json",
		`{"version":1,"legal_hold":true}{}`,
		`{"version":2,"legal_hold":false}`,
		`{"version":1,"legal_hold":false,"worm":true}`,
		`{"version":1,"retention":{"mode":"forever","until":"2030-01-01T00:00:00Z"}}`,
	} {
		require.NoError(t, os.Chmod(meta, 0o600))
		require.NoError(t, os.WriteFile(meta, []byte(garbage), 0o600))

		_, err = s.Stat(ctx, "obj")
		assert.ErrorIs(t, err, ErrCorruptMetadata, "%s", garbage)
		assert.ErrorContains(t, err, meta, "the error must name the file")
		assert.ErrorIs(t, s.Delete(ctx, "obj"), ErrCorruptMetadata)
		_, err = s.Put(ctx, "obj", strings.NewReader("tampered"), providers.PutOptions{})
		assert.ErrorIs(t, err, ErrCorruptMetadata)
		assert.ErrorIs(t, s.SetLegalHold(ctx, "obj", false), ErrCorruptMetadata)
		assert.Equal(t, []byte("evidence"), read(t, s, "obj"))
	}
}

func TestPutAppliesMetadataWithTheWrite(t *testing.T) {
	clock := newFakeClock()
	s := newStore(t, func(o *Options) { o.Clock = clock.Now })
	ctx := context.Background()
	until := clock.Now().Add(time.Hour)
	info, err := s.Put(ctx, "obj", strings.NewReader("x"), providers.PutOptions{
		LegalHold:   true,
		Retention:   providers.Retention{Mode: providers.Compliance, Until: until},
		ContentType: "application/json",
	})
	require.NoError(t, err)
	assert.True(t, info.LegalHold)
	assert.True(t, until.Equal(info.Retention.Until))

	stat, err := s.Stat(ctx, "obj")
	require.NoError(t, err)
	assert.Equal(t, info, stat)
	raw, err := os.ReadFile(s.pathFor("obj").meta)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"content_type":"application/json"`)

	// Once unprotected, an overwrite is a new object: the old metadata does not carry over.
	require.NoError(t, s.SetLegalHold(ctx, "obj", false))
	clock.Advance(time.Hour)
	_, err = s.Put(ctx, "obj", strings.NewReader("y"), providers.PutOptions{})
	require.NoError(t, err)
	stat, err = s.Stat(ctx, "obj")
	require.NoError(t, err)
	assert.False(t, stat.LegalHold)
	assert.True(t, stat.Retention.Until.IsZero())
	assert.NoFileExists(t, s.pathFor("obj").meta)
}

func TestFilesAreReadOnly(t *testing.T) {
	s := newStore(t)
	_, err := s.Put(context.Background(), "obj", strings.NewReader("x"), providers.PutOptions{LegalHold: true})
	require.NoError(t, err)
	p := s.pathFor("obj")
	for _, path := range []string{p.data, p.meta} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o444), fi.Mode().Perm(), path)
	}
	if os.Geteuid() != 0 { // root ignores file modes, which the capability note admits
		_, err = os.OpenFile(p.data, os.O_WRONLY, 0)
		assert.ErrorIs(t, err, fs.ErrPermission)
	}
}

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	putAll(t, s, []string{"a/b/c", "a/x", "a/" + chunk + "y"})
	require.NoError(t, s.Delete(ctx, "a/b/c"))
	assert.ElementsMatch(t, []string{"x@data", chunk + "+"}, dirNames(t, filepath.Join(s.objects, "a")))
	require.NoError(t, s.Delete(ctx, "a/"+chunk+"y"))
	require.NoError(t, s.Delete(ctx, "a/x"))
	assert.Empty(t, dirNames(t, s.objects))
}

func TestListCallbackMayDelete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	keys := []string{"d/a/1", "d/a/2", "d/b/1", "d/c", "e"}
	putAll(t, s, keys)
	var seen []string
	require.NoError(t, s.List(ctx, "d/", func(o providers.ObjectInfo) error {
		seen = append(seen, o.Key)
		return s.Delete(ctx, o.Key)
	}))
	assert.Equal(t, keys[:4], seen)
	assert.Equal(t, []string{"e"}, list(t, s, ""))
	assert.Equal(t, []string{"e@data"}, dirNames(t, s.objects))
}

// TestPutSurvivesConcurrentDirectoryRemoval has writers keep emptying and refilling one
// directory, so Deletes remove it between other writers' mkdir and rename.
func TestPutSurvivesConcurrentDirectoryRemoval(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				key := fmt.Sprintf("shared/dir/w%d-%d", w, i)
				if _, err := s.Put(ctx, key, strings.NewReader(key), providers.PutOptions{IfNotExists: i%2 == 0}); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Empty(t, list(t, s, ""))
	assert.Empty(t, dirNames(t, s.objects))
}

// TestConcurrentPutAndLegalHold races an overwrite against placing a hold, from two Stores on
// one root (as two worker processes would be). Whichever wins, the hold must stick: either
// the overwrite is refused, or it lands first and the hold applies to the new content.
func TestConcurrentPutAndLegalHold(t *testing.T) {
	root := t.TempDir()
	writer, holder := newStore(t, withRoot(root)), newStore(t, withRoot(root))
	ctx := context.Background()
	var refused, landed int
	for i := range 60 {
		key := fmt.Sprintf("evidence/%d", i)
		_, err := writer.Put(ctx, key, strings.NewReader("original"), providers.PutOptions{})
		require.NoError(t, err)

		var wg sync.WaitGroup
		var putErr, holdErr error
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, putErr = writer.Put(ctx, key, strings.NewReader("overwrite"), providers.PutOptions{})
		}()
		go func() {
			defer wg.Done()
			<-start
			holdErr = holder.SetLegalHold(ctx, key, true)
		}()
		close(start)
		wg.Wait()

		require.NoError(t, holdErr)
		stat, err := writer.Stat(ctx, key)
		require.NoError(t, err)
		require.True(t, stat.LegalHold, "%s: the hold was lost", key)
		switch {
		case putErr == nil:
			landed++
			assert.Equal(t, []byte("overwrite"), read(t, writer, key))
		case errors.Is(putErr, providers.ErrImmutable):
			refused++
			assert.Equal(t, []byte("original"), read(t, writer, key))
		default:
			t.Fatalf("put %s: %v", key, putErr)
		}
		require.ErrorIs(t, holder.Delete(ctx, key), providers.ErrImmutable)
	}
	t.Logf("overwrite landed before the hold %d times, refused %d times", landed, refused)
}

const lockHelperEnv = "DRFLOW_LOCAL_LOCK_HELPER_ROOT"

func TestMain(m *testing.M) {
	if root := os.Getenv(lockHelperEnv); root != "" {
		os.Exit(holdLock(root))
	}
	os.Exit(m.Run())
}

// holdLock is TestLockExcludesOtherProcesses' child process: it holds a key's lock until its
// stdin closes.
func holdLock(root string) int {
	s, err := Open(Options{Root: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	unlock, err := s.lock("held/by/child")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	unlock()
	return 0
}

func TestLockExcludesOtherProcesses(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, withRoot(root))
	ctx := context.Background()
	_, err := s.Put(ctx, "held/by/child", strings.NewReader("x"), providers.PutOptions{})
	require.NoError(t, err)

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), lockHelperEnv+"="+root)
	stdin, err := child.StdinPipe()
	require.NoError(t, err)
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	t.Cleanup(func() { _ = stdin.Close(); _ = child.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	done := make(chan error, 1)
	go func() { done <- s.SetLegalHold(ctx, "held/by/child", true) }()
	select {
	case err := <-done:
		t.Fatalf("SetLegalHold finished (%v) while another process held the key's lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, stdin.Close())
	require.NoError(t, <-done)
	require.NoError(t, child.Wait())
}

func TestGetRangeEdges(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Put(ctx, "obj", strings.NewReader("0123456789"), providers.PutOptions{})
	require.NoError(t, err)
	_, err = s.Put(ctx, "empty", strings.NewReader(""), providers.PutOptions{})
	require.NoError(t, err)

	tests := []struct {
		key     string
		give    providers.ByteRange
		want    string
		wantErr error
	}{
		{"obj", providers.ByteRange{Offset: 2, Length: math.MaxInt64}, "23456789", nil},
		{"obj", providers.ByteRange{Offset: 9, Length: -1}, "9", nil},
		{"obj", providers.ByteRange{Offset: 10, Length: -1}, "", providers.ErrInvalidArgument},
		{"obj", providers.ByteRange{Offset: 11, Length: 1}, "", providers.ErrInvalidArgument},
		{"empty", providers.ByteRange{Offset: 0, Length: -1}, "", providers.ErrInvalidArgument},
	}
	for _, tt := range tests {
		rc, err := s.Get(ctx, tt.key, providers.GetOptions{Range: &tt.give})
		if tt.wantErr != nil {
			assert.ErrorIs(t, err, tt.wantErr, "%s %+v", tt.key, tt.give)
			continue
		}
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		assert.Equal(t, tt.want, string(got), "%s %+v", tt.key, tt.give)
	}
}

func TestETag(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first, err := s.Put(ctx, "obj", strings.NewReader("same size A"), providers.PutOptions{})
	require.NoError(t, err)
	stat, err := s.Stat(ctx, "obj")
	require.NoError(t, err)
	assert.Equal(t, first.ETag, stat.ETag, "Put and Stat agree")
	second, err := s.Put(ctx, "obj", strings.NewReader("same size B"), providers.PutOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, first.ETag, second.ETag, "a same-sized overwrite within one clock tick still changes the ETag")
}

func TestErrorsNameOperationAndKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Get(ctx, "missing/obj", providers.GetOptions{})
	assert.ErrorIs(t, err, providers.ErrNotFound)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the os error stays in the chain")
	assert.ErrorContains(t, err, "local get missing/obj: ")

	_, err = s.Put(ctx, "a//b", strings.NewReader("x"), providers.PutOptions{})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
	assert.ErrorContains(t, err, "local put a//b: ")

	ctx, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.List(ctx, "", func(providers.ObjectInfo) error { return nil }), context.Canceled)
}

func TestTranslateError(t *testing.T) {
	tests := []struct {
		give error
		want error
	}{
		{fs.ErrNotExist, providers.ErrNotFound},
		{&fs.PathError{Op: "link", Path: "p", Err: fs.ErrExist}, providers.ErrExists},
		{fs.ErrPermission, providers.ErrPermission},
		{fmt.Errorf("x: %w", providers.ErrImmutable), providers.ErrImmutable},
		{context.Canceled, context.Canceled},
	}
	for _, tt := range tests {
		got := translateError(tt.give)
		assert.ErrorIs(t, got, tt.want, "%v", tt.give)
		assert.ErrorIs(t, got, tt.give, "the original stays in the chain")
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
