// Package config loads and validates drflow's configuration: one YAML file that describes
// jurisdictions and their regions, key-encryption keys, storage locations, residency
// policies, tiers and the datasets they protect.
//
// Validation is exhaustive and happens once, at load time, so that workflows can rely on
// every reference resolving (a dataset's tier, policy and locations exist, every location
// lies in a known jurisdiction, every policy home has a key) and never have to handle a
// half-valid configuration. A Config is read-only after Load or Parse and safe for
// concurrent use.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/drflow/drflow/providers"
)

// Defaults applied when the file leaves a value out.
const (
	// DefaultReplication is used when a tier has no replication mode. Async lets a backup
	// complete when a remote replica is slow; the backup workflow still measures the RPO
	// against the replicas the tier requires.
	DefaultReplication = ReplicationAsync
	// DefaultDrillEvery is used when a tier has no drill_every: a recovery that has not been
	// rehearsed for more than a month is a guess.
	DefaultDrillEvery = 30 * 24 * time.Hour
	// DefaultKeepLast is used when a tier's retention has no keep_last.
	DefaultKeepLast = 10
)

// A tier without backup_every backs up every RPO / backupEveryDivisor: a backup takes time,
// and the RPO is met only if the interval plus that time stays below it.
const backupEveryDivisor = 2

// KEK providers, as they appear in configuration.
const (
	KEKProviderLocal  = "local"  // a keyring file on the worker's disk
	KEKProviderAWSKMS = "awskms" // an AWS KMS key
)

// Config is a validated configuration, built by Load or Parse (a Config literal has no
// indexes, so its lookups find nothing). Its slices keep the order of the file; use the
// lookup methods to find an item by name.
type Config struct {
	Jurisdictions []Jurisdiction
	KEKs          []KEK // "keys" in the file
	Locations     []Location
	Policies      []Policy
	Tiers         []Tier
	Datasets      []Dataset
	// Approvers are the approver groups that runbook approval gates name.
	Approvers []ApproverGroup
	// CodecKeyFile is the payload keyring (internal/codec) that encrypts every payload drflow
	// sends to Temporal; empty sends them in the clear. The environment variable
	// DRFLOW_CODEC_KEY_FILE, when set, names it instead (see PayloadKeyFile).
	CodecKeyFile string
	// SearchAttributes says how runs name their dataset where Temporal shows it in the clear:
	// search attribute values, workflow IDs and schedule IDs. SearchAttributesNames (the
	// default) uses the dataset's name; SearchAttributesHashed a keyed hash of it (needs the
	// payload keyring, whose first key is the hash key).
	SearchAttributes string

	// Indexes into the slices above, built once by Parse.
	regions       map[string]string // region -> jurisdiction
	kekByJur      map[string]int
	locationIdx   map[string]int
	policyIdx     map[string]int
	tierIdx       map[string]int
	datasetIdx    map[string]int
	jurisdictions map[string]int
	approverIdx   map[string]int
}

// ApproverGroup is a named list of people who may approve runbook gates (legal, sre, ...).
// A person is named as they identify themselves to `drflow runbook approve --as`.
type ApproverGroup struct {
	Name    string
	Members []string
}

// Jurisdiction is a legal area such as EU. Each region belongs to exactly one.
type Jurisdiction struct {
	Name    string
	Regions []string
}

// KEK is the key-encryption key of a jurisdiction. It wraps the data keys of datasets whose
// policy is at home there and never leaves that jurisdiction; rotation happens inside the
// keyring or KMS key, so there is one KEK per jurisdiction.
type KEK struct {
	Name         string
	Jurisdiction string
	Provider     string // KEKProviderLocal or KEKProviderAWSKMS
	Path         string // local: keyring file (absolute after Load)
	KeyID        string // awskms: key ARN, ID or alias
	Region       string // awskms: KMS region, inside Jurisdiction
	Endpoint     string // awskms: custom endpoint (emulators), empty for AWS
}

// Location is a storage target.
type Location struct {
	Name         string
	Provider     string // one of the providers.Provider* constants
	Region       string
	Jurisdiction string // derived from Region
	// ObjectLock says the location is expected to be WORM storage. Workers check it against
	// the store's Capabilities at runtime and refuse to treat it as immutable otherwise.
	ObjectLock bool
	// Prefix confines the store to keys under it. It is empty or ends in "/", so that "dr"
	// cannot also match "dr-old/".
	Prefix string

	Bucket    string // s3, gcs
	Endpoint  string // s3, gcs: custom endpoint (MinIO, fake-gcs-server), empty for default
	PathStyle bool   // s3: path-style addressing, needed by most S3-compatible servers

	Container           string // azblob
	AccountURL          string // azblob: e.g. https://account.blob.core.windows.net
	ConnectionStringEnv string // azblob: name of the environment variable holding the connection string

	Path string // local: directory (absolute after Load)
}

