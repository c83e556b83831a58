package holds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// ErrRefused marks an order or release that was refused before anything was written (an
// invalid order, a release without a second person's approval): retrying cannot fix it.
var ErrRefused = errors.New("legal hold refused")

// Selects reports whether the order covers restore point p. Explicit IDs select those
// points; a range selects the points whose data_as_of lies in it, an open end stopping at
// PlacedAt; an ongoing hold also selects every point whose data is not older than the order.
func (o Order) Selects(p Point) bool {
	s := o.Selection
	if s.Ongoing && !p.DataAsOf.Before(o.PlacedAt) {
		return true
	}
	if s.To.IsZero() && len(s.Points) == 0 && !s.Ongoing {
		s.To = o.PlacedAt
	}
	return s.Matches(p.ID, p.DataAsOf)
}

// PlaceOptions are the input of Place.
type PlaceOptions struct {
	// Order is the hold; a zero PlacedAt becomes Now.
	Order Order
	// Points are the dataset's restore points; the order selects among them.
	Points []Point
	// Targets are every location holding a copy of the dataset, the primary first.
	Targets []Target
	Audit   audit.Recorder
	Now     func() time.Time // time.Now if nil
}

// PlaceReport is what Place did.
type PlaceReport struct {
	Hold    string   `json:"hold"`
	Dataset string   `json:"dataset"`
	Points  []string `json:"points"` // selected
	// Unknown are points the order names by ID that are not among PlaceOptions.Points.
	Unknown   []string            `json:"unknown_points,omitempty"`
	Objects   int                 `json:"objects"` // covered, summed over locations
	Locations []LocationPlacement `json:"locations"`
	// ServerEnforced and DrflowEnforced name the locations by who enforces the hold there
	// (drflow: its local adapter or, where the store cannot hold, its records only).
	ServerEnforced []string `json:"server_enforced"`
	DrflowEnforced []string `json:"drflow_enforced"`
}

// LocationPlacement is what Place did at one location.
type LocationPlacement struct {
	Location       string   `json:"location"`
	Mode           string   `json:"mode"`
	Enforcement    string   `json:"enforcement"` // EnforcedBy*
	ServerEnforced bool     `json:"server_enforced"`
	Covered        []string `json:"points_covered"`
	Missing        []string `json:"points_missing,omitempty"` // not (yet) copied here
	Objects        int      `json:"objects"`
	Gone           int      `json:"objects_gone,omitempty"` // listed, then deleted before their hold (duplicate packs GC collected)
	Note           string   `json:"note,omitempty"`
	Error          string   `json:"error,omitempty"`
}

func (r *PlaceReport) add(lp LocationPlacement) {
	r.Locations = append(r.Locations, lp)
	r.Objects += lp.Objects
	if lp.ServerEnforced {
		r.ServerEnforced = append(r.ServerEnforced, lp.Location)
	} else {
		r.DrflowEnforced = append(r.DrflowEnforced, lp.Location)
	}
}

