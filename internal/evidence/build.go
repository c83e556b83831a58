package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/providers"
)

// BuildOptions configure Build.
type BuildOptions struct {
	Config *config.Config
	// Stores are the opened locations by name: every location of the selected datasets, and
	// the first location of each region (where that region's audit log lives).
	Stores map[string]providers.Store
	// PublicKeys are the regions' audit signing keys. Every region with an audit log needs
	// one: the log is verified before anything is taken from it.
	PublicKeys map[string]ed25519.PublicKey
	Period     Period
	// Datasets selects datasets; empty means every configured one.
	Datasets []string
	// Out is the pack's directory. It must not exist, or be empty.
	Out         string
	GeneratedBy string
	// Now stamps the pack; nil means time.Now.
	Now func() time.Time
	// Recorder, if set, is a region's audit log: the pack's observations (placement, holds,
	// configuration) are signed there by a record naming their hash, which the pack then
	// carries. Without it they are the generator's word only, and the pack says so.
	Recorder audit.Recorder
}

// Stats describe a built pack.
type Stats struct {
	Records  uint64 // audit records carried
	InPeriod uint64
	Files    int
	Bytes    int64 // total size of the pack's files
}

// Build writes an evidence pack for opts.Period: it verifies every region's audit log,
// copies the part the period needs (from a signed checkpoint before the period to the head)
// byte for byte, reads placement and legal holds back from the stores, derives evidence.json
// and renders index.html. A broken audit chain fails the build: evidence is never made from
// records that do not verify.
//
//nolint:gocyclo // the pack's sections in order, each failing with its own message
func Build(ctx context.Context, opts BuildOptions) (*Pack, Stats, error) {
	var st Stats
	cfg := opts.Config
	if cfg == nil {
		return nil, st, errors.New("evidence: a configuration is required")
	}
	if err := checkPeriod(opts.Period); err != nil {
		return nil, st, err
	}
	datasets, err := selectDatasets(cfg, opts.Datasets)
	if err != nil {
		return nil, st, err
	}
	if err := emptyDir(opts.Out); err != nil {
		return nil, st, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	in := Input{
		GeneratedAt: now().UTC().Truncate(time.Millisecond),
		GeneratedBy: opts.GeneratedBy,
		Period:      Period{From: opts.Period.From.UTC(), To: opts.Period.To.UTC()},
		Datasets:    datasets,
		Config:      Summarize(cfg, datasets),
	}
	if in.Placement, err = readPlacement(ctx, opts, datasets); err != nil {
		return nil, st, err
	}
	if in.Holds, err = readHolds(ctx, opts, datasets); err != nil {
		return nil, st, err
	}
	if opts.Recorder != nil {
		// Sign the observations before the logs are copied, so that the record is in the pack.
		err := opts.Recorder.Record(ctx, audit.Event{Kind: audit.KindEvidence, Outcome: audit.OutcomeOK, Actor: opts.GeneratedBy,
			ManifestHash: ObservationsHash(in), Reason: fmt.Sprintf("evidence pack of %d datasets for %s to %s: observations signed",
				len(datasets), in.Period.From.Format(time.RFC3339), in.Period.To.Format(time.RFC3339))})
		if err != nil {
			return nil, st, fmt.Errorf("evidence: sign the observations: %w", err)
		}
	}
	for _, region := range cfg.Regions() {
		log, records, found, err := copyLog(ctx, opts, region)
		if err != nil {
			return nil, st, err
		}
		if !found {
			continue
		}
		in.Audit = append(in.Audit, log)
		in.Records = append(in.Records, records...)
		st.Records += log.Records
		st.InPeriod += log.InPeriod
	}
	if len(in.Audit) == 0 {
		return nil, st, errors.New("evidence: no region has an audit log in its first location; nothing to report from")
	}
	p := Derive(in)
	if err := writePack(opts.Out, p); err != nil {
		return nil, st, err
	}
	err = filepath.WalkDir(opts.Out, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st.Files++
		st.Bytes += info.Size()
		return nil
	})
	return p, st, err
}