// Ref describes the location for stores, logs and audit events. It carries no credentials.
func (l Location) Ref() providers.Location {
	bucket := l.Bucket
	switch l.Provider {
	case providers.ProviderAzBlob:
		bucket = l.Container
	case providers.ProviderLocal:
		bucket = l.Path
	}
	endpoint := l.Endpoint
	if l.Provider == providers.ProviderAzBlob {
		endpoint = l.AccountURL
	}
	return providers.Location{
		Name:         l.Name,
		Provider:     l.Provider,
		Bucket:       bucket,
		Prefix:       l.Prefix,
		Endpoint:     endpoint,
		Region:       l.Region,
		Jurisdiction: l.Jurisdiction,
	}
}

// CopyMode is what a residency policy allows a jurisdiction to hold.
type CopyMode string

const (
	// CopyFull: restorable copies, whose data keys the jurisdiction's workers can unwrap.
	// Only the home jurisdiction may hold them, because the KEK stays home.
	CopyFull CopyMode = "full"
	// CopyEncrypted: client-side encrypted copies whose key stays home; they can be restored
	// only by the home jurisdiction.
	CopyEncrypted CopyMode = "encrypted"
	// CopyMetadata: the catalog only (names, sizes, hashes, restore points), no content.
	CopyMetadata CopyMode = "metadata"
	// CopyDenied: nothing may go there. Never written in a file; returned by Policy.Decide.
	CopyDenied CopyMode = "denied"
)

// Mechanism is the legal basis for a transfer out of the home jurisdiction.
type Mechanism string

const (
	MechanismAdequacy Mechanism = "adequacy" // an adequacy decision covers the destination
	MechanismSCC      Mechanism = "scc"      // standard contractual clauses
	MechanismBCR      Mechanism = "bcr"      // binding corporate rules
	MechanismConsent  Mechanism = "consent"  // explicit consent of the data subjects
)

// Policy is a residency policy: what each jurisdiction may hold of the data of datasets at
// home in Home. Home always holds full copies; a jurisdiction without a rule gets nothing.
type Policy struct {
	Name  string
	Home  string
	Rules []Rule // as written; at most one per jurisdiction
}

// Rule allows one jurisdiction one kind of copy.
type Rule struct {
	Jurisdiction string
	Copy         CopyMode
	Mechanism    Mechanism // empty for the home jurisdiction and where none is needed
}

// Decide says what the policy allows dest to hold, under which transfer mechanism, and why,
// in words fit for an audit event. ok is false exactly when mode is CopyDenied.
func (p Policy) Decide(dest string) (mode CopyMode, mech Mechanism, rule string, ok bool) {
	for _, r := range p.Rules {
		if r.Jurisdiction != dest {
			continue
		}
		rule = fmt.Sprintf("policy %s allows %s copies in %s", p.Name, r.Copy, dest)
		if r.Mechanism != "" {
			rule += fmt.Sprintf(" under %s", r.Mechanism)
		}
		return r.Copy, r.Mechanism, rule, true
	}
	if dest == p.Home {
		return CopyFull, "", fmt.Sprintf("policy %s: %s is the home jurisdiction", p.Name, dest), true
	}
	return CopyDenied, "", fmt.Sprintf("policy %s has no rule for %s, so nothing may go there", p.Name, dest), false
}

// ReplicationMode says when a backup counts as complete.
type ReplicationMode string

const (
	// ReplicationSync: only once every replica holds the restore point.
	ReplicationSync ReplicationMode = "sync"
	// ReplicationAsync: once the primary holds it; replicas follow.
	ReplicationAsync ReplicationMode = "async"
)

// Tier holds the recovery objectives and schedule shared by datasets of one criticality.
type Tier struct {
	Name        string
	Level       int // 1 (most critical) to 3
	RPO         time.Duration
	RTO         time.Duration
	BackupEvery time.Duration // always shorter than RPO
	Replication ReplicationMode
	DrillEvery  time.Duration
	Retention   Retention
}

// Retention says which restore points survive pruning; a restore point is kept if any rule
// keeps it.
type Retention struct {
	KeepLast    int // the newest n, always at least 1
	KeepDaily   int // the newest of each of the last n days
	KeepWeekly  int
	KeepMonthly int
}

// SourceType is the kind of thing a dataset backs up.
type SourceType string

const (
	SourceDirectory SourceType = "directory" // a directory tree on the worker
	SourcePostgres  SourceType = "postgres"  // a PostgreSQL database
	SourceObjects   SourceType = "objects"   // a prefix of a configured location
)

