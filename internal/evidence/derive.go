package evidence

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/audit"
)

// Record is a verified audit record of one region.
type Record struct {
	Region string
	audit.Entry
}

// Ref names the record in a pack: "<region>#<seq>".
func (r Record) Ref() string { return fmt.Sprintf("%s#%d", r.Region, r.Seq) }

// Input is everything a pack is derived from. Derive is a pure function of it, so the
// offline verifier can derive the pack again from the records inside it and the
// observations recorded in evidence.json, and compare.
type Input struct {
	GeneratedAt time.Time
	GeneratedBy string
	Period      Period
	Datasets    []string
	Config      ConfigSummary
	Audit       []AuditLog
	// Records are every record the pack carries, each region's in log order.
	Records []Record
	// Placement and Holds are what the stores held when the pack was made. Derive fills in
	// Placement's Refs and Unbacked and Hold's Approvers and Steps from the records.
	Placement []Placement
	Holds     []Hold
}

// Derive builds the pack from in.
func Derive(in Input) *Pack {
	d := newDeriver(in)
	p := &Pack{
		Schema:      Schema,
		GeneratedAt: in.GeneratedAt.UTC(),
		GeneratedBy: in.GeneratedBy,
		Period:      Period{From: in.Period.From.UTC(), To: in.Period.To.UTC()},
		Datasets:    d.datasets,
		Config:      in.Config,
		Audit:       nonNil(in.Audit),
	}
	p.Placement = d.placement(in.Placement)
	p.Transfers = d.transfers()
	p.Keys = d.keys()
	p.Holds = d.holds(in.Holds)
	p.Objectives = d.objectives()
	p.Controls = d.controls(p)
	p.Seal = Seal{ObservationsSHA256: ObservationsHash(in)}
	for i := len(d.all) - 1; i >= 0; i-- {
		if e := d.all[i].Event; e.Kind == audit.KindEvidence && e.Outcome == audit.OutcomeOK && e.ManifestHash == p.Seal.ObservationsSHA256 {
			p.Seal.Ref = d.all[i].Ref()
			break
		}
	}
	return p
}

// ObservationsHash is the hex SHA-256 of the canonical JSON of what a pack observed rather
// than derived: when and by whom it was made, its period and datasets, the configuration
// summary, and placement and holds as read from the stores (without what Derive adds).
func ObservationsHash(in Input) string {
	placement := make([]Placement, len(in.Placement))
	for i, pl := range in.Placement {
		pl.Points, pl.Refs, pl.Unbacked = nonNil(pl.Points), nil, nil
		placement[i] = pl
	}
	hs := make([]Hold, len(in.Holds))
	for i, h := range in.Holds {
		h.Points, h.Coverage, h.Approvers, h.Steps = nonNil(h.Points), nonNil(h.Coverage), nonNil(h.Approvers), nil
		hs[i] = h
	}
	data, err := json.Marshal(struct {
		GeneratedAt time.Time     `json:"generated_at"`
		GeneratedBy string        `json:"generated_by"`
		Period      Period        `json:"period"`
		Datasets    []string      `json:"datasets"`
		Config      ConfigSummary `json:"config"`
		Placement   []Placement   `json:"placement"`
		Holds       []Hold        `json:"holds"`
	}{in.GeneratedAt.UTC(), in.GeneratedBy, Period{in.Period.From.UTC(), in.Period.To.UTC()}, nonNil(in.Datasets), in.Config, placement, hs})
	if err != nil {
		return "" // the types above always encode
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

type deriver struct {
	in       Input
	period   Period
	datasets []string
	selected map[string]bool
	// all is every record, in time order (ties: region, seq); inPeriod those in the period
	// of selected datasets (or of none, for key events of a jurisdiction).
	all []Record
}

func newDeriver(in Input) *deriver {
	d := &deriver{in: in, period: in.Period, selected: map[string]bool{}}
	for _, ds := range in.Datasets {
		if !d.selected[ds] {
			d.selected[ds] = true
			d.datasets = append(d.datasets, ds)
		}
	}
	slices.Sort(d.datasets)
	if d.datasets == nil {
		d.datasets = []string{}
	}
	d.all = slices.Clone(in.Records)
	for i := range d.all {
		// Report when the event happened, not when the log sealed it (a buffered log seals
		// events later, in batches). The event's time is signed with the record.
		if t := d.all[i].Event.Time; !t.IsZero() && t.Before(d.all[i].Time) {
			d.all[i].Time = t.UTC()
		}
	}
	slices.SortStableFunc(d.all, func(a, b Record) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Region, b.Region), cmp.Compare(a.Seq, b.Seq))
	})
	return d
}