// Place records the hold at every target and covers the selected points there: the order
// first, then per point the coverage record, then the provider's own hold on each object and
// on the hold's records wherever the store can hold. Every step is idempotent, so running
// Place again after a failure (it continues with the other locations and returns the
// failures joined) converges.
func Place(ctx context.Context, o PlaceOptions) (PlaceReport, error) {
	now := clock(o.Now)
	order := o.Order
	if order.PlacedAt.IsZero() {
		order.PlacedAt = now().UTC()
	}
	rep := PlaceReport{Hold: order.Name, Dataset: order.Dataset, Points: []string{}}
	if err := checkOptions(o.Audit, o.Targets); err != nil {
		return rep, err
	}
	a := auditor{rec: o.Audit, actor: actorOf(order.Actor, order.RequestedBy), dataset: order.Dataset, hold: order.Name}
	if err := order.Validate(); err != nil {
		return rep, a.refuse(ctx, now(), fmt.Errorf("%w: %w", ErrRefused, err))
	}
	points := selectPoints(order, o.Points, &rep)
	reason := fmt.Sprintf("requested by %s (%s); %d restore points selected%s at %d locations",
		order.RequestedBy, order.Reason, len(points), ongoingText(order), len(o.Targets))
	if err := a.record(ctx, now(), audit.Event{Operation: OpPlaced, Reason: reason}); err != nil {
		return rep, err
	}
	var errs []error
	for _, t := range o.Targets {
		lp, err := placeAt(ctx, a, order, t, points, now)
		rep.add(lp)
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

func selectPoints(order Order, candidates []Point, rep *PlaceReport) []Point {
	var points []Point
	for _, p := range candidates {
		if order.Selects(p) && !slices.Contains(rep.Points, p.ID) {
			points = append(points, p)
			rep.Points = append(rep.Points, p.ID)
		}
	}
	for _, id := range order.Selection.Points {
		if !slices.Contains(rep.Points, id) {
			rep.Unknown = append(rep.Unknown, id)
		}
	}
	return points
}

func ongoingText(o Order) string {
	if o.Selection.Ongoing {
		return " (ongoing: new points too)"
	}
	return ""
}

// placeAt records and applies the hold at one location and audits the outcome.
func placeAt(ctx context.Context, a auditor, order Order, t Target, points []Point, now func() time.Time) (LocationPlacement, error) {
	caps := t.Store.Capabilities()
	lp := LocationPlacement{Location: t.name(), Mode: t.Mode, Enforcement: Enforcement(caps), Covered: []string{}}
	lp.ServerEnforced = lp.Enforcement == EnforcedByServer
	objects, err := coverPoints(ctx, order, t, points, now(), &lp)
	if err == nil {
		var res providerResult
		res, err = holdObjects(ctx, t, order, objects)
		lp.Objects, lp.Gone = len(objects)-len(res.gone), len(res.gone)
		lp.Note = holdNote(t, res, &lp.Enforcement)
		lp.ServerEnforced = lp.Enforcement == EnforcedByServer
	}
	if err != nil {
		lp.Error = err.Error()
		return lp, a.failed(ctx, now(), t, OpApplied, err)
	}
	reason := fmt.Sprintf("%d restore points covered", len(lp.Covered))
	if len(lp.Missing) > 0 {
		reason += fmt.Sprintf(", %d not at this location (%s)", len(lp.Missing), strings.Join(lp.Missing, ", "))
	}
	reason += fmt.Sprintf("; %d objects held, %s", lp.Objects, lp.Note)
	return lp, a.record(ctx, now(), at(t, audit.Event{Operation: OpApplied, Chunks: int64(lp.Objects), Reason: reason}))
}

// coverPoints records the order at t and covers every point there, returning their objects.
func coverPoints(ctx context.Context, order Order, t Target, points []Point, now time.Time, lp *LocationPlacement) ([]string, error) {
	book, h, err := recordOrder(ctx, t, order)
	if err != nil {
		return nil, err
	}
	if !h.Active() {
		return nil, releasedError(order, t, h)
	}
	var objects []string
	for _, p := range points {
		objs, err := t.cover(ctx, book, order.Name, p, now)
		if errors.Is(err, providers.ErrNotFound) {
			lp.Missing = append(lp.Missing, p.ID)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("legal hold %s: cover restore point %s at %s: %w", order.Name, p.ID, t.name(), err)
		}
		lp.Covered = append(lp.Covered, p.ID)
		objects = append(objects, objs...)
	}
	return uniqueSorted(objects), nil
}

// recordOrder records order at t and reads the hold back.
func recordOrder(ctx context.Context, t Target, order Order) (*Book, Hold, error) {
	book := Records(t.Store, order.Dataset)
	if err := book.PutOrder(ctx, order); err != nil {
		return nil, Hold{}, err
	}
	h, err := book.Get(ctx, order.Name)
	return book, h, err
}

func releasedError(order Order, t Target, h Hold) error {
	return fmt.Errorf("%w: legal hold %s of dataset %s was released at %s on %s", ErrConflict, order.Name,
		order.Dataset, t.name(), h.Release.ReleasedAt.UTC().Format(time.RFC3339))
}

// holdObjects sets the provider hold on objects and on the hold's own records at t, then
// reads the order's hold back: a store that accepts holds without keeping them (an
// emulator) protects nothing.
func holdObjects(ctx context.Context, t Target, order Order, objects []string) (providerResult, error) {
	book := Records(t.Store, order.Dataset)
	records, err := book.RecordKeys(ctx, order.Name)
	if err != nil {
		return providerResult{}, err
	}
	res, err := setProviderHolds(ctx, t.Store, append(slices.Clone(objects), records...), true)
	if err != nil || res.unsupported {
		return res, err
	}
	info, err := t.Store.Stat(ctx, orderKey(order.Dataset, order.Name))
	if err != nil {
		return res, fmt.Errorf("read back legal hold %s at %s: %w", order.Name, t.name(), err)
	}
	res.unreported = !info.LegalHold
	return res, nil
}

// holdNote explains how the hold is enforced at t, downgrading enforcement if the store
// refused to hold or did not keep the hold.
func holdNote(t Target, res providerResult, enforcement *string) string {
	var note string
	switch {
	case res.unsupported:
		*enforcement = EnforcedByDrflow
		note = enforcementText(t.Store, *enforcement)
	case res.unreported:
		*enforcement = EnforcedByDrflow
		note = "the store accepted the provider hold but does not report it back: only drflow's hold records protect the objects"
	default:
		note = enforcementText(t.Store, *enforcement)
	}
	if len(res.gone) > 0 {
		note += fmt.Sprintf("; %d objects no longer exist (collected meanwhile)", len(res.gone))
	}
	return note
}

// Propagate covers a restore point just written at target (a backup at the primary, a copy
// at a replica) by every hold active in src (the primary's records) that covers the point
// or selects it, ongoing holds included: it records the order at target if missing, then the
// coverage, then the provider holds, and audits each as "covered". It returns the names of
// the holds that cover the point at target. A hold already released at target is skipped
// (its release is under way).
func Propagate(ctx context.Context, src *Book, target Target, point Point, rec audit.Recorder, actor string, now time.Time) ([]string, error) {
	if err := checkOptions(rec, []Target{target}); err != nil {
		return nil, err
	}
	all, err := src.List(ctx)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, h := range all {
		_, covered := h.Points[point.ID]
		if !h.Active() || !covered && !h.Order.Selects(point) {
			continue
		}
		a := auditor{rec: rec, actor: actor, dataset: h.Order.Dataset, hold: h.Order.Name}
		ok, err := propagate(ctx, a, h.Order, target, point, now)
		if err != nil {
			return applied, a.failed(ctx, now, target, OpCovered, err)
		}
		if ok {
			applied = append(applied, h.Order.Name)
		}
	}
	return applied, nil
}

func propagate(ctx context.Context, a auditor, order Order, t Target, point Point, now time.Time) (bool, error) {
	book, h, err := recordOrder(ctx, t, order)
	if err != nil || !h.Active() {
		return false, err
	}
	objects, err := t.cover(ctx, book, order.Name, point, now)
	if err != nil {
		return false, fmt.Errorf("legal hold %s: cover restore point %s at %s: %w", order.Name, point.ID, t.name(), err)
	}
	res, err := holdObjects(ctx, t, order, objects)
	if err != nil {
		return false, err
	}
	enforcement := Enforcement(t.Store.Capabilities())
	note := holdNote(t, res, &enforcement)
	n := len(uniqueSorted(objects)) - len(res.gone)
	return true, a.record(ctx, now, at(t, audit.Event{Operation: OpCovered, Point: point.ID, Chunks: int64(n),
		Reason: fmt.Sprintf("new restore point covered; %d objects held, %s", n, note)}))
}

func checkOptions(rec audit.Recorder, targets []Target) error {
	if rec == nil {
		return fmt.Errorf("%w: legal hold without an audit recorder", providers.ErrInvalidArgument)
	}
	return validateTargets(targets)
}

func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func actorOf(actor, person string) string {
	if actor != "" {
		return actor
	}
	return person
}

// refuse audits a refusal and returns err.
func (a auditor) refuse(ctx context.Context, now time.Time, err error) error {
	aerr := a.record(ctx, now, audit.Event{Operation: OpRefused, Outcome: audit.OutcomeDenied, Reason: err.Error()})
	if aerr != nil {
		return fmt.Errorf("%w (and: %w)", err, aerr)
	}
	return err
}
