package workflows

import (
	"time"

	"github.com/drflow/drflow/internal/config"
)

// RPO and RTO, measured honestly: these functions turn the moments a workflow
// observed (from workflow.Now, and data_as_of of restore points) into the figures its result,
// search attributes, metrics and audit events report. They are pure, so workflows can call
// them without breaking determinism.
//
// Two rules apply throughout:
//   - A figure that cannot be known is reported as not met, never as met: an unmeasured
//     recovery is not a recovery anyone can count on.
//   - A figure exactly at its objective is met: the objective is the most that may be lost
//     (RPO) or waited (RTO).

// Objectives are the recovery objectives of a dataset's tier.
type Objectives struct {
	RPO  time.Duration `json:"rpo"` // JSON: nanoseconds
	RTO  time.Duration `json:"rto"` // JSON: nanoseconds
	Tier int           `json:"tier"`
}

// ObjectivesFromTier returns the objectives of tier t.
func ObjectivesFromTier(t config.Tier) Objectives {
	return Objectives{RPO: t.RPO, RTO: t.RTO, Tier: t.Level}
}

// RPOMet reports whether an RPO exposure meets the objective. An unknown exposure does not.
func (o Objectives) RPOMet(exposure time.Duration, known bool) bool {
	return known && exposure <= o.RPO
}

// RTOMet reports whether a recovery time meets the objective.
func (o Objectives) RTOMet(rto time.Duration) bool {
	return rto <= o.RTO
}

// BackupRPO returns a backup's RPO exposure: the data a disaster would have lost just before
// the new restore point became durable on every location its tier requires. now is that
// moment (workflow.Now once the last required copy is confirmed) and previousDataAsOf is the
// data_as_of of the newest restore point that was already durable; exposure is the
// difference. A slow or skipped backup therefore shows up as a large exposure.
//
// With no previous restore point (hasPrevious false) the exposure is unbounded: until this
// backup, a disaster would have lost everything. BackupRPO then returns known == false, and
// the run reports its RPO as unknown and not met (Objectives.RPOMet); the next backup has a
// real figure. An infinite duration is not returned because results are JSON, which has no
// infinity.
//
// If previousDataAsOf lies after now, clocks disagree (data_as_of comes from the worker that
// read the source, now from the workflow): the exposure is clamped to zero rather than
// reported negative. ClockSkew says by how much, so the caller can log it.
func BackupRPO(now, previousDataAsOf time.Time, hasPrevious bool) (exposure time.Duration, known bool) {
	if !hasPrevious {
		return 0, false
	}
	return nonNegative(now.Sub(previousDataAsOf)), true
}

// ClockSkew returns how far dataAsOf lies after now, or zero if it does not. A positive skew
// means a measurement from these two times was clamped to zero and is optimistic by at most
// the skew; callers log it with the figure.
func ClockSkew(now, dataAsOf time.Time) time.Duration {
	return nonNegative(dataAsOf.Sub(now))
}

// DrillMeasurement is what a restore drill achieved against its tier's objectives.
type DrillMeasurement struct {
	// RPO is drill start - data_as_of of the restore point used: the data the simulated
	// incident would have lost.
	RPO time.Duration
	// RTO is the wall time from the drill's start until the data was restored and verified
	// in the drill target.
	RTO    time.Duration
	RPOMet bool
	RTOMet bool
	// ClockSkew is how far the point's data_as_of lay after the drill's start; when positive,
	// RPO was clamped to zero.
	ClockSkew time.Duration
}

// DrillFigures measures a drill. drillStart is the simulated incident (workflow.Now when the
// drill began), restoredAndVerifiedAt is workflow.Now once verification passed, and
// pointDataAsOf is the data_as_of of the restore point restored. Negative differences, which
// only clock skew can produce, are clamped to zero; see DrillMeasurement.ClockSkew.
//
// A drill whose verification failed has not recovered anything: the caller reports its RTO
// as not met whatever DrillFigures says.
func DrillFigures(drillStart, restoredAndVerifiedAt, pointDataAsOf time.Time, obj Objectives) DrillMeasurement {
	rpo := nonNegative(drillStart.Sub(pointDataAsOf))
	rto := nonNegative(restoredAndVerifiedAt.Sub(drillStart))
	return DrillMeasurement{
		RPO:       rpo,
		RTO:       rto,
		RPOMet:    obj.RPOMet(rpo, true),
		RTOMet:    obj.RTOMet(rto),
		ClockSkew: ClockSkew(drillStart, pointDataAsOf),
	}
}

func nonNegative(d time.Duration) time.Duration {
	return max(d, 0)
}
