package activities

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/providers"
)

// ErrTypeHoldConflict: a hold of the same name exists with another order, or was released.
const ErrTypeHoldConflict = "HoldConflict"

// PlaceHoldInput places a legal hold on restore points of a dataset, selected by a range of
// data_as_of or by ID, on the primary and every replica.
type PlaceHoldInput struct {
	Hold        string    `json:"hold"`
	Dataset     string    `json:"dataset"`
	From        time.Time `json:"from,omitzero"`
	To          time.Time `json:"to,omitzero"`
	Points      []string  `json:"points,omitempty"`
	Ongoing     bool      `json:"ongoing,omitempty"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by"`
}

// PlaceHoldResult summarises a placement; Report has it per location.
type PlaceHoldResult struct {
	Hold           string            `json:"hold"`
	Points         []string          `json:"points"`
	Objects        int               `json:"objects"`
	Locations      []string          `json:"locations"`
	ServerEnforced []string          `json:"server_enforced"`
	DrflowEnforced []string          `json:"drflow_enforced"`
	Report         holds.PlaceReport `json:"report"`
	Order          holds.Order       `json:"order"`
}

// PlaceHold records the hold at the primary and every replica and applies the store's own
// hold to every object of the selected points (see internal/holds). It runs on the home
// region's queue, whose worker opens every copy of the dataset and holds its keys (the
// objects of a point are listed from its sealed manifest). Idempotent: a retry converges.
func (a *Activities) PlaceHold(ctx context.Context, in PlaceHoldInput) (PlaceHoldResult, error) {
	ds, primary, err := a.lookup(in.Dataset, "")
	if err != nil {
		return PlaceHoldResult{}, err
	}
	targets, err := a.holdTargets(ds)
	if err != nil {
		return PlaceHoldResult{}, err
	}
	r, err := a.repo(ds, primary)
	if err != nil {
		return PlaceHoldResult{}, err
	}
	points, err := r.Points(ctx)
	if err != nil {
		return PlaceHoldResult{}, classify(err)
	}
	order := holds.Order{Name: in.Hold, Dataset: ds.Name, Reason: in.Reason, RequestedBy: in.RequestedBy, PlacedAt: now().UTC(),
		Actor: actor(ctx), Selection: holds.Selection{From: in.From, To: in.To, Points: in.Points, Ongoing: in.Ongoing}}
	if err := checkSelection(order, points); err != nil {
		return PlaceHoldResult{}, err
	}
	cands := make([]holds.Point, len(points))
	for i, p := range points {
		cands[i] = holds.Point{ID: p.ID, DataAsOf: p.DataAsOf}
	}
	rep, err := holds.Place(ctx, holds.PlaceOptions{Order: order, Points: cands, Targets: targets, Audit: a.Audit, Now: now})
	if err != nil {
		return PlaceHoldResult{}, holdError(err)
	}
	out := PlaceHoldResult{Hold: rep.Hold, Points: nonNilList(rep.Points), Objects: rep.Objects, ServerEnforced: nonNilList(rep.ServerEnforced),
		DrflowEnforced: nonNilList(rep.DrflowEnforced), Report: rep, Order: order, Locations: []string{}}
	for _, l := range rep.Locations {
		out.Locations = append(out.Locations, l.Location)
	}
	a.logger().Info("legal hold placed", zap.String("dataset", ds.Name), zap.String("hold", in.Hold),
		zap.Int("points", len(out.Points)), zap.Int("objects", out.Objects), zap.Strings("server_enforced", out.ServerEnforced),
		zap.Strings("drflow_enforced", out.DrflowEnforced))
	return out, nil
}

// checkSelection refuses, before anything is written, an order that names unknown points or
// selects nothing (unless it is ongoing, and so waits for new points).
func checkSelection(o holds.Order, points []repo.PointInfo) error {
	if err := o.Validate(); err != nil {
		return nonRetryable(ErrTypeInvalidInput, "%v", err)
	}
	var unknown []string
	for _, id := range o.Selection.Points {
		if !slices.ContainsFunc(points, func(p repo.PointInfo) bool { return p.ID == id }) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nonRetryable(ErrTypeNotFound, "legal hold %s: dataset %s has no restore point %v at its primary", o.Name, o.Dataset, unknown)
	}
	n := 0
	for _, p := range points {
		if o.Selects(holds.Point{ID: p.ID, DataAsOf: p.DataAsOf}) {
			n++
		}
	}
	if n == 0 && !o.Selection.Ongoing {
		return nonRetryable(ErrTypeInvalidInput, "legal hold %s selects no restore point of dataset %s (it has %d); widen --from/--to, name --point IDs, or make it --ongoing",
			o.Name, o.Dataset, len(points))
	}
	return nil
}

