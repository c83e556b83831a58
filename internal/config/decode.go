package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxVisits bounds the schema walk. yaml.v3 already refuses documents with excessive
// aliasing before the walk starts; this is a second, cheap guard because the walk follows
// aliases too.
const maxVisits = 1 << 20

// errEmpty is returned for a file without any YAML content.
var errEmpty = errors.New("configuration is empty")

// decodeFile parses data into the YAML schema. It returns the decoded file, the structural
// problems (unknown or repeated fields, values of the wrong type), the line of every field
// path for later messages, and the set of paths whose value could not be decoded, so that
// validation does not pile follow-up errors onto them. A non-nil error means the document
// could not be read at all (syntax error, several documents, too much aliasing).
func decodeFile(data []byte) (*fileConfig, *walker, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errEmpty
		}
		return nil, nil, fmt.Errorf("read YAML: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, nil, fmt.Errorf("read YAML: %w", err)
	default:
		return nil, nil, fmt.Errorf("read YAML: line %d: a second document starts here; drflow reads one document per file", next.Line)
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil, errEmpty
	}
	root := doc.Content[0]

	// A first decode only to let yaml.v3 refuse alias bombs before the walk expands aliases.
	var probe fileConfig
	var typeErr *yaml.TypeError
	if err := root.Decode(&probe); err != nil && !errors.As(err, &typeErr) {
		return nil, nil, fmt.Errorf("read YAML: %w", err)
	}

	w := &walker{lines: map[string]int{}, broken: map[string]bool{}}
	w.walk(root, reflect.TypeFor[fileConfig](), "", 0)
	if w.tooBig {
		return nil, nil, errors.New("read YAML: document is too large or too deeply aliased")
	}

	// The walk removed repeated keys (after reporting them), so this decode keeps the rest of
	// their mapping instead of dropping it, which would cause misleading follow-up errors.
	var f fileConfig
	typeErr = nil
	if err := root.Decode(&f); err != nil && !errors.As(err, &typeErr) {
		return nil, nil, fmt.Errorf("read YAML: %w", err)
	}
	if typeErr != nil && len(w.errs) == 0 {
		// The walk mirrors yaml.v3's rules, so this is a safety net for anything it missed:
		// report yaml's own messages rather than silently using a half-decoded file.
		for _, msg := range typeErr.Errors {
			w.errs = append(w.errs, yamlTypeError(msg))
		}
		w.broken[""] = true
	}
	return &f, w, nil
}

// yamlTypeError turns one of yaml.v3's "line N: message" strings into a FieldError.
func yamlTypeError(msg string) *FieldError {
	fe := &FieldError{Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				fe.Line, fe.Msg = n, text
			}
		}
	}
	return fe
}

// walker checks a YAML node tree against the schema types, field by field, so that every
// structural problem is reported with its path and line, not only the first.
type walker struct {
	errs   []*FieldError
	lines  map[string]int  // field path -> line
	broken map[string]bool // paths whose value did not decode
	visits int
	tooBig bool
}

func (w *walker) fail(path string, line int, broken bool, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	if broken {
		w.broken[path] = true
	}
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string, aliases int) {
	if w.visits++; w.visits > maxVisits {
		w.tooBig = true
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || aliases > 32 {
			w.fail(path, n.Line, true, "alias cannot be resolved")
			return
		}
		w.walk(n.Alias, t, path, aliases+1)
		return
	}
	if isNull(n) {
		return // an empty value is the zero value; validation reports it if it is required
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(n, t.Elem(), path, aliases)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(path, n.Line, true, "want a mapping of fields (key: value), got %s", describe(n))
			return
		}
		w.walkMapping(n, t, path, aliases, map[string]int{}, false)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(path, n.Line, true, "want a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			p := itemPath(path, i, itemName(item))
			w.lines[p] = item.Line
			w.walk(item, t.Elem(), p, aliases)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(path, n.Line, true, "want %s, got %s", scalarWant(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(path, n.Line, true, "want %s, got %s", scalarWant(t), quoteTrunc(n.Value))
		}
	}
}

// walkMapping checks the keys of a mapping against the yaml tags of struct type t. seen maps
// each key written directly in this mapping to its line; merged keys ("<<: *anchor") may be
// overridden by direct ones, as in yaml.v3, so they are not duplicates.
func (w *walker) walkMapping(n *yaml.Node, t reflect.Type, path string, aliases int, seen map[string]int, merged bool) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); {
		k, v := n.Content[i], n.Content[i+1]
		i += 2
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			w.walkMerge(v, t, path, aliases, seen)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.fail(path, k.Line, true, "field names must be plain words, got %s", describe(k))
			continue
		}
		name := k.Value
		if merged {
			if _, ok := seen[name]; ok {
				continue // overridden by the mapping that merges this one
			}
		} else {
			if first, ok := seen[name]; ok {
				// yaml.v3 drops a whole mapping when a key repeats; drop the repetition instead,
				// so that the rest of the item is still checked.
				w.fail(fieldPath(path, name), k.Line, false, "field is given twice (first on line %d)", first)
				i -= 2
				n.Content = slices.Delete(n.Content, i, i+2)
				continue
			}
			seen[name] = k.Line
		}
		ft, ok := fields[name]
		if !ok {
			w.fail(fieldPath(path, pathKey(name)), k.Line, false, "unknown field %s", unknownFieldHint(name, fields))
			continue
		}
		p := fieldPath(path, name)
		w.lines[p] = k.Line
		w.walk(v, ft, p, aliases)
	}
}

// walkMerge handles the value of a "<<" key: a mapping or a list of mappings (usually aliases).
func (w *walker) walkMerge(v *yaml.Node, t reflect.Type, path string, aliases int, seen map[string]int) {
	for hops := 0; v.Kind == yaml.AliasNode && v.Alias != nil && hops < 32; hops++ {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		w.walkMapping(v, t, path, aliases+1, seen, true)
	case yaml.SequenceNode:
		for _, item := range v.Content {
			w.walkMerge(item, t, path, aliases+1, seen)
		}
	default:
		w.fail(path, v.Line, true, "<< merges a mapping or a list of mappings, got %s", describe(v))
	}
}

// yamlFields maps the yaml names of struct type t to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	return fields
}

// unknownFieldHint suggests the field the user probably meant, or lists the valid ones.
func unknownFieldHint(name string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	slices.Sort(known)
	best, bestDist := "", 3
	for _, k := range known {
		if d := EditDistance(strings.ToLower(name), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("%s (did you mean %q?)", quoteTrunc(name), best)
	}
	return fmt.Sprintf("%s (valid here: %s)", quoteTrunc(name), strings.Join(known, ", "))
}

// EditDistance is the Levenshtein distance between two short names (field, action or step
// names), for "did you mean" suggestions; names over 64 bytes count as entirely different.
func EditDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// itemName returns the value of an item's "name" field, so that list paths can carry it.
func itemName(n *yaml.Node) string {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

// pathKey renders an unknown key for a path, quoted when it could be confused with path syntax.
func pathKey(k string) string {
	if k != "" && isAnnotatable(k) {
		return k
	}
	return quoteTrunc(k)
}

// IsNullNode reports whether n is YAML null (also for runbooks, which decode the same way).
func IsNullNode(n *yaml.Node) bool { return isNull(n) }

// DescribeNode names what n is for messages: a mapping, a list, an alias or its quoted value.
func DescribeNode(n *yaml.Node) string { return describe(n) }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return quoteTrunc(n.Value)
	}
	return "something else"
}

func scalarWant(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	}
	return "a single value"
}
