// Package audit is drflow's tamper-evident audit trail: an append-only log per region in which
// every event carries the hash of the previous one and an ed25519 signature, stored in the
// region's location in segments that are never rewritten.
package audit

import (
	"context"
	"time"
)

// Kinds of event. Validate accepts only these; a new kind is added here and there.
const (
	KindRestorePoint = "restore_point.written"
	KindCopy         = "copy"
	KindPolicy       = "policy.decision"
	KindKey          = "key"
	KindVerify       = "verify"
	KindRestore      = "restore"
	KindHold         = "legal_hold"
	KindDrill        = "drill"
	// KindPrune is a restore point deleted by retention (ok) or kept by a hold (denied).
	KindPrune = "restore_point.pruned"
	// KindGC is a garbage collection of a dataset's unreferenced packs.
	KindGC = "gc"
	// KindRunbook is a step of a runbook run: a notice, an approval gate's outcome.
	KindRunbook = "runbook"
	// KindBackup is a backup run's outcome: the restore point it made durable and the RPO
	// exposure it closed, against the tier's objective. (KindRestorePoint is the point
	// itself, written by the repository.)
	KindBackup = "backup"
	// KindEvidence is an evidence pack made: ManifestHash is the SHA-256 of what the pack
	// observed in the stores, which the record thereby signs.
	KindEvidence = "evidence"
)

// Outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// Event is one audited action. It names datasets, locations, jurisdictions, key IDs and
// restore-point IDs, and carries sizes, hashes and reasons — never customer data, file or
// table names, or key material. Fields that do not apply stay empty.
//
// Records are verified byte for byte against their re-encoding, so a field added to Event
// later must be omitempty, with the zero value meaning "absent": records written before it
// then re-encode unchanged.
type Event struct {
	Kind    string `json:"kind"`
	Outcome string `json:"outcome"`
	// Actor is who or what acted: a workflow ID, a user, "drflow bench".
	Actor   string `json:"actor,omitempty"`
	Dataset string `json:"dataset,omitempty"`
	Point   string `json:"restore_point,omitempty"`

	Location     string `json:"location,omitempty"`
	Jurisdiction string `json:"jurisdiction,omitempty"`
	// Destination and DestJurisdiction describe the target of a copy.
	Destination      string `json:"destination,omitempty"`
	DestJurisdiction string `json:"destination_jurisdiction,omitempty"`
	// CopyMode is full, encrypted or metadata; LegalBasis the transfer mechanism relied on.
	CopyMode   string `json:"copy_mode,omitempty"`
	LegalBasis string `json:"legal_basis,omitempty"`

	// Operation names a key operation (wrap, unwrap, rotate_kek, rotate_dek, revoke, shred,
	// split, combine), a legal hold's step (placed, applied, covered, approved, released,
	// refused) or a runbook's (notify, approved, rejected, timed_out).
	Operation string `json:"operation,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	KeyEpoch  uint32 `json:"key_epoch,omitempty"`

	Bytes        int64  `json:"bytes,omitempty"`
	Chunks       int64  `json:"chunks,omitempty"`
	ManifestHash string `json:"manifest_hash,omitempty"`
	// Reason explains a denial or failure, or the rule behind a decision.
	Reason string `json:"reason,omitempty"`

	// Tier and the measured objectives of a backup or drill run, in milliseconds, with the
	// tier's objectives at the time (KindBackup, KindDrill). RPOMillis 0 means unknown (a
	// dataset's first backup); RTOMillis is set for drills only.
	Tier               string `json:"tier,omitempty"`
	RPOMillis          int64  `json:"rpo_ms,omitempty"`
	RTOMillis          int64  `json:"rto_ms,omitempty"`
	RPOObjectiveMillis int64  `json:"rpo_objective_ms,omitempty"`
	RTOObjectiveMillis int64  `json:"rto_objective_ms,omitempty"`
	// Holders and Threshold describe a key escrow split (KindKey, Operation split): the
	// custodians of the shares, Threshold of which restore the key.
	Holders   []string `json:"holders,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
	// Time is when the event happened; the log fills it in if zero.
	Time time.Time `json:"time"`
}

// Recorder appends events to the audit trail. Implementations are safe for concurrent use.
// A Recorder that cannot record must return an error: an action that cannot be audited
// fails closed.
type Recorder interface {
	Record(ctx context.Context, e Event) error
}
