package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drflow/drflow/providers"
)

// maxNameLen keeps names usable as DNS labels, task-queue names and key segments.
const maxNameLen = 63

// checker validates a decoded file and builds the Config from it in the same pass, so each
// value is parsed once. It keeps going after a problem to report all of them.
type checker struct {
	errs  []*FieldError
	lines map[string]int // from the decode walk, to give every error a line
	// badPolicies are policies with a broken home or rule. Datasets are not judged by them,
	// since the verdicts would only echo the policy's own errors.
	badPolicies map[int]bool
}

func (c *checker) addf(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
}

// lineOf finds the line of path or, for a field that is missing, of its closest parent.
func (c *checker) lineOf(path string) int {
	for p := path; ; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
	}
}

func (c *checker) check(f *fileConfig, baseDir string) *Config {
	cfg := &Config{
		regions:       map[string]string{},
		kekByJur:      map[string]int{},
		locationIdx:   map[string]int{},
		policyIdx:     map[string]int{},
		tierIdx:       map[string]int{},
		datasetIdx:    map[string]int{},
		jurisdictions: map[string]int{},
		approverIdx:   map[string]int{},
	}
	c.checkJurisdictions(f.Jurisdictions, cfg)
	c.checkKEKs(f.Keys, cfg)
	c.checkLocations(f.Locations, cfg)
	c.checkPolicies(f.Policies, cfg)
	c.checkTiers(f.Tiers, cfg)
	c.checkDatasets(f.Datasets, cfg)
	c.checkApprovers(f.Approvers, cfg)
	c.checkCodec(f.Codec, cfg)
	switch f.SearchAttributes {
	case "", SearchAttributesNames:
		cfg.SearchAttributes = SearchAttributesNames
	case SearchAttributesHashed:
		cfg.SearchAttributes = SearchAttributesHashed
	default:
		c.addf("search_attributes", "%q is not %q (dataset names in search attributes and workflow IDs) or %q (keyed hashes of them)",
			f.SearchAttributes, SearchAttributesNames, SearchAttributesHashed)
	}
	if baseDir != "" {
		resolvePaths(cfg, baseDir)
	}
	return cfg
}

// resolvePaths makes relative paths absolute against the config file's directory.
func resolvePaths(cfg *Config, baseDir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	for i := range cfg.KEKs {
		cfg.KEKs[i].Path = abs(cfg.KEKs[i].Path)
	}
	for i := range cfg.Locations {
		cfg.Locations[i].Path = abs(cfg.Locations[i].Path)
	}
	for i := range cfg.Datasets {
		cfg.Datasets[i].Source.Path = abs(cfg.Datasets[i].Source.Path)
	}
	cfg.CodecKeyFile = abs(cfg.CodecKeyFile)
}

// checkCodec checks the codec section: a keyring file, never a key.
func (c *checker) checkCodec(f *fileCodec, cfg *Config) {
	if f == nil {
		return
	}
	if strings.TrimSpace(f.KeyFile) == "" {
		c.addf("codec.key_file", "is required: the payload keyring file (create one with drflow codec-key create --file PATH); leave out the codec section to send payloads in the clear")
		return
	}
	cfg.CodecKeyFile = f.KeyFile
}

// checkName checks an item's name and registers the item under it in idx (first one wins).
func (c *checker) checkName(item, kind, name string, i int, idx map[string]int) {
	p := fieldPath(item, "name")
	if msg := NameProblem(name); msg != "" {
		c.addf(p, "%s", msg)
		return
	}
	if _, dup := idx[name]; dup {
		c.addf(p, "another %s is already called %q; names must be unique", kind, name)
		return
	}
	idx[name] = i
}

// ref checks a reference to a named item and reports whether it resolves.
func (c *checker) ref(path, kind, name string, idx map[string]int) bool {
	if name == "" {
		c.addf(path, "is required (the name of a %s)", kind)
		return false
	}
	if _, ok := idx[name]; !ok {
		c.addf(path, "unknown %s %s (%s)", kind, quoteTrunc(name), knownList(keys(idx)))
		return false
	}
	return true
}

