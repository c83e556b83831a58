package sources

import (
	"errors"
	"fmt"
	"strings"
)

// ComparePaths orders entry paths the way every Walk emits them: depth first, siblings
// sorted by the bytes of their names, a directory before its contents. It returns -1 if a
// comes first, +1 if b does, 0 if they are equal.
//
// This is byte-wise lexical order of the paths with '/' treated as sorting before every
// other byte, so "a" < "a/b" < "a/c" < "a.b" < "ab". Plain string order differs: there
// "a.b" < "a/b", because '.' (0x2E) sorts before '/' (0x2F), and a depth-first walk could not
// produce it without buffering whole subtrees.
func ComparePaths(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// skipAfter reports whether a walk resuming after after must skip the entry at p: it sorts at
// or before after. The empty after skips nothing.
func skipAfter(p, after string) bool {
	return after != "" && ComparePaths(p, after) <= 0
}

// holdsAfter reports whether the subtree of directory p can hold entries that sort after
// after although p itself does not: p is after, or one of its ancestors. Every other skipped
// directory's subtree sorts wholly before after, so it is not even listed.
func holdsAfter(p, after string) bool {
	return p == after || strings.HasPrefix(after, p+"/")
}

var errBadPath = errors.New("invalid entry path")

// checkPath rejects a path that is not slash-separated and relative, or that has an empty,
// "." or ".." segment or a NUL byte: a sink would otherwise write outside its root.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty", errBadPath)
	}
	if p[0] == '/' {
		return fmt.Errorf("%w %q: absolute", errBadPath, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w %q: NUL byte", errBadPath, p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w %q: empty, '.' or '..' segment", errBadPath, p)
		}
	}
	return nil
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// folderPrefix makes an object-store prefix name a folder: "data" and "data/" both select
// the keys under "data/", so that entry paths never start with "/" and "data" does not also
// select "data-old/...".
func folderPrefix(prefix string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return prefix + "/"
	}
	return prefix
}
