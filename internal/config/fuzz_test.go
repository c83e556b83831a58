package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, must return exactly one of a
// config and an error, and a config it returns must keep the promises workflows rely on:
// every reference resolves and every copy the policies allow is legal.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "drflow.yaml"))
	if err != nil {
		f.Fatalf("read example: %v", err)
	}
	for _, seed := range []string{
		string(example),
		baseYAML,
		"",
		"---\n",
		"jurisdictions: [{name: EU, regions: [eu-west-1]}]\n",
		"a: &a [*a]\n",
		"x: &x {a: 1}\ntiers: [{<<: *x, name: t, rpo: 1d, rto: 2d, level: 1}]\n",
		"tiers:\n  - name: t\n    rpo: 1d\n    rpo: 2d\n",
		"datasets: [{name: d, source: {type: objects, location: \"\"}}]\n",
		"tiers: [{name: t, level: 1, rpo: 9999999999d, rto: -0.5d, backup_every: 1.d}]\n",
		"? [a, b]\n: c\n",
		"jurisdictions: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", cfg != nil, err)
		}
		if err != nil {
			_ = err.Error()
			var fe *FieldError
			if errors.As(err, &fe) && fe.Msg == "" {
				t.Fatalf("field error without a message: %#v", fe)
			}
			return
		}
		checkInvariants(t, cfg)
	})
}

// checkInvariants asserts what a valid Config guarantees to its users.
func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	for _, l := range cfg.Locations {
		if _, ok := cfg.Jurisdiction(l.Jurisdiction); !ok {
			t.Fatalf("location %s has jurisdiction %q", l.Name, l.Jurisdiction)
		}
	}
	for _, p := range cfg.Policies {
		if _, ok := cfg.KEKFor(p.Home); !ok {
			t.Fatalf("policy %s: home %s has no KEK", p.Name, p.Home)
		}
		for _, r := range p.Rules {
			if r.Jurisdiction != p.Home && r.Copy == CopyFull {
				t.Fatalf("policy %s sends full copies to %s", p.Name, r.Jurisdiction)
			}
			if r.Jurisdiction != p.Home && r.Copy == CopyEncrypted && r.Mechanism == "" {
				t.Fatalf("policy %s exports to %s without a mechanism", p.Name, r.Jurisdiction)
			}
		}
	}
	for _, tier := range cfg.Tiers {
		if tier.RPO <= 0 || tier.RTO <= 0 || tier.BackupEvery <= 0 || tier.BackupEvery >= tier.RPO || tier.DrillEvery <= 0 {
			t.Fatalf("tier %s has bad durations: %+v", tier.Name, tier)
		}
		if tier.Level < 1 || tier.Level > 3 || tier.Retention.KeepLast < 1 {
			t.Fatalf("tier %s: %+v", tier.Name, tier)
		}
	}
	for _, d := range cfg.Datasets {
		pol, ok := cfg.Policy(d.Policy)
		if !ok {
			t.Fatalf("dataset %s: policy %q", d.Name, d.Policy)
		}
		if _, ok := cfg.Tier(d.Tier); !ok {
			t.Fatalf("dataset %s: tier %q", d.Name, d.Tier)
		}
		primary, ok := cfg.Location(d.Primary)
		if !ok || primary.Jurisdiction != pol.Home {
			t.Fatalf("dataset %s: primary %q outside home %s", d.Name, d.Primary, pol.Home)
		}
		for _, r := range d.Replicas {
			loc, ok := cfg.Location(r)
			if !ok || r == d.Primary {
				t.Fatalf("dataset %s: replica %q", d.Name, r)
			}
			if _, _, _, ok := pol.Decide(loc.Jurisdiction); !ok {
				t.Fatalf("dataset %s: replica %s in a denied jurisdiction", d.Name, r)
			}
		}
		if d.Source.Type == SourceObjects {
			if _, ok := cfg.Location(d.Source.Location); !ok {
				t.Fatalf("dataset %s: source location %q", d.Name, d.Source.Location)
			}
		}
	}
}
