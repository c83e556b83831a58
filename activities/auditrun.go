package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/drflow/drflow/internal/audit"
)

// Kinds of run that AuditRun records.
const (
	RunBackup = "backup"
	RunDrill  = "drill"
)

// AuditRunInput is the outcome of a backup or drill run as its workflow measured it. It
// carries names and figures only.
type AuditRunInput struct {
	Kind     string `json:"kind"` // RunBackup or RunDrill
	Dataset  string `json:"dataset"`
	Point    string `json:"point"`
	Location string `json:"location"`
	Tier     string `json:"tier"`
	// RPO is the exposure the run measured (0: unknown, a dataset's first backup); RTO is a
	// drill's restore time. The objectives are the tier's when the run was planned.
	RPO          time.Duration `json:"rpo"`
	RTO          time.Duration `json:"rto,omitempty"`
	RPOObjective time.Duration `json:"rpo_objective"`
	RTOObjective time.Duration `json:"rto_objective,omitempty"`
	Bytes        int64         `json:"bytes,omitempty"`
	// Verified is false for a drill whose restore could not be verified: it recovered
	// nothing, and is recorded as failed.
	Verified bool `json:"verified,omitempty"`
}

// AuditRun records a finished backup or drill run, with its RPO (and a drill's RTO) against
// the tier's objectives, in the audit trail of the location's region. These records are
// what evidence packs report objectives from, so the figures an auditor reads are signed.
func (a *Activities) AuditRun(ctx context.Context, in AuditRunInput) error {
	kind := map[string]string{RunBackup: audit.KindBackup, RunDrill: audit.KindDrill}[in.Kind]
	if kind == "" {
		return nonRetryable(ErrTypeInvalidInput, "audit run: kind %q is not %s or %s", in.Kind, RunBackup, RunDrill)
	}
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return err
	}
	if a.Audit == nil {
		return nonRetryable(ErrTypeInvalidInput, "audit run of %s: this worker has no audit log", ds.Name)
	}
	ev := audit.Event{
		Kind: kind, Outcome: audit.OutcomeOK, Actor: actor(ctx), Dataset: ds.Name, Point: in.Point,
		Location: loc.Name, Jurisdiction: loc.Jurisdiction, Tier: in.Tier, Bytes: in.Bytes,
		RPOMillis: in.RPO.Milliseconds(), RTOMillis: in.RTO.Milliseconds(),
		RPOObjectiveMillis: in.RPOObjective.Milliseconds(), RTOObjectiveMillis: in.RTOObjective.Milliseconds(),
	}
	if in.Kind == RunDrill && !in.Verified {
		ev.Outcome, ev.Reason = audit.OutcomeFailed, "the drill's restore was not verified"
	}
	if err := a.Audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("audit %s run of %s: %w", in.Kind, ds.Name, err)
	}
	return nil
}
