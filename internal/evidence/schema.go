package evidence

import "time"

// Schema names the version of evidence.json. A change that removes or redefines a field
// gets a new version; adding an optional field does not.
const Schema = "drflow.evidence/v1"

// Files of a pack, relative to its directory.
const (
	FileEvidence = "evidence.json"
	FileHTML     = "index.html"
	// DirAudit holds the audit segments and checkpoints, in the layout of the stores:
	// audit/<region>/segments/<seq>.jsonl and audit/<region>/heads/<seq>.json, copied byte for
	// byte.
	DirAudit = "audit"
	// DirKeys holds each region's signing public key as the generator knew it
	// (keys/<region>.pem). The verifier is given the keys on its command line and only
	// reports whether these match.
	DirKeys = "keys"
)

// Pack is the content of evidence.json. Every figure in it is either derived from the
// signed audit records in the pack (transfers, key events, objectives, hold events), or
// observed in the stores when the pack was made (placement, hold coverage), in which case
// it names the audit records that back it.
//
// A Ref names one audit record: "<region>#<seq>".
type Pack struct {
	Schema      string    `json:"schema"`
	GeneratedAt time.Time `json:"generated_at"`
	GeneratedBy string    `json:"generated_by"`
	Period      Period    `json:"period"`
	// Datasets are the datasets the pack covers, sorted.
	Datasets []string `json:"datasets"`

	Config     ConfigSummary `json:"config"`
	Audit      []AuditLog    `json:"audit"`
	Placement  []Placement   `json:"placement"`
	Transfers  []Transfer    `json:"transfers"`
	Keys       Keys          `json:"keys"`
	Holds      []Hold        `json:"holds"`
	Objectives Objectives    `json:"objectives"`
	Controls   []Control     `json:"controls"`
	// Seal ties the observations (Config, and Placement and Holds as read from the stores)
	// to a signed audit record written when the pack was made.
	Seal Seal `json:"seal"`
}

// Seal is the SHA-256 of a pack's observations and the audit record whose manifest_hash
// is that hash. Ref is empty when no record in the pack signs them (the pack was made
// without a region's signing key): the observations are then the generator's word only.
type Seal struct {
	ObservationsSHA256 string `json:"observations_sha256"`
	Ref                string `json:"ref,omitempty"`
}

