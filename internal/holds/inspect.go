package holds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drflow/drflow/providers"
)

// NotHeld is the enforcement of an object that nothing protects.
const NotHeld = "none"

// Hold states across locations.
const (
	StateActive    = "active"
	StateReleased  = "released"
	StateReleasing = "releasing" // released at some locations, not yet at others
)

// Report is a hold as read back from every location: its records, and each object's state
// as the store reports it (Stat), not as drflow's records claim.
type Report struct {
	Hold      string          `json:"hold"`
	Dataset   string          `json:"dataset"`
	State     string          `json:"state"` // State*
	Order     Order           `json:"order"`
	Release   *Release        `json:"release,omitempty"`
	Approvers []string        `json:"approvers,omitempty"`
	Locations []LocationState `json:"locations"`
	// Problems lists what contradicts the hold: an active hold's object missing or without
	// the provider hold its store could set, a released hold's provider hold left behind.
	Problems []string `json:"problems,omitempty"`
}

// LocationState is a hold at one location.
type LocationState struct {
	Location    string        `json:"location"`
	Mode        string        `json:"mode"`
	Enforcement string        `json:"enforcement"` // what the store can do: EnforcedBy*
	Recorded    bool          `json:"recorded"`    // the hold has an order here
	Active      bool          `json:"active"`
	Points      []PointState  `json:"points,omitempty"`
	Records     []ObjectState `json:"records,omitempty"` // the hold's own records
	Objects     int           `json:"objects"`           // of covered points
	Missing     int           `json:"missing"`
	Held        int           `json:"provider_held"` // objects the store reports under legal hold
}

// PointState is one covered restore point at one location.
type PointState struct {
	ID       string        `json:"id"`
	DataAsOf time.Time     `json:"data_as_of"`
	Objects  []ObjectState `json:"objects"`
}

// ObjectState is one object as the store reports it.
type ObjectState struct {
	Key       string `json:"key"`
	Present   bool   `json:"present"`
	LegalHold bool   `json:"legal_hold"` // the store's own flag
	// Enforcement is what protects it now: EnforcedBy* (drflow: an active hold's record
	// covers it but the store holds nothing), NotHeld, or "" if missing.
	Enforcement string `json:"enforcement"`
	// Holds names the active holds whose records cover it here.
	Holds []string `json:"holds,omitempty"`
}

// Inspect reads hold name back from every target. ErrNotFound if no target has it.
func Inspect(ctx context.Context, dataset, name string, targets []Target) (Report, error) {
	rep := Report{Hold: name, Dataset: dataset}
	for _, t := range targets {
		if t.Store == nil {
			return rep, fmt.Errorf("%w: legal hold target without a store", providers.ErrInvalidArgument)
		}
		ls, h, err := inspectAt(ctx, dataset, name, t, &rep.Problems)
		if err != nil {
			return rep, err
		}
		rep.Locations = append(rep.Locations, ls)
		if !ls.Recorded {
			continue
		}
		if rep.Order.Name == "" {
			rep.Order = h.Order
		}
		if h.Release != nil && rep.Release == nil {
			rep.Release, rep.Approvers = h.Release, h.Release.ApprovedBy
		}
	}
	rep.State = state(rep.Locations)
	if rep.State == "" {
		return rep, fmt.Errorf("legal hold %s of dataset %s is recorded at no location: %w", name, dataset, providers.ErrNotFound)
	}
	return rep, nil
}

func state(locs []LocationState) string {
	var active, released bool
	for _, l := range locs {
		active = active || l.Recorded && l.Active
		released = released || l.Recorded && !l.Active
	}
	switch {
	case active && released:
		return StateReleasing
	case active:
		return StateActive
	case released:
		return StateReleased
	}
	return ""
}

func inspectAt(ctx context.Context, dataset, name string, t Target, problems *[]string) (LocationState, Hold, error) {
	caps := t.Store.Capabilities()
	ls := LocationState{Location: t.name(), Mode: t.Mode, Enforcement: Enforcement(caps)}
	book := Records(t.Store, dataset)
	h, err := book.Get(ctx, name)
	if errors.Is(err, providers.ErrNotFound) {
		return ls, h, nil
	}
	if err != nil {
		return ls, h, err
	}
	ls.Recorded, ls.Active = true, h.Active()
	guard, err := book.Guard(ctx)
	if err != nil {
		return ls, h, err
	}
	s := statter{st: t.Store, caps: caps, guard: guard, hold: name, active: h.Active(), problems: problems}
	for _, id := range h.PointIDs() {
		ps := PointState{ID: id, DataAsOf: h.DataAsOf[id]}
		if ps.Objects, err = s.stat(ctx, h.Points[id], false); err != nil {
			return ls, h, err
		}
		for _, o := range ps.Objects {
			ls.Objects++
			ls.Missing += boolInt(!o.Present)
			ls.Held += boolInt(o.LegalHold)
		}
		ls.Points = append(ls.Points, ps)
	}
	records, err := book.RecordKeys(ctx, name)
	if err != nil {
		return ls, h, err
	}
	ls.Records, err = s.stat(ctx, records, true)
	return ls, h, err
}

