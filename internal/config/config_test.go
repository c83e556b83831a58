package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

func TestParseValidConfigResolvesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(baseYAML))
	require.NoError(t, err)

	assert.Len(t, cfg.Jurisdictions, 3)
	assert.Len(t, cfg.KEKs, 2)
	assert.Len(t, cfg.Locations, 6)
	assert.Len(t, cfg.Policies, 2)
	assert.Len(t, cfg.Tiers, 2)
	assert.Len(t, cfg.Datasets, 4)

	// tier1 sets everything; tier3 relies on every default.
	tier1, ok := cfg.Tier("tier1")
	require.True(t, ok)
	assert.Equal(t, Tier{
		Name: "tier1", Level: 1,
		RPO: 15 * time.Minute, RTO: time.Hour, BackupEvery: 5 * time.Minute,
		Replication: ReplicationSync, DrillEvery: 7 * 24 * time.Hour,
		Retention: Retention{KeepLast: 24, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6},
	}, tier1)
	tier3, ok := cfg.Tier("tier3")
	require.True(t, ok)
	assert.Equal(t, Tier{
		Name: "tier3", Level: 3,
		RPO: 24 * time.Hour, RTO: 72 * time.Hour, BackupEvery: 12 * time.Hour,
		Replication: DefaultReplication, DrillEvery: DefaultDrillEvery,
		Retention: Retention{KeepLast: DefaultKeepLast},
	}, tier3)

	// Locations get their jurisdiction from their region and a directory-like prefix.
	sec, ok := cfg.Location("eu-secondary")
	require.True(t, ok)
	assert.Equal(t, Location{
		Name: "eu-secondary", Provider: providers.ProviderS3, Region: "eu-central-1", Jurisdiction: "EU",
		Prefix: "dr/", Bucket: "drflow-eu", Endpoint: "http://127.0.0.1:9000", PathStyle: true,
	}, sec)
	assert.Equal(t, providers.Location{
		Name: "eu-secondary", Provider: "s3", Bucket: "drflow-eu", Prefix: "dr/",
		Endpoint: "http://127.0.0.1:9000", Region: "eu-central-1", Jurisdiction: "EU",
	}, sec.Ref())
	usdr, _ := cfg.Location("us-dr")
	assert.Equal(t, providers.Location{
		Name: "us-dr", Provider: "azblob", Bucket: "drflow",
		Endpoint: "https://drflowus.blob.core.windows.net", Region: "us-east-1", Jurisdiction: "US",
	}, usdr.Ref())
	primary, _ := cfg.Location("eu-primary")
	assert.True(t, primary.ObjectLock)
	assert.Equal(t, "stores/eu-primary", primary.Ref().Bucket, "Parse keeps relative paths as written")

	ds, ok := cfg.Dataset("uploads")
	require.True(t, ok)
	assert.Equal(t, Dataset{
		Name: "uploads", Classification: "personal", Policy: "eu-personal", Tier: "tier3",
		Primary: "eu-primary",
		Source:  Source{Type: SourceObjects, Location: "eu-uploads", Prefix: "media/"},
	}, ds)

	kek, ok := cfg.KEKFor("US")
	require.True(t, ok)
	assert.Equal(t, KEK{
		Name: "us-kek", Jurisdiction: "US", Provider: KEKProviderAWSKMS,
		KeyID: "arn:aws:kms:us-east-1:111122223333:key/1234abcd", Region: "us-east-1",
		Endpoint: "http://127.0.0.1:4566",
	}, kek)
}

