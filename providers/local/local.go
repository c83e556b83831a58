// Package local is drflow's embedded default store: a directory on disk that behaves like WORM
// object storage.
//
// Layout under the root:
//
//	drflow-local-store   format marker ("drflow local store, layout 1")
//	objects/             one file per object, in directories that mirror the key's segments
//	  <path>@data        object content, mode 0444
//	  <path>@meta        sidecar metadata (legal hold, retention, content type), JSON, mode 0444;
//	                     present only when the object has any
//	tmp/                 temp files of writes in progress (same file system, so rename is atomic)
//	locks/00 .. locks/ff lock files; a key's writers flock the stripe its FNV-1a hash selects
//
// Each key segment is escaped (see keyPath) so that every object path is a file whose name ends
// in "@data" and every directory name lacks "@": the keys "a" and "a/b" live at "a@data" and
// "a/b@data" without colliding.
//
// Immutability is enforced by this adapter, not by the file system: every writer of a key
// decides under that key's lock (a mutex within the process, flock across processes) whether a
// legal hold or retention forbids the change. Anyone with write access to the root, and root on
// the machine, can still delete the files.
package local

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/drflow/drflow/providers"
)

// ErrCorruptMetadata reports a sidecar metadata file that cannot be read. Operations that
// depend on it fail closed: the object is neither deleted nor overwritten until a person
// repairs or removes the file.
var ErrCorruptMetadata = errors.New("corrupt object metadata")

const (
	markerName    = "drflow-local-store"
	markerContent = "drflow local store, layout 1\n"
	objectsDir    = "objects"
	tmpDir        = "tmp"
	locksDir      = "locks"

	lockStripes = 256
	// copyBufferSize bounds the memory of one Put.
	copyBufferSize = 1 << 20
	// dirAttempts bounds how often a write recreates a directory that a concurrent Delete
	// removed between the write's mkdir and its rename.
	dirAttempts = 100
)

var _ providers.Store = (*Store)(nil)

// Options configure a local store.
type Options struct {
	// Root is the store's directory. It is created (0700) if missing.
	Root string
	// Location describes the store; Provider defaults to "local" and Bucket to Root.
	Location providers.Location
	// Clock decides whether retention is still active; nil means time.Now.
	Clock func() time.Time
}

// Store is a providers.Store on a local directory. Several Stores, in one process or in
// several, may share a root.
type Store struct {
	root    string
	objects string
	tmp     string
	locks   string
	loc     providers.Location
	now     func() time.Time
	stripes [lockStripes]sync.Mutex
}

// Open opens the store at opts.Root, creating it if needed, and removes temp files that
// crashed writers left behind.
func Open(opts Options) (*Store, error) {
	if !platformSupported {
		return nil, fmt.Errorf("local open: %w: file locking is not implemented on this platform", providers.ErrNotSupported)
	}
	if opts.Root == "" {
		return nil, fmt.Errorf("local open: %w: empty root", providers.ErrInvalidArgument)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("local open %s: %w", opts.Root, err)
	}
	loc, err := location(opts.Location, root)
	if err != nil {
		return nil, fmt.Errorf("local open %s: %w", root, err)
	}
	s := &Store{
		root:    root,
		objects: filepath.Join(root, objectsDir),
		tmp:     filepath.Join(root, tmpDir),
		locks:   filepath.Join(root, locksDir),
		loc:     loc,
		now:     opts.Clock,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("local open %s: %w", root, translateError(err))
	}
	return s, nil
}

func location(loc providers.Location, root string) (providers.Location, error) {
	switch loc.Provider {
	case "":
		loc.Provider = providers.ProviderLocal
	case providers.ProviderLocal:
	default:
		return loc, fmt.Errorf("%w: location provider is %q, want %q", providers.ErrInvalidArgument, loc.Provider, providers.ProviderLocal)
	}
	if loc.Prefix != "" {
		return loc, fmt.Errorf("%w: location prefix %q: a local store is confined by its root directory, not a key prefix", providers.ErrInvalidArgument, loc.Prefix)
	}
	if loc.Bucket == "" {
		loc.Bucket = root
	} else if b, err := filepath.Abs(loc.Bucket); err != nil || b != root {
		return loc, fmt.Errorf("%w: location bucket %q differs from root %q", providers.ErrInvalidArgument, loc.Bucket, root)
	}
	return loc, nil
}