// each calls fn with the records of kind in the period that concern a selected dataset.
func (d *deriver) each(kind string, fn func(Record)) {
	for _, r := range d.all {
		if r.Event.Kind == kind && d.selected[r.Event.Dataset] && d.period.Contains(r.Time) {
			fn(r)
		}
	}
}

func (d *deriver) dataset(name string) (DatasetInfo, bool) {
	for _, ds := range d.in.Config.Datasets {
		if ds.Name == name {
			return ds, true
		}
	}
	return DatasetInfo{}, false
}

func (d *deriver) tier(name string) (TierInfo, bool) {
	for _, t := range d.in.Config.Tiers {
		if t.Name == name {
			return t, true
		}
	}
	return TierInfo{}, false
}

func (d *deriver) location(name string) (LocationInfo, bool) {
	for _, l := range d.in.Config.Locations {
		if l.Name == name {
			return l, true
		}
	}
	return LocationInfo{}, false
}

// placement backs each observed copy with the records that wrote it: the restore point's
// record at the primary, a copy's at a replica (at any time the pack covers).
func (d *deriver) placement(observed []Placement) []Placement {
	out := make([]Placement, 0, len(observed))
	for _, pl := range observed {
		pl.Points = nonNil(pl.Points)
		pl.Refs, pl.Unbacked = []string{}, nil
		for _, point := range pl.Points {
			ref := d.writer(pl, point)
			if ref == "" {
				pl.Unbacked = append(pl.Unbacked, point)
				continue
			}
			pl.Refs = append(pl.Refs, ref)
		}
		out = append(out, pl)
	}
	return out
}

// writer returns the ref of the newest successful record that put point at pl's location.
func (d *deriver) writer(pl Placement, point string) string {
	for i := len(d.all) - 1; i >= 0; i-- {
		r := d.all[i]
		e := r.Event
		if e.Outcome != audit.OutcomeOK || e.Dataset != pl.Dataset || e.Point != point {
			continue
		}
		switch {
		case pl.Role == RolePrimary && e.Kind == audit.KindRestorePoint && e.Location == pl.Location,
			pl.Role != RolePrimary && e.Kind == audit.KindCopy && e.Destination == pl.Location:
			return r.Ref()
		}
	}
	return ""
}

// Roles of a placement.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
	// RoleUnlisted is a location the dataset does not use; it should hold nothing of it.
	RoleUnlisted = "unlisted"
	// ModeDenied is the mode of a replica location the policy allows nothing; it is read
	// all the same, so that finding anything there is reported.
	ModeDenied = "denied"
)

// transfers lists the copies that crossed a jurisdiction border and the denied ones, with
// the policy decision each relied on.
func (d *deriver) transfers() []Transfer {
	out := []Transfer{}
	for i, r := range d.all {
		e := r.Event
		if !d.selected[e.Dataset] || !d.period.Contains(r.Time) {
			continue
		}
		switch {
		case e.Kind == audit.KindCopy && e.DestJurisdiction != "" && e.DestJurisdiction != e.Jurisdiction:
			t := Transfer{
				Time: r.Time, Dataset: e.Dataset, Point: e.Point, From: e.Location, FromJurisdiction: e.Jurisdiction,
				To: e.Destination, ToJurisdiction: e.DestJurisdiction, Outcome: e.Outcome, Mode: e.CopyMode,
				Objects: e.Chunks, Bytes: e.Bytes, ManifestHash: e.ManifestHash, LegalBasis: e.LegalBasis,
				Refs: []string{r.Ref()},
			}
			switch {
			case e.CopyMode == audit.CopyModeMetadata:
				t.Objects = 1 // the catalog entry; Chunks counts the point's chunks
			case t.Objects == 0:
				// Records written before copies counted their objects say it in words.
				_, _ = fmt.Sscanf(e.Reason, "%d objects copied", &t.Objects)
			}
			if e.Outcome != audit.OutcomeOK {
				t.Rule = e.Reason
			}
			if pol, ok := d.decision(i); ok {
				if t.Rule == "" {
					t.Rule = pol.Event.Reason
				}
				if t.LegalBasis == "" {
					t.LegalBasis = pol.Event.LegalBasis
				}
				t.Refs = append(t.Refs, pol.Ref())
			}
			out = append(out, t)
		case e.Kind == audit.KindPolicy && e.Outcome == audit.OutcomeDenied:
			out = append(out, Transfer{
				Time: r.Time, Dataset: e.Dataset, From: e.Location, FromJurisdiction: e.Jurisdiction,
				To: e.Destination, ToJurisdiction: e.DestJurisdiction, Outcome: e.Outcome, Rule: e.Reason,
				LegalBasis: e.LegalBasis, Refs: []string{r.Ref()},
			})
		}
	}
	return out
}