func TestLookups(t *testing.T) {
	cfg, err := Parse([]byte(baseYAML))
	require.NoError(t, err)

	assert.Equal(t, []string{"ap-southeast-1", "eu-central-1", "eu-west-1", "us-east-1"}, cfg.Regions())

	tests := []struct {
		give   string
		want   string
		wantOK bool
	}{
		{give: "eu-west-1", want: "EU", wantOK: true},
		{give: "eu-central-1", want: "EU", wantOK: true},
		{give: "us-east-1", want: "US", wantOK: true},
		{give: "us-west-2", wantOK: false},
		{give: "", wantOK: false},
	}
	for _, tt := range tests {
		got, ok := cfg.JurisdictionOf(tt.give)
		assert.Equal(t, tt.wantOK, ok, tt.give)
		assert.Equal(t, tt.want, got, tt.give)
	}

	_, ok := cfg.KEKFor("APAC")
	assert.False(t, ok, "APAC has no key")
	_, ok = cfg.Dataset("nope")
	assert.False(t, ok)
	_, ok = cfg.Location("nope")
	assert.False(t, ok)
	_, ok = cfg.Tier("nope")
	assert.False(t, ok)
	_, ok = cfg.Policy("nope")
	assert.False(t, ok)
	j, ok := cfg.Jurisdiction("EU")
	require.True(t, ok)
	assert.Equal(t, []string{"eu-west-1", "eu-central-1"}, j.Regions)
}

func TestPolicyDecide(t *testing.T) {
	cfg, err := Parse(mutate(t, repl("    rules:\n", "    rules:\n      - jurisdiction: EU\n        copy: full\n")))
	require.NoError(t, err)
	eu, ok := cfg.Policy("eu-personal")
	require.True(t, ok)
	us, ok := cfg.Policy("us-internal")
	require.True(t, ok)

	tests := []struct {
		name     string
		policy   Policy
		give     string
		wantMode CopyMode
		wantMech Mechanism
		wantRule string
		wantOK   bool
	}{
		{"explicit home rule", eu, "EU", CopyFull, "", "policy eu-personal allows full copies in EU", true},
		{"encrypted export", eu, "US", CopyEncrypted, MechanismSCC, "policy eu-personal allows encrypted copies in US under scc", true},
		{"metadata only", eu, "APAC", CopyMetadata, "", "policy eu-personal allows metadata copies in APAC", true},
		{"implicit home", us, "US", CopyFull, "", "policy us-internal: US is the home jurisdiction", true},
		{"no rule", us, "EU", CopyDenied, "", "policy us-internal has no rule for EU", false},
		{"unknown jurisdiction", eu, "MARS", CopyDenied, "", "no rule for MARS", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode, mech, rule, ok := tt.policy.Decide(tt.give)
			assert.Equal(t, tt.wantMode, mode)
			assert.Equal(t, tt.wantMech, mech)
			assert.Contains(t, rule, tt.wantRule)
			assert.Equal(t, tt.wantOK, ok)
		})
	}
}

// A replica where the policy allows only encrypted copies or only metadata is valid: the
// runtime decides what to copy there. Only a jurisdiction without a rule is refused.
func TestReplicasInRestrictedJurisdictionsAreValid(t *testing.T) {
	cfg, err := Parse([]byte(baseYAML))
	require.NoError(t, err)
	ds, _ := cfg.Dataset("customers")
	pol, _ := cfg.Policy(ds.Policy)
	var modes []CopyMode
	for _, r := range ds.Replicas {
		loc, ok := cfg.Location(r)
		require.True(t, ok)
		mode, _, _, ok := pol.Decide(loc.Jurisdiction)
		require.True(t, ok)
		modes = append(modes, mode)
	}
	assert.Equal(t, []CopyMode{CopyFull, CopyEncrypted, CopyMetadata}, modes)
}