func (c *checker) checkJurisdictions(items []fileJurisdiction, cfg *Config) {
	if len(items) == 0 {
		c.addf("jurisdictions", "define at least one jurisdiction: every location, key and policy belongs to one")
	}
	folded := map[string]string{} // lower-case name -> name, since names end up in lower-case task-queue names
	for i, j := range items {
		p := itemPath("jurisdictions", i, j.Name)
		if msg := jurisdictionNameProblem(j.Name); msg != "" {
			c.addf(fieldPath(p, "name"), "%s", msg)
		} else if other, dup := folded[strings.ToLower(j.Name)]; dup {
			c.addf(fieldPath(p, "name"), "jurisdiction %q is already defined as %q (names are compared ignoring case)", j.Name, other)
		} else {
			folded[strings.ToLower(j.Name)] = j.Name
			cfg.jurisdictions[j.Name] = i
		}
		if len(j.Regions) == 0 {
			c.addf(fieldPath(p, "regions"), "list at least one region (e.g. eu-west-1)")
		}
		for k, r := range j.Regions {
			rp := itemPath(fieldPath(p, "regions"), k, "")
			if msg := regionProblem(r); msg != "" {
				c.addf(rp, "%s", msg)
				continue
			}
			if other, dup := cfg.regions[r]; dup {
				if other == j.Name {
					c.addf(rp, "region %q is listed twice", r)
				} else {
					c.addf(rp, "region %q is already in jurisdiction %s; a region belongs to exactly one jurisdiction", r, other)
				}
				continue
			}
			cfg.regions[r] = j.Name
		}
		cfg.Jurisdictions = append(cfg.Jurisdictions, Jurisdiction{Name: j.Name, Regions: slices.Clone(j.Regions)})
	}
}

func (c *checker) checkKEKs(items []fileKEK, cfg *Config) {
	names := map[string]int{}
	for i, k := range items {
		p := itemPath("keys", i, k.Name)
		c.checkName(p, "key", k.Name, i, names)
		jp := fieldPath(p, "jurisdiction")
		if c.ref(jp, "jurisdiction", k.Jurisdiction, cfg.jurisdictions) {
			if prev, dup := cfg.kekByJur[k.Jurisdiction]; dup {
				c.addf(jp, "%s already has key-encryption key %q; there is one per jurisdiction (rotate inside its keyring or KMS key instead)", k.Jurisdiction, items[prev].Name)
			} else {
				cfg.kekByJur[k.Jurisdiction] = i
			}
		}
		fields := []setField{
			{"path", k.Path != ""},
			{"key_id", k.KeyID != ""},
			{"region", k.Region != ""},
			{"endpoint", k.Endpoint != ""},
		}
		switch k.Provider {
		case KEKProviderLocal:
			c.notFor(p, "provider "+k.Provider, fields, "path")
			c.required(p, "path", k.Path, "the keyring file, e.g. ./var/keys/eu.keyring")
			c.checkFilePath(fieldPath(p, "path"), k.Path)
		case KEKProviderAWSKMS:
			c.notFor(p, "provider "+k.Provider, fields, "key_id", "region", "endpoint")
			c.required(p, "key_id", k.KeyID, "a key ARN, ID or alias")
			if c.required(p, "region", k.Region, "the KMS region, e.g. eu-west-1") {
				c.checkKEKRegion(p, k, cfg)
			}
			c.checkEndpoint(fieldPath(p, "endpoint"), k.Endpoint)
		case "":
			c.addf(fieldPath(p, "provider"), "is required (%s or %s)", KEKProviderLocal, KEKProviderAWSKMS)
		default:
			c.addf(fieldPath(p, "provider"), "unknown key provider %s (want %s or %s)", quoteTrunc(k.Provider), KEKProviderLocal, KEKProviderAWSKMS)
		}
		cfg.KEKs = append(cfg.KEKs, KEK(k))
	}
}