// Period is the half-open interval [From, To) the pack reports on.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Contains reports whether t lies in the period.
func (p Period) Contains(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

// ConfigSummary is the part of the configuration that the evidence is judged against. It
// names things only: no endpoint, bucket, path or credential.
type ConfigSummary struct {
	Jurisdictions []JurisdictionInfo `json:"jurisdictions"`
	Locations     []LocationInfo     `json:"locations"`
	Tiers         []TierInfo         `json:"tiers"`
	Datasets      []DatasetInfo      `json:"datasets"`
	KEKs          []KEKInfo          `json:"keks"`
}

// JurisdictionInfo is a jurisdiction and its regions.
type JurisdictionInfo struct {
	Name    string   `json:"name"`
	Regions []string `json:"regions"`
}

// LocationInfo is a storage location.
type LocationInfo struct {
	Name         string `json:"name"`
	Provider     string `json:"provider"`
	Region       string `json:"region"`
	Jurisdiction string `json:"jurisdiction"`
	ObjectLock   bool   `json:"object_lock"`
}

// TierInfo is a tier's objectives, in seconds.
type TierInfo struct {
	Name               string `json:"name"`
	Level              int    `json:"level"`
	RPOSeconds         int64  `json:"rpo_seconds"`
	RTOSeconds         int64  `json:"rto_seconds"`
	BackupEverySeconds int64  `json:"backup_every_seconds"`
	DrillEverySeconds  int64  `json:"drill_every_seconds"`
	Replication        string `json:"replication"`
	KeepLast           int    `json:"keep_last"`
	KeepDaily          int    `json:"keep_daily,omitempty"`
	KeepWeekly         int    `json:"keep_weekly,omitempty"`
	KeepMonthly        int    `json:"keep_monthly,omitempty"`
}

// DatasetInfo is a dataset's placement rules: where it lives and what each replica may hold.
type DatasetInfo struct {
	Name           string            `json:"name"`
	Classification string            `json:"classification,omitempty"`
	Tier           string            `json:"tier"`
	Policy         string            `json:"policy"`
	Home           string            `json:"home"` // jurisdiction
	Primary        string            `json:"primary"`
	Replicas       []ReplicaRuleInfo `json:"replicas"`
}

// ReplicaRuleInfo is what the residency policy allows one replica location.
type ReplicaRuleInfo struct {
	Location   string `json:"location"`
	Mode       string `json:"mode"` // full, encrypted, metadata or denied
	LegalBasis string `json:"legal_basis,omitempty"`
	Rule       string `json:"rule"`
}

// KEKInfo is a jurisdiction's key-encryption key (never its material).
type KEKInfo struct {
	Name         string `json:"name"`
	Jurisdiction string `json:"jurisdiction"`
	Provider     string `json:"provider"`
}

// AuditLog describes the part of one region's audit log that the pack carries.
type AuditLog struct {
	Region string `json:"region"`
	// PublicKeySHA256 is the SHA-256 of the region's signing public key (raw 32 bytes), hex.
	PublicKeySHA256 string `json:"public_key_sha256"`
	// AnchorSeq is the signed checkpoint the pack's records start after (0: the log's
	// genesis). The record after it is older than the period, so no record of the period
	// lies before the pack's first one.
	AnchorSeq uint64 `json:"anchor_seq"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	// HeadHash is the hash of record LastSeq: keep it, and a later pack's log must contain it.
	HeadHash string `json:"head_hash"`
	// Records are the records in the pack; InPeriod those whose time lies in the period.
	Records     uint64   `json:"records"`
	InPeriod    uint64   `json:"in_period"`
	Segments    []string `json:"segments"`
	Checkpoints []string `json:"checkpoints"`
	// Unanchored is how many records at the end no signed checkpoint vouches for.
	Unanchored uint64 `json:"unanchored"`
}

// Placement is one dataset's copies at one location, read back from the store when the
// pack was made.
type Placement struct {
	Dataset      string `json:"dataset"`
	Location     string `json:"location"`
	Role         string `json:"role"` // primary or replica
	Region       string `json:"region"`
	Jurisdiction string `json:"jurisdiction"`
	// Mode is full, encrypted or metadata: what the location holds of each point.
	Mode string `json:"mode"`
	// WORM says the store reported legal hold and retention enforcement; ServerEnforced
	// that the storage service (not drflow's adapter) enforces them.
	WORM           bool `json:"worm"`
	ServerEnforced bool `json:"server_enforced"`
	// Points are the restore points found there, oldest first.
	Points      []string  `json:"points"`
	NewestPoint string    `json:"newest_point,omitempty"`
	NewestAsOf  time.Time `json:"newest_data_as_of,omitzero"`
	// Unbacked lists points found in the store for which the pack has no audit record
	// (written before the pack's first record, or not by drflow).
	Unbacked []string `json:"unbacked,omitempty"`
	// Refs are the audit records that wrote or copied the points (restore_point.written at
	// the primary, copy to a replica).
	Refs []string `json:"refs"`
}

// Transfer is a copy of a restore point to another jurisdiction, or a denied one.
type Transfer struct {
	Time             time.Time `json:"time"`
	Dataset          string    `json:"dataset"`
	Point            string    `json:"point,omitempty"`
	From             string    `json:"from"`
	FromJurisdiction string    `json:"from_jurisdiction"`
	To               string    `json:"to"`
	ToJurisdiction   string    `json:"to_jurisdiction"`
	Outcome          string    `json:"outcome"` // ok, denied or failed
	Mode             string    `json:"mode,omitempty"`
	Objects          int64     `json:"objects"`
	Bytes            int64     `json:"bytes"`
	ManifestHash     string    `json:"manifest_hash,omitempty"`
	// Rule is the policy decision the transfer relied on (or the reason for a denial), and
	// LegalBasis the transfer mechanism (adequacy, scc, bcr, consent).
	Rule       string   `json:"rule"`
	LegalBasis string   `json:"legal_basis,omitempty"`
	Refs       []string `json:"refs"`
}

// Keys is everything about key custody.
type Keys struct {
	KEKs   []KEKInfo  `json:"keks"`
	Events []KeyEvent `json:"events"`
	Escrow []Escrow   `json:"escrow"`
	// Access says who could decrypt which dataset when: the workers of the dataset's home
	// jurisdiction holding its KEK, version by version, until a revoke or shred.
	Access []Access `json:"access"`
	// Unwraps counts the routine unwraps of data keys (every backup, restore and drill
	// unwraps one) per dataset, instead of listing each.
	Unwraps []UnwrapCount `json:"unwraps"`
}

// UnwrapCount is how often a dataset's data keys were unwrapped in the period.
type UnwrapCount struct {
	Dataset      string `json:"dataset"`
	Jurisdiction string `json:"jurisdiction"`
	OK           int    `json:"ok"`
	Failed       int    `json:"failed"`
}

// KeyEvent is one audited key operation: wrap, unwrap, rotate_kek, rotate_dek, rewrap,
// revoke, shred, split, combine.
type KeyEvent struct {
	Time         time.Time `json:"time"`
	Jurisdiction string    `json:"jurisdiction"`
	Operation    string    `json:"operation"`
	KeyID        string    `json:"key_id,omitempty"`
	Dataset      string    `json:"dataset,omitempty"`
	Location     string    `json:"location,omitempty"`
	Epoch        uint32    `json:"epoch,omitempty"`
	Outcome      string    `json:"outcome"`
	Ref          string    `json:"ref"`
}

// Escrow is a Shamir split of a KEK version.
type Escrow struct {
	Time         time.Time `json:"time"`
	Jurisdiction string    `json:"jurisdiction"`
	KeyID        string    `json:"key_id"`
	Threshold    int       `json:"threshold"`
	Shares       int       `json:"shares"`
	Holders      []string  `json:"holders"`
	Ref          string    `json:"ref"`
}

// Access is one period in which a KEK version of a dataset's home jurisdiction could
// decrypt the dataset's restore points. Until is zero while it still can.
type Access struct {
	Dataset      string    `json:"dataset"`
	Jurisdiction string    `json:"jurisdiction"`
	Holders      string    `json:"holders"`
	KeyID        string    `json:"key_id"`
	From         time.Time `json:"from"`
	Until        time.Time `json:"until,omitzero"`
	Ended        string    `json:"ended,omitempty"` // revoke or shred
	Refs         []string  `json:"refs"`
}

// Hold is a legal hold of a dataset: its records read back from the stores, and its audited
// steps.
type Hold struct {
	Dataset     string    `json:"dataset"`
	Name        string    `json:"name"`
	State       string    `json:"state"` // active, released (as the stores say)
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason"`
	PlacedAt    time.Time `json:"placed_at"`
	ReleasedAt  time.Time `json:"released_at,omitzero"`
	Ongoing     bool      `json:"ongoing,omitempty"`
	Approvers   []string  `json:"approvers"`
	Points      []string  `json:"points"`
	// Coverage is per location: how many objects the hold covers and who enforces it.
	Coverage []HoldCoverage `json:"coverage"`
	// Steps are the audited steps (placed, applied, covered, approved, released, refused).
	Steps []HoldStep `json:"steps"`
}

// HoldCoverage is a hold at one location.
type HoldCoverage struct {
	Location    string `json:"location"`
	Mode        string `json:"mode"`
	Objects     int    `json:"objects"`
	Held        int    `json:"held"`        // objects whose store hold flag is set
	Enforcement string `json:"enforcement"` // server, drflow-adapter or drflow
}

// HoldStep is one audited step of a hold.
type HoldStep struct {
	Time      time.Time `json:"time"`
	Operation string    `json:"operation"`
	Actor     string    `json:"actor,omitempty"`
	Location  string    `json:"location,omitempty"`
	Outcome   string    `json:"outcome"`
	Ref       string    `json:"ref"`
}

// Objectives are the measured RPO and RTO of every backup and drill run in the period.
type Objectives struct {
	Backups []Run            `json:"backups"`
	Drills  []Run            `json:"drills"`
	Summary []ObjectiveShare `json:"summary"`
}

// Run is one backup or drill run, from its signed audit record.
type Run struct {
	Time     time.Time `json:"time"`
	Dataset  string    `json:"dataset"`
	Tier     string    `json:"tier"`
	Point    string    `json:"point,omitempty"`
	Location string    `json:"location"`
	Outcome  string    `json:"outcome"`
	// RPOSeconds is absent when unknown (a dataset's first backup). RTOSeconds is a drill's.
	RPOSeconds          *float64 `json:"rpo_seconds,omitempty"`
	RTOSeconds          *float64 `json:"rto_seconds,omitempty"`
	RPOObjectiveSeconds float64  `json:"rpo_objective_seconds"`
	RTOObjectiveSeconds float64  `json:"rto_objective_seconds,omitempty"`
	// Met says every objective that applies was met (an unknown RPO is met; a failed drill
	// is not).
	Met bool   `json:"met"`
	Ref string `json:"ref"`
}

// ObjectiveShare is the share of runs that met their objectives, per dataset and tier.
type ObjectiveShare struct {
	Dataset     string  `json:"dataset"`
	Tier        string  `json:"tier"`
	Backups     int     `json:"backups"`
	BackupsMet  int     `json:"backups_met"`
	BackupShare float64 `json:"backup_share"` // 0..1; 0 when there were none
	Drills      int     `json:"drills"`
	DrillsMet   int     `json:"drills_met"`
	DrillShare  float64 `json:"drill_share"`
	// NewestDrill is the newest successful drill's record, if any in the period.
	NewestDrill *Run `json:"newest_drill,omitempty"`
}

// Control statuses.
const (
	StatusPass = "pass"
	StatusFail = "fail"
	// StatusNotApplicable: the control does not apply to the dataset (e.g. no replica is
	// required).
	StatusNotApplicable = "n/a"
)

// Control is one row of the controls table: a rule, a dataset, its status and the evidence
// the status rests on (audit records and pack sections such as "placement[2]").
type Control struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Dataset  string   `json:"dataset,omitempty"`
	Status   string   `json:"status"`
	Detail   string   `json:"detail"`
	Evidence []string `json:"evidence"`
}