func checkPeriod(p Period) error {
	switch {
	case p.From.IsZero() || p.To.IsZero():
		return errors.New("evidence: the period needs both --from and --to")
	case !p.From.Before(p.To):
		return fmt.Errorf("evidence: the period's start %s is not before its end %s", p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
	}
	return nil
}

func selectDatasets(cfg *config.Config, want []string) ([]string, error) {
	if len(want) == 0 {
		out := make([]string, 0, len(cfg.Datasets))
		for _, ds := range cfg.Datasets {
			out = append(out, ds.Name)
		}
		slices.Sort(out)
		return out, nil
	}
	var out []string
	for _, name := range want {
		if _, ok := cfg.Dataset(name); !ok {
			var names []string
			for _, ds := range cfg.Datasets {
				names = append(names, ds.Name)
			}
			return nil, fmt.Errorf("evidence: dataset %q is not configured (configured: %s)", name, strings.Join(names, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// emptyDir creates dir, or accepts it if it exists and is empty: a pack is never written
// over another one.
func emptyDir(dir string) error {
	if dir == "" {
		return errors.New("evidence: an output directory is required")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return fmt.Errorf("evidence: output directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("evidence: output directory %s is not empty; a pack is never written over another", dir)
	}
	return nil
}

// Summarize copies the facts the evidence is judged against out of cfg: names, regions,
// objectives and what each replica may hold. No endpoint, bucket, path or credential.
func Summarize(cfg *config.Config, datasets []string) ConfigSummary {
	s := ConfigSummary{Jurisdictions: []JurisdictionInfo{}, Locations: []LocationInfo{}, Tiers: []TierInfo{}, Datasets: []DatasetInfo{}, KEKs: []KEKInfo{}}
	for _, j := range cfg.Jurisdictions {
		s.Jurisdictions = append(s.Jurisdictions, JurisdictionInfo{Name: j.Name, Regions: slices.Clone(j.Regions)})
	}
	for _, l := range cfg.Locations {
		s.Locations = append(s.Locations, LocationInfo{Name: l.Name, Provider: l.Provider, Region: l.Region, Jurisdiction: l.Jurisdiction, ObjectLock: l.ObjectLock})
	}
	tiers := map[string]bool{}
	for _, name := range datasets {
		ds, _ := cfg.Dataset(name)
		pol, _ := cfg.Policy(ds.Policy)
		info := DatasetInfo{Name: ds.Name, Classification: ds.Classification, Tier: ds.Tier, Policy: ds.Policy, Home: pol.Home,
			Primary: ds.Primary, Replicas: []ReplicaRuleInfo{}}
		for _, r := range ds.Replicas {
			loc, _ := cfg.Location(r)
			mode, mech, rule, _ := pol.Decide(loc.Jurisdiction)
			info.Replicas = append(info.Replicas, ReplicaRuleInfo{Location: r, Mode: string(mode), LegalBasis: string(mech), Rule: rule})
		}
		s.Datasets = append(s.Datasets, info)
		tiers[ds.Tier] = true
	}
	for _, t := range cfg.Tiers {
		if !tiers[t.Name] {
			continue
		}
		s.Tiers = append(s.Tiers, TierInfo{
			Name: t.Name, Level: t.Level, RPOSeconds: int64(t.RPO / time.Second), RTOSeconds: int64(t.RTO / time.Second),
			BackupEverySeconds: int64(t.BackupEvery / time.Second), DrillEverySeconds: int64(t.DrillEvery / time.Second),
			Replication: string(t.Replication), KeepLast: t.Retention.KeepLast, KeepDaily: t.Retention.KeepDaily,
			KeepWeekly: t.Retention.KeepWeekly, KeepMonthly: t.Retention.KeepMonthly,
		})
	}
	for _, k := range cfg.KEKs {
		s.KEKs = append(s.KEKs, KEKInfo{Name: k.Name, Jurisdiction: k.Jurisdiction, Provider: k.Provider})
	}
	return s
}

// AuditLocation is where a region's audit log lives: the region's first location in
// configuration order, as the region's worker chooses it.
func AuditLocation(cfg *config.Config, region string) (config.Location, bool) {
	for _, l := range cfg.Locations {
		if l.Region == region {
			return l, true
		}
	}
	return config.Location{}, false
}

// copyLog verifies region's audit log and copies into the pack the part that covers the
// period: the segments after the newest signed checkpoint whose next record is older than
// the period (or all of them), and the checkpoints from that one on. found is false if the
// region has no log.
//
//nolint:gocyclo // copies segments and checkpoints in the period, each kind of gap reported
func copyLog(ctx context.Context, opts BuildOptions, region string) (AuditLog, []Record, bool, error) {
	out := AuditLog{Region: region, Segments: []string{}, Checkpoints: []string{}}
	loc, _ := AuditLocation(opts.Config, region)
	st := opts.Stores[loc.Name]
	if st == nil {
		return out, nil, false, fmt.Errorf("evidence: location %s, which holds the audit log of %s, is not open", loc.Name, region)
	}
	exists := false
	err := st.List(ctx, "audit/"+region+"/", func(providers.ObjectInfo) error {
		exists = true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return out, nil, false, fmt.Errorf("evidence: list the audit log of %s in %s: %w", region, loc.Name, err)
	}
	if !exists {
		return out, nil, false, nil
	}
	pub := opts.PublicKeys[region]
	if pub == nil {
		return out, nil, false, fmt.Errorf("evidence: no signing public key for region %s, whose audit log is in %s (give --key %s=FILE.pem, or run beside its worker's --state-dir)",
			region, loc.Name, region)
	}
	var all []Record
	rep, err := audit.Verify(ctx, st, region, pub, audit.WithEntries(func(e audit.Entry) error {
		all = append(all, Record{Region: region, Entry: e})
		return nil
	}))
	if err != nil {
		return out, nil, false, fmt.Errorf("evidence: the audit log of %s does not verify, so no evidence is made from it: %w", region, err)
	}
	anchor := chooseAnchor(rep, all, opts.Period.From)
	records := all[anchor:]
	out.AnchorSeq = uint64(anchor)
	out.Records = uint64(len(records))
	out.LastSeq, out.HeadHash = rep.Head.Seq, rep.Head.Hash.String()
	out.Unanchored = rep.Unanchored
	if len(records) > 0 {
		out.FirstSeq = records[0].Seq
	}
	sum := sha256.Sum256(pub)
	out.PublicKeySHA256 = hex.EncodeToString(sum[:])
	for _, r := range records {
		if (Period{From: opts.Period.From, To: opts.Period.To}).Contains(r.Time) {
			out.InPeriod++
		}
	}
	for _, o := range rep.Objects {
		switch {
		case !o.Checkpoint && o.Seq > out.AnchorSeq:
			out.Segments = append(out.Segments, o.Key)
		case o.Checkpoint && o.Seq >= out.AnchorSeq:
			out.Checkpoints = append(out.Checkpoints, o.Key)
		default:
			continue
		}
		if err := copyObject(ctx, st, o.Key, filepath.Join(opts.Out, filepath.FromSlash(o.Key))); err != nil {
			return out, nil, false, err
		}
	}
	pem, err := audit.EncodePublicKey(pub)
	if err != nil {
		return out, nil, false, err
	}
	if err := writeFile(filepath.Join(opts.Out, DirKeys, region+".pem"), pem); err != nil {
		return out, nil, false, err
	}
	return out, records, true, nil
}

var errStop = errors.New("stop listing")

// chooseAnchor returns the sequence number of the newest checkpoint after which the pack's
// records may start: a segment begins right after it, and the record there is older than
// from, so (record times never decrease along the log) no record of the period lies before
// it. 0 is the log's genesis.
func chooseAnchor(rep audit.Report, all []Record, from time.Time) int {
	starts := map[uint64]bool{}
	for _, o := range rep.Objects {
		if !o.Checkpoint {
			starts[o.Seq] = true
		}
	}
	best := 0
	for _, o := range rep.Objects {
		seq := o.Seq
		if !o.Checkpoint || !starts[seq+1] || seq >= uint64(len(all)) {
			continue
		}
		if all[seq].Time.Before(from) && int(seq) > best { // all[seq] is record seq+1
			best = int(seq)
		}
	}
	return best
}

func copyObject(ctx context.Context, st providers.Store, key, path string) error {
	rc, err := st.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return fmt.Errorf("evidence: read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("evidence: read %s: %w", key, err)
	}
	return writeFile(path, data)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	return nil
}

// readPlacement reads, for every selected dataset, which restore points each location
// holds, straight from the stores (manifests, or catalog entries where the policy allows
// metadata only), and what each store enforces. Every configured location is read, not only
// the dataset's own: a point found where the dataset has no business, above all where its
// policy allows nothing, is a finding.
func readPlacement(ctx context.Context, opts BuildOptions, datasets []string) ([]Placement, error) {
	cfg := opts.Config
	var out []Placement
	for _, name := range datasets {
		ds, _ := cfg.Dataset(name)
		pol, _ := cfg.Policy(ds.Policy)
		listed := append([]string{ds.Primary}, ds.Replicas...)
		for _, loc := range cfg.Locations {
			locName := loc.Name
			st := opts.Stores[locName]
			if st == nil {
				return nil, fmt.Errorf("evidence: location %s is not open", locName)
			}
			pl := Placement{Dataset: name, Location: locName, Role: RolePrimary, Region: loc.Region, Jurisdiction: loc.Jurisdiction,
				Mode: audit.CopyModeFull, Points: []string{}}
			if locName != ds.Primary {
				mode, _, _, _ := pol.Decide(loc.Jurisdiction)
				pl.Role, pl.Mode = RoleReplica, string(mode)
				if !slices.Contains(listed, locName) {
					pl.Role = RoleUnlisted
				}
			}
			caps := st.Capabilities()
			pl.WORM, pl.ServerEnforced = caps.Immutable(), caps.Immutable() && caps.ServerEnforced
			var points []repo.PointInfo
			var err error
			if pl.Mode == audit.CopyModeMetadata {
				points, err = repo.CatalogPoints(ctx, st, name)
			} else {
				points, err = repo.StorePoints(ctx, st, name)
			}
			if err != nil {
				return nil, fmt.Errorf("evidence: read the restore points of %s in %s: %w", name, locName, err)
			}
			for _, p := range points {
				pl.Points = append(pl.Points, p.ID)
			}
			if n := len(points); n > 0 {
				pl.NewestPoint, pl.NewestAsOf = points[n-1].ID, points[n-1].DataAsOf.UTC()
			}
			out = append(out, pl)
		}
	}
	return out, nil
}

// readHolds reads every legal hold of the selected datasets back from their stores, with
// each location's coverage as the store reports it.
func readHolds(ctx context.Context, opts BuildOptions, datasets []string) ([]Hold, error) {
	cfg := opts.Config
	var out []Hold
	for _, name := range datasets {
		ds, _ := cfg.Dataset(name)
		pol, _ := cfg.Policy(ds.Policy)
		var targets []holds.Target
		for i, locName := range append([]string{ds.Primary}, ds.Replicas...) {
			mode := holds.ModePrimary
			if i > 0 {
				loc, _ := cfg.Location(locName)
				m, _, _, ok := pol.Decide(loc.Jurisdiction)
				if !ok {
					continue
				}
				mode = string(m)
			}
			targets = append(targets, holds.Target{Store: opts.Stores[locName], Mode: mode})
		}
		list, err := holds.List(ctx, name, targets)
		if err != nil {
			return nil, fmt.Errorf("evidence: legal holds of %s: %w", name, err)
		}
		for _, s := range list {
			rep, err := holds.Inspect(ctx, name, s.Name, targets)
			if err != nil {
				return nil, fmt.Errorf("evidence: legal hold %s of %s: %w", s.Name, name, err)
			}
			h := Hold{Dataset: name, Name: s.Name, State: rep.State, RequestedBy: s.RequestedBy, Reason: s.Reason,
				PlacedAt: s.PlacedAt.UTC(), Ongoing: s.Ongoing, Approvers: slices.Clone(rep.Approvers), Points: slices.Clone(s.Points)}
			if rep.Release != nil {
				h.ReleasedAt = s.ReleasedAt.UTC()
			}
			for _, l := range rep.Locations {
				if !l.Recorded {
					continue
				}
				h.Coverage = append(h.Coverage, HoldCoverage{Location: l.Location, Mode: l.Mode, Objects: l.Objects, Held: l.Held, Enforcement: l.Enforcement})
			}
			out = append(out, h)
		}
	}
	return out, nil
}

// writePack writes evidence.json and index.html.
func writePack(dir string, p *Pack) error {
	data, err := MarshalPack(p)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, FileEvidence), data); err != nil {
		return err
	}
	page, err := RenderHTML(p)
	if err != nil {
		return fmt.Errorf("evidence: render %s: %w", FileHTML, err)
	}
	return writeFile(filepath.Join(dir, FileHTML), page)
}

// MarshalPack encodes p as evidence.json: indented, keys in schema order, no HTML escaping
// (the file is data, not a page).
func MarshalPack(p *Pack) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("evidence: encode %s: %w", FileEvidence, err)
	}
	return buf.Bytes(), nil
}
