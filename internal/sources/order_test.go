package sources

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestComparePaths(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"a", "a", 0},
		{"a", "b", -1},
		{"a", "a/b", -1},      // a directory before its contents
		{"a/b", "a.b", -1},    // '/' sorts before '.', unlike in plain string order
		{"a/zzz", "a.b", -1},  // the whole subtree of a before its next sibling
		{"a/b", "a-b", -1},    // '-' is 0x2D, also below '/'
		{"a b", "a/b", 1},     // and ' '
		{"a/b/c", "a/b", 1},   // contents after their directory
		{"a/b/c", "a/bc", -1}, // "b" < "bc" as siblings
		{"ab", "a/b", 1},
		{"", "a", -1},
		{"Z", "a", -1}, // bytes, not case-folded
		{"é", "z", 1},  // bytes, so UTF-8 after ASCII
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ComparePaths(tt.a, tt.b), "ComparePaths(%q, %q)", tt.a, tt.b)
		assert.Equal(t, -tt.want, ComparePaths(tt.b, tt.a), "ComparePaths(%q, %q)", tt.b, tt.a)
	}
}

// TestComparePathsIsDepthFirst checks the definition: sorting by ComparePaths gives the
// order of a depth-first walk that visits siblings sorted by name.
func TestComparePathsIsDepthFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		tree := randomTree(rng)
		var dfs []string
		var visit func(prefix string, n node)
		visit = func(prefix string, n node) {
			names := make([]string, 0, len(n))
			for name := range n {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				p := joinPath(prefix, name)
				dfs = append(dfs, p)
				visit(p, n[name])
			}
		}
		visit("", tree)
		sorted := slices.Clone(dfs)
		rng.Shuffle(len(sorted), func(i, j int) { sorted[i], sorted[j] = sorted[j], sorted[i] })
		slices.SortFunc(sorted, ComparePaths)
		if !assert.Equal(t, dfs, sorted) {
			return
		}
	}
}

type node map[string]node

// randomTree builds names from bytes around '/' so that plain string order and walk order
// disagree often.
func randomTree(rng *rand.Rand) node {
	alphabet := []string{"a", "b", ".", "-", " ", "0", "~", "é"}
	var build func(depth int) node
	build = func(depth int) node {
		n := node{}
		for range rng.IntN(4) {
			var name strings.Builder
			for range 1 + rng.IntN(3) {
				name.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			if name.String() == "." || name.String() == ".." {
				continue
			}
			if depth < 3 {
				n[name.String()] = build(depth + 1)
			} else {
				n[name.String()] = node{}
			}
		}
		return n
	}
	return build(0)
}

func TestReleasableReordersListing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		tree := randomTree(rng)
		var keys []string
		var collect func(prefix string, n node)
		collect = func(prefix string, n node) {
			for name, sub := range n {
				p := joinPath(prefix, name)
				if len(sub) == 0 || rng.IntN(3) == 0 {
					keys = append(keys, p) // objects may also sit "above" others
				}
				collect(p, sub)
			}
		}
		collect("", tree)
		slices.Sort(keys) // what a store lists
		want := slices.Clone(keys)
		slices.SortFunc(want, ComparePaths)

		var held []string
		var got []string
		release := func(cur string) {
			for len(held) > 0 {
				slices.SortFunc(held, ComparePaths)
				if cur != "" && !releasable(held[0], cur) {
					return
				}
				got = append(got, held[0])
				held = held[1:]
			}
		}
		for _, k := range keys {
			held = append(held, k)
			release(k)
		}
		release("")
		if !assert.Equal(t, want, got, "listing %q", keys) {
			return
		}
	}
}

func TestCheckPath(t *testing.T) {
	for _, give := range []string{"a", "a/b", "a b/ü", ".hidden", "a..b", "..a"} {
		assert.NoError(t, checkPath(give), give)
	}
	for _, give := range []string{"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a/..", "a\x00b"} {
		assert.ErrorIs(t, checkPath(give), errBadPath, give)
	}
}
