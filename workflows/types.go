package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
)

// Each workflow takes one JSON input, so a person can start it from the Web UI, and returns one
// JSON result, which the CLI prints with --json. Field names are snake_case and stable: the
// CLI, dashboards and recorded histories depend on them.

// ErrTypeInvalidInput is the application error type of a workflow input that fails Validate.
// Workflows return it as a non-retryable error: retrying cannot fix the input.
const ErrTypeInvalidInput = "InvalidInput"

// ProgressQuery is the name of the query that every long-running drflow workflow answers with
// a Progress.
const ProgressQuery = "progress"

// Progress is the answer to ProgressQuery.
type Progress struct {
	// Phase is what the workflow is doing, e.g. "backup", "replicate", "restore", "verify".
	Phase      string `json:"phase"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"` // -1 while unknown
	// ETASeconds is the estimated time to completion of the phase; -1 while unknown.
	ETASeconds float64 `json:"eta_seconds"`
}

// Values of DrillInput.RestorePoint besides a restore point ID.
const (
	RestorePointLatest = "latest" // the newest restore point (the default)
	RestorePointRandom = "random" // any restore point, so drills also exercise older ones
)

// Values of DrillInput.Target.
const (
	DrillTargetDir      = "dir"      // a scratch directory on the worker (the default)
	DrillTargetPostgres = "postgres" // a scratch PostgreSQL database
)

// BackupInput starts a backup of one dataset: a new restore point on its primary location,
// then copies to its replicas.
type BackupInput struct {
	Dataset string `json:"dataset"`
	// ForceReread reads every file of a directory dataset again, also those that have not
	// changed since the previous restore point (which a backup otherwise skips, but for a
	// sampled share).
	ForceReread bool `json:"force_reread,omitempty"`
}

// Validate checks the input before any work is scheduled.
func (in BackupInput) Validate() error {
	v := validator{input: "backup input"}
	v.name("dataset", in.Dataset)
	return v.err()
}

// BackupResult is what a backup made and the RPO it achieved.
type BackupResult struct {
	Dataset      string    `json:"dataset"`
	Tier         int       `json:"tier"`
	RestorePoint string    `json:"restore_point"`
	DataAsOf     time.Time `json:"data_as_of"`
	// PreviousPoint is the newest restore point that was durable before this one; empty for
	// a dataset's first backup.
	PreviousPoint string `json:"previous_point,omitempty"`
	// RPOSeconds is the exposure measured by BackupRPO. When RPOKnown is false (no previous
	// restore point) it is 0 and RPOMet is false.
	RPOSeconds          float64 `json:"rpo_seconds"`
	RPOKnown            bool    `json:"rpo_known"`
	RPOObjectiveSeconds float64 `json:"rpo_objective_seconds"`
	RPOMet              bool    `json:"rpo_met"`

	BytesRead     int64 `json:"bytes_read"`
	BytesUploaded int64 `json:"bytes_uploaded"`
	ChunksNew     int64 `json:"chunks_new"`
	ChunksReused  int64 `json:"chunks_reused"`
	// Resumed says the backup continued from the checkpoint of an interrupted attempt (a
	// worker crash); BytesSkipped is what it did not have to read again.
	Resumed      bool  `json:"resumed,omitempty"`
	BytesSkipped int64 `json:"bytes_skipped,omitempty"`
	// FilesUnchanged and BytesUnchanged are the files not read again because they had not
	// changed since the previous restore point.
	FilesUnchanged int64 `json:"files_unchanged,omitempty"`
	BytesUnchanged int64 `json:"bytes_unchanged,omitempty"`

	// Replication is the tier's mode: "sync" (the point counted as durable once every
	// replica held it, so RPO includes the copies) or "async" (once the primary held it).
	Replication string          `json:"replication"`
	Replicas    []ReplicaResult `json:"replicas"`
	WorkflowID  string          `json:"workflow_id"`
}

// ObjectivesMet is the value of SearchAttrObjectivesMet for the run.
func (r BackupResult) ObjectivesMet() bool { return r.RPOMet }

