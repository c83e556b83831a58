package sources

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/drflow/drflow/providers"
)

// NewObjects returns a source that reads the objects under prefix in store. The prefix names
// a folder: "data" and "data/" both select the keys under "data/". Each object is a file entry
// whose path is its key without the prefix, with the listing's size and modification time and
// mode 0600 (objects have none); there are no directory entries.
func NewObjects(store providers.Store, prefix string) Source {
	return &objects{store: store, prefix: folderPrefix(prefix)}
}

type objects struct {
	store  providers.Store
	prefix string
}

func (o *objects) Kind() string { return KindObjects }

func (o *objects) Snapshot(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &objSnapshot{store: o.store, prefix: o.prefix, asOf: time.Now()}, nil
}

type objSnapshot struct {
	store    providers.Store
	prefix   string
	asOf     time.Time
	problems problems
}

// DataAsOf is when Snapshot was called, before the listing started.
func (s *objSnapshot) DataAsOf() time.Time { return s.asOf }

func (s *objSnapshot) Facts() map[string]string { return map[string]string{} }

func (s *objSnapshot) Problems() []Problem { return s.problems.get() }

func (s *objSnapshot) Close() error { return nil }

// Walk lists the prefix once and reads each object as the listing reaches it. Stores list
// in plain key order, in which "a.b" precedes "a/b"; Walk reorders the listing into walk
// order (see ComparePaths) as it goes, holding back only keys that a later key with a '/'
// in place of an earlier, smaller byte could still precede.
func (s *objSnapshot) Walk(ctx context.Context, after string, fn func(Entry, io.Reader) error) error {
	s.problems.reset()
	var held pathHeap
	emit := func(o providers.ObjectInfo) error { return s.object(ctx, o, fn) }
	err := s.store.List(ctx, s.prefix, func(o providers.ObjectInfo) error {
		rel := strings.TrimPrefix(o.Key, s.prefix)
		if err := checkPath(rel); err != nil {
			s.problems.add(rel, "skipped: object key %q: %v", o.Key, err)
			return nil
		}
		if skipAfter(rel, after) {
			return nil
		}
		o.Key = rel
		heap.Push(&held, o)
		for held.Len() > 0 && releasable(held[0].Key, rel) {
			if err := emit(heap.Pop(&held).(providers.ObjectInfo)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for held.Len() > 0 {
		if err := emit(heap.Pop(&held).(providers.ObjectInfo)); err != nil {
			return err
		}
	}
	return nil
}

// releasable reports whether key k may be emitted once the listing has reached cur (so every
// later key is >= cur in byte order): no later key can precede k in walk order. Only a key
// that equals k up to some byte of k below '/' and has '/' there could; those keys follow
// k[:i]+"/" for the first such byte i, and the listing is past them once cur is greater
// than that and does not start with it.
func releasable(k, cur string) bool {
	i := strings.IndexFunc(k, func(r rune) bool { return r < '/' })
	if i < 0 {
		return true
	}
	p := k[:i] + "/"
	return cur > p && !strings.HasPrefix(cur, p)
}

func (s *objSnapshot) object(ctx context.Context, o providers.ObjectInfo, fn func(Entry, io.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := s.prefix + o.Key
	rc, err := s.store.Get(ctx, key, providers.GetOptions{})
	if errors.Is(err, providers.ErrNotFound) {
		s.problems.add(o.Key, "vanished between listing and reading: %v", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read object %s: %w", key, err)
	}
	defer rc.Close()
	r := &countingReader{r: ctxReader{ctx: ctx, r: rc}}
	e := Entry{Path: o.Key, Type: TypeFile, Mode: 0o600, ModTime: o.ModTime, Size: o.Size}
	if err := fn(e, r); err != nil {
		return err
	}
	if r.eof && r.n != o.Size {
		s.problems.add(o.Key, "changed during backup: listed with %d bytes, read %d", o.Size, r.n)
	}
	return nil
}

// pathHeap holds listed objects, smallest in walk order first.
type pathHeap []providers.ObjectInfo

func (h pathHeap) Len() int           { return len(h) }
func (h pathHeap) Less(i, j int) bool { return ComparePaths(h[i].Key, h[j].Key) < 0 }
func (h pathHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pathHeap) Push(x any)        { *h = append(*h, x.(providers.ObjectInfo)) }
func (h *pathHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

var _ Sink = (*ObjectsSink)(nil)

// ObjectsSink restores file entries as objects under a prefix of a store (a folder, as for
// NewObjects). It never overwrites or deletes: each Put is a conditional create, so a key
// that exists fails the restore and the object there stays as it was. An existing object
// under a legal hold or an active retention (as Stat reports it: also where the store does
// not enforce it, as fake-gcs-server does not) fails it with providers.ErrImmutable, any
// other with providers.ErrExists. Objects written before the failure stay. Directories need
// no objects. Symlinks cannot be stored; they are skipped and reported by Finish as
// mismatches, so such a restore never counts as verified.
type ObjectsSink struct {
	store   providers.Store
	prefix  string
	objects int64
	bytes   int64
	skipped []string
}

// NewObjectsSink returns a sink into store under prefix.
func NewObjectsSink(store providers.Store, prefix string) *ObjectsSink {
	return &ObjectsSink{store: store, prefix: folderPrefix(prefix)}
}

func (s *ObjectsSink) Write(ctx context.Context, e Entry, content io.Reader) error {
	if err := checkPath(e.Path); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	switch e.Type {
	case TypeDir:
		return nil
	case TypeSymlink:
		s.skipped = append(s.skipped, fmt.Sprintf("symlink %s -> %s not restored: object stores cannot hold symlinks", e.Path, e.Target))
		return nil
	case TypeFile:
	default:
		return fmt.Errorf("restore %s: unknown entry type %d", e.Path, e.Type)
	}
	if content == nil {
		return fmt.Errorf("restore %s: no content", e.Path)
	}
	key := s.prefix + e.Path
	// The conditional create is the check: atomic, so nothing can slip in between a check
	// and the write.
	info, err := s.store.Put(ctx, key, ctxReader{ctx: ctx, r: content}, providers.PutOptions{IfNotExists: true})
	if errors.Is(err, providers.ErrExists) || errors.Is(err, providers.ErrImmutable) {
		return s.refuse(ctx, e.Path, key, err)
	}
	if err != nil {
		return fmt.Errorf("restore %s to %s: %w", e.Path, key, err)
	}
	s.objects++
	s.bytes += info.Size
	return nil
}

// refuse explains why key could not be written: a protected object there is
// providers.ErrImmutable, any other existing object providers.ErrExists.
func (s *ObjectsSink) refuse(ctx context.Context, path, key string, putErr error) error {
	info, err := s.store.Stat(ctx, key)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		return fmt.Errorf("restore %s to %s: %w (and stat: %v)", path, key, putErr, err)
	}
	var why []string
	if info.LegalHold {
		why = append(why, "a legal hold")
	}
	if info.Retention.Active(time.Now()) {
		why = append(why, fmt.Sprintf("%s retention until %s", info.Retention.Mode, info.Retention.Until.UTC().Format(time.RFC3339)))
	}
	if len(why) > 0 || errors.Is(putErr, providers.ErrImmutable) {
		if len(why) == 0 {
			why = append(why, "protection the store enforces")
		}
		return fmt.Errorf("restore %s: %w: the target object %s is under %s; refusing to overwrite it",
			path, providers.ErrImmutable, key, strings.Join(why, " and "))
	}
	return fmt.Errorf("restore %s: %w: the target already holds %s; refusing to overwrite it (restore into an empty prefix)", path, putErr, key)
}

// Finish reports what was written; objects carry no facts to compare.
func (s *ObjectsSink) Finish(ctx context.Context, _ map[string]string) (Validation, error) {
	return Validation{
		Checked:    fmt.Sprintf("wrote %d objects (%d bytes)", s.objects, s.bytes),
		Mismatches: append([]string(nil), s.skipped...),
	}, ctx.Err()
}