func (s *Store) init() error {
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return err
	}
	for _, dir := range []string{s.objects, s.tmp, s.locks} {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := s.checkMarker(); err != nil {
		return err
	}
	return s.Sweep(context.Background())
}

// checkMarker refuses a root written in another layout, and stamps a new root with this one.
func (s *Store) checkMarker() error {
	path := filepath.Join(s.root, markerName)
	got, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Link makes the marker appear complete even if another process opens the root at the
		// same moment.
		err = s.writeTempAndPlace(tempMarker, []byte(markerContent), path, s.root, true)
		if errors.Is(err, fs.ErrExist) {
			got, err = os.ReadFile(path)
		} else if err == nil {
			got = []byte(markerContent)
		}
	}
	if err != nil {
		return err
	}
	if string(got) != markerContent {
		return fmt.Errorf("%w: %s says %q, this drflow understands %q", providers.ErrNotSupported, path, got, markerContent)
	}
	return nil
}

// Location describes where this store lives.
func (s *Store) Location() providers.Location { return s.loc }

// Capabilities reports holds, both retention modes and conditional create, all enforced by
// this adapter.
func (s *Store) Capabilities() providers.Capabilities {
	return providers.Capabilities{
		LegalHold:         true,
		Retention:         true,
		RetentionModes:    []providers.RetentionMode{providers.Governance, providers.Compliance},
		ConditionalCreate: true,
		Note: "local directory " + s.root + ": holds and retention are enforced by drflow's local adapter " +
			"(sidecar metadata checked under per-key locks shared by every drflow process on this machine, " +
			"data files read-only), not by the file system; anyone with write access to the directory, " +
			"and root on the machine, can still delete or alter files, so this is not hardware WORM. " +
			"Conditional create is atomic via link(2).",
	}
}

// objectPath locates one key's files.
type objectPath struct {
	dir  string // directory holding data and meta
	data string
	meta string
}

func (s *Store) pathFor(key string) objectPath {
	base := filepath.Join(s.objects, filepath.FromSlash(keyPath(key)))
	return objectPath{dir: filepath.Dir(base), data: base + dataSuffix, meta: base + metaSuffix}
}

// Put streams r into key through a temp file and renames it into place.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (info providers.ObjectInfo, err error) {
	defer wrap(&err, "put", key)
	if err := providers.ValidateKey(key); err != nil {
		return info, err
	}
	ret, err := decideRetention(providers.Retention{}, opts.Retention, s.now())
	if err != nil {
		return info, err
	}
	next := metadata{LegalHold: opts.LegalHold, ContentType: opts.ContentType}.withRetention(ret)
	p := s.pathFor(key)

	// Fail before streaming what could not be written anyway; commit decides again under the
	// key's lock.
	cur, err := s.current(p)
	if err != nil {
		return info, err
	}
	if err := cur.checkWritable(opts.IfNotExists, s.now()); err != nil {
		return info, err
	}

	tmp, err := s.createTemp(tempPut)
	if err != nil {
		return info, err
	}
	published := false
	defer func() {
		if !published {
			_ = os.Remove(tmp.Name()) // nothing more to do if it fails: Sweep removes it later
		}
		_ = tmp.Close() // releases the temp file's lock; its content is synced or discarded
	}()

	if _, err := copyContext(ctx, tmp, r); err != nil {
		return info, err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return info, err
	}
	if err := tmp.Sync(); err != nil {
		return info, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return info, err
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	if err := s.commit(key, p, tmp.Name(), next, opts.IfNotExists); err != nil {
		return info, err
	}
	published = true

	info = objectInfo(key, fi)
	info.LegalHold = next.LegalHold
	info.Retention = next.Retention
	return info, nil
}

