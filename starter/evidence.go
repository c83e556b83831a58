package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/evidence"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/providers"
)

// keyFlags collects repeated --key REGION=FILE.pem flags.
type keyFlags map[string]string

func (k keyFlags) String() string { return "" }

func (k keyFlags) Set(v string) error {
	region, path, ok := strings.Cut(v, "=")
	if !ok || region == "" || path == "" {
		return fmt.Errorf("want REGION=FILE.pem, got %q", v)
	}
	if _, dup := k[region]; dup {
		return fmt.Errorf("region %s is given twice", region)
	}
	k[region] = path
	return nil
}

// load reads every named PEM public key.
func (k keyFlags) load() (map[string]ed25519.PublicKey, error) {
	out := map[string]ed25519.PublicKey{}
	for region, path := range k {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w", region, err)
		}
		pub, err := audit.ParsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("--key %s=%s: %w", region, path, err)
		}
		out[region] = pub
	}
	return out, nil
}

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// parseWhen accepts RFC 3339 or a date (UTC). A date given as the end of a period means the
// end of that day, so --from 2026-11-01 --to 2026-11-30 covers all of November.
func parseWhen(flagName, v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --%s %q: want a date (2026-11-30) or an RFC 3339 time (2026-11-30T12:00:00Z)", errUsage, flagName, v)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

//nolint:gocyclo,funlen // flag parsing and checks of a CLI command
func evidenceCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "evidence")
	cfgPath := fs.String("config", defaultConf, "configuration file")
	stateDir := fs.String("state-dir", "", "the workers' state directory, whose audit signing keys give the public keys (default: var/state next to the config file)")
	from := fs.String("from", "", "start of the period (a date, or RFC 3339), required")
	to := fs.String("to", "", "end of the period (a date means the end of that day, or RFC 3339), required")
	out := fs.String("out", "", "directory to write the pack to; must not exist or be empty (required)")
	var datasets stringsFlag
	fs.Var(&datasets, "dataset", "a dataset to report on (repeat; default: all)")
	keys := keyFlags{}
	fs.Var(keys, "key", "REGION=FILE.pem: the region's audit signing public key (repeat; default: read from --state-dir)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: drflow evidence --from DATE --to DATE [--dataset D...] --out DIR

Writes an evidence pack for auditors: evidence.json (schema `+evidence.Schema+`), index.html
(readable offline), the signed audit segments and checkpoints it rests on, and the regions'
public keys. Placement and legal holds are read back from the stores; everything else comes
from the audit records, which are verified first. Check a pack with drflow audit verify.`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" || *out == "" {
		return fmt.Errorf("%w: --from, --to and --out are required", errUsage)
	}
	start, err := parseWhen("from", *from, false)
	if err != nil {
		return err
	}
	end, err := parseWhen("to", *to, true)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *stateDir == "" {
		*stateDir = filepath.Join(filepath.Dir(*cfgPath), "var", "state")
	}
	pubs, err := keys.load()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	for _, region := range cfg.Regions() {
		if pubs[region] != nil {
			continue
		}
		pub, err := audit.LoadPublicKey(filepath.Join(*stateDir, "audit", region+".key"))
		if err == nil {
			pubs[region] = pub
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	opened, err := openAll(ctx, cfg)
	if err != nil {
		return err
	}
	begun := time.Now()
	sealer, err := openSealer(ctx, cfg, *stateDir, opened)
	if err != nil {
		return err
	}
	opts := evidence.BuildOptions{
		Config: cfg, Stores: opened, PublicKeys: pubs, Period: evidence.Period{From: start, To: end},
		Datasets: datasets, Out: *out, GeneratedBy: "drflow evidence",
	}
	if sealer != nil {
		opts.Recorder = sealer
	} else {
		fmt.Fprintln(e.stderr, "drflow evidence: no region's signing key in --state-dir; the pack's observations will not be signed")
	}
	p, st, err := evidence.Build(ctx, opts)
	if sealer != nil {
		if cerr := sealer.Close(context.WithoutCancel(ctx)); err == nil && cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	pass, fail := 0, 0
	for _, c := range p.Controls {
		switch c.Status {
		case evidence.StatusPass:
			pass++
		case evidence.StatusFail:
			fail++
		}
	}
	fmt.Fprintf(e.stdout, "evidence pack %s: %d datasets, %s to %s\n", *out, len(p.Datasets),
		start.Format(time.RFC3339), end.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "  audit records: %d carried, %d in the period, from %d regions\n", st.Records, st.InPeriod, len(p.Audit))
	fmt.Fprintf(e.stdout, "  backups %d, drills %d, transfers %d, holds %d, key events %d\n", len(p.Objectives.Backups),
		len(p.Objectives.Drills), len(p.Transfers), len(p.Holds), len(p.Keys.Events))
	fmt.Fprintf(e.stdout, "  controls: %d pass, %d fail\n", pass, fail)
	for _, c := range p.Controls {
		if c.Status == evidence.StatusFail {
			fmt.Fprintf(e.stdout, "    FAIL %s %s: %s\n", c.ID, c.Dataset, c.Detail)
		}
	}
	fmt.Fprintf(e.stdout, "  %d files, %d bytes, built in %s\n", st.Files, st.Bytes, time.Since(begun).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "open %s, or check it with: drflow audit verify %s --key REGION=FILE.pem\n",
		filepath.Join(*out, evidence.FileHTML), *out)
	return nil
}

// openSealer opens the audit log of the first region whose signing key is in stateDir, for
// the record that signs a pack's observations; nil if there is none.
func openSealer(ctx context.Context, cfg *config.Config, stateDir string, opened map[string]providers.Store) (*audit.Log, error) {
	for _, region := range cfg.Regions() {
		path := filepath.Join(stateDir, "audit", region+".key")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		signer, err := audit.LoadOrCreateSigner(path)
		if err != nil {
			return nil, err
		}
		loc, _ := evidence.AuditLocation(cfg, region)
		return audit.Open(ctx, audit.Options{Store: opened[loc.Name], Region: region, Signer: signer})
	}
	return nil, nil
}

// openAll opens every configured location.
func openAll(ctx context.Context, cfg *config.Config) (map[string]providers.Store, error) {
	out := map[string]providers.Store{}
	for _, loc := range cfg.Locations {
		st, err := stores.Open(ctx, loc)
		if err != nil {
			return nil, err
		}
		out[loc.Name] = st
	}
	return out, nil
}

func auditVerifyCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit verify")
	keys := keyFlags{}
	fs.Var(keys, "key", "REGION=FILE.pem: a region's audit signing public key, obtained apart from the pack (repeat, one per region)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: drflow audit verify PACK_DIR --key REGION=FILE.pem [--key ...]

Verifies an evidence pack offline, with nothing but the pack and the regions' public keys:
every audit record's signature and hash link, the segments' names and order, the signed
checkpoints, that the pack holds exactly the files it lists, and that every figure of
evidence.json and index.html follows from the records. Exits 1 naming the file and the kind
of tampering (edited, reordered, deleted, inserted, truncated) if anything does not hold.`)
		fs.PrintDefaults()
	}
	dir, err := parseFlagsWithArg(fs, args, "PACK_DIR")
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: at least one --key REGION=FILE.pem is required: the keys must come from somewhere other than the pack", errUsage)
	}
	pubs, err := keys.load()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	begun := time.Now()
	rep, err := evidence.VerifyPack(ctx, dir, pubs)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, rep)
	}
	fmt.Fprintf(e.stdout, "evidence pack %s verifies (%s, %s to %s, datasets %s)\n", dir, rep.Schema,
		rep.Period.From.Format(time.RFC3339), rep.Period.To.Format(time.RFC3339), strings.Join(rep.Datasets, ", "))
	for _, r := range rep.Regions {
		fmt.Fprintf(e.stdout, "  %s: records %d to %d (%d) from anchor %d, %d checkpoints, head %s\n", r.Region, r.FirstSeq, r.LastSeq,
			r.Records, r.AnchorSeq, r.Checkpoints, r.HeadHash)
	}
	fmt.Fprintf(e.stdout, "  %d figures derived again from the records and matched; index.html matches\n", rep.Figures)
	for _, w := range rep.Warnings {
		fmt.Fprintf(e.stdout, "  note: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "  verified in %s\n", time.Since(begun).Round(time.Millisecond))
	return nil
}

func auditKeyCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit key")
	cfgPath := fs.String("config", defaultConf, "configuration file")
	stateDir := fs.String("state-dir", "", "the worker's state directory (default: var/state next to the config file)")
	region := fs.String("region", "", "the region whose public key to print (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *region == "" {
		return fmt.Errorf("%w: --region is required", errUsage)
	}
	if *stateDir == "" {
		*stateDir = filepath.Join(filepath.Dir(*cfgPath), "var", "state")
	}
	pub, err := audit.LoadPublicKey(filepath.Join(*stateDir, "audit", *region+".key"))
	if err != nil {
		return err
	}
	pem, err := audit.EncodePublicKey(pub)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(pem)
	return err
}

var _ flag.Value = keyFlags(nil)
