package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
)

// testKeys is a keys.DataKeys that derives each epoch's DEK from a fixed secret, and writes a
// stand-in "wrapped key" object per epoch so that Copy has something to copy.
// TODO(lead): switch the integration tests to keys.Manager once it lands.
type testKeys struct {
	mu      sync.Mutex
	current uint32
	secret  string
}

func newTestKeys() *testKeys { return &testKeys{current: 1, secret: "drflow repo test"} }

func (k *testKeys) key(dataset string, epoch uint32) (*keys.DataKey, error) {
	s := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", k.secret, dataset, epoch)))
	return keys.NewDataKey(dataset, epoch, s[:])
}

func (k *testKeys) Current(ctx context.Context, st providers.Store, dataset string) (*keys.DataKey, error) {
	k.mu.Lock()
	epoch := k.current
	k.mu.Unlock()
	wrapped := make([]byte, 60)
	rand.New(rand.NewSource(int64(epoch))).Read(wrapped)
	key := fmt.Sprintf("%sepoch-%08d", keysPrefix(dataset), epoch)
	if _, err := st.Put(ctx, key, bytes.NewReader(wrapped), providers.PutOptions{IfNotExists: true}); err != nil && !isExists(err) {
		return nil, err
	}
	return k.key(dataset, epoch)
}

func (k *testKeys) Epoch(_ context.Context, _ providers.Store, dataset string, epoch uint32) (*keys.DataKey, error) {
	k.mu.Lock()
	cur := k.current
	k.mu.Unlock()
	if epoch == 0 || epoch > cur {
		return nil, fmt.Errorf("epoch %d: %w", epoch, providers.ErrNotFound)
	}
	return k.key(dataset, epoch)
}

func isExists(err error) bool {
	return err != nil && strings.Contains(err.Error(), providers.ErrExists.Error())
}

// memFile is one entry of a memSource.
type memFile struct {
	sources.Entry
	content []byte
}

// memSource is an in-memory sources.Source; its DataAsOf advances by a minute per snapshot.
// TODO(lead): switch the integration tests to the directory source once it lands.
type memSource struct {
	mu       sync.Mutex
	files    []memFile
	facts    map[string]string
	problems []sources.Problem
	asOf     time.Time
	snaps    int
	// failAt, if set, makes reading the file at that path fail half-way.
	failAt string
}

func newMemSource(files []memFile) *memSource {
	return &memSource{files: files, asOf: time.Date(2026, 11, 22, 21, 30, 0, 123456789, time.UTC),
		facts: map[string]string{"files": fmt.Sprint(countFiles(files))}}
}

func countFiles(files []memFile) int {
	n := 0
	for _, f := range files {
		if f.Type == sources.TypeFile {
			n++
		}
	}
	return n
}

func (s *memSource) Kind() string { return sources.KindDirectory }

func (s *memSource) Snapshot(context.Context) (sources.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files := slices.Clone(s.files)
	sort.Slice(files, func(i, j int) bool { return sources.ComparePaths(files[i].Path, files[j].Path) < 0 })
	snap := &memSnap{files: files, asOf: s.asOf.Add(time.Duration(s.snaps) * time.Minute), facts: s.facts,
		problems: s.problems, failAt: s.failAt}
	s.snaps++
	return snap, nil
}

type memSnap struct {
	files    []memFile
	asOf     time.Time
	facts    map[string]string
	problems []sources.Problem
	failAt   string
}

func (s *memSnap) DataAsOf() time.Time         { return s.asOf }
func (s *memSnap) Facts() map[string]string    { return s.facts }
func (s *memSnap) Problems() []sources.Problem { return s.problems }
func (s *memSnap) Close() error                { return nil }

func cmpFiles(a, b memFile) int { return sources.ComparePaths(a.Path, b.Path) }