// checkKEKRegion keeps a KMS key inside its jurisdiction: a KEK that lives abroad would let
// another jurisdiction unwrap the data keys.
func (c *checker) checkKEKRegion(p string, k fileKEK, cfg *Config) {
	rp := fieldPath(p, "region")
	if msg := regionProblem(k.Region); msg != "" {
		c.addf(rp, "%s", msg)
		return
	}
	j, ok := cfg.regions[k.Region]
	switch {
	case !ok:
		c.addf(rp, "region %q is in no jurisdiction (%s)", k.Region, knownList(keys(cfg.regions)))
		return
	case j != k.Jurisdiction && known(cfg.jurisdictions, j) && known(cfg.jurisdictions, k.Jurisdiction):
		c.addf(rp, "region %s is in jurisdiction %s, but this key belongs to %s; a key-encryption key must stay in its jurisdiction", k.Region, j, k.Jurisdiction)
		return
	}
	// An ARN names its region; it must agree with region, or the client would talk to the
	// wrong KMS endpoint.
	if arn, ok := strings.CutPrefix(k.KeyID, "arn:"); ok {
		parts := strings.Split(arn, ":")
		if len(parts) < 5 || parts[1] != "kms" {
			c.addf(fieldPath(p, "key_id"), "%s is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", quoteTrunc(k.KeyID))
		} else if parts[2] != k.Region {
			c.addf(fieldPath(p, "key_id"), "ARN is in region %s, but region is %s", quoteTrunc(parts[2]), k.Region)
		}
	}
}

//nolint:gocyclo,funlen // one rule per location field and provider; splitting scatters the rules of one block
func (c *checker) checkLocations(items []fileLocation, cfg *Config) {
	// Storage roots seen so far, to catch overlapping locations: scope names the service
	// (provider and endpoint or account), key the bucket and prefix within it.
	type root struct {
		name, scope, key, display string
	}
	var roots []root
	for i, l := range items {
		p := itemPath("locations", i, l.Name)
		c.checkName(p, "location", l.Name, i, cfg.locationIdx)

		var jur string
		rp := fieldPath(p, "region")
		if c.required(p, "region", l.Region, "e.g. eu-west-1; it decides the location's jurisdiction") {
			if msg := regionProblem(l.Region); msg != "" {
				c.addf(rp, "%s", msg)
			} else if j, ok := cfg.regions[l.Region]; ok {
				if _, valid := cfg.jurisdictions[j]; valid {
					jur = j // otherwise the jurisdiction's own error explains
				}
			} else {
				c.addf(rp, "region %q is in no jurisdiction; add it to one under jurisdictions (%s)", l.Region, knownList(keys(cfg.regions)))
			}
		}

		prefix := l.Prefix
		if prefix != "" {
			if msg := prefixProblem(prefix); msg != "" {
				c.addf(fieldPath(p, "prefix"), "%s", msg)
			} else {
				prefix = strings.TrimSuffix(prefix, "/") + "/"
			}
		}

		fields := []setField{
			{"bucket", l.Bucket != ""},
			{"endpoint", l.Endpoint != ""},
			{"path_style", l.PathStyle != nil},
			{"container", l.Container != ""},
			{"account_url", l.AccountURL != ""},
			{"connection_string_env", l.ConnectionStringEnv != ""},
			{"path", l.Path != ""},
		}
		var target string // the field naming the storage, set once it is valid
		var here root
		switch l.Provider {
		case providers.ProviderS3, providers.ProviderGCS:
			if l.Provider == providers.ProviderS3 {
				c.notFor(p, "provider "+l.Provider, fields, "bucket", "endpoint", "path_style")
			} else {
				c.notFor(p, "provider "+l.Provider, fields, "bucket", "endpoint")
			}
			c.checkEndpoint(fieldPath(p, "endpoint"), l.Endpoint)
			if c.required(p, "bucket", l.Bucket, "the bucket name") && c.checkBareName(fieldPath(p, "bucket"), "bucket", l.Bucket) {
				target = "bucket"
				here = root{l.Name, l.Provider + " " + l.Endpoint, l.Bucket + "/" + prefix, fmt.Sprintf("%s://%s/%s", l.Provider, l.Bucket, prefix)}
			}
		case providers.ProviderAzBlob:
			c.notFor(p, "provider "+l.Provider, fields, "container", "account_url", "connection_string_env")
			switch {
			case l.AccountURL != "" && l.ConnectionStringEnv != "":
				c.addf(fieldPath(p, "connection_string_env"), "set either account_url or connection_string_env, not both")
			case l.AccountURL == "" && l.ConnectionStringEnv == "":
				c.addf(fieldPath(p, "account_url"), "is required unless connection_string_env is set (e.g. https://myaccount.blob.core.windows.net)")
			}
			c.checkEndpoint(fieldPath(p, "account_url"), l.AccountURL)
			c.checkEnvName(fieldPath(p, "connection_string_env"), l.ConnectionStringEnv, "the connection string")
			if c.required(p, "container", l.Container, "the container name") && c.checkBareName(fieldPath(p, "container"), "container", l.Container) {
				account := l.AccountURL
				if account == "" {
					account = "$" + l.ConnectionStringEnv
				}
				target = "container"
				here = root{l.Name, l.Provider + " " + account, l.Container + "/" + prefix, fmt.Sprintf("%s://%s/%s", l.Provider, l.Container, prefix)}
			}
		case providers.ProviderLocal:
			c.notFor(p, "provider "+l.Provider, fields, "path")
			if c.required(p, "path", l.Path, "the directory, e.g. ./var/stores/eu-primary") && c.checkFilePath(fieldPath(p, "path"), l.Path) {
				target = "path"
				dir := filepath.ToSlash(filepath.Clean(l.Path)) + "/"
				here = root{l.Name, l.Provider, dir + prefix, dir + prefix}
			}
		case "":
			c.addf(fieldPath(p, "provider"), "is required (%s)", strings.Join(locationProviders(), ", "))
		default:
			c.addf(fieldPath(p, "provider"), "unknown provider %s (want one of %s)", quoteTrunc(l.Provider), strings.Join(locationProviders(), ", "))
		}

		// Two locations sharing storage would prune or overwrite each other's restore points,
		// and a "replica" there would not survive the loss of the primary.
		if target != "" {
			for _, r := range roots {
				if r.scope == here.scope && (strings.HasPrefix(here.key, r.key) || strings.HasPrefix(r.key, here.key)) {
					c.addf(fieldPath(p, target), "%s overlaps location %q at %s; locations must not share storage", here.display, r.name, r.display)
					break
				}
			}
			roots = append(roots, here)
		}

		pathStyle := false
		if l.PathStyle != nil {
			pathStyle = *l.PathStyle
		}
		cfg.Locations = append(cfg.Locations, Location{
			Name: l.Name, Provider: l.Provider, Region: l.Region, Jurisdiction: jur,
			ObjectLock: l.ObjectLock, Prefix: prefix,
			Bucket: l.Bucket, Endpoint: l.Endpoint, PathStyle: pathStyle,
			Container: l.Container, AccountURL: l.AccountURL, ConnectionStringEnv: l.ConnectionStringEnv,
			Path: l.Path,
		})
	}
}

