package holds

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// ReleaseOptions are the input of ReleaseHold.
type ReleaseOptions struct {
	Dataset string
	Name    string
	// Release must pass Release.Validate (the two-person rule); a zero ReleasedAt becomes Now.
	Release Release
	// Targets are every location holding a copy of the dataset.
	Targets []Target
	Audit   audit.Recorder
	Now     func() time.Time // time.Now if nil
}

// ReleaseReport is what ReleaseHold did.
type ReleaseReport struct {
	Hold      string            `json:"hold"`
	Dataset   string            `json:"dataset"`
	Release   Release           `json:"release"`
	Locations []LocationRelease `json:"locations"`
}

// LocationRelease is what ReleaseHold did at one location.
type LocationRelease struct {
	Location    string `json:"location"`
	Mode        string `json:"mode"`
	Enforcement string `json:"enforcement"`
	// Recorded: the hold had an order here (else nothing was done here).
	Recorded bool `json:"recorded"`
	// Objects counts the hold's objects and records here.
	Objects int `json:"objects"`
	// Lifted counts the provider holds lifted: objects no other active hold covers.
	Lifted int `json:"lifted"`
	// StillHeld counts the objects other active holds cover, HeldBy how many each covers.
	StillHeld int            `json:"still_held"`
	HeldBy    map[string]int `json:"held_by,omitempty"`
	// Reapplied counts objects whose provider hold was lifted and set again because a hold
	// placed meanwhile covers them.
	Reapplied int    `json:"reapplied,omitempty"`
	Note      string `json:"note,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ReleaseHold ends a hold: it refuses (and audits the refusal) a release without a second
// person's approval, records the release at every location that has the hold, then at each
// lifts the provider hold from every object and record of the hold that no other active
// hold there covers. Several holds may cover one object; the provider hold goes with the
// last. Retrying after a failure converges.
func ReleaseHold(ctx context.Context, o ReleaseOptions) (ReleaseReport, error) {
	now := clock(o.Now)
	r := o.Release
	if r.ReleasedAt.IsZero() {
		r.ReleasedAt = now().UTC()
	}
	rep := ReleaseReport{Hold: o.Name, Dataset: o.Dataset, Release: r}
	if err := checkOptions(o.Audit, o.Targets); err != nil {
		return rep, err
	}
	a := auditor{rec: o.Audit, actor: actorOf(r.Actor, r.RequestedBy), dataset: o.Dataset, hold: o.Name}
	if err := errors.Join(ValidateName(o.Name), r.Validate()); err != nil {
		return rep, a.refuse(ctx, now(), fmt.Errorf("%w: %w", ErrRefused, err))
	}
	recorded, err := recordedAt(ctx, o.Dataset, o.Name, o.Targets)
	if err != nil {
		return rep, err
	}
	if len(recorded) == 0 {
		return rep, a.refuse(ctx, now(), fmt.Errorf("legal hold %s of dataset %s is recorded at no location: %w", o.Name, o.Dataset, providers.ErrNotFound))
	}
	reason := fmt.Sprintf("release requested by %s (%s), approved by %s", r.RequestedBy, r.Reason, strings.Join(r.ApprovedBy, ", "))
	if err := a.record(ctx, now(), audit.Event{Operation: OpApproved, Reason: reason}); err != nil {
		return rep, err
	}
	// Every location records the release before any provider hold is lifted, so no location
	// shows the hold active while another has already let go.
	for _, t := range o.Targets {
		if !recorded[t.name()] {
			continue
		}
		if err := Records(t.Store, o.Dataset).PutRelease(ctx, o.Name, r); err != nil {
			return rep, a.failed(ctx, now(), t, OpReleased, err)
		}
	}
	var errs []error
	for _, t := range o.Targets {
		lr, err := releaseAt(ctx, a, o.Dataset, o.Name, t, recorded[t.name()], now)
		rep.Locations = append(rep.Locations, lr)
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// recordedAt names the targets that have the hold's order.
func recordedAt(ctx context.Context, dataset, name string, targets []Target) (map[string]bool, error) {
	found := map[string]bool{}
	for _, t := range targets {
		_, err := Records(t.Store, dataset).Get(ctx, name)
		switch {
		case err == nil:
			found[t.name()] = true
		case !errors.Is(err, providers.ErrNotFound):
			return nil, err
		}
	}
	return found, nil
}

// releaseAt lifts the provider holds of a released hold at one location and audits it.
func releaseAt(ctx context.Context, a auditor, dataset, name string, t Target, recorded bool, now func() time.Time) (LocationRelease, error) {
	lr := LocationRelease{Location: t.name(), Mode: t.Mode, Enforcement: Enforcement(t.Store.Capabilities()), Recorded: recorded}
	if !recorded {
		lr.Note = "the hold was never recorded here"
		return lr, nil
	}
	if err := lift(ctx, Records(t.Store, dataset), name, &lr); err != nil {
		lr.Error = err.Error()
		return lr, a.failed(ctx, now(), t, OpReleased, err)
	}
	reason := fmt.Sprintf("released here; %d objects' provider holds lifted", lr.Lifted)
	if lr.StillHeld > 0 {
		reason += fmt.Sprintf(", %d still held by %s", lr.StillHeld, heldByText(lr.HeldBy))
	}
	if lr.Reapplied > 0 {
		reason += fmt.Sprintf(", %d held again for a hold placed meanwhile", lr.Reapplied)
	}
	if lr.Note != "" {
		reason += "; " + lr.Note
	}
	return lr, a.record(ctx, now(), at(t, audit.Event{Operation: OpReleased, Chunks: int64(lr.Lifted), Reason: reason}))
}

// lift removes the provider hold from the objects of hold name that no other active hold
// covers. A placement may record its coverage of such an object after the first reading of
// the other holds and set its provider hold before ours is lifted; the second reading sees
// that coverage, and the hold is set again.
func lift(ctx context.Context, book *Book, name string, lr *LocationRelease) error {
	h, err := book.Get(ctx, name)
	if err != nil {
		return err
	}
	objects, err := book.RecordKeys(ctx, name)
	if err != nil {
		return err
	}
	for _, objs := range h.Points {
		objects = append(objects, objs...)
	}
	objects = uniqueSorted(objects)
	lr.Objects = len(objects)
	others, err := book.Guard(ctx)
	if err != nil {
		return err
	}
	var free []string
	for _, k := range objects {
		names := others.ObjectHolds(k)
		if len(names) == 0 {
			free = append(free, k)
			continue
		}
		lr.StillHeld++
		if lr.HeldBy == nil {
			lr.HeldBy = map[string]int{}
		}
		for _, n := range names {
			lr.HeldBy[n]++
		}
	}
	res, err := setProviderHolds(ctx, book.Store(), free, false)
	if err != nil {
		return err
	}
	if res.unsupported {
		lr.Note = "the store holds no objects: only drflow's records changed"
		return nil
	}
	lr.Lifted = res.set
	return reapply(ctx, book, free, lr)
}

// reapply sets the provider hold again on those of lifted that an active hold now covers.
func reapply(ctx context.Context, book *Book, lifted []string, lr *LocationRelease) error {
	now, err := book.Guard(ctx)
	if err != nil {
		return err
	}
	var again []string
	for _, k := range lifted {
		if len(now.ObjectHolds(k)) > 0 {
			again = append(again, k)
		}
	}
	res, err := setProviderHolds(ctx, book.Store(), again, true)
	lr.Reapplied = res.set
	lr.Lifted -= res.set
	return err
}

func heldByText(by map[string]int) string {
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s (%d)", n, by[n])
	}
	return strings.Join(parts, ", ")
}
