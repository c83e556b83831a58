package runbooks

import "sort"

// ActionSpec describes a registered action: its arguments and the outputs later steps may
// reference as ${steps.ID.FIELD}.
type ActionSpec struct {
	Name        string
	Description string
	Args        []ArgSpec
	Outputs     []string
	// ListOutputs are the outputs that are lists; the others are single values.
	ListOutputs []string
	// Condition: the action answers {"ok": bool} and may serve as a wait's Until.
	Condition bool
}

// ArgSpec is one argument of an action.
type ArgSpec struct {
	Name     string
	Type     ValueType
	Required bool
	Doc      string
}

// Arg returns the spec of the named argument.
func (a ActionSpec) Arg(name string) (ArgSpec, bool) {
	for _, s := range a.Args {
		if s.Name == name {
			return s, true
		}
	}
	return ArgSpec{}, false
}

// HasOutput reports whether the action produces the output field.
func (a ActionSpec) HasOutput(field string) bool {
	for _, o := range a.Outputs {
		if o == field {
			return true
		}
	}
	return false
}

// Action names. workflows.RunbookWorkflow implements each of them; the validator accepts
// only these.
const (
	ActionBackup           = "backup"
	ActionReplicate        = "replicate"
	ActionDrill            = "drill"
	ActionRestore          = "restore"
	ActionVerify           = "verify"
	ActionFindCleanPoint   = "verify.newest_clean"
	ActionChooseFailover   = "points.choose_failover"
	ActionRetention        = "retention"
	ActionHoldPlace        = "hold.place"
	ActionHoldRelease      = "hold.release"
	ActionHoldReport       = "hold.report"
	ActionKeyRotate        = "key.rotate"
	ActionKeyRevoke        = "key.revoke"
	ActionKeyEscrow        = "key.escrow"
	ActionKeyRecover       = "key.recover"
	ActionKeyRewrap        = "key.rewrap"
	ActionLocationCheck    = "location.check"
	ActionNotify           = "notify"
	ActionSchedulesPause   = "schedules.pause"
	ActionSchedulesResume  = "schedules.resume"
	ActionPointExists      = "point.exists"
	defaultArgDocDataset   = "a dataset of the configuration"
	defaultArgDocPointOpt  = `a restore point ID or "latest" (the default)`
	defaultArgDocLocOpt    = "the location to read (default: the dataset's primary)"
	defaultArgDocRequester = "who asks (a person's name or ID)"
)