func (c *checker) checkPolicies(items []filePolicy, cfg *Config) {
	for i, pol := range items {
		p := itemPath("policies", i, pol.Name)
		c.checkName(p, "policy", pol.Name, i, cfg.policyIdx)
		hp := fieldPath(p, "home")
		before := len(c.errs)
		homeOK := c.ref(hp, "jurisdiction", pol.Home, cfg.jurisdictions)
		out := Policy{Name: pol.Name, Home: pol.Home}
		first := map[string]int{} // jurisdiction -> index of its rule
		for k, r := range pol.Rules {
			rp := itemPath(fieldPath(p, "rules"), k, "")
			jp := fieldPath(rp, "jurisdiction")
			jurOK := c.ref(jp, "jurisdiction", r.Jurisdiction, cfg.jurisdictions)
			if jurOK {
				if prev, dup := first[r.Jurisdiction]; dup {
					c.addf(jp, "%s already has a rule (rules[%d]); write one rule per jurisdiction", r.Jurisdiction, prev)
				} else {
					first[r.Jurisdiction] = k
				}
			}

			mode := CopyMode(r.Copy)
			modeOK := false
			switch mode {
			case CopyFull, CopyEncrypted, CopyMetadata:
				modeOK = true
			case "":
				c.addf(fieldPath(rp, "copy"), "is required (%s, %s or %s)", CopyFull, CopyEncrypted, CopyMetadata)
			default:
				c.addf(fieldPath(rp, "copy"), "unknown copy mode %s (want %s, %s or %s)", quoteTrunc(r.Copy), CopyFull, CopyEncrypted, CopyMetadata)
			}
			mech := Mechanism(r.Mechanism)
			switch mech {
			case "", MechanismAdequacy, MechanismSCC, MechanismBCR, MechanismConsent:
			default:
				c.addf(fieldPath(rp, "mechanism"), "unknown transfer mechanism %s (want %s)", quoteTrunc(r.Mechanism), mechanismList())
			}

			if jurOK && homeOK && modeOK {
				c.checkRule(rp, pol.Home, r.Jurisdiction, mode, mech)
			}
			out.Rules = append(out.Rules, Rule{Jurisdiction: r.Jurisdiction, Copy: mode, Mechanism: mech})
		}
		if len(c.errs) > before {
			c.badPolicies[i] = true
		}
		if homeOK {
			if _, ok := cfg.kekByJur[pol.Home]; !ok {
				c.addf(hp, "home jurisdiction %s has no key-encryption key; add one under keys with jurisdiction: %s", pol.Home, pol.Home)
			}
		}
		cfg.Policies = append(cfg.Policies, out)
	}
}