// ReleaseHoldInput releases a hold; ApprovedBy must name someone other than RequestedBy.
type ReleaseHoldInput struct {
	Hold        string   `json:"hold"`
	Dataset     string   `json:"dataset"`
	Reason      string   `json:"reason"`
	RequestedBy string   `json:"requested_by"`
	ApprovedBy  []string `json:"approved_by"`
}

// ReleaseHoldResult summarises a release; Report has it per location.
type ReleaseHoldResult struct {
	Hold             string              `json:"hold"`
	ObjectsReleased  int                 `json:"objects_released"`
	ObjectsStillHeld int                 `json:"objects_still_held"`
	Report           holds.ReleaseReport `json:"report"`
}

// ReleaseHold ends a hold at every location: the two-person rule is checked (and a refusal
// audited) before anything changes; the store's hold stays on every object another active
// hold covers.
func (a *Activities) ReleaseHold(ctx context.Context, in ReleaseHoldInput) (ReleaseHoldResult, error) {
	ds, _, err := a.lookup(in.Dataset, "")
	if err != nil {
		return ReleaseHoldResult{}, err
	}
	targets, err := a.holdTargets(ds)
	if err != nil {
		return ReleaseHoldResult{}, err
	}
	rel := holds.Release{Reason: in.Reason, RequestedBy: in.RequestedBy, ApprovedBy: in.ApprovedBy, ReleasedAt: now().UTC(), Actor: actor(ctx)}
	rep, err := holds.ReleaseHold(ctx, holds.ReleaseOptions{Dataset: ds.Name, Name: in.Hold, Release: rel, Targets: targets, Audit: a.Audit, Now: now})
	if err != nil {
		return ReleaseHoldResult{}, holdError(err)
	}
	out := ReleaseHoldResult{Hold: in.Hold, Report: rep}
	for _, l := range rep.Locations {
		out.ObjectsReleased += l.Lifted
		out.ObjectsStillHeld += l.StillHeld
	}
	a.logger().Info("legal hold released", zap.String("dataset", ds.Name), zap.String("hold", in.Hold),
		zap.Int("objects_released", out.ObjectsReleased), zap.Int("objects_still_held", out.ObjectsStillHeld))
	return out, nil
}

// InspectHoldInput reads a hold back from every location.
type InspectHoldInput struct {
	Hold    string `json:"hold"`
	Dataset string `json:"dataset"`
	// Verify also verifies every covered point at the primary.
	Verify bool `json:"verify,omitempty"`
}

// HoldReport is a hold as the stores report it.
type HoldReport struct {
	Hold   string   `json:"hold"`
	State  string   `json:"state"`
	Points []string `json:"points"`
	// Objects counts the covered objects over all locations; HeldObjects those the store
	// itself reports under legal hold.
	Objects        int      `json:"objects"`
	HeldObjects    int      `json:"held_objects"`
	Missing        int      `json:"missing"`
	ServerEnforced []string `json:"server_enforced"`
	DrflowEnforced []string `json:"drflow_enforced"`
	// Verified counts the covered points verified at the primary (with Verify).
	Verified int `json:"verified"`
	// OK: the hold is active everywhere it is recorded, no covered object is missing, and
	// every point verified (with Verify).
	OK     bool         `json:"ok"`
	Report holds.Report `json:"report"`
}

// InspectHold reads a hold's records and Stat()s every covered object at every location, so
// the report is what the stores say, not what drflow wrote down.
func (a *Activities) InspectHold(ctx context.Context, in InspectHoldInput) (HoldReport, error) {
	ds, primary, err := a.lookup(in.Dataset, "")
	if err != nil {
		return HoldReport{}, err
	}
	targets, err := a.holdTargets(ds)
	if err != nil {
		return HoldReport{}, err
	}
	rep, err := holds.Inspect(ctx, ds.Name, in.Hold, targets)
	if err != nil {
		return HoldReport{}, holdError(err)
	}
	out := summarise(rep)
	if in.Verify && out.OK {
		r, err := a.repo(ds, primary)
		if err != nil {
			return out, err
		}
		for _, id := range out.Points {
			if _, err := a.verify(ctx, r, repo.PointInfo{ID: id}); err != nil {
				return out, err
			}
			out.Verified++
		}
	}
	return out, nil
}

