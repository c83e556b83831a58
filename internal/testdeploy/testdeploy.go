// Package testdeploy writes the small single-region drflow deployment that tests of the
// activities, workflows, worker and command line run against: one EU region, a local keyring
// (or an AWS KMS key), one local store and directory datasets over a few files.
package testdeploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/drflow/drflow/internal/config"
)

// Deployment is what New wrote.
type Deployment struct {
	// Root holds everything; tests may put state and scratch directories below it.
	Root       string
	ConfigPath string
	// Config is ConfigPath loaded, with its relative paths resolved against Root.
	Config *config.Config
	// Source is the directory every dataset backs up.
	Source string
	// StoreRoot is the directory of the store "eu-primary".
	StoreRoot string
}

// Options tune New.
type Options struct {
	// Datasets are the datasets to configure, all backing up Source (default: "files").
	Datasets []string
	// Files maps slash paths under Source to their content (default: three small files).
	Files map[string]string
	// Replicated configures four jurisdictions instead of one: home EU (eu-west-1 and
	// eu-central-1), US, APAC and CN, with the locations eu-primary, eu-replica (full copy at
	// home), us-replica (encrypted copies only, legal basis scc), ap-catalog (metadata only) and
	// cn-replica (where the policy allows nothing, so no dataset lists it). Datasets replicate
	// to the first three.
	Replicated bool
	// ThreeRegions configures three jurisdictions of one region each, every one the home of
	// a dataset with its own local keyring, for one worker process per region: EU (eu-west-1:
	// eu-primary, eu-replica; keys/eu.keyring), US (us-east-1: us-primary, us-replica;
	// keys/us.keyring) and APAC (ap-southeast-1: ap-primary, ap-replica; keys/ap.keyring).
	// Datasets are homed in EU as with Replicated: a full copy at eu-replica, encrypted copies
	// only at us-replica (legal basis scc), metadata only at ap-replica. Two more datasets are
	// added: "us-files" (US, full copy at us-replica), backing up Root/source-us, and
	// "ap-files" (APAC, full copy at ap-replica), backing up Root/source-ap; both sources hold
	// the same Files as Source. The EU full replica is in eu-west-1 (not eu-central-1 as with
	// Replicated), so a worker of eu-west-1 serves drills from it. Ignores Replicated.
	ThreeRegions bool
	// Replication is the tier's replication mode ("sync" or "async"; default async).
	Replication string
	// KeepLast, when positive, is the tier's retention keep_last (default: config's).
	KeepLast int
	// KMS, when its Endpoint is set, makes the EU KEK an AWS KMS key instead of a local
	// keyring, and puts its region in the EU jurisdiction.
	KMS KMSKey
}

// KMSKey is an AWS KMS key served at a custom endpoint, such as a kmstest.Server.
type KMSKey struct {
	KeyID    string
	Region   string
	Endpoint string
}

// StoreDir returns the directory of the local store of location loc.
func (d Deployment) StoreDir(loc string) string { return filepath.Join(d.Root, "stores", loc) }

// New writes the deployment into a fresh temporary directory.
//
//nolint:gocyclo // a test deployment's servers started in order
func New(t testing.TB, opts Options) Deployment {
	t.Helper()
	if len(opts.Datasets) == 0 {
		opts.Datasets = []string{"files"}
	}
	if opts.Files == nil {
		opts.Files = map[string]string{}
		for i, name := range []string{"a.txt", "sub/b.txt", "c.bin"} {
			opts.Files[name] = strings.Repeat(fmt.Sprintf("row %d\n", i), 1000)
		}
	}
	root := t.TempDir()
	d := Deployment{
		Root:       root,
		ConfigPath: filepath.Join(root, "drflow.yaml"),
		Source:     filepath.Join(root, "source"),
		StoreRoot:  filepath.Join(root, "stores", "eu-primary"),
	}
	names := make([]string, 0, len(opts.Files))
	for name := range opts.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	sourceDirs := []string{d.Source}
	if opts.ThreeRegions {
		sourceDirs = append(sourceDirs, filepath.Join(root, "source-us"), filepath.Join(root, "source-ap"))
	}
	for _, dir := range sourceDirs {
		for _, name := range names {
			path := filepath.Join(dir, filepath.FromSlash(name))
			must(t, os.MkdirAll(filepath.Dir(path), 0o755))
			must(t, os.WriteFile(path, []byte(opts.Files[name]), 0o644))
		}
	}

	var yaml strings.Builder
	layout := singleRegionLayout
	if opts.Replicated {
		layout = replicatedLayout
	}
	if opts.ThreeRegions {
		layout = threeRegionLayout
	}
	if opts.KMS.Endpoint != "" {
		layout = withKMS(layout, opts.KMS)
	}
	yaml.WriteString(layout)
	// Before the datasets, which stay last: tests append datasets to the file.
	yaml.WriteString(approverGroups)
	replication := ""
	if opts.Replication != "" {
		replication = ", replication: " + opts.Replication
	}
	if opts.KeepLast > 0 {
		replication += fmt.Sprintf(", retention: {keep_last: %d}", opts.KeepLast)
	}
	fmt.Fprintf(&yaml, `tiers:
  - {name: tier1, level: 1, rpo: 15m, rto: 1h, backup_every: 5m%s}
datasets:
`, replication)
	if opts.ThreeRegions {
		yaml.WriteString(`  - {name: us-files, classification: internal, policy: us-only, tier: tier1, primary: us-primary,
     replicas: [us-replica], source: {type: directory, path: source-us}}
  - {name: ap-files, classification: internal, policy: apac-only, tier: tier1, primary: ap-primary,
     replicas: [ap-replica], source: {type: directory, path: source-ap}}
`)
	}
	for _, ds := range opts.Datasets {
		if opts.ThreeRegions {
			fmt.Fprintf(&yaml, `  - {name: %s, classification: personal, policy: eu-gdpr, tier: tier1, primary: eu-primary,
     replicas: [eu-replica, us-replica, ap-replica], source: {type: directory, path: source}}
`, ds)
			continue
		}
		if opts.Replicated {
			fmt.Fprintf(&yaml, `  - {name: %s, classification: personal, policy: eu-gdpr, tier: tier1, primary: eu-primary,
     replicas: [eu-replica, us-replica, ap-catalog], source: {type: directory, path: source}}
`, ds)
			continue
		}
		fmt.Fprintf(&yaml, `  - {name: %s, classification: internal, policy: eu-only, tier: tier1, primary: eu-primary,
     source: {type: directory, path: source}}
`, ds)
	}
	must(t, os.WriteFile(d.ConfigPath, []byte(yaml.String()), 0o644))
	cfg, err := config.Load(d.ConfigPath)
	must(t, err)
	d.Config = cfg
	return d
}