// statter reads objects' states at one location.
type statter struct {
	st       providers.Store
	caps     providers.Capabilities
	guard    *Guard
	hold     string
	active   bool // the inspected hold is active here
	problems *[]string
}

// stat reads keys; records are the inspected hold's own, which only it covers.
func (s statter) stat(ctx context.Context, keys []string, records bool) ([]ObjectState, error) {
	out := make([]ObjectState, 0, len(keys))
	loc := s.st.Location().Name
	for _, k := range keys {
		o := ObjectState{Key: k, Holds: s.guard.ObjectHolds(k)}
		if records && s.active {
			o.Holds = []string{s.hold}
		}
		info, err := s.st.Stat(ctx, k)
		switch {
		case errors.Is(err, providers.ErrNotFound):
			if s.active {
				*s.problems = append(*s.problems, fmt.Sprintf("%s at %s is missing", k, loc))
			}
			out = append(out, o)
			continue
		case err != nil:
			return nil, fmt.Errorf("inspect legal hold: %w", err)
		}
		o.Present, o.LegalHold = true, info.LegalHold
		switch {
		case o.LegalHold:
			o.Enforcement = Enforcement(s.caps)
		case len(o.Holds) > 0:
			o.Enforcement = EnforcedByDrflow
		default:
			o.Enforcement = NotHeld
		}
		if s.caps.LegalHold && len(o.Holds) > 0 && !o.LegalHold {
			*s.problems = append(*s.problems, fmt.Sprintf("%s at %s has no provider hold although %s covers it", k, loc, Reason(o.Holds)))
		}
		if !s.active && len(o.Holds) == 0 && o.LegalHold {
			*s.problems = append(*s.problems, fmt.Sprintf("%s at %s is under a provider legal hold that no active drflow hold accounts for", k, loc))
		}
		out = append(out, o)
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Summary is one hold of a dataset across locations.
type Summary struct {
	Name        string    `json:"name"`
	State       string    `json:"state"` // State*
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason"`
	PlacedAt    time.Time `json:"placed_at"`
	Ongoing     bool      `json:"ongoing,omitempty"`
	ReleasedAt  time.Time `json:"released_at,omitzero"`
	Points      []string  `json:"points"`    // covered at any location
	Locations   []string  `json:"locations"` // where recorded
	Released    []string  `json:"released_at_locations,omitempty"`
}

// List summarises every hold of dataset recorded at any target, by name.
func List(ctx context.Context, dataset string, targets []Target) ([]Summary, error) {
	byName := map[string]*Summary{}
	var names []string
	for _, t := range targets {
		if t.Store == nil {
			return nil, fmt.Errorf("%w: legal hold target without a store", providers.ErrInvalidArgument)
		}
		all, err := Records(t.Store, dataset).List(ctx)
		if err != nil {
			return nil, err
		}
		for _, h := range all {
			s := byName[h.Order.Name]
			if s == nil {
				o := h.Order
				s = &Summary{Name: o.Name, RequestedBy: o.RequestedBy, Reason: o.Reason, PlacedAt: o.PlacedAt, Ongoing: o.Selection.Ongoing, Points: []string{}}
				byName[o.Name] = s
				names = append(names, o.Name)
			}
			s.add(t.name(), h)
		}
	}
	slices.Sort(names)
	out := make([]Summary, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return out, nil
}

func (s *Summary) add(location string, h Hold) {
	s.Locations = append(s.Locations, location)
	s.Points = uniqueSorted(append(s.Points, h.PointIDs()...))
	if h.Release != nil {
		s.Released = append(s.Released, location)
		if s.ReleasedAt.IsZero() {
			s.ReleasedAt = h.Release.ReleasedAt
		}
	}
	switch {
	case len(s.Released) == 0:
		s.State = StateActive
	case len(s.Released) == len(s.Locations):
		s.State = StateReleased
	default:
		s.State = StateReleasing
	}
}