// commit publishes a complete temp file at p under the key's lock: metadata first, so that a
// protected object is never visible without its protection. A crash between the two renames
// leaves the new metadata on the old object (or on no object), erring towards protection.
func (s *Store) commit(key string, p objectPath, tmpPath string, next metadata, exclusive bool) error {
	unlock, err := s.lock(key)
	if err != nil {
		return err
	}
	defer unlock()

	cur, err := s.current(p)
	if err != nil {
		return err
	}
	if err := cur.checkWritable(exclusive, s.now()); err != nil {
		return err
	}
	if !next.empty() {
		if err := s.writeMeta(p, next); err != nil {
			return err
		}
	}
	if err := s.place(tmpPath, p.data, p.dir, exclusive); err != nil {
		if !next.empty() {
			if rerr := s.restoreMeta(p, cur); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore metadata: %w", rerr))
			}
		}
		return err
	}
	if exclusive {
		// The temp name is a second link to the new object; Sweep removes it if this fails.
		_ = os.Remove(tmpPath)
	}
	if next.empty() && cur.metaExists {
		// The old object's metadata protected nothing (checkWritable passed); it must not
		// describe the new object.
		if err := os.Remove(p.meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return syncDir(p.dir)
}

// Get opens key, or part of it, for reading.
func (s *Store) Get(ctx context.Context, key string, opts providers.GetOptions) (rc io.ReadCloser, err error) {
	defer wrap(&err, "get", key)
	if err := providers.ValidateKey(key); err != nil {
		return nil, err
	}
	if opts.Range != nil {
		if err := opts.Range.Validate(); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.pathFor(key).data)
	if err != nil {
		return nil, err
	}
	if opts.Range == nil {
		return f, nil // *os.File lets io.Copy use sendfile
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	off, n, size := opts.Range.Offset, opts.Range.Length, fi.Size()
	if off >= size {
		_ = f.Close()
		return nil, fmt.Errorf("%w: range offset %d is not before the end of the %d-byte object", providers.ErrInvalidArgument, off, size)
	}
	if n < 0 || n > size-off {
		n = size - off
	}
	return sectionReadCloser{io.NewSectionReader(f, off, n), f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
}

// Stat describes key, including its legal hold and retention.
func (s *Store) Stat(ctx context.Context, key string) (info providers.ObjectInfo, err error) {
	defer wrap(&err, "stat", key)
	if err := providers.ValidateKey(key); err != nil {
		return info, err
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	p := s.pathFor(key)
	fi, err := os.Lstat(p.data)
	if err != nil {
		return info, err
	}
	m, _, _, err := readMeta(p.meta)
	if err != nil {
		return info, err
	}
	info = objectInfo(key, fi)
	info.LegalHold = m.LegalHold
	info.Retention = m.Retention
	return info, nil
}

// Delete removes key and its metadata, then the directories that this left empty.
func (s *Store) Delete(ctx context.Context, key string) (err error) {
	defer wrap(&err, "delete", key)
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.pathFor(key)
	if err := s.deleteLocked(key, p); err != nil {
		return err
	}
	s.removeEmptyDirs(p.dir)
	return nil
}

func (s *Store) deleteLocked(key string, p objectPath) error {
	unlock, err := s.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := s.current(p)
	if err != nil {
		return err
	}
	if !cur.exists {
		if cur.metaExists { // left by a writer that crashed before publishing its data
			_ = os.Remove(p.meta)
		}
		return fmt.Errorf("%w: %s", providers.ErrNotFound, p.data)
	}
	if err := cur.meta.checkUnprotected(s.now()); err != nil {
		return err
	}
	if err := os.Remove(p.data); err != nil {
		return err
	}
	if cur.metaExists {
		if err := os.Remove(p.meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := syncDir(p.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err // a concurrent Delete may already have removed the emptied directory
	}
	return nil
}

// removeEmptyDirs removes dir and its ancestors below the objects directory while they are
// empty. rmdir fails on a directory that a concurrent Put has just written into, and a Put
// whose directory vanished before its rename recreates it (see place), so this never loses a
// write.
func (s *Store) removeEmptyDirs(dir string) {
	for dir != s.objects && len(dir) > len(s.objects) {
		if err := syscall.Rmdir(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// SetLegalHold places or releases a legal hold on key.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) (err error) {
	defer wrap(&err, "set legal hold", key)
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.updateMeta(key, func(m metadata) (metadata, error) {
		m.LegalHold = on
		return m, nil
	})
}

// SetRetention protects key until r.Until; see decideRetention for what may change.
func (s *Store) SetRetention(ctx context.Context, key string, r providers.Retention) (err error) {
	defer wrap(&err, "set retention", key)
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.updateMeta(key, func(m metadata) (metadata, error) {
		next, err := decideRetention(m.Retention, r, s.now())
		if err != nil {
			return m, err
		}
		return m.withRetention(next), nil
	})
}

// updateMeta changes an existing object's metadata under its lock.
func (s *Store) updateMeta(key string, change func(metadata) (metadata, error)) error {
	p := s.pathFor(key)
	unlock, err := s.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := s.current(p)
	if err != nil {
		return err
	}
	if !cur.exists {
		return fmt.Errorf("%w: %s", providers.ErrNotFound, p.data)
	}
	next, err := change(cur.meta)
	if err != nil {
		return err
	}
	if next.equal(cur.meta) && cur.metaExists == !next.empty() {
		return nil
	}
	if next.empty() {
		if err := os.Remove(p.meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	} else if err := s.writeMeta(p, next); err != nil {
		return err
	}
	return syncDir(p.dir)
}

// state is what is on disk for one key.
type state struct {
	exists     bool // the data file exists
	meta       metadata
	metaRaw    []byte
	metaExists bool
}

// current reads the state of p. Metadata without data is left by a writer that crashed
// between the two renames; it describes nothing and is ignored.
func (s *Store) current(p objectPath) (state, error) {
	var st state
	if _, err := os.Lstat(p.data); err == nil {
		st.exists = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	m, raw, exists, err := readMeta(p.meta)
	st.metaExists = exists
	if err != nil {
		if st.exists {
			return st, err
		}
		return st, nil
	}
	if st.exists {
		st.meta, st.metaRaw = m, raw
	}
	return st, nil
}

func (st state) checkWritable(exclusive bool, now time.Time) error {
	if !st.exists {
		return nil
	}
	if exclusive {
		return providers.ErrExists
	}
	return st.meta.checkUnprotected(now)
}

// restoreMeta puts back the metadata of cur after a failed publish.
func (s *Store) restoreMeta(p objectPath, cur state) error {
	if cur.exists && cur.metaExists {
		return s.writeTempAndPlace(tempMeta, cur.metaRaw, p.meta, p.dir, false)
	}
	if err := os.Remove(p.meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Store) writeMeta(p objectPath, m metadata) error {
	raw, err := m.marshal()
	if err != nil {
		return err
	}
	return s.writeTempAndPlace(tempMeta, raw, p.meta, p.dir, false)
}

// lock takes key's lock: a mutex for the goroutines of this Store, then flock for other Stores
// and processes on the root. The mutex is per stripe rather than per key because the flock
// is, so goroutines of one process never block an OS thread each in flock.
func (s *Store) lock(key string) (unlock func(), err error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	i := h.Sum32() % lockStripes
	s.stripes[i].Lock()
	f, err := os.OpenFile(filepath.Join(s.locks, fmt.Sprintf("%02x", i)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.stripes[i].Unlock()
		return nil, err
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		s.stripes[i].Unlock()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		_ = f.Close() // closing releases the flock
		s.stripes[i].Unlock()
	}, nil
}

func objectInfo(key string, fi fs.FileInfo) providers.ObjectInfo {
	mtime := fi.ModTime()
	return providers.ObjectInfo{
		Key:     key,
		Size:    fi.Size(),
		ModTime: mtime,
		// Every write creates a new file, so the inode tells apart two same-sized writes within
		// one tick of the file system's coarse clock.
		ETag: fmt.Sprintf("%x-%x-%x", fi.Size(), mtime.UnixNano(), fileID(fi)),
	}
}

// copyContext copies r to w, checking ctx between reads so that a cancelled Put stops even if
// r does not watch ctx.
func copyContext(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, copyBufferSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("read source: %w", rerr)
		}
	}
}

// wrap names the operation and key in a failed call's error.
func wrap(err *error, op, key string) {
	if *err != nil {
		*err = fmt.Errorf("local %s %s: %w", op, key, translateError(*err))
	}
}

// translateError maps file system errors onto the providers sentinels, keeping the original
// error in the chain. Errors that already carry a sentinel or a context error pass unchanged.
func translateError(err error) error {
	for _, sentinel := range []error{
		providers.ErrNotFound, providers.ErrExists, providers.ErrImmutable, providers.ErrNotSupported,
		providers.ErrInvalidArgument, providers.ErrPermission, context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", providers.ErrNotFound, err)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %w", providers.ErrExists, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", providers.ErrPermission, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%w: %w", providers.ErrInvalidArgument, err)
	}
	return err
}