// decision finds the newest allowing policy decision before copy record i for the same
// dataset and destination.
func (d *deriver) decision(i int) (Record, bool) {
	c := d.all[i].Event
	for j := i - 1; j >= 0; j-- {
		e := d.all[j].Event
		if e.Kind == audit.KindPolicy && e.Outcome == audit.OutcomeOK && e.Dataset == c.Dataset && e.Destination == c.Destination {
			return d.all[j], true
		}
	}
	return Record{}, false
}

// homes returns the home jurisdictions of the selected datasets.
func (d *deriver) homes() map[string]bool {
	out := map[string]bool{}
	for _, name := range d.datasets {
		if ds, ok := d.dataset(name); ok {
			out[ds.Home] = true
		}
	}
	return out
}

// keys reports the key events of the selected datasets and of their home jurisdictions'
// KEKs, the escrow splits, and who could decrypt what when.
//
//nolint:gocyclo // one case per key event kind
func (d *deriver) keys() Keys {
	homes := d.homes()
	k := Keys{KEKs: []KEKInfo{}, Events: []KeyEvent{}, Escrow: []Escrow{}, Access: []Access{}, Unwraps: []UnwrapCount{}}
	for _, kek := range d.in.Config.KEKs {
		if homes[kek.Jurisdiction] {
			k.KEKs = append(k.KEKs, kek)
		}
	}
	unwraps := map[string]*UnwrapCount{}
	for _, r := range d.all {
		e := r.Event
		if e.Kind != audit.KindKey || !d.period.Contains(r.Time) {
			continue
		}
		if e.Dataset != "" && !d.selected[e.Dataset] || e.Dataset == "" && !homes[e.Jurisdiction] {
			continue
		}
		if e.Operation == "unwrap" {
			u := unwraps[e.Dataset]
			if u == nil {
				u = &UnwrapCount{Dataset: e.Dataset, Jurisdiction: e.Jurisdiction}
				unwraps[e.Dataset] = u
			}
			if e.Outcome == audit.OutcomeOK {
				u.OK++
			} else {
				u.Failed++
			}
			continue
		}
		k.Events = append(k.Events, KeyEvent{Time: r.Time, Jurisdiction: e.Jurisdiction, Operation: e.Operation, KeyID: e.KeyID,
			Dataset: e.Dataset, Location: e.Location, Epoch: e.KeyEpoch, Outcome: e.Outcome, Ref: r.Ref()})
		if e.Operation == "split" && e.Outcome == audit.OutcomeOK {
			shares := len(e.Holders)
			if shares == 0 {
				_, _ = fmt.Sscanf(e.Reason, "split into %d shares", &shares)
			}
			k.Escrow = append(k.Escrow, Escrow{Time: r.Time, Jurisdiction: e.Jurisdiction, KeyID: e.KeyID, Threshold: e.Threshold,
				Shares: shares, Holders: nonNil(e.Holders), Ref: r.Ref()})
		}
	}
	for _, name := range d.datasets {
		if u := unwraps[name]; u != nil {
			k.Unwraps = append(k.Unwraps, *u)
		}
	}
	k.Access = d.access(k.Escrow)
	return k
}

// access derives, per dataset, the periods in which each KEK version of its home
// jurisdiction could decrypt it: from the version's creation (or the pack's first record)
// until a revoke of the version or the keyring, or a shred of the dataset's keys.
//
//nolint:gocyclo // who could decrypt what, one case per key and escrow event kind
func (d *deriver) access(escrow []Escrow) []Access {
	out := []Access{}
	for _, name := range d.datasets {
		ds, ok := d.dataset(name)
		if !ok {
			continue
		}
		holders := "drflow workers in " + ds.Home
		for _, j := range d.in.Config.Jurisdictions {
			if j.Name == ds.Home {
				holders += " (" + strings.Join(j.Regions, ", ") + ")"
			}
		}
		for _, e := range escrow {
			if e.Jurisdiction == ds.Home {
				holders += fmt.Sprintf("; any %d of the %d escrow custodians of %s", e.Threshold, e.Shares, e.KeyID)
			}
		}
		var open []*Access
		var done []Access
		end := func(r Record, keyID, how string) {
			kept := open[:0]
			for _, a := range open {
				if keyID == "" || a.KeyID == keyID || strings.HasPrefix(a.KeyID, keyID+"/") {
					a.Until, a.Ended = r.Time, how
					a.Refs = append(a.Refs, r.Ref())
					done = append(done, *a)
					continue
				}
				kept = append(kept, a)
			}
			open = kept
		}
		for _, r := range d.all {
			e := r.Event
			if e.Kind != audit.KindKey || e.Jurisdiction != ds.Home || e.Outcome != audit.OutcomeOK || !r.Time.Before(d.period.To) {
				continue
			}
			switch {
			case e.Operation == "rotate_kek" && strings.Contains(e.KeyID, "/v"),
				e.Operation == "combine" && strings.Contains(e.KeyID, "/v"),
				e.Operation == "wrap" && e.Dataset == name && e.KeyID != "":
				if slices.ContainsFunc(open, func(a *Access) bool { return a.KeyID == e.KeyID }) {
					continue
				}
				open = append(open, &Access{Dataset: name, Jurisdiction: ds.Home, Holders: holders, KeyID: e.KeyID,
					From: r.Time, Refs: []string{r.Ref()}})
			case e.Operation == "revoke":
				end(r, e.KeyID, "revoke")
			case e.Operation == "shred" && e.Dataset == name:
				end(r, "", "shred")
			}
		}
		for _, a := range open {
			done = append(done, *a)
		}
		for _, a := range done {
			if !a.Until.IsZero() && a.Until.Before(d.period.From) {
				continue
			}
			out = append(out, a)
		}
	}
	return out
}