// checkRule enforces the sovereignty model: data keys are wrapped by the home KEK, which
// never leaves home, so only home can hold full copies, and every export of content needs a
// legal basis.
func (c *checker) checkRule(rp, home, dest string, mode CopyMode, mech Mechanism) {
	if dest == home {
		if mode != CopyFull {
			c.addf(fieldPath(rp, "copy"), "the home jurisdiction %s always holds full copies (the primary lives there); use copy: full or drop the rule", home)
		}
		if mech != "" {
			c.addf(fieldPath(rp, "mechanism"), "data at home is not transferred, so it needs no mechanism; remove it")
		}
		return
	}
	switch mode {
	case CopyFull:
		c.addf(fieldPath(rp, "copy"), "full copies in %s would let plaintext, or the key to it, leave home jurisdiction %s; use copy: encrypted with a mechanism (%s) so the key stays home", dest, home, mechanismList())
	case CopyEncrypted:
		if mech == "" {
			c.addf(fieldPath(rp, "mechanism"), "is required for encrypted copies leaving %s for %s (%s)", home, dest, mechanismList())
		}
	}
}

//nolint:gocyclo // one rule per tier field
func (c *checker) checkTiers(items []fileTier, cfg *Config) {
	for i, t := range items {
		p := itemPath("tiers", i, t.Name)
		c.checkName(p, "tier", t.Name, i, cfg.tierIdx)
		out := Tier{Name: t.Name}
		switch {
		case t.Level == nil:
			c.addf(fieldPath(p, "level"), "is required (1 for the most critical data, 2 or 3)")
		case *t.Level < 1 || *t.Level > 3:
			c.addf(fieldPath(p, "level"), "must be 1, 2 or 3, got %d", *t.Level)
		default:
			out.Level = *t.Level
		}
		rpo, rpoOK := c.positiveDuration(p, "rpo", t.RPO, "the most data you accept to lose, e.g. 15m")
		out.RPO = rpo
		out.RTO, _ = c.positiveDuration(p, "rto", t.RTO, "the longest you accept to be down, e.g. 1h")

		out.BackupEvery = rpo / backupEveryDivisor
		if t.BackupEvery != "" {
			if d, ok := c.positiveDuration(p, "backup_every", t.BackupEvery, ""); ok {
				out.BackupEvery = d
				if rpoOK && d >= rpo {
					c.addf(fieldPath(p, "backup_every"), "%s is not shorter than rpo %s: a backup takes time, so the data at risk would always exceed the RPO; back up more often (e.g. every %s)", FormatDuration(d), FormatDuration(rpo), FormatDuration(rpo/backupEveryDivisor))
				}
			}
		}

		out.Replication = ReplicationMode(t.Replication)
		switch out.Replication {
		case "":
			out.Replication = DefaultReplication
		case ReplicationSync, ReplicationAsync:
		default:
			c.addf(fieldPath(p, "replication"), "unknown replication mode %s (want %s or %s)", quoteTrunc(t.Replication), ReplicationSync, ReplicationAsync)
		}

		out.DrillEvery = DefaultDrillEvery
		if t.DrillEvery != "" {
			out.DrillEvery, _ = c.positiveDuration(p, "drill_every", t.DrillEvery, "")
		}

		out.Retention = Retention{KeepLast: DefaultKeepLast}
		if r := t.Retention; r != nil {
			rp := fieldPath(p, "retention")
			if r.KeepLast != nil {
				out.Retention.KeepLast = *r.KeepLast
				if *r.KeepLast < 1 {
					c.addf(fieldPath(rp, "keep_last"), "must be at least 1, got %d: the newest restore point is always kept", *r.KeepLast)
				}
			}
			for _, k := range []struct {
				name string
				n    int
			}{{"keep_daily", r.KeepDaily}, {"keep_weekly", r.KeepWeekly}, {"keep_monthly", r.KeepMonthly}} {
				if k.n < 0 {
					c.addf(fieldPath(rp, k.name), "must not be negative, got %d", k.n)
				}
			}
			out.Retention.KeepDaily, out.Retention.KeepWeekly, out.Retention.KeepMonthly = r.KeepDaily, r.KeepWeekly, r.KeepMonthly
		}
		cfg.Tiers = append(cfg.Tiers, out)
	}
}

