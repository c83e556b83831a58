package holds

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// Operations of legal hold audit events (audit.KindHold).
const (
	OpPlaced   = "placed"   // an order was accepted
	OpApplied  = "applied"  // a hold was recorded and set at one location
	OpCovered  = "covered"  // a new restore point at one location was covered by an active hold
	OpApproved = "approved" // a release passed the two-person rule
	OpReleased = "released" // a hold was released at one location
	OpRefused  = "refused"  // an order or release was refused before anything was written
)

// maxEventReason stays under audit's bound on Reason.
const maxEventReason = 2000

// auditor records the legal hold events of one hold. Events carry names, restore point IDs
// and counts; Chunks carries the number of objects an event concerns.
type auditor struct {
	rec     audit.Recorder
	actor   string
	dataset string
	hold    string
}

func (a auditor) record(ctx context.Context, now time.Time, e audit.Event) error {
	e.Kind = audit.KindHold
	e.Actor, e.Dataset, e.Time = a.actor, a.dataset, now.UTC()
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeOK
	}
	e.Reason = eventText("legal hold " + a.hold + ": " + e.Reason)
	if err := a.rec.Record(ctx, e); err != nil {
		return fmt.Errorf("audit legal hold %s %s: %w", a.hold, e.Operation, err)
	}
	return nil
}

// at fills in the location fields of an event.
func at(t Target, e audit.Event) audit.Event {
	loc := t.Store.Location()
	e.Location, e.Jurisdiction = loc.Name, loc.Jurisdiction
	switch t.Mode {
	case ModeFull, ModeEncrypted, ModeMetadata:
		e.CopyMode = t.Mode
	}
	return e
}

// failed records a failure at a location and returns err, joined with any audit error.
func (a auditor) failed(ctx context.Context, now time.Time, t Target, op string, err error) error {
	aerr := a.record(ctx, now, at(t, audit.Event{Operation: op, Outcome: audit.OutcomeFailed, Reason: err.Error()}))
	if aerr != nil {
		return fmt.Errorf("%w (and: %w)", err, aerr)
	}
	return err
}

// eventText makes free text (a reason typed by a person, an error) fit for an audit event:
// control characters become spaces and it is cut to the audit log's bound.
func eventText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if len(s) <= maxEventReason {
		return s
	}
	cut := maxEventReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// enforcementText describes for events and notes how a location enforces the hold.
func enforcementText(st providers.Store, enforcement string) string {
	switch enforcement {
	case EnforcedByServer:
		return "enforced by the storage service"
	case EnforcedByAdapter:
		return "enforced by drflow's " + st.Location().Provider + " adapter, not by the storage"
	default:
		return "the store cannot hold objects: enforced by drflow's hold records only"
	}
}
