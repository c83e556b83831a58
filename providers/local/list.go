package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/drflow/drflow/providers"
)

// List calls fn for every object whose key starts with prefix, in byte order of the keys.
//
// File names do not sort like keys ("a.x" sorts before "a/b" but the directory "a" before the
// file "a.x@data"), so List sorts each directory's entries by the keys they stand for and walks
// them depth first, skipping directories whose keys cannot start with prefix. Memory is
// bounded by the entries of the directories on the current path, not by the number of keys.
func (s *Store) List(ctx context.Context, prefix string, fn func(providers.ObjectInfo) error) error {
	l := &lister{ctx: ctx, prefix: prefix, fn: fn}
	err := l.walkDir(s.objects, "")
	if err == nil {
		return nil
	}
	var stop callbackError
	if errors.As(err, &stop) {
		return stop.err // as is, as the contract says
	}
	return fmt.Errorf("local list %s: %w", prefix, translateError(err))
}

// callbackError carries fn's error out of the walk unchanged.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

type lister struct {
	ctx    context.Context
	prefix string
	fn     func(providers.ObjectInfo) error
	// before, if set, runs ahead of fn with each key, to emit entries that sort before it
	// (see walkChild).
	before func(key string) error
}

// child is one entry of a directory under objects/.
type child struct {
	entry  fs.DirEntry
	kind   nameKind
	prefix string // the key of a file; the prefix of every key below a directory
}

func (l *lister) walkDir(dir, parent string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed by a concurrent Delete
	}
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1) // unsorted: List sorts by key, not by name
	_ = f.Close()
	if err != nil {
		return err
	}
	cs := make([]child, 0, len(entries))
	for _, e := range entries {
		kind, p, ok := parseName(parent, e.Name(), e.IsDir(), e.Type().IsRegular())
		if !ok {
			continue
		}
		if kind == kindFile && !strings.HasPrefix(p, l.prefix) ||
			kind != kindFile && !strings.HasPrefix(p, l.prefix) && !strings.HasPrefix(l.prefix, p) {
			continue
		}
		cs = append(cs, child{entry: e, kind: kind, prefix: p})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].prefix != cs[j].prefix {
			return cs[i].prefix < cs[j].prefix
		}
		return cs[i].kind < cs[j].kind
	})
	return l.walkChildren(dir, cs)
}

// walkChildren walks siblings sorted by prefix. All keys below a child start with its prefix,
// so children whose prefixes do not extend one another hold disjoint, ordered key ranges.
// Only a continuation's range can contain another sibling's: "<chunk>+" (keys "c" followed by
// more of the segment) and the directory "<chunk>" (keys "c/..."). Those are walked together.
func (l *lister) walkChildren(dir string, cs []child) error {
	for i := 0; i < len(cs); {
		j := i + 1
		if cs[i].kind == kindCont {
			for j < len(cs) && strings.HasPrefix(cs[j].prefix, cs[i].prefix) {
				j++
			}
		}
		if err := l.walkChild(dir, cs[i], cs[i+1:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// walkChild walks c and, for a continuation, the siblings inside its range. No key below the
// continuation starts with such a sibling's prefix, so each sibling's keys go out as one block
// just before the first key of the continuation that sorts after the sibling's prefix.
func (l *lister) walkChild(dir string, c child, inside []child) error {
	if c.kind == kindFile {
		return l.emit(dir, c)
	}
	sub := filepath.Join(dir, c.entry.Name())
	if len(inside) == 0 {
		return l.walkDir(sub, c.prefix)
	}
	inner := *l
	inner.before = func(key string) error {
		n := 0
		for n < len(inside) && inside[n].prefix < key {
			n++
		}
		if n > 0 {
			if err := l.walkChildren(dir, inside[:n]); err != nil {
				return err
			}
			inside = inside[n:]
		}
		if l.before != nil {
			return l.before(key)
		}
		return nil
	}
	if err := inner.walkDir(sub, c.prefix); err != nil {
		return err
	}
	return l.walkChildren(dir, inside)
}

func (l *lister) emit(dir string, c child) error {
	if err := providers.ValidateKey(c.prefix); err != nil {
		return nil // a stray file that no Put could have written
	}
	fi, err := c.entry.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted since the directory was read
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, c.entry.Name()), err)
	}
	if err := l.ctx.Err(); err != nil {
		return err
	}
	if l.before != nil {
		if err := l.before(c.prefix); err != nil {
			return err
		}
	}
	if err := l.fn(objectInfo(c.prefix, fi)); err != nil {
		return callbackError{err}
	}
	return nil
}