// ReplicateInput copies one restore point of a dataset to one location, in the mode the
// dataset's residency policy allows there.
type ReplicateInput struct {
	Dataset      string `json:"dataset"`
	RestorePoint string `json:"restore_point"`
	Location     string `json:"location"`
	// Label is the dataset's label in search attributes (see PlanResult.Label); empty means
	// its name.
	Label string `json:"label,omitempty"`
}

// label is the dataset's label for search attributes.
func (in ReplicateInput) label() string { return labelOr(in.Label, in.Dataset) }

// labelOr returns label, or the dataset's name where none was given (plans and inputs
// recorded before labels, runbooks started without them).
func labelOr(label, dataset string) string {
	if label != "" {
		return label
	}
	return dataset
}

// Validate checks the input before any work is scheduled.
func (in ReplicateInput) Validate() error {
	v := validator{input: "replicate input"}
	v.name("dataset", in.Dataset)
	v.pointID("restore_point", in.RestorePoint)
	v.name("location", in.Location)
	if in.Label != "" {
		v.name("label", in.Label)
	}
	return v.err()
}

// Values of ReplicaResult.Status.
const (
	// ReplicaCopied: the location holds the restore point.
	ReplicaCopied = "copied"
	// ReplicaStarted: an async tier's backup started the copy and did not wait for it; its
	// ReplicateWorkflow (WorkflowID) reports the outcome.
	ReplicaStarted = "started"
)

// ReplicaResult is one copy of a restore point.
type ReplicaResult struct {
	Location     string `json:"location"`
	Jurisdiction string `json:"jurisdiction,omitempty"`
	// Mode is what the residency policy allowed there: full, encrypted or metadata. Empty
	// while a started copy has not reported.
	Mode          config.CopyMode `json:"mode,omitempty"`
	ObjectsCopied int64           `json:"objects_copied"`
	BytesCopied   int64           `json:"bytes_copied"`
	// Status is ReplicaCopied or ReplicaStarted; set by BackupWorkflow.
	Status string `json:"status,omitempty"`
	// WorkflowID is the ReplicateWorkflow that made (or is making) the copy.
	WorkflowID string `json:"workflow_id,omitempty"`
}

// DrillInput starts a restore drill: restore a restore point into a scratch target, verify it,
// and measure the RPO and RTO achieved.
type DrillInput struct {
	Dataset string `json:"dataset"`
	// RestorePoint is RestorePointLatest (the default when empty), RestorePointRandom or a
	// restore point ID.
	RestorePoint string `json:"restore_point,omitempty"`
	// Location to restore from; empty for the dataset's primary.
	Location string `json:"location,omitempty"`
	// Target is DrillTargetDir (the default when empty) or DrillTargetPostgres.
	Target string `json:"target,omitempty"`
}

// WithDefaults returns the input with empty optional fields set to their defaults. Location
// stays empty: the dataset's primary is resolved from configuration.
func (in DrillInput) WithDefaults() DrillInput {
	if in.RestorePoint == "" {
		in.RestorePoint = RestorePointLatest
	}
	if in.Target == "" {
		in.Target = DrillTargetDir
	}
	return in
}

// Validate checks the input before any work is scheduled.
func (in DrillInput) Validate() error {
	v := validator{input: "drill input"}
	v.name("dataset", in.Dataset)
	switch in.RestorePoint {
	case "", RestorePointLatest, RestorePointRandom:
	default:
		if _, err := repo.ParsePointID(in.RestorePoint); err != nil {
			v.addf("restore_point", "must be %q (the default), %q or a restore point ID such as %s; got %q",
				RestorePointLatest, RestorePointRandom, examplePointID, in.RestorePoint)
		}
	}
	if in.Location != "" {
		v.name("location", in.Location)
	}
	switch in.Target {
	case "", DrillTargetDir, DrillTargetPostgres:
	default:
		v.addf("target", "must be %q (the default) or %q; got %q", DrillTargetDir, DrillTargetPostgres, in.Target)
	}
	return v.err()
}

