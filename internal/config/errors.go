package config

import (
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem with one field of the configuration. Parse and Load return all of
// them at once, joined with errors.Join, so a user can fix a file in one pass; use errors.As
// (or walk Unwrap() []error) to inspect them.
type FieldError struct {
	// Path names the field, e.g. "datasets[0] (customers).primary". Items of a list carry
	// their name in parentheses when they have a valid one, so the path stays readable when
	// the list is long.
	Path string
	// Line is the 1-based line in the file where the field (or, for a missing field, its
	// enclosing item) is written; 0 if unknown.
	Line int
	// Msg says what is wrong and, where it helps, what would be right.
	Msg string
}

// Error renders the problem the way compilers do, line first, so editors can jump to it.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// fieldPath joins a parent path and a field name.
func fieldPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

// itemPath names the i-th item of a list, adding the item's name when it is a valid one. Only
// valid names are shown so that parentPath can strip the annotation without ambiguity.
func itemPath(list string, i int, name string) string {
	if name != "" && isAnnotatable(name) {
		return fmt.Sprintf("%s[%d] (%s)", list, i, name)
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

// isAnnotatable reports whether name can appear in a path annotation: it may contain dots
// (allowed in names) but no spaces, brackets or parentheses.
func isAnnotatable(name string) bool {
	if len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLower(c) && !isUpper(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// parentPath strips the last element of a path: ".field", "[i]" or "[i] (name)". It returns ""
// for a top-level path.
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
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// knownList renders the names a reference could have used, sorted, for "unknown X" messages.
func knownList(names []string) string {
	if len(names) == 0 {
		return "none defined"
	}
	s := slices.Clone(names)
	slices.Sort(s)
	return "known: " + strings.Join(s, ", ")
}

// quoteTrunc quotes a user-supplied value for a message, shortened so that a pasted secret
// or a huge scalar does not flood the output.
func quoteTrunc(s string) string {
	const max = 60
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