// Source is where a dataset's data is read from.
type Source struct {
	Type     SourceType
	Path     string // directory (absolute after Load)
	DSN      string // postgres: libpq connection string or URL
	DSNEnv   string // postgres: name of an environment variable holding the DSN
	Location string // objects: location name
	Prefix   string // objects: key prefix inside the location, empty for all of it
}

// Dataset is something drflow protects.
type Dataset struct {
	Name           string
	Classification string // regulatory class, e.g. personal, financial, internal
	Policy         string
	Tier           string
	Primary        string   // location in the policy's home jurisdiction
	Replicas       []string // locations, each allowed some copy by the policy
	Source         Source
}

// Load reads and validates the configuration file at path. Relative paths inside the file
// (keyrings, local locations, directory sources) resolve against the file's directory, so
// the result does not depend on the working directory of the process.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	cfg, err := parse(data, dir)
	if err != nil {
		return nil, fmt.Errorf("config %s is invalid:\n%w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration. Relative paths are kept as written; use Load
// to resolve them against the file's directory.
//
// Every problem is reported: the error joins one *FieldError per problem (errors.Join).
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

func parse(data []byte, baseDir string) (*Config, error) {
	f, w, err := decodeFile(data)
	if err != nil {
		return nil, err
	}
	c := &checker{lines: w.lines, badPolicies: map[int]bool{}}
	cfg := c.check(f, baseDir)

	errs := w.errs
	for _, fe := range c.errs {
		if !underBroken(fe.Path, w.broken) {
			errs = append(errs, fe)
		}
	}
	if len(errs) == 0 {
		return cfg, nil
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int { return lineKey(a) - lineKey(b) })
	joined := make([]error, len(errs))
	for i, fe := range errs {
		joined[i] = fe
	}
	return nil, errors.Join(joined...)
}

// underBroken reports whether path or one of its parents failed to decode; validation errors
// there would only repeat the decode error.
func underBroken(path string, broken map[string]bool) bool {
	if broken[""] {
		return true
	}
	for p := path; p != ""; p = parentPath(p) {
		if broken[p] {
			return true
		}
	}
	return false
}

// lineKey sorts errors top to bottom, those without a line last.
func lineKey(fe *FieldError) int {
	if fe.Line == 0 {
		return 1 << 30
	}
	return fe.Line
}

// Dataset returns the dataset called name.
func (c *Config) Dataset(name string) (Dataset, bool) { return lookup(c.Datasets, c.datasetIdx, name) }

// Location returns the location called name.
func (c *Config) Location(name string) (Location, bool) {
	return lookup(c.Locations, c.locationIdx, name)
}

// Tier returns the tier called name.
func (c *Config) Tier(name string) (Tier, bool) { return lookup(c.Tiers, c.tierIdx, name) }

// ApproverGroup returns the named approver group.
func (c *Config) ApproverGroup(name string) (ApproverGroup, bool) {
	return lookup(c.Approvers, c.approverIdx, name)
}

// Policy returns the residency policy called name.
func (c *Config) Policy(name string) (Policy, bool) { return lookup(c.Policies, c.policyIdx, name) }

// Jurisdiction returns the jurisdiction called name.
func (c *Config) Jurisdiction(name string) (Jurisdiction, bool) {
	return lookup(c.Jurisdictions, c.jurisdictions, name)
}

// KEKFor returns the key-encryption key of jurisdiction j.
func (c *Config) KEKFor(j string) (KEK, bool) { return lookup(c.KEKs, c.kekByJur, j) }

// JurisdictionOf returns the jurisdiction that region belongs to.
func (c *Config) JurisdictionOf(region string) (string, bool) {
	j, ok := c.regions[region]
	return j, ok
}

// Regions returns every configured region, sorted.
func (c *Config) Regions() []string {
	out := make([]string, 0, len(c.regions))
	for r := range c.regions {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

func lookup[T any](items []T, idx map[string]int, name string) (T, bool) {
	i, ok := idx[name]
	if !ok {
		var zero T
		return zero, false
	}
	return items[i], true
}

// Values of Config.SearchAttributes.
const (
	SearchAttributesNames  = "names"
	SearchAttributesHashed = "hashed"
)

// EnvCodecKeyFile names the payload keyring instead of the configuration's codec.key_file.
const EnvCodecKeyFile = "DRFLOW_CODEC_KEY_FILE"

// PayloadKeyFile is the payload keyring every drflow process of the deployment uses: the
// environment's DRFLOW_CODEC_KEY_FILE if set, else the configuration's codec.key_file, else ""
// (no codec).
func (c *Config) PayloadKeyFile() string {
	if v := os.Getenv(EnvCodecKeyFile); v != "" {
		return v
	}
	return c.CodecKeyFile
}
