package holds

import (
	"context"
	"slices"
	"sort"
	"strings"
)

// Guard answers, for one dataset at one location, which active holds protect a restore point
// or an object. Prune, GC, shred and copy consult it, so a hold is enforced by drflow even
// where the store cannot enforce it. A nil Guard protects nothing.
type Guard struct {
	points  map[string][]string // point ID -> active hold names
	objects map[string][]string // object key -> active hold names
	active  []Order
}

// Guard reads the active holds of the dataset here.
func (b *Book) Guard(ctx context.Context) (*Guard, error) {
	all, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	return NewGuard(all), nil
}

// NewGuard builds a Guard from holds; released ones are ignored.
func NewGuard(all []Hold) *Guard {
	g := &Guard{points: map[string][]string{}, objects: map[string][]string{}}
	for _, h := range all {
		if !h.Active() {
			continue
		}
		g.active = append(g.active, h.Order)
		name := h.Order.Name
		for point, objs := range h.Points {
			g.points[point] = append(g.points[point], name)
			for _, k := range objs {
				g.objects[k] = append(g.objects[k], name)
			}
		}
	}
	for _, m := range []map[string][]string{g.points, g.objects} {
		for k := range m {
			sort.Strings(m[k])
			m[k] = slices.Compact(m[k]) // an object shared by two points of one hold
		}
	}
	return g
}

// PointHolds names the active holds that cover point, or nil.
func (g *Guard) PointHolds(point string) []string {
	if g == nil {
		return nil
	}
	return g.points[point]
}

// ObjectHolds names the active holds that cover the object at key, or nil.
func (g *Guard) ObjectHolds(key string) []string {
	if g == nil {
		return nil
	}
	return g.objects[key]
}

// Active lists the orders of the active holds, by name.
func (g *Guard) Active() []Order {
	if g == nil {
		return nil
	}
	return g.active
}

// Ongoing lists the active holds that also cover new restore points.
func (g *Guard) Ongoing() []Order {
	var out []Order
	for _, o := range g.Active() {
		if o.Selection.Ongoing {
			out = append(out, o)
		}
	}
	return out
}

// Any reports whether any hold is active.
func (g *Guard) Any() bool { return g != nil && len(g.active) > 0 }

// Reason renders hold names for messages and audit events: "legal hold case-7, case-9".
func Reason(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return "legal hold " + strings.Join(names, ", ")
}