// catalog is every action a runbook step may run.
//
//nolint:funlen // a table of every action, one literal
func catalog() []ActionSpec {
	return []ActionSpec{
		{Name: ActionBackup, Description: "back up a dataset (BackupWorkflow: primary, then replicas)",
			Args:    []ArgSpec{{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset}},
			Outputs: []string{"restore_point", "data_as_of", "rpo_seconds", "workflow_id"}},
		{Name: ActionReplicate, Description: "copy a restore point to a location (ReplicateWorkflow)",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "point", Type: TypePoint, Required: true, Doc: "the restore point ID"},
				{Name: "location", Type: TypeLocation, Required: true, Doc: "the destination"},
			},
			Outputs: []string{"location", "mode", "bytes_copied", "workflow_id"}},
		{Name: ActionDrill, Description: "restore drill into a scratch target, verified, with RPO/RTO (RestoreDrillWorkflow)",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "point", Type: TypePoint, Doc: defaultArgDocPointOpt},
				{Name: "location", Type: TypeLocation, Doc: defaultArgDocLocOpt},
			},
			Outputs: []string{"restore_point", "rto_seconds", "rpo_seconds", "verified", "objectives_met", "workflow_id"}},
		{Name: ActionRestore, Description: "restore a restore point into a target directory or PostgreSQL database, verified",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "point", Type: TypePoint, Doc: defaultArgDocPointOpt},
				{Name: "location", Type: TypeLocation, Doc: defaultArgDocLocOpt},
				{Name: "to", Type: TypeString, Required: true, Doc: "an empty or absent directory on the worker, or a postgres:// DSN"},
			},
			// rpo_seconds and rto_seconds are measured by the run: RTO from the run's start (the
			// incident) until the restore is verified, RPO from the point's data_as_of to the start.
			Outputs: []string{"restore_point", "data_as_of", "bytes", "files", "location", "rpo_seconds", "rto_seconds"}},
		{Name: ActionVerify, Description: "authenticate and check every chunk and file hash of a restore point",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "point", Type: TypePoint, Doc: defaultArgDocPointOpt},
				{Name: "location", Type: TypeLocation, Doc: defaultArgDocLocOpt},
			},
			Outputs: []string{"restore_point", "data_as_of", "verified", "chunks", "bytes"}},
		{Name: ActionFindCleanPoint, Description: "verify the newest restore points in turn and answer the first that verifies clean",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "location", Type: TypeLocation, Doc: defaultArgDocLocOpt},
				{Name: "max", Type: TypeInt, Doc: "how many points to try at most (default 10)"},
			},
			Outputs: []string{"restore_point", "data_as_of", "checked", "rejected"}},
		{Name: ActionChooseFailover, Description: "the newest restore point that verifies on a full replica in the dataset's home jurisdiction",
			Args:    []ArgSpec{{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset}},
			Outputs: []string{"location", "restore_point", "data_as_of", "candidates"}},
		{Name: ActionRetention, Description: "prune and garbage-collect by the tier's rules (RetentionWorkflow)",
			Args:    []ArgSpec{{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset}},
			Outputs: []string{"kept", "pruned", "held"}},
		{Name: ActionHoldPlace, Description: "place a legal hold on restore points, on the primary and every replica",
			Args: []ArgSpec{
				{Name: "hold", Type: TypeString, Required: true, Doc: "the hold's name"},
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "from", Type: TypeTime, Doc: "points whose data_as_of is at or after this time"},
				{Name: "to", Type: TypeTime, Doc: "points whose data_as_of is at or before this time"},
				{Name: "points", Type: TypeList, Doc: "explicit restore point IDs instead of a time range"},
				{Name: "ongoing", Type: TypeBool, Doc: "also hold points created while the hold is active"},
				{Name: "reason", Type: TypeString, Required: true, Doc: "why (case, matter, ticket)"},
				{Name: "requested_by", Type: TypeString, Required: true, Doc: defaultArgDocRequester},
			},
			Outputs: []string{"hold", "points", "objects", "locations", "server_enforced", "drflow_enforced"}},
		{Name: ActionHoldRelease, Description: "release a legal hold (needs the approvers of a preceding approval step)",
			Args: []ArgSpec{
				{Name: "hold", Type: TypeString, Required: true, Doc: "the hold's name"},
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "reason", Type: TypeString, Required: true, Doc: "why the hold ends"},
				{Name: "requested_by", Type: TypeString, Required: true, Doc: defaultArgDocRequester},
				{Name: "approved_by", Type: TypeList, Required: true, Doc: "who approved, other than the requester"},
			},
			Outputs: []string{"hold", "objects_released", "objects_still_held"}},
		{Name: ActionHoldReport, Description: "read back every object of a hold from every location and report its hold state",
			Args: []ArgSpec{
				{Name: "hold", Type: TypeString, Required: true, Doc: "the hold's name"},
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "verify", Type: TypeBool, Doc: "also verify every covered restore point at the primary (every chunk and file hash)"},
			},
			Outputs: []string{"hold", "points", "objects", "held_objects", "server_enforced", "drflow_enforced", "verified", "ok"}},
		{Name: ActionKeyRotate, Description: "rotate the KEK of the dataset's home jurisdiction (rewraps the data keys) or its data key",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "key", Type: TypeString, Doc: `"kek" (the default) or "dek"`},
			},
			Outputs: []string{"key_id", "epoch", "rewrapped"}},
		{Name: ActionKeyRevoke, Description: "revoke the active KEK version of the dataset's home jurisdiction: every unwrap fails closed",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "reason", Type: TypeString, Required: true, Doc: "why"},
			},
			Outputs: []string{"key_id"}},
		{Name: ActionKeyEscrow, Description: "split the active KEK of the dataset's home jurisdiction into k-of-n Shamir shares, one file per holder",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "threshold", Type: TypeInt, Required: true, Doc: "k: shares needed to recover"},
				{Name: "holders", Type: TypeList, Required: true, Doc: "one share holder per share (n)"},
				{Name: "dir", Type: TypeString, Required: true, Doc: "directory on the worker where each holder's share file is written (0600)"},
			},
			Outputs: []string{"key_id", "version", "files"}},
		{Name: ActionKeyRecover, Description: "restore the KEK of the dataset's home jurisdiction from k Shamir share files",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "shares", Type: TypeList, Required: true, Doc: "paths of share files on the worker"},
			},
			Outputs: []string{"key_id", "version"}},
		{Name: ActionKeyRewrap, Description: "rewrap the dataset's data keys with the active KEK, at its primary and every replica",
			Args: []ArgSpec{{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset}},
			// held counts the key objects a legal hold kept wrapped by the previous KEK version.
			Outputs: []string{"rewrapped", "held"}},
		{Name: ActionLocationCheck, Description: "check that a location answers, and what it enforces", Condition: true,
			Args:    []ArgSpec{{Name: "location", Type: TypeLocation, Required: true, Doc: "a location of the configuration"}},
			Outputs: []string{"ok", "immutable", "server_enforced", "error"}},
		{Name: ActionPointExists, Description: "whether a dataset has a restore point at a location (newer than a time)", Condition: true,
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "location", Type: TypeLocation, Doc: defaultArgDocLocOpt},
				{Name: "after", Type: TypeTime, Doc: "only points whose data_as_of is after this time count"},
			},
			Outputs: []string{"ok", "restore_point"}},
		{Name: ActionNotify, Description: "a log line and an audit event (no network)",
			Args: []ArgSpec{
				{Name: "message", Type: TypeString, Required: true, Doc: "what to say, with ${...} references"},
				{Name: "dataset", Type: TypeDataset, Doc: "the dataset it concerns"},
				{Name: "severity", Type: TypeString, Doc: `"info" (the default), "warning" or "critical"`},
			},
			Outputs: []string{"message"}},
		{Name: ActionSchedulesPause, Description: "pause the dataset's drflow-managed backup, drill and retention schedules",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "note", Type: TypeString, Doc: "shown on the schedules"},
			},
			Outputs: []string{"schedules"}},
		{Name: ActionSchedulesResume, Description: "unpause the dataset's drflow-managed schedules",
			Args: []ArgSpec{
				{Name: "dataset", Type: TypeDataset, Required: true, Doc: defaultArgDocDataset},
				{Name: "note", Type: TypeString, Doc: "shown on the schedules"},
			},
			Outputs: []string{"schedules"}},
	}
}

// withListOutputs marks the outputs that are lists, so that the validator refuses a list
// where a single value is wanted (and the other way round) before anything runs.
func withListOutputs(specs []ActionSpec) []ActionSpec {
	lists := map[string][]string{
		ActionRetention:      {"kept", "pruned", "held"},
		ActionFindCleanPoint: {"rejected"},
		ActionChooseFailover: {"candidates"},
		ActionHoldPlace:      {"points", "locations", "server_enforced", "drflow_enforced"},
		ActionHoldReport:     {"points", "server_enforced", "drflow_enforced"},
		ActionKeyEscrow:      {"files"},
		ActionSchedulesPause: {"schedules"}, ActionSchedulesResume: {"schedules"},
	}
	for i := range specs {
		specs[i].ListOutputs = lists[specs[i].Name]
	}
	return specs
}

// LookupAction returns the spec of a registered action.
func LookupAction(name string) (ActionSpec, bool) {
	for _, a := range withListOutputs(catalog()) {
		if a.Name == name {
			return a, true
		}
	}
	return ActionSpec{}, false
}

// Actions returns every registered action, by name.
func Actions() []ActionSpec {
	out := withListOutputs(catalog())
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