//nolint:gocyclo // one rule per dataset field
func (c *checker) checkDatasets(items []fileDataset, cfg *Config) {
	if len(items) == 0 {
		c.addf("datasets", "define at least one dataset: there is nothing to protect")
	}
	for i, d := range items {
		p := itemPath("datasets", i, d.Name)
		c.checkName(p, "dataset", d.Name, i, cfg.datasetIdx)
		if c.required(p, "classification", d.Classification, "e.g. personal, financial, internal") {
			if msg := NameProblem(d.Classification); msg != "" {
				c.addf(fieldPath(p, "classification"), "%s", msg)
			}
		}
		c.ref(fieldPath(p, "tier"), "tier", d.Tier, cfg.tierIdx)

		var pol *Policy
		if c.ref(fieldPath(p, "policy"), "policy", d.Policy, cfg.policyIdx) {
			if i := cfg.policyIdx[d.Policy]; !c.badPolicies[i] {
				pol = &cfg.Policies[i]
			}
		}

		pp := fieldPath(p, "primary")
		if c.ref(pp, "location", d.Primary, cfg.locationIdx) && pol != nil {
			loc := cfg.Locations[cfg.locationIdx[d.Primary]]
			if loc.Jurisdiction != "" && loc.Jurisdiction != pol.Home {
				c.addf(pp, "location %s is in %s, but policy %s keeps primaries in its home jurisdiction %s", loc.Name, loc.Jurisdiction, pol.Name, pol.Home)
			}
		}

		seen := map[string]int{}
		for k, r := range d.Replicas {
			rp := itemPath(fieldPath(p, "replicas"), k, "")
			if !c.ref(rp, "location", r, cfg.locationIdx) {
				continue
			}
			if r == d.Primary {
				c.addf(rp, "%s is the primary; a replica must be another location", r)
				continue
			}
			if prev, dup := seen[r]; dup {
				c.addf(rp, "%s is listed twice (also replicas[%d])", r, prev)
				continue
			}
			seen[r] = k
			loc := cfg.Locations[cfg.locationIdx[r]]
			if pol == nil || loc.Jurisdiction == "" {
				continue
			}
			// Encrypted-only and metadata-only destinations are valid: the runtime copies what
			// the policy allows there. A destination the policy does not name gets nothing.
			if _, _, _, ok := pol.Decide(loc.Jurisdiction); !ok {
				c.addf(rp, "location %s is in %s, where policy %s allows no copies (it allows: %s)", r, loc.Jurisdiction, pol.Name, describeAllowed(*pol))
			}
		}

		c.checkSource(fieldPath(p, "source"), d.Source, cfg)

		cfg.Datasets = append(cfg.Datasets, Dataset{
			Name: d.Name, Classification: d.Classification, Policy: d.Policy, Tier: d.Tier,
			Primary: d.Primary, Replicas: slices.Clone(d.Replicas),
			Source: Source{
				Type: SourceType(d.Source.Type), Path: d.Source.Path, DSN: d.Source.DSN,
				DSNEnv: d.Source.DSNEnv, Location: d.Source.Location, Prefix: d.Source.Prefix,
			},
		})
	}
}

