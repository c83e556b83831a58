package runbooks

import (
	"fmt"
	"slices"
	"strings"
)

// value checks a value written for something of type want ("" when the type is unknown): a
// literal against the type, a reference against what it refers to.
func (c *checker) value(v Value, path string, want ValueType, visible scope) {
	if c.full() {
		return
	}
	if v.IsList {
		c.listValue(v, path, want, visible)
		return
	}
	segs, err := splitRefs(v.Scalar)
	if err != nil {
		c.addf(path, "%v", err)
		return
	}
	if len(segs) == 1 && segs[0].ref != nil {
		c.wholeRef(*segs[0].ref, path, want, visible)
		return
	}
	var literal strings.Builder
	refs := false
	for _, sg := range segs {
		if sg.ref != nil {
			refs = true
			c.textRef(*sg.ref, path, visible)
		}
		literal.WriteString(sg.text)
	}
	switch {
	case refs && want == TypeList:
		c.addf(path, "want a list, got text %s", quoteTrunc(v.Scalar))
		return
	case refs:
		return // text with references is only known at run time
	}
	if msg := valueProblem(want, S(literal.String())); msg != "" {
		c.addf(path, "%s", msg)
		return
	}
	c.known(want, literal.String(), path)
}

func (c *checker) listValue(v Value, path string, want ValueType, visible scope) {
	if want != "" && want != TypeList {
		c.addf(path, "want a single value of type %s, got a list", want)
		return
	}
	for i, item := range v.List {
		ip := fmt.Sprintf("%s[%d]", path, i)
		segs, err := splitRefs(item)
		if err != nil {
			c.addf(ip, "%v", err)
			continue
		}
		for _, sg := range segs {
			if sg.ref != nil {
				c.textRef(*sg.ref, ip, visible)
			}
		}
	}
}

// textRef checks a reference spliced into text, which cannot take a list.
func (c *checker) textRef(ref Ref, path string, visible scope) {
	if t, ok := c.ref(ref, path, visible); ok && t == TypeList {
		c.addf(path, "%s %v", ref, errListInText)
	}
}

// wholeRef checks a value that is exactly one reference: it takes the referenced value whole,
// so a list goes only where a list belongs.
func (c *checker) wholeRef(ref Ref, path string, want ValueType, visible scope) {
	t, ok := c.ref(ref, path, visible)
	if !ok || want == "" {
		return
	}
	switch {
	case want == TypeList && t != TypeList:
		c.addf(path, "want a list, but %s is a single value (type %s)", ref, t)
	case want != TypeList && t == TypeList:
		c.addf(path, "want a single value of type %s, but %s is a list", want, ref)
	}
}

// ref checks that a reference resolves, and returns its type when that is known.
func (c *checker) ref(ref Ref, path string, visible scope) (ValueType, bool) {
	switch ref.Scope {
	case ScopeParams:
		p, ok := c.params[ref.Name]
		if !ok {
			c.addf(path, "%s: unknown parameter (%s)", ref, paramNames(sortedKeys(c.params)))
			return "", false
		}
		return p.Type, p.Type.Valid()
	case ScopeRun:
		if ref.Name != RunRequestedBy && ref.Name != RunID {
			c.addf(path, "%s: unknown run field (known: %s, %s)", ref, RunID, RunRequestedBy)
			return "", false
		}
		return TypeString, true
	}
	return c.stepRef(ref, path, visible)
}

func (c *checker) stepRef(ref Ref, path string, visible scope) (ValueType, bool) {
	info, ok := c.steps[ref.Name]
	switch {
	case !ok:
		c.addf(path, "%s: no step has ID %q (%s)", ref, ref.Name, suggest(ref.Name, c.ids))
		return "", false
	case info.compensation:
		c.addf(path, "%s: step %q is a compensation; no step reads its outputs", ref, ref.Name)
		return "", false
	case !visible[ref.Name]:
		c.addf(path, "%s: step %q does not run before this one (a step reads the outputs of steps completed before it starts: earlier in the sequence, not a parallel sibling)", ref, ref.Name)
		return "", false
	}
	outs, known := outputsOf(info.step)
	if !known {
		return "", false
	}
	for _, o := range outs {
		if o.name == ref.Field {
			return o.typ, o.typ != ""
		}
	}
	c.addf(path, "%s: step %q has no output %q (%s)", ref, ref.Name, ref.Field, outputNames(outs))
	return "", false
}

// output is a field of a step's outputs; typ is "" where the catalog does not say.
type output struct {
	name string
	typ  ValueType
}

// outputsOf lists what a step outputs, or reports that it cannot tell (an unknown action).
func outputsOf(s Step) ([]output, bool) {
	switch {
	case s.Action != nil && s.ExpectError != "":
		// The action failed as expected: its error is the output.
		return []output{{"error_type", TypeString}, {"error", TypeString}}, true
	case s.Action != nil:
		spec, ok := LookupAction(s.Action.Name)
		if !ok {
			return nil, false
		}
		outs := make([]output, 0, len(spec.Outputs))
		for _, o := range spec.Outputs {
			out := output{name: o}
			if slices.Contains(spec.ListOutputs, o) {
				out.typ = TypeList
			}
			outs = append(outs, out)
		}
		return outs, true
	case s.Approval != nil:
		return []output{{"approvers", TypeList}, {"approved", TypeBool}, {"timed_out", TypeBool}}, true
	case s.Wait != nil:
		return []output{{"ok", TypeBool}}, true
	case s.Parallel != nil:
		return nil, true
	}
	return nil, false
}

func outputNames(outs []output) string {
	if len(outs) == 0 {
		return "it has none; read the outputs of its branches"
	}
	names := make([]string, 0, len(outs))
	for _, o := range outs {
		names = append(names, o.name)
	}
	return "outputs: " + strings.Join(names, ", ")
}
