package runbooks

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/config"
)

// PointLatest stands for a dataset's newest restore point wherever a point is expected.
const PointLatest = "latest"

// pointTimeLayout is the time part of a restore point ID, as internal/repo writes it; this
// format package does not import the storage stack for one constant.
const pointTimeLayout = "20060102T150405.000Z"

// examplePointID shows the restore point ID format in messages.
const examplePointID = "20250102T030405.000Z-0a1b2c3d"

// ValueTypes lists every parameter and argument type.
func ValueTypes() []ValueType {
	return []ValueType{TypeString, TypeInt, TypeBool, TypeDuration, TypeTime, TypeDataset, TypeLocation, TypePoint, TypeList}
}

// Valid reports whether t is one of the value types.
func (t ValueType) Valid() bool { return slices.Contains(ValueTypes(), t) }

func valueTypeList() string {
	names := make([]string, 0, len(ValueTypes()))
	for _, t := range ValueTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// valueProblem says why v is not a literal of type t, or "" if it is one.
func valueProblem(t ValueType, v Value) string {
	if t == TypeList {
		if !v.IsList {
			return fmt.Sprintf("want a list (type list), got %s", quoteTrunc(v.Scalar))
		}
		return ""
	}
	if v.IsList {
		return fmt.Sprintf("want a single value of type %s, got a list", t)
	}
	return scalarProblem(t, v.Scalar)
}

func scalarProblem(t ValueType, s string) string {
	ok := true
	want := ""
	switch t {
	case TypeInt:
		_, err := strconv.Atoi(s)
		ok, want = err == nil, "a whole number"
	case TypeBool:
		_, err := strconv.ParseBool(s)
		ok, want = err == nil, "true or false"
	case TypeDuration:
		_, err := config.ParseDuration(s)
		ok, want = err == nil, "a duration such as 15m, 4h or 7d"
	case TypeTime:
		_, err := ParseTime(s)
		ok, want = err == nil, "a time in RFC 3339 (2025-01-02T03:04:05Z) or a date (2025-01-02)"
	case TypeDataset, TypeLocation:
		ok, want = nameProblem(s) == "", "a "+string(t)+" name"
	case TypePoint:
		ok, want = s == PointLatest || isPointID(s), fmt.Sprintf("a restore point ID such as %s or %q", examplePointID, PointLatest)
	}
	if ok {
		return ""
	}
	return fmt.Sprintf("want %s (type %s), got %s", want, t, quoteTrunc(s))
}

// ParseTime reads a value of type time: RFC 3339, or a date meaning midnight UTC.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %s: want RFC 3339 (2025-01-02T03:04:05Z) or a date (2025-01-02)", quoteTrunc(s))
	}
	return t, nil
}

// isPointID checks the shape of a restore point ID: its time, a dash and 8 lower-case hex
// digits.
func isPointID(s string) bool {
	ts, suffix, ok := strings.Cut(s, "-")
	if !ok || len(ts) != len(pointTimeLayout) || len(suffix) != 8 || strings.ToLower(suffix) != suffix {
		return false
	}
	if _, err := hex.DecodeString(suffix); err != nil {
		return false
	}
	_, err := time.Parse(pointTimeLayout, ts)
	return err == nil
}

// nameProblem applies the configuration's name rules to runbook names, step IDs, parameter
// names and the dataset and location names a runbook writes: they end up in workflow IDs and
// references.
func nameProblem(s string) string { return config.NameProblem(s) }

func isLower(b byte) bool { return 'a' <= b && b <= 'z' }
func isUpper(b byte) bool { return 'A' <= b && b <= 'Z' }
func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// ResolveParams returns the value of every parameter of a run: the given one, or else the
// default. It rejects unknown parameters, missing required ones and values of the wrong type,
// all at once, each error naming the parameter. The result is a new map; given is not changed.
func ResolveParams(rb Runbook, given map[string]Value) (map[string]Value, error) {
	var errs []*config.FieldError
	fail := func(name, format string, args ...any) {
		errs = append(errs, &config.FieldError{Path: name, Msg: fmt.Sprintf(format, args...)})
	}
	out := make(map[string]Value, len(rb.Params))
	known := make([]string, 0, len(rb.Params))
	for _, p := range rb.Params {
		known = append(known, p.Name)
		v, ok := given[p.Name]
		switch {
		case ok:
		case p.Default != nil:
			v = *p.Default
		default:
			fail(p.Name, "is required (a %s: %s)", p.Type, paramDoc(p))
			continue
		}
		if msg := valueProblem(p.Type, v); msg != "" {
			fail(p.Name, "%s", msg)
			continue
		}
		out[p.Name] = cloneValue(v)
	}
	for _, name := range sortedKeys(given) {
		if !slices.Contains(known, name) {
			fail(name, "unknown parameter of runbook %s (%s)", rb.Name, paramNames(known))
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs, false)
	}
	return out, nil
}

func paramDoc(p Param) string {
	if p.Description != "" {
		return p.Description
	}
	return "no description"
}

func paramNames(names []string) string {
	if len(names) == 0 {
		return "it takes none"
	}
	return "it takes " + strings.Join(names, ", ")
}

// cloneValue copies a list, so that a resolved value never shares memory with its source.
func cloneValue(v Value) Value {
	if v.IsList {
		return Value{List: append([]string{}, v.List...), IsList: true}
	}
	return Value{Scalar: v.Scalar}
}

// sortedKeys returns the keys of m in order: output and messages must not depend on map
// iteration order (this code runs inside workflows).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