func TestLoadResolvesRelativePathsAgainstFileDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "drflow")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	abs := filepath.Join(t.TempDir(), "abs", "us-logs")
	doc := strings.Replace(baseYAML, "      path: data/us-logs", "      path: "+abs, 1)
	path := filepath.Join(dir, "drflow.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))

	// Load from another working directory, through a relative path, to show the result
	// depends on neither.
	t.Chdir(filepath.Dir(dir))
	cfg, err := Load(filepath.Join("drflow", "drflow.yaml"))
	require.NoError(t, err)

	kek, _ := cfg.KEKFor("EU")
	assert.Equal(t, filepath.Join(dir, "keys", "eu.keyring"), kek.Path)
	loc, _ := cfg.Location("eu-primary")
	assert.Equal(t, filepath.Join(dir, "stores", "eu-primary"), loc.Path)
	ds, _ := cfg.Dataset("customers")
	assert.Equal(t, filepath.Join(dir, "data", "customers"), ds.Source.Path)
	logs, _ := cfg.Dataset("us-logs")
	assert.Equal(t, abs, logs.Source.Path, "absolute paths stay as written")
	s3, _ := cfg.Location("eu-secondary")
	assert.Empty(t, s3.Path, "no path appears where none was set")
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "examples", "drflow.yaml"))
	require.NoError(t, err)

	assert.Equal(t, []string{"ap-southeast-1", "eu-central-1", "eu-west-1", "us-east-1"}, cfg.Regions())
	for _, name := range []string{"customers", "orders-db", "us-logs"} {
		_, ok := cfg.Dataset(name)
		assert.True(t, ok, name)
	}
	customers, _ := cfg.Dataset("customers")
	assert.Equal(t, "tier1", customers.Tier)
	assert.Equal(t, []string{"eu-secondary", "us-dr", "apac-catalog"}, customers.Replicas)
	assert.True(t, filepath.IsAbs(customers.Source.Path))

	// The demo shows all three copy modes from one dataset.
	pol, _ := cfg.Policy(customers.Policy)
	want := map[string]CopyMode{"eu-secondary": CopyFull, "us-dr": CopyEncrypted, "apac-catalog": CopyMetadata}
	for loc, wantMode := range want {
		l, ok := cfg.Location(loc)
		require.True(t, ok)
		mode, _, _, _ := pol.Decide(l.Jurisdiction)
		assert.Equal(t, wantMode, mode, loc)
	}
	orders, _ := cfg.Dataset("orders-db")
	assert.Equal(t, SourcePostgres, orders.Source.Type)
	assert.Equal(t, "host=127.0.0.1 port=5432 user=postgres dbname=drflow_demo sslmode=disable", orders.Source.DSN)
	for _, j := range []string{"EU", "US"} {
		kek, ok := cfg.KEKFor(j)
		require.True(t, ok, j)
		assert.Equal(t, KEKProviderLocal, kek.Provider)
	}
}

func TestAllErrorsAreReportedAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drflow.yaml")
	doc := mutate(t,
		repl("    object_lock: true", "    objectlock: true"),
		repl("    regions: [us-east-1]", "    regions: [us-east-1, eu-west-1]"),
		repl("    provider: awskms", "    provider: vault"),
		repl("    bucket: drflow-eu\n", ""),
		repl("        mechanism: scc\n", ""),
		repl("    level: 1", "    level: high"),
		repl("    rto: 3d", "    rto: soon"),
		repl("    tier: tier1", "    tier: gold"),
		repl("      type: postgres", "      type: mysql"),
	)
	require.NoError(t, os.WriteFile(path, doc, 0o600))

	cfg, err := Load(path)
	require.Error(t, err)
	assert.Nil(t, cfg)
	assert.True(t, strings.HasPrefix(err.Error(), "config "+path+" is invalid:\nline "), err.Error())

	var first *FieldError
	require.True(t, errors.As(err, &first), "errors.As reaches the field errors through the wrap and the join")

	errs := fieldErrors(t, err)
	var paths []string
	for i, fe := range errs {
		paths = append(paths, fe.Path)
		if i > 0 {
			assert.LessOrEqual(t, errs[i-1].Line, fe.Line, "errors are sorted top to bottom")
		}
	}
	assert.Equal(t, []string{
		"jurisdictions[1] (US).regions[1]",
		"keys[1] (us-kek).provider",
		"locations[0] (eu-primary).objectlock",
		"locations[1] (eu-secondary).bucket",
		"policies[0] (eu-personal).rules[0].mechanism",
		"tiers[0] (tier1).level",
		"tiers[1] (tier3).rto",
		"datasets[0] (customers).tier",
		"datasets[1] (orders-db).source.type",
	}, paths)
}

