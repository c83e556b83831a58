package audit

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidEvent is what Validate's errors match: the event must not be recorded as is.
var ErrInvalidEvent = errors.New("invalid audit event")

// Bounds on event fields. Events name things and carry figures; nothing in them needs more,
// and the bounds keep a stray payload (a file listing, a stack trace, a document) out of a log
// that is kept for years and shown to auditors.
const (
	maxNameLen   = 128  // Dataset, Location, Jurisdiction, CopyMode, Operation, ...
	maxIDLen     = 512  // Actor, Point, KeyID, ManifestHash, LegalBasis (ARNs, workflow IDs)
	maxReasonLen = 2048 // Reason
	maxHolders   = 255  // Holders: a Shamir split has at most 255 shares
)

// Copy modes that Event.CopyMode may name.
const (
	CopyModeFull      = "full"
	CopyModeEncrypted = "encrypted"
	CopyModeMetadata  = "metadata"
)

// Validate checks that e is fit for the audit trail:
//
//   - Kind and Outcome are among the Kind* and Outcome* constants; a denied or failed event
//     says why (Reason).
//   - CopyMode, if set, is full, encrypted or metadata; Bytes and Chunks are not negative;
//     Time, if set, is in years 1 to 9999.
//   - Every text is valid UTF-8 without control characters and within a length bound.
//   - Fields that hold a name (Dataset, Location, Destination, Jurisdiction,
//     DestJurisdiction, CopyMode, Operation) contain no path separator or white space.
//
// The name checks are a heuristic defence, not a filter: callers must never put file or table
// names, object keys of customer data, customer content or key material in an event. The log
// is signed and kept for years, so whatever goes in cannot be taken out.
//
//nolint:gocyclo // one check per field of an event, in the order the schema lists them
func Validate(e Event) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch e.Kind {
	case KindRestorePoint, KindCopy, KindPolicy, KindKey, KindVerify, KindRestore, KindHold, KindDrill, KindPrune, KindGC, KindRunbook, KindBackup, KindEvidence:
	case "":
		add("kind is missing")
	default:
		add("kind %q is unknown", trunc(e.Kind))
	}
	switch e.Outcome {
	case OutcomeOK:
	case OutcomeDenied, OutcomeFailed:
		if e.Reason == "" {
			add("outcome %s needs a reason", e.Outcome)
		}
	case "":
		add("outcome is missing")
	default:
		add("outcome %q is unknown", trunc(e.Outcome))
	}
	switch e.CopyMode {
	case "", CopyModeFull, CopyModeEncrypted, CopyModeMetadata:
	default:
		add("copy_mode %q is not %s, %s or %s", trunc(e.CopyMode), CopyModeFull, CopyModeEncrypted, CopyModeMetadata)
	}
	if e.Bytes < 0 {
		add("bytes is negative (%d)", e.Bytes)
	}
	if e.Chunks < 0 {
		add("chunks is negative (%d)", e.Chunks)
	}
	for _, f := range []struct {
		name string
		ms   int64
	}{{"rpo_ms", e.RPOMillis}, {"rto_ms", e.RTOMillis}, {"rpo_objective_ms", e.RPOObjectiveMillis}, {"rto_objective_ms", e.RTOObjectiveMillis}} {
		if f.ms < 0 {
			add("%s is negative (%d)", f.name, f.ms)
		}
	}
	if e.Threshold < 0 || e.Threshold > len(e.Holders) && len(e.Holders) > 0 {
		add("threshold %d is not between 1 and the %d holders", e.Threshold, len(e.Holders))
	}
	if len(e.Holders) > maxHolders {
		add("holders lists %d names, at most %d", len(e.Holders), maxHolders)
	}
	for i, h := range e.Holders {
		if p := textProblem(h, maxNameLen, false); p != "" || h == "" {
			if p == "" {
				p = "is empty"
			}
			add("holders[%d] %s", i, p)
		}
	}
	if !e.Time.IsZero() && (e.Time.Year() < 1 || e.Time.Year() > 9999) {
		add("time %s is outside years 1 to 9999", e.Time)
	}

	for _, f := range []struct {
		name, value string
		max         int
		isName      bool
	}{
		{"kind", e.Kind, maxNameLen, true},
		{"outcome", e.Outcome, maxNameLen, true},
		{"actor", e.Actor, maxIDLen, false},
		{"dataset", e.Dataset, maxNameLen, true},
		{"restore_point", e.Point, maxIDLen, false},
		{"location", e.Location, maxNameLen, true},
		{"jurisdiction", e.Jurisdiction, maxNameLen, true},
		{"destination", e.Destination, maxNameLen, true},
		{"destination_jurisdiction", e.DestJurisdiction, maxNameLen, true},
		{"copy_mode", e.CopyMode, maxNameLen, true},
		{"legal_basis", e.LegalBasis, maxIDLen, false},
		{"operation", e.Operation, maxNameLen, true},
		{"key_id", e.KeyID, maxIDLen, false},
		{"manifest_hash", e.ManifestHash, maxIDLen, false},
		{"reason", e.Reason, maxReasonLen, false},
		{"tier", e.Tier, maxNameLen, true},
	} {
		if p := textProblem(f.value, f.max, f.isName); p != "" {
			add("%s %s", f.name, p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, strings.Join(problems, "; "))
	}
	return nil
}

func textProblem(s string, maxLen int, isName bool) string {
	if len(s) > maxLen {
		return fmt.Sprintf("is %d bytes long (at most %d)", len(s), maxLen)
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return fmt.Sprintf("%q has a control character", trunc(s))
		case isName && (r == '/' || r == '\\'):
			return fmt.Sprintf("%q has a path separator; it must be a name, never a file name or path", trunc(s))
		case isName && unicode.IsSpace(r):
			return fmt.Sprintf("%q has white space; it must be a name", trunc(s))
		}
	}
	return ""
}

// trunc keeps error messages short when a field is long.
func trunc(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return s[:n] + "..."
}
