package runbooks

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drflow/drflow/internal/config"
)

// Runbook errors are *config.FieldError, rendered "line N: path: message" as in the
// configuration, so tools and people read both kinds of file the same way. Paths follow the
// YAML, e.g. "steps[2] (approve).approval.approvers"; list items carry their id or name in
// parentheses when it is well formed.

// maxNameLen matches the configuration's limit: names end up in workflow IDs.
const maxNameLen = 63

// maxErrors bounds the problems reported (and looked for): past it, a file is not a runbook
// with mistakes but something else.
const maxErrors = 100

// problems collects field errors and the line of every field path, to name the line of a
// problem found later, after decoding.
type problems struct {
	errs  []*config.FieldError
	more  bool           // problems were dropped past maxErrors
	lines map[string]int // field path -> line
}

func (p *problems) addf(path, format string, args ...any) {
	if p.full() {
		p.more = true
		return
	}
	p.add(&config.FieldError{Path: path, Line: p.lineOf(path), Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) add(fe *config.FieldError) {
	if p.full() {
		p.more = true
		return
	}
	p.errs = append(p.errs, fe)
}

// full reports whether enough problems were found; checks stop looking for more.
func (p *problems) full() bool { return len(p.errs) >= maxErrors }

// lineOf finds the line of path or, for a field that is not written, of its closest parent.
func (p *problems) lineOf(path string) int {
	for q := path; q != ""; q = parentPath(q) {
		if l, ok := p.lines[q]; ok {
			return l
		}
	}
	return 0
}

// joinErrors sorts errors top to bottom (those without a line last, in the order found) and
// joins them, so a user can fix a file in one pass. more says that problems were dropped.
func joinErrors(errs []*config.FieldError, more bool) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *config.FieldError) int { return lineKey(a) - lineKey(b) })
	if more || len(errs) > maxErrors {
		errs = append(errs[:min(len(errs), maxErrors):min(len(errs), maxErrors)],
			&config.FieldError{Msg: fmt.Sprintf("too many problems: only the first %d are shown", maxErrors)})
	}
	joined := make([]error, len(errs))
	for i, fe := range errs {
		joined[i] = fe
	}
	return errors.Join(joined...)
}

func lineKey(fe *config.FieldError) int {
	if fe.Line == 0 {
		return 1 << 30
	}
	return fe.Line
}

// fieldPath joins a parent path and a field name.
func fieldPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

// itemPath names the i-th item of a list, with the item's id or name when it is well formed,
// so that parentPath can strip the annotation without ambiguity.
func itemPath(list string, i int, name string) string {
	if nameProblem(name) == "" {
		return fmt.Sprintf("%s[%d] (%s)", list, i, name)
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

// keyPath names a user-chosen key (an argument), quoted when it could be mistaken for path
// syntax.
func keyPath(parent, key string) string {
	if key == "" || strings.ContainsAny(key, ".[]() \"") {
		return fieldPath(parent, quoteTrunc(key))
	}
	return fieldPath(parent, key)
}

// parentPath strips the last element of a path: ".field", "[i]" or "[i] (name)".
func parentPath(p string) string {
	if strings.HasSuffix(p, ")") {
		if i := strings.LastIndex(p, " ("); i >= 0 {
			p = p[:i]
		}
	}
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndex(p, "["); i >= 0 {
			return p[:i]
		}
	}
	if strings.HasSuffix(p, `"`) {
		// A quoted key (keyPath) may hold dots; cut before its opening quote.
		if i := strings.LastIndex(p[:len(p)-1], `."`); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// underBroken reports whether path or a parent of it failed to decode: a check there would
// only repeat the decode error.
func underBroken(path string, broken map[string]bool) bool {
	for p := path; p != ""; p = parentPath(p) {
		if broken[p] {
			return true
		}
	}
	return false
}

// quoteTrunc quotes a user-supplied value for a message, shortened so that a huge scalar does
// not flood the output.
func quoteTrunc(s string) string {
	const limit = 60
	if len(s) > limit {
		return fmt.Sprintf("%q...", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// suggest names the known word closest to s, or lists them all when none is close.
func suggest(s string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if abs(len(s)-len(k)) >= bestDist {
			continue // the distance is at least the difference in length
		}
		if d := config.EditDistance(strings.ToLower(s), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "known: " + strings.Join(known, ", ")
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