func (c *checker) checkSource(p string, s fileSource, cfg *Config) {
	fields := []setField{
		{"path", s.Path != ""},
		{"dsn", s.DSN != ""},
		{"dsn_env", s.DSNEnv != ""},
		{"location", s.Location != ""},
		{"prefix", s.Prefix != ""},
	}
	switch SourceType(s.Type) {
	case SourceDirectory:
		c.notFor(p, "a directory source", fields, "path")
		if c.required(p, "path", s.Path, "the directory to back up") {
			c.checkFilePath(fieldPath(p, "path"), s.Path)
		}
	case SourcePostgres:
		c.notFor(p, "a postgres source", fields, "dsn", "dsn_env")
		switch {
		case s.DSN != "" && s.DSNEnv != "":
			c.addf(fieldPath(p, "dsn_env"), "set either dsn or dsn_env, not both")
		case s.DSN == "" && s.DSNEnv == "":
			c.addf(fieldPath(p, "dsn"), "is required unless dsn_env is set (e.g. \"host=127.0.0.1 port=5432 dbname=app sslmode=disable\")")
		}
		c.checkEnvName(fieldPath(p, "dsn_env"), s.DSNEnv, "the DSN")
	case SourceObjects:
		c.notFor(p, "an objects source", fields, "location", "prefix")
		c.ref(fieldPath(p, "location"), "location", s.Location, cfg.locationIdx)
		if s.Prefix != "" {
			if msg := prefixProblem(s.Prefix); msg != "" {
				c.addf(fieldPath(p, "prefix"), "%s", msg)
			}
		}
	case "":
		c.addf(fieldPath(p, "type"), "is required (%s, %s or %s)", SourceDirectory, SourcePostgres, SourceObjects)
	default:
		c.addf(fieldPath(p, "type"), "unknown source type %s (want %s, %s or %s)", quoteTrunc(s.Type), SourceDirectory, SourcePostgres, SourceObjects)
	}
}

// setField is a field that may or may not be set in the file, for notFor.
type setField struct {
	name string
	set  bool
}

// notFor reports every set field that what (a provider or source type) does not use: a
// field that does nothing is almost always a mistake, such as a path on an s3 location.
func (c *checker) notFor(p, what string, fields []setField, uses ...string) {
	for _, f := range fields {
		if f.set && !slices.Contains(uses, f.name) {
			c.addf(fieldPath(p, f.name), "does not apply to %s (it uses: %s)", what, strings.Join(uses, ", "))
		}
	}
}

// required reports field as missing when value is empty and says whether it is present.
func (c *checker) required(p, field, value, hint string) bool {
	if value == "" {
		c.addf(fieldPath(p, field), "is required (%s)", hint)
		return false
	}
	return true
}

// positiveDuration parses an optional (hint == "") or required duration field.
func (c *checker) positiveDuration(p, field, value, hint string) (time.Duration, bool) {
	fp := fieldPath(p, field)
	if value == "" {
		if hint != "" {
			c.addf(fp, "is required (%s)", hint)
		}
		return 0, false
	}
	d, err := ParseDuration(value)
	if err != nil {
		c.addf(fp, "%v", err)
		return 0, false
	}
	if d <= 0 {
		c.addf(fp, "must be positive, got %s", quoteTrunc(value))
		return 0, false
	}
	return d, true
}