// Walk follows sources.ComparePaths order and skips entries at or before after.
func (s *memSnap) Walk(ctx context.Context, after string, fn func(sources.Entry, io.Reader) error) error {
	for _, f := range s.files {
		if after != "" && sources.ComparePaths(f.Path, after) <= 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var r io.Reader
		if f.Type == sources.TypeFile {
			r = bytes.NewReader(f.content)
			if s.failAt != "" && f.Path == s.failAt {
				r = io.MultiReader(bytes.NewReader(f.content[:len(f.content)/2]), failReader{})
			}
		}
		e := f.Entry
		e.Size = int64(len(f.content))
		if f.Type != sources.TypeFile {
			e.Size = 0
		}
		if err := fn(e, r); err != nil {
			return err
		}
	}
	return nil
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, fmt.Errorf("simulated read error") }

// memSink records what a restore writes.
type memSink struct {
	mu      sync.Mutex
	entries []sources.Entry
	content map[string][]byte
	facts   map[string]string
	// failed lists entries whose content reader returned an error.
	failed []string
}

func newMemSink() *memSink { return &memSink{content: map[string][]byte{}} }

func (s *memSink) Write(_ context.Context, e sources.Entry, r io.Reader) error {
	var data []byte
	if r != nil {
		var err error
		data, err = io.ReadAll(r)
		if err != nil {
			s.mu.Lock()
			s.failed = append(s.failed, e.Path)
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	if e.Type == sources.TypeFile {
		s.content[e.Path] = data
	}
	return nil
}

func (s *memSink) Finish(_ context.Context, facts map[string]string) (sources.Validation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.facts = facts
	v := sources.Validation{Checked: "file count"}
	if want := fmt.Sprint(len(s.content)); facts["files"] != want {
		v.Mismatches = append(v.Mismatches, fmt.Sprintf("files: want %s, restored %s", facts["files"], want))
	}
	return v, nil
}

// recorder is an audit.Recorder that keeps events in memory.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	if err := audit.Validate(e); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Kind+":"+e.Outcome)
	}
	return out
}

func (r *recorder) last(kind string) audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Kind == kind {
			return r.events[i]
		}
	}
	return audit.Event{}
}

func (r *recorder) json(t testing.TB) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := json.Marshal(r.events)
	require.NoError(t, err)
	return string(b)
}

// fixture is a repository on a local store in a temp directory.
type fixture struct {
	t     testing.TB
	root  string
	store *local.Store
	keys  *testKeys
	audit *recorder
	repo  *Repo
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir(), keys: newTestKeys(), audit: &recorder{}}
	f.store = openStore(t, f.root, "eu-primary", "EU")
	f.repo = f.open(f.store, "customers")
	return f
}

func openStore(t testing.TB, root, name, jur string) *local.Store {
	t.Helper()
	st, err := local.Open(local.Options{Root: root, Location: providers.Location{Name: name, Jurisdiction: jur, Region: strings.ToLower(jur)}})
	require.NoError(t, err)
	return st
}

func (f *fixture) open(st providers.Store, dataset string) *Repo {
	f.t.Helper()
	r, err := Open(Options{Store: st, Dataset: dataset, Keys: f.keys, Audit: f.audit, Logger: zaptest.NewLogger(f.t), Concurrency: 2})
	require.NoError(f.t, err)
	r.packTarget = 1 << 20 // several packs even for small test data
	r.checkpointEvery = 0
	return r
}

func (f *fixture) backup(src sources.Source, opts BackupOptions) BackupResult {
	f.t.Helper()
	res, err := f.repo.Backup(context.Background(), src, opts)
	require.NoError(f.t, err)
	return res
}

// restore restores a point and checks it equals files.
func (f *fixture) restoreEqual(r *Repo, point string, files []memFile) RestoreResult {
	f.t.Helper()
	sink := newMemSink()
	res, err := r.Restore(context.Background(), point, sink, RestoreOptions{Actor: "test"})
	require.NoError(f.t, err)
	require.True(f.t, res.Validation.OK(), res.Validation.Mismatches)
	requireSameFiles(f.t, files, sink)
	return res
}