func summarise(rep holds.Report) HoldReport {
	out := HoldReport{Hold: rep.Hold, State: rep.State, Report: rep, Points: []string{}, ServerEnforced: []string{}, DrflowEnforced: []string{}}
	for _, l := range rep.Locations {
		if !l.Recorded {
			continue
		}
		out.Objects += l.Objects
		out.HeldObjects += l.Held
		out.Missing += l.Missing
		if l.Enforcement == holds.EnforcedByServer {
			out.ServerEnforced = append(out.ServerEnforced, l.Location)
		} else {
			out.DrflowEnforced = append(out.DrflowEnforced, l.Location)
		}
		for _, p := range l.Points {
			if !slices.Contains(out.Points, p.ID) {
				out.Points = append(out.Points, p.ID)
			}
		}
	}
	slices.Sort(out.Points)
	out.OK = rep.State == holds.StateActive && out.Missing == 0 && len(rep.Problems) == 0
	return out
}

// holdTargets are the dataset's copies: the primary, and each replica in the mode its
// jurisdiction allows (a denied one holds nothing). Objects of full and encrypted copies are
// listed from the point's manifest with the dataset's keys; a metadata copy holds one
// catalog entry per point.
func (a *Activities) holdTargets(ds config.Dataset) ([]holds.Target, error) {
	var out []holds.Target
	for _, name := range append([]string{ds.Primary}, ds.Replicas...) {
		t, ok, err := a.holdTarget(ds, name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// holdTarget is the copy of ds at location name; ok is false where the policy allows none.
func (a *Activities) holdTarget(ds config.Dataset, name string) (holds.Target, bool, error) {
	mode := a.copyMode(ds, name)
	if mode == config.CopyDenied {
		return holds.Target{}, false, nil
	}
	st, err := a.store(name)
	if err != nil {
		return holds.Target{}, false, err
	}
	if mode == config.CopyMetadata {
		return holds.Target{Store: st, Mode: holds.ModeMetadata, Objects: func(ctx context.Context, point string) ([]string, error) {
			return repo.CatalogObjects(ctx, st, ds.Name, point)
		}}, true, nil
	}
	loc, _ := a.Config.Location(name)
	r, err := a.repo(ds, loc)
	if err != nil {
		return holds.Target{}, false, err
	}
	return holds.Target{Store: st, Mode: holdMode(ds, name, mode), Objects: r.PointObjects,
		Cover: func(ctx context.Context, b *holds.Book, hold, point string, at time.Time) ([]string, error) {
			objs, _, err := r.CoverPoint(ctx, b, hold, point, at)
			return objs, err
		}}, true, nil
}

func holdMode(ds config.Dataset, location string, mode config.CopyMode) string {
	switch {
	case location == ds.Primary:
		return holds.ModePrimary
	case mode == config.CopyEncrypted:
		return holds.ModeEncrypted
	}
	return holds.ModeFull
}

// propagateHolds extends the dataset's active holds to a point just written at location: a
// new point under an ongoing hold (after a backup), or a held point copied to a replica.
func (a *Activities) propagateHolds(ctx context.Context, ds config.Dataset, location string, p repo.PointInfo) error {
	t, ok, err := a.holdTarget(ds, location)
	if err != nil || !ok {
		return err
	}
	src := holds.Records(a.Stores[ds.Primary], ds.Name)
	names, err := holds.Propagate(ctx, src, t, holds.Point{ID: p.ID, DataAsOf: p.DataAsOf}, a.Audit, actor(ctx), now())
	if err != nil {
		return holdError(err)
	}
	if len(names) > 0 {
		a.logger().Info("legal holds extended to a new copy", zap.String("dataset", ds.Name), zap.String("location", location),
			zap.String("point", p.ID), zap.Strings("holds", names))
	}
	return nil
}

// holdError maps the holds package's errors onto activity error types.
func holdError(err error) error {
	switch {
	case errors.Is(err, holds.ErrConflict):
		return nonRetryable(ErrTypeHoldConflict, "%v", err)
	case errors.Is(err, providers.ErrInvalidArgument):
		return nonRetryable(ErrTypeInvalidInput, "%v", err)
	}
	return classify(err)
}

func nonNilList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