// holds adds to each hold read from the stores (with the approvers its release record names)
// its audited steps, the "approved" one naming the same approvers.
func (d *deriver) holds(observed []Hold) []Hold {
	out := make([]Hold, 0, len(observed))
	for _, h := range observed {
		if !d.selected[h.Dataset] {
			continue
		}
		h.Points, h.Coverage, h.Approvers = nonNil(h.Points), nonNil(h.Coverage), nonNil(h.Approvers)
		h.Steps = []HoldStep{}
		prefix := "legal hold " + h.Name + ":"
		for _, r := range d.all {
			e := r.Event
			if e.Kind != audit.KindHold || e.Dataset != h.Dataset || !strings.HasPrefix(e.Reason, prefix) || !r.Time.Before(d.period.To) {
				continue
			}
			h.Steps = append(h.Steps, HoldStep{Time: r.Time, Operation: e.Operation, Actor: e.Actor, Location: e.Location,
				Outcome: e.Outcome, Ref: r.Ref()})
		}
		out = append(out, h)
	}
	return out
}

// objectives lists every backup and drill run of the period from its signed record, and the
// share that met the objectives per dataset.
//
//nolint:gocyclo // one case per backup and drill outcome
func (d *deriver) objectives() Objectives {
	o := Objectives{Backups: []Run{}, Drills: []Run{}, Summary: []ObjectiveShare{}}
	run := func(r Record) Run {
		e := r.Event
		x := Run{Time: r.Time, Dataset: e.Dataset, Tier: e.Tier, Point: e.Point, Location: e.Location, Outcome: e.Outcome,
			RPOObjectiveSeconds: seconds(e.RPOObjectiveMillis), RTOObjectiveSeconds: seconds(e.RTOObjectiveMillis), Ref: r.Ref()}
		if e.RPOMillis > 0 {
			v := seconds(e.RPOMillis)
			x.RPOSeconds = &v
		}
		if e.Kind == audit.KindDrill {
			v := seconds(e.RTOMillis)
			x.RTOSeconds = &v
		}
		x.Met = e.Outcome == audit.OutcomeOK &&
			(e.RPOMillis == 0 || e.RPOObjectiveMillis == 0 || e.RPOMillis <= e.RPOObjectiveMillis) &&
			(e.Kind != audit.KindDrill || e.RTOObjectiveMillis == 0 || e.RTOMillis <= e.RTOObjectiveMillis)
		return x
	}
	d.each(audit.KindBackup, func(r Record) { o.Backups = append(o.Backups, run(r)) })
	d.each(audit.KindDrill, func(r Record) { o.Drills = append(o.Drills, run(r)) })
	for _, name := range d.datasets {
		s := ObjectiveShare{Dataset: name}
		if ds, ok := d.dataset(name); ok {
			s.Tier = ds.Tier
		}
		for _, b := range o.Backups {
			if b.Dataset == name {
				s.Backups++
				s.BackupsMet += boolInt(b.Met)
			}
		}
		for i := range o.Drills {
			x := o.Drills[i]
			if x.Dataset != name {
				continue
			}
			s.Drills++
			s.DrillsMet += boolInt(x.Met)
			if x.Outcome == audit.OutcomeOK {
				s.NewestDrill = &o.Drills[i]
			}
		}
		s.BackupShare, s.DrillShare = share(s.BackupsMet, s.Backups), share(s.DrillsMet, s.Drills)
		o.Summary = append(o.Summary, s)
	}
	return o
}

func seconds(ms int64) float64 { return float64(ms) / 1000 }

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
