package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	ok := event(1)
	with := func(change func(e *Event)) Event {
		e := ok
		change(&e)
		return e
	}
	tests := []struct {
		name string
		give Event
		want string // empty: valid
	}{
		{"copy", ok, ""},
		{"denied with reason", with(func(e *Event) {
			e.Kind, e.Outcome, e.Reason = KindPolicy, OutcomeDenied, "EU data may not go to US in full"
		}), ""},
		{"key operation with an ARN", with(func(e *Event) {
			e.Kind, e.Operation, e.KeyID = KindKey, "rotate_kek", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd"
		}), ""},
		{"workflow actor with slashes", with(func(e *Event) { e.Actor = "drill/payroll/2025-03-01" }), ""},
		{"time set", with(func(e *Event) { e.Time = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }), ""},
		{"unicode name", with(func(e *Event) { e.Dataset = "gehälter" }), ""},

		{"missing kind", with(func(e *Event) { e.Kind = "" }), "kind is missing"},
		{"unknown kind", with(func(e *Event) { e.Kind = "backups" }), `kind "backups" is unknown`},
		{"negative rpo", with(func(e *Event) { e.Kind, e.RPOMillis = KindBackup, -5 }), "rpo_ms is negative"},
		{"negative rto objective", with(func(e *Event) { e.Kind, e.RTOObjectiveMillis = KindDrill, -1 }), "rto_objective_ms is negative"},
		{"tier with a space", with(func(e *Event) { e.Tier = "tier 1" }), "tier"},
		{"threshold above holders", with(func(e *Event) { e.Holders, e.Threshold = []string{"a", "b"}, 3 }), "threshold 3"},
		{"empty holder", with(func(e *Event) { e.Holders, e.Threshold = []string{"a", ""}, 1 }), "holders[1] is empty"},
		{"missing outcome", with(func(e *Event) { e.Outcome = "" }), "outcome is missing"},
		{"unknown outcome", with(func(e *Event) { e.Outcome = "maybe" }), `outcome "maybe" is unknown`},
		{"failure without reason", with(func(e *Event) { e.Outcome = OutcomeFailed }), "outcome failed needs a reason"},
		{"unknown copy mode", with(func(e *Event) { e.CopyMode = "plain" }), "copy_mode"},
		{"negative bytes", with(func(e *Event) { e.Bytes = -1 }), "bytes is negative"},
		{"negative chunks", with(func(e *Event) { e.Chunks = -1 }), "chunks is negative"},
		{"time beyond 9999", with(func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "outside years"},
		{"file path as dataset", with(func(e *Event) { e.Dataset = "/home/alice/payroll.xlsx" }), "dataset \"/home/alice/payroll.xlsx\" has a path separator"},
		{"windows path as location", with(func(e *Event) { e.Location = `C:\backups` }), "location"},
		{"white space in a name", with(func(e *Event) { e.Destination = "us replica" }), "white space"},
		{"newline in reason", with(func(e *Event) { e.Reason = "a\nb" }), "control character"},
		{"line separator in actor", with(func(e *Event) { e.Actor = "a\u2028b" }), "control character"},
		{"invalid UTF-8", with(func(e *Event) { e.Point = "\xff" }), "not valid UTF-8"},
		{"long name", with(func(e *Event) { e.Dataset = strings.Repeat("d", maxNameLen+1) }), "dataset is 129 bytes long (at most 128)"},
		{"long reason", with(func(e *Event) { e.Reason = strings.Repeat("r", maxReasonLen+1) }), "reason is 2049 bytes long"},
		{"several problems", Event{}, "kind is missing; outcome is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.give)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidEvent)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestValidateBoundsTheRecordSize(t *testing.T) {
	// The largest valid event must fit a record line with room to spare.
	e := Event{Kind: KindRestorePoint, Outcome: OutcomeFailed, Time: time.Now()}
	for _, p := range []*string{&e.Dataset, &e.Location, &e.Jurisdiction, &e.Destination, &e.DestJurisdiction, &e.Operation} {
		*p = strings.Repeat("n", maxNameLen)
	}
	for _, p := range []*string{&e.Actor, &e.Point, &e.KeyID, &e.ManifestHash, &e.LegalBasis} {
		*p = strings.Repeat("<", maxIDLen) // escaped as \u003c: six bytes each
	}
	e.Reason = strings.Repeat("&", maxReasonLen)
	require.NoError(t, Validate(e))
	line, _, err := sealRecord(record{Version: formatVersion, Region: region, Seq: maxSeq, Time: e.Time, Event: e}, newSigner(t))
	require.NoError(t, err)
	assert.Less(t, len(line), maxLineSize/2)
}