// DrillResult is what a drill restored and the RPO and RTO it achieved.
type DrillResult struct {
	Dataset      string    `json:"dataset"`
	Tier         int       `json:"tier"`
	RestorePoint string    `json:"restore_point"`
	DataAsOf     time.Time `json:"data_as_of"`
	Location     string    `json:"location"`
	Target       string    `json:"target"`
	// StartedAt is the simulated incident; FinishedAt is when the restore was verified.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`

	RPOSeconds          float64 `json:"rpo_seconds"`
	RTOSeconds          float64 `json:"rto_seconds"`
	RPOObjectiveSeconds float64 `json:"rpo_objective_seconds"`
	RTOObjectiveSeconds float64 `json:"rto_objective_seconds"`
	RPOMet              bool    `json:"rpo_met"`
	RTOMet              bool    `json:"rto_met"`
	// Verified says the restored data matched the restore point's manifest. An unverified
	// drill has not met its RTO.
	Verified bool `json:"verified"`

	BytesRestored int64  `json:"bytes_restored"`
	WorkflowID    string `json:"workflow_id"`
}

// ObjectivesMet is the value of SearchAttrObjectivesMet for the run.
func (r DrillResult) ObjectivesMet() bool { return r.Verified && r.RPOMet && r.RTOMet }

// RetentionInput prunes a dataset's restore points by its tier's retention rules and collects
// the chunks no remaining point references. Points under legal hold are never pruned.
type RetentionInput struct {
	Dataset string `json:"dataset"`
}

// Validate checks the input before any work is scheduled.
func (in RetentionInput) Validate() error {
	v := validator{input: "retention input"}
	v.name("dataset", in.Dataset)
	return v.err()
}

// RetentionResult lists what retention kept and removed, by restore point ID.
type RetentionResult struct {
	Dataset string   `json:"dataset"`
	Kept    []string `json:"kept"`
	Pruned  []string `json:"pruned"`
	// Held are points the rules would have pruned but a legal hold kept.
	Held            []string `json:"held"`
	ChunksCollected int64    `json:"chunks_collected"`
	BytesFreed      int64    `json:"bytes_freed"`
	// Replicas is the retention of each replica, in configuration order (the fields above
	// are the primary's).
	Replicas []ReplicaRetention `json:"replicas,omitempty"`
}

// ReplicaRetention is what retention did at one replica. Mode is what the residency policy
// allows there: full or encrypted (points pruned, packs collected) or metadata (catalog
// entries pruned).
type ReplicaRetention struct {
	Location       string   `json:"location"`
	Mode           string   `json:"mode"`
	Kept           []string `json:"kept"`
	Pruned         []string `json:"pruned"`
	Held           []string `json:"held"`
	PacksCondemned int      `json:"packs_condemned"`
	BytesFreed     int64    `json:"bytes_freed"`
}

// InputError is one problem with one field of a workflow input. Validate returns every
// problem at once, joined with errors.Join; use errors.As to inspect them.
type InputError struct {
	Input string // e.g. "drill input"
	Field string // the field's JSON name, as a person types it in the Web UI
	Msg   string // what is wrong and what was expected
}

func (e *InputError) Error() string {
	return e.Input + ": " + e.Field + ": " + e.Msg
}

// examplePointID shows the restore point ID format in messages.
const examplePointID = "20250102T030405.000Z-0a1b2c3d"

// maxNameLen matches config's limit on names: they become workflow IDs and task queue names.
const maxNameLen = 63

type validator struct {
	input string
	errs  []error
}

func (v *validator) addf(field, format string, args ...any) {
	v.errs = append(v.errs, &InputError{Input: v.input, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

// name checks a dataset or location name with config's rules, so that an input naming
// something that cannot exist is refused before any lookup.
func (v *validator) name(field, s string) {
	if s == "" {
		v.addf(field, "is required")
		return
	}
	if len(s) > maxNameLen {
		v.addf(field, "must be at most %d characters; got %d", maxNameLen, len(s))
		return
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || i > 0 && (b == '-' || b == '_' || b == '.') {
			continue
		}
		v.addf(field, "must contain only lower-case letters, digits, '-', '_' and '.', and start with a letter or digit; got %q", s)
		return
	}
}

// pointID checks a required restore point ID.
func (v *validator) pointID(field, s string) {
	if s == "" {
		v.addf(field, "is required (a restore point ID such as %s)", examplePointID)
		return
	}
	if _, err := repo.ParsePointID(s); err != nil {
		v.addf(field, "must be a restore point ID such as %s; got %q", examplePointID, s)
	}
}