func TestFieldErrorFormat(t *testing.T) {
	_, err := Parse(mutate(t, repl("    primary: eu-primary\n    replicas: [eu-secondary, us-dr, apac-catalog]", "    primary: eu-primry\n    replicas: [eu-secondary, us-dr, apac-catalog]")))
	require.Error(t, err)
	assert.Equal(t, `line 79: datasets[0] (customers).primary: unknown location "eu-primry" (known: apac-catalog, eu-primary, eu-secondary, eu-uploads, us-archive, us-dr)`, err.Error())

	tests := []struct {
		give FieldError
		want string
	}{
		{FieldError{Path: "tiers[0] (tier1).rpo", Line: 3, Msg: "is required"}, "line 3: tiers[0] (tier1).rpo: is required"},
		{FieldError{Path: "tiers", Msg: "bad"}, "tiers: bad"},
		{FieldError{Line: 2, Msg: "bad"}, "line 2: bad"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.give.Error())
	}
}

// A missing field has no line of its own; the error points at the item that lacks it.
func TestMissingFieldPointsAtItsItem(t *testing.T) {
	_, err := Parse(mutate(t, repl("    rto: 3d\n", "")))
	require.Error(t, err)
	errs := fieldErrors(t, err)
	require.Len(t, errs, 1)
	assert.Equal(t, "tiers[1] (tier3).rto", errs[0].Path)
	assert.Equal(t, 70, errs[0].Line, "line of '- name: tier3'")
}

// Decode problems do not pile follow-up errors onto the same field.
func TestNoFollowUpErrorsOnUndecodableFields(t *testing.T) {
	_, err := Parse(mutate(t,
		repl("    level: 3", "    level: [3]"),
		repl("      type: postgres\n      dsn: \"host=127.0.0.1 dbname=orders\"", "      postgres"),
		after("    rpo: 15m\n", "    rpo: 20m\n"),
	))
	require.Error(t, err)
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	assert.Equal(t, []string{"tiers[0] (tier1).rpo", "tiers[1] (tier3).level", "datasets[1] (orders-db).source"}, paths)
}

func TestDocumentErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"empty", "", "configuration is empty"},
		{"only a comment", "# nothing yet\n", "configuration is empty"},
		{"null document", "---\n~\n", "configuration is empty"},
		{"syntax error", "jurisdictions: [EU\n", "read YAML: yaml: line"},
		{"tab indentation", "jurisdictions:\n\t- name: EU\n", "read YAML"},
		{"two documents", baseYAML + "---\njurisdictions: []\n", "a second document starts here"},
		{"root is a list", "- a\n- b\n", "want a mapping of fields"},
		{"root is a scalar", "hello\n", "want a mapping of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.give))
			require.Error(t, err)
			assert.Nil(t, cfg)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Anchors and merge keys work as in any YAML file, and typos inside merged mappings are
// still caught.
func TestAnchorsAndMergeKeys(t *testing.T) {
	doc := mutate(t,
		repl("    retention: {keep_last: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}", "    retention: &keep {keep_last: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}"),
		repl("    rto: 3d\n", "    rto: 3d\n    retention:\n      <<: *keep\n      keep_last: 3\n"),
	)
	cfg, err := Parse(doc)
	require.NoError(t, err)
	tier3, _ := cfg.Tier("tier3")
	assert.Equal(t, Retention{KeepLast: 3, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6}, tier3.Retention)

	doc = mutate(t,
		repl("tiers:\n", "x-defaults: &tier\n  levle: 2\ntiers:\n"),
		repl("  - name: tier3\n", "  - <<: *tier\n    name: tier3\n"),
	)
	_, err = Parse(doc)
	require.Error(t, err)
	errs := fieldErrors(t, err)
	assert.NotNil(t, findPath(errs, "x-defaults"))
	got := findPath(errs, "tiers[1] (tier3).levle")
	require.NotNil(t, got, "%v", err)
	assert.Contains(t, got.Msg, `did you mean "level"?`)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, fs.ErrNotExist))
}