func requireSameFiles(t testing.TB, files []memFile, sink *memSink) {
	t.Helper()
	want := slices.Clone(files)
	slices.SortFunc(want, cmpFiles)
	require.Len(t, sink.entries, len(want))
	for i, w := range want {
		got := sink.entries[i]
		require.Equal(t, w.Path, got.Path)
		require.Equal(t, w.Type, got.Type, w.Path)
		require.Equal(t, w.Mode, got.Mode, w.Path)
		require.True(t, w.ModTime.Equal(got.ModTime), "%s: mtime %v, want %v", w.Path, got.ModTime, w.ModTime)
		require.Equal(t, w.Target, got.Target, w.Path)
		if w.Type == sources.TypeFile {
			require.True(t, bytes.Equal(w.content, sink.content[w.Path]), "%s: content differs (%d bytes, want %d)",
				w.Path, len(sink.content[w.Path]), len(w.content))
		}
	}
}

// Test data.

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// textBytes is compressible text that carries a marker string, to prove it never reaches a
// store in the clear.
func textBytes(seed int64, n int, marker string) []byte {
	r := rand.New(rand.NewSource(seed))
	words := []string{"invoice ", "customer ", "total ", "amount ", "due ", "paid\n", marker + " "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.Intn(len(words))])
		if r.Intn(10) == 0 {
			_ = binary.Write(&b, binary.BigEndian, r.Uint32()%1000)
		}
	}
	return b.Bytes()[:n]
}

func mtime(i int) time.Time {
	return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Hour + time.Duration(i*7919)*time.Nanosecond)
}

func file(path string, mode fs.FileMode, i int, content []byte) memFile {
	return memFile{Entry: sources.Entry{Path: path, Type: sources.TypeFile, Mode: mode, ModTime: mtime(i)}, content: content}
}

func dir(path string, i int) memFile {
	return memFile{Entry: sources.Entry{Path: path, Type: sources.TypeDir, Mode: 0o755, ModTime: mtime(i)}}
}

func symlink(path, target string, i int) memFile {
	return memFile{Entry: sources.Entry{Path: path, Type: sources.TypeSymlink, Mode: 0o777, ModTime: mtime(i), Target: target}}
}

const contentMarker = "ZEBRA-CUSTOMER-ACME-4242"
const nameMarker = "acme-secret-payroll"

// mixedTree has files of many sizes (empty, tiny, around the chunk bounds, more than four
// chunks), compressible text, directories, symlinks, unusual modes and mtimes.
func mixedTree() []memFile {
	return []memFile{
		dir("docs", 1),
		dir("docs/a.b", 2), // sorts after "docs/a/..." in walk order
		file("docs/a.b/readme.txt", 0o644, 3, []byte("hello "+contentMarker)),
		dir("docs/a", 4),
		file("docs/a/empty", 0o600, 5, nil),
		file("docs/a/one", 0o600, 6, []byte{42}),
		file("docs/a/below-min", 0o640, 7, randomBytes(1, minChunk-1)),
		file("docs/a/"+nameMarker+".csv", 0o600, 8, textBytes(2, 3<<20, contentMarker)),
		file("data/big.bin", 0o644, 9, randomBytes(3, 9<<20+12345)),
		file("data/exact-max.bin", 0o644, 10, randomBytes(4, maxChunk)),
		file("data/setuid", 0o4755, 11, randomBytes(5, 1000)),
		dir("data", 12),
		symlink("docs/link", "a/one", 13),
		symlink("docs/dangling", "../nowhere/at/all", 14),
		file("z-last.log", 0o600, 15, textBytes(6, 700<<10, contentMarker)),
		file("data/dup-of-max.bin", 0o644, 16, randomBytes(4, maxChunk)),
	}
}

func sumBytes(files []memFile) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.content))
	}
	return n
}