func (c *checker) checkEndpoint(p, value string) {
	if value == "" {
		return
	}
	u, err := url.Parse(value)
	switch {
	case err != nil:
		c.addf(p, "is not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		c.addf(p, "%s must start with http:// or https://", quoteTrunc(value))
	case u.Hostname() == "":
		c.addf(p, "%s has no host", quoteTrunc(value))
	case u.User != nil:
		c.addf(p, "must not contain credentials; they come from the provider's usual credential chain")
	}
}

// checkEnvName makes sure a *_env field names a variable and does not hold the secret.
func (c *checker) checkEnvName(p, value, what string) {
	if value == "" {
		return
	}
	if strings.ContainsAny(value, "=;:/ ") {
		c.addf(p, "must be the name of an environment variable that holds %s, not %s itself; secrets do not belong in this file", what, what)
		return
	}
	if !isEnvName(value) {
		c.addf(p, "%s is not a valid environment variable name (letters, digits and _, not starting with a digit)", quoteTrunc(value))
	}
}

// checkBareName rejects bucket and container names that carry a path or URL, a common slip.
func (c *checker) checkBareName(p, kind, value string) bool {
	if strings.ContainsAny(value, "/\\ \t") || value == "." || value == ".." {
		c.addf(p, "%s must be a bare %s name (put key prefixes under prefix, servers under endpoint)", quoteTrunc(value), kind)
		return false
	}
	return true
}

func (c *checker) checkFilePath(p, value string) bool {
	if strings.ContainsRune(value, 0) {
		c.addf(p, "contains a NUL byte")
		return false
	}
	return true
}

// describeAllowed lists where a policy lets data go, for denial messages.
func describeAllowed(p Policy) string {
	parts := []string{fmt.Sprintf("%s full (home)", p.Home)}
	for _, r := range p.Rules {
		if r.Jurisdiction == p.Home {
			continue
		}
		s := fmt.Sprintf("%s %s", r.Jurisdiction, r.Copy)
		if r.Mechanism != "" {
			s += " under " + string(r.Mechanism)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func locationProviders() []string {
	return []string{providers.ProviderS3, providers.ProviderGCS, providers.ProviderAzBlob, providers.ProviderLocal}
}

func mechanismList() string {
	return strings.Join([]string{string(MechanismAdequacy), string(MechanismSCC), string(MechanismBCR), string(MechanismConsent)}, ", ")
}

func known[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// NameProblem says what is wrong with a name of drflow's (keys, locations, policies, tiers,
// datasets, approver groups, runbooks and their steps), or "" if nothing is. Names become
// storage keys, workflow IDs and task-queue names, so they are restricted to a safe set.
func NameProblem(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("is longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if isLower(b) || isDigit(b) || (i > 0 && (b == '-' || b == '_' || b == '.')) {
			continue
		}
		return fmt.Sprintf("%s may contain only lower-case letters, digits, '-', '_' and '.', and must start with a letter or digit (names become storage keys and task-queue names)", quoteTrunc(s))
	}
	return ""
}

// jurisdictionNameProblem allows upper case, as in EU and US, but no punctuation beyond '-'
// and '_'.
func jurisdictionNameProblem(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("is longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if isLower(b) || isUpper(b) || isDigit(b) || (i > 0 && (b == '-' || b == '_')) {
			continue
		}
		return fmt.Sprintf("%s may contain only letters, digits, '-' and '_', and must start with a letter or digit", quoteTrunc(s))
	}
	return ""
}

// regionProblem checks a cloud region name such as eu-west-1 or westeurope.
func regionProblem(s string) string {
	if s == "" {
		return "region is empty"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("region is longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if isLower(b) || isDigit(b) || (i > 0 && b == '-') {
			continue
		}
		return fmt.Sprintf("region %s may contain only lower-case letters, digits and '-' (e.g. eu-west-1)", quoteTrunc(s))
	}
	return ""
}

// prefixProblem checks a key prefix: the keys under it must be valid for every provider.
func prefixProblem(s string) string {
	if strings.HasPrefix(s, "/") {
		return fmt.Sprintf("%s must not start with /", quoteTrunc(s))
	}
	if err := providers.ValidateKey(strings.TrimSuffix(s, "/")); err != nil {
		return fmt.Sprintf("is not a valid key prefix: %v", err)
	}
	return ""
}

func isEnvName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isLower(b) && !isUpper(b) && b != '_' && (i == 0 || !isDigit(b)) {
			return false
		}
	}
	return s != ""
}

func isLower(b byte) bool { return 'a' <= b && b <= 'z' }
func isUpper(b byte) bool { return 'A' <= b && b <= 'Z' }
func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// checkApprovers checks the approver groups: named like everything else, each with at least
// one member, no member twice. A gate needing two approvers needs two members besides the
// requester; that is checked when a runbook is validated, where the need is known.
func (c *checker) checkApprovers(items []fileApprovers, cfg *Config) {
	for i, g := range items {
		p := itemPath("approvers", i, g.Group)
		c.checkGroupName(p, g.Group, i, cfg.approverIdx)
		out := ApproverGroup{Name: g.Group}
		if len(g.Members) == 0 {
			c.addf(fieldPath(p, "members"), "is required: at least one person who may approve")
		}
		for j, m := range g.Members {
			mp := fmt.Sprintf("%s[%d]", fieldPath(p, "members"), j)
			switch {
			case strings.TrimSpace(m) == "" || strings.TrimSpace(m) != m:
				c.addf(mp, "must be a non-empty name without leading or trailing spaces, got %q", m)
			case slices.Contains(out.Members, m):
				c.addf(mp, "%q is listed twice", m)
			default:
				out.Members = append(out.Members, m)
			}
		}
		cfg.Approvers = append(cfg.Approvers, out)
	}
}

func (c *checker) checkGroupName(item, name string, i int, idx map[string]int) {
	p := fieldPath(item, "group")
	if msg := NameProblem(name); msg != "" {
		c.addf(p, "%s", msg)
		return
	}
	if _, dup := idx[name]; dup {
		c.addf(p, "another approver group is already called %q; names must be unique", name)
		return
	}
	idx[name] = i
}