const singleRegionLayout = `jurisdictions:
  - {name: EU, regions: [eu-west-1]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}
locations:
  - {name: eu-primary, provider: local, path: stores/eu-primary, region: eu-west-1}
policies:
  - {name: eu-only, home: EU}
`

const replicatedLayout = `jurisdictions:
  - {name: EU, regions: [eu-west-1, eu-central-1]}
  - {name: US, regions: [us-east-1]}
  - {name: APAC, regions: [ap-southeast-1]}
  - {name: CN, regions: [cn-north-1]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}
locations:
  - {name: eu-primary, provider: local, path: stores/eu-primary, region: eu-west-1}
  - {name: eu-replica, provider: local, path: stores/eu-replica, region: eu-central-1}
  - {name: us-replica, provider: local, path: stores/us-replica, region: us-east-1}
  - {name: ap-catalog, provider: local, path: stores/ap-catalog, region: ap-southeast-1}
  - {name: cn-replica, provider: local, path: stores/cn-replica, region: cn-north-1}
policies:
  - name: eu-gdpr
    home: EU
    rules:
      - {jurisdiction: US, copy: encrypted, mechanism: scc}
      - {jurisdiction: APAC, copy: metadata}
`

const threeRegionLayout = `jurisdictions:
  - {name: EU, regions: [eu-west-1]}
  - {name: US, regions: [us-east-1]}
  - {name: APAC, regions: [ap-southeast-1]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}
  - {name: us-kek, jurisdiction: US, provider: local, path: keys/us.keyring}
  - {name: ap-kek, jurisdiction: APAC, provider: local, path: keys/ap.keyring}
locations:
  - {name: eu-primary, provider: local, path: stores/eu-primary, region: eu-west-1}
  - {name: eu-replica, provider: local, path: stores/eu-replica, region: eu-west-1}
  - {name: us-primary, provider: local, path: stores/us-primary, region: us-east-1}
  - {name: us-replica, provider: local, path: stores/us-replica, region: us-east-1}
  - {name: ap-primary, provider: local, path: stores/ap-primary, region: ap-southeast-1}
  - {name: ap-replica, provider: local, path: stores/ap-replica, region: ap-southeast-1}
policies:
  - name: eu-gdpr
    home: EU
    rules:
      - {jurisdiction: US, copy: encrypted, mechanism: scc}
      - {jurisdiction: APAC, copy: metadata}
  - {name: us-only, home: US}
  - {name: apac-only, home: APAC}
`

// withKMS replaces the local EU keyring of layout with key k.
func withKMS(layout string, k KMSKey) string {
	layout = strings.Replace(layout, localEUKey,
		fmt.Sprintf("  - {name: eu-kek, jurisdiction: EU, provider: awskms, key_id: %q, region: %s, endpoint: %q}\n", k.KeyID, k.Region, k.Endpoint), 1)
	before, rest, _ := strings.Cut(layout, "  - {name: EU, regions: [")
	regions, rest, _ := strings.Cut(rest, "]")
	if !slices.Contains(strings.Split(regions, ", "), k.Region) {
		regions += ", " + k.Region
	}
	return before + "  - {name: EU, regions: [" + regions + "]" + rest
}

const localEUKey = "  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}\n"

// approverGroups are the people runbook gates of tests may name: legal approves hold
// releases, sre failovers and restores. alice, who starts most test runs, is in both, so
// every gate needs someone else.
const approverGroups = `approvers:
  - {group: legal, members: [alice, bob, carol]}
  - {group: sre, members: [alice, dave, erin]}
`

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("test deployment: %v", err)
	}
}
