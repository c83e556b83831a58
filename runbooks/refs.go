package runbooks

import (
	"errors"
	"fmt"
	"strings"
)

// Reference scopes: ${params.NAME}, ${steps.ID.FIELD} and ${run.FIELD}.
const (
	ScopeParams = "params"
	ScopeSteps  = "steps"
	ScopeRun    = "run"
)

// Fields of the run scope.
const (
	RunRequestedBy = "requested_by" // who started the run
	RunID          = "id"           // the run's workflow ID
)

// Ref is one ${...} reference in a value. Name is the parameter name, the step ID or the run
// field; Field is the output field of a step (steps scope only).
type Ref struct {
	Scope string
	Name  string
	Field string
}

// String renders the reference as written.
func (r Ref) String() string {
	if r.Scope == ScopeSteps {
		return "${" + r.Scope + "." + r.Name + "." + r.Field + "}"
	}
	return "${" + r.Scope + "." + r.Name + "}"
}

// segment is a piece of a scalar: literal text, or a reference.
type segment struct {
	text string
	ref  *Ref
}

// splitRefs cuts s into literal text and references. "$${" writes a literal "${".
func splitRefs(s string) ([]segment, error) {
	var segs []segment
	var lit strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			lit.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("reference %s has no closing }", quoteTrunc(s[i:]))
			}
			ref, err := parseRef(s[i+2 : i+end])
			if err != nil {
				return nil, err
			}
			if lit.Len() > 0 {
				segs = append(segs, segment{text: lit.String()})
				lit.Reset()
			}
			segs = append(segs, segment{ref: &ref})
			i += end + 1
		default:
			lit.WriteByte(s[i])
			i++
		}
	}
	if lit.Len() > 0 {
		segs = append(segs, segment{text: lit.String()})
	}
	return segs, nil
}

// parseRef reads the inside of ${...}. Step IDs and parameter names may contain dots, so a
// step's output field is what follows the last dot.
func parseRef(body string) (Ref, error) {
	scope, rest, _ := strings.Cut(body, ".")
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("malformed reference %s: %s", quoteTrunc("${"+body+"}"), why)
	}
	switch scope {
	case ScopeParams:
		if nameProblem(rest) != "" {
			return bad("want ${params.NAME} with a parameter name")
		}
		return Ref{Scope: scope, Name: rest}, nil
	case ScopeRun:
		if !isField(rest) {
			return bad("want ${run.requested_by} or ${run.id}")
		}
		return Ref{Scope: scope, Name: rest}, nil
	case ScopeSteps:
		i := strings.LastIndexByte(rest, '.')
		if i < 0 || nameProblem(rest[:i]) != "" || !isField(rest[i+1:]) {
			return bad("want ${steps.ID.FIELD} with a step ID and an output field")
		}
		return Ref{Scope: scope, Name: rest[:i], Field: rest[i+1:]}, nil
	}
	return bad("a reference starts with params., steps. or run.")
}

// isField checks an output or run field name: lower-case letters, digits and '_'.
func isField(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !isLower(b) && !isDigit(b) && b != '_' {
			return false
		}
	}
	return true
}

// ParseRefs returns the references in s, in the order they are written, or an error if a
// ${...} in s is malformed.
func ParseRefs(s string) ([]Ref, error) {
	segs, err := splitRefs(s)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, sg := range segs {
		if sg.ref != nil {
			refs = append(refs, *sg.ref)
		}
	}
	return refs, nil
}

// errListInText is returned when a list is referenced inside a longer text or a list item,
// where it has no single text form.
var errListInText = errors.New("is a list; only a value that is exactly this reference can take a list")

// Substitute resolves the references in v with lookup. A scalar that is exactly one reference
// takes the referenced value whole (a list stays a list); references inside a longer text, or
// in the items of a list, are spliced in as text. It is pure and deterministic, for use in
// workflow code; the result never shares memory with v or with what lookup returns.
func Substitute(v Value, lookup func(ref Ref) (Value, bool)) (Value, error) {
	if v.IsList {
		out := make([]string, 0, len(v.List))
		for _, item := range v.List {
			s, err := spliceText(item, lookup)
			if err != nil {
				return Value{}, err
			}
			out = append(out, s)
		}
		return Value{List: out, IsList: true}, nil
	}
	segs, err := splitRefs(v.Scalar)
	if err != nil {
		return Value{}, err
	}
	if len(segs) == 1 && segs[0].ref != nil {
		got, ok := lookup(*segs[0].ref)
		if !ok {
			return Value{}, fmt.Errorf("%s: no such value", segs[0].ref)
		}
		return cloneValue(got), nil
	}
	s, err := splice(segs, lookup)
	if err != nil {
		return Value{}, err
	}
	return S(s), nil
}

func spliceText(s string, lookup func(ref Ref) (Value, bool)) (string, error) {
	segs, err := splitRefs(s)
	if err != nil {
		return "", err
	}
	return splice(segs, lookup)
}

func splice(segs []segment, lookup func(ref Ref) (Value, bool)) (string, error) {
	var b strings.Builder
	for _, sg := range segs {
		if sg.ref == nil {
			b.WriteString(sg.text)
			continue
		}
		got, ok := lookup(*sg.ref)
		if !ok {
			return "", fmt.Errorf("%s: no such value", sg.ref)
		}
		if got.IsList {
			return "", fmt.Errorf("%s %w", sg.ref, errListInText)
		}
		b.WriteString(got.Scalar)
	}
	return b.String(), nil
}
