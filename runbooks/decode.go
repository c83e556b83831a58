package runbooks

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/drflow/drflow/internal/config"
)

// The fields each YAML mapping may hold.
var (
	runbookFields  = []string{"name", "description", "params", "steps"}
	paramFields    = []string{"name", "type", "description", "default"}
	stepFields     = []string{"id", "action", "args", "approval", "parallel", "wait", "timeout", "retry", "compensate", "expect_error"}
	approvalFields = []string{"approvers", "group", "min", "timeout", "on_timeout", "message"}
	waitFields     = []string{"duration", "until", "every"}
	untilFields    = []string{"action", "args"}
	retryFields    = []string{"max_attempts", "initial_interval", "max_interval"}
)

// decoder turns the YAML node tree into a Runbook, reporting every structural problem (unknown
// or repeated fields, a list where a mapping belongs, a bad duration) with its line and path.
// It records the line of every field for the checks that follow, and the paths that failed
// to decode so that those checks do not pile follow-up errors onto them. Helpers take a nil
// node as "not written" and return the zero value.
type decoder struct {
	problems
	broken    map[string]bool
	visits    int
	text      int // bytes of scalars read
	stepCount int
	tooBig    bool
}

func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.broken[path] = true
	d.add(&config.FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases and counts the visit; it returns nil for a node to skip.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	if n == nil {
		return nil
	}
	if d.visits++; d.visits > maxVisits {
		d.tooBig = true
		return nil
	}
	for hops := 0; n.Kind == yaml.AliasNode; hops++ {
		if n.Alias == nil || hops > 32 {
			d.fail(path, n.Line, "alias cannot be resolved")
			return nil
		}
		n = n.Alias
	}
	if isNull(n) {
		return nil
	}
	return n
}

// mapping checks that n is a mapping of the allowed fields and returns their values by name.
func (d *decoder) mapping(n *yaml.Node, path string, allowed []string) map[string]*yaml.Node {
	if n = d.resolve(n, path); n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "want a mapping of fields (key: value), got %s", describe(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		if !slices.Contains(allowed, name) {
			d.fail(keyPath(path, name), k.Line, "unknown field %s (%s)", quoteTrunc(name), suggest(name, allowed))
			continue
		}
		p := fieldPath(path, name)
		d.lines[p] = k.Line
		if !isNull(v) {
			out[name] = v
		}
	}
	return out
}

// key reads a mapping key, refusing repeated and non-scalar ones.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]int) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.fail(path, k.Line, "field names must be plain words, got %s", describe(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		d.fail(path, k.Line, "merge keys (<<) are not supported in runbooks; write the fields out")
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		d.fail(keyPath(path, k.Value), k.Line, "field is given twice (first on line %d)", first)
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

// scalar reads a single value.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n = d.resolve(n, path); n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "want a single value, got %s", describe(n))
		return "", false
	}
	if d.text += len(n.Value); d.text > maxText {
		d.tooBig = true
		return "", false
	}
	if !utf8.ValidString(n.Value) {
		d.fail(path, n.Line, "is not valid UTF-8 text")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	s, _ := d.scalar(n, path)
	return s
}

// value reads a scalar or a list of scalars. A written value is never the zero Value: an empty
// list stays a list.
func (d *decoder) value(n *yaml.Node, path string) (Value, bool) {
	if n = d.resolve(n, path); n == nil {
		return Value{}, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := d.scalar(n, path)
		return S(s), ok
	case yaml.SequenceNode:
		items := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			if r := d.resolve(item, p); r == nil || r.Kind != yaml.ScalarNode {
				d.fail(p, item.Line, "want a single value as a list item, got %s", describeItem(r))
				continue
			}
			s, _ := d.scalar(item, p)
			items = append(items, s)
		}
		return Value{List: items, IsList: true}, true
	}
	d.fail(path, n.Line, "want a value or a list of values, got %s", describe(n))
	return Value{}, false
}

// integer reads a whole number of at least lowest.
func (d *decoder) integer(n *yaml.Node, path string, lowest int) int {
	if n = d.resolve(n, path); n == nil {
		return 0
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		d.fail(path, n.Line, "want a whole number, got %s", describe(n))
		return 0
	}
	if v < lowest {
		d.fail(path, n.Line, "must be at least %d, got %d", lowest, v)
		return 0
	}
	return v
}

// duration reads a positive duration such as 90s, 15m, 4h or 7d.
func (d *decoder) duration(n *yaml.Node, path string) Duration {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0
	}
	v, err := config.ParseDuration(s)
	if err != nil {
		d.fail(path, n.Line, "%v", err)
		return 0
	}
	if v <= 0 {
		d.fail(path, n.Line, "must be positive, got %s", quoteTrunc(s))
		return 0
	}
	return Duration(v)
}

// sequence checks that n is a list and returns its items.
func (d *decoder) sequence(n *yaml.Node, path string) []*yaml.Node {
	if n = d.resolve(n, path); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n.Line, "want a list, got %s", describe(n))
		return nil
	}
	return n.Content
}

// itemName returns an item's id or name as the checks will see it, to annotate its path.
func itemName(n *yaml.Node, field string) string {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode && hops <= 32; hops++ {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Kind == yaml.ScalarNode && k.Value == field {
			for hops := 0; v.Kind == yaml.AliasNode && v.Alias != nil && hops <= 32; hops++ {
				v = v.Alias
			}
			if v.Kind != yaml.ScalarNode || isNull(v) {
				return ""
			}
			return v.Value
		}
	}
	return ""
}

func isNull(n *yaml.Node) bool     { return config.IsNullNode(n) }
func describe(n *yaml.Node) string { return config.DescribeNode(n) }

func describeItem(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	return describe(n)
}
