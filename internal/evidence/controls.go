package evidence

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/audit"
)

// Control IDs, in the order of the table.
const (
	ControlSchedule       = "backup-frequency"
	ControlRetention      = "minimum-retention"
	ControlEncrypted      = "points-encrypted"
	ControlWORM           = "primary-worm"
	ControlCrossRegion    = "cross-region-copy"
	ControlNewestPoint    = "newest-point-within-rpo"
	ControlDrillRTO       = "newest-drill-within-rto"
	ControlNoPlainAbroad  = "no-plaintext-abroad"
	ControlAuditVerifies  = "audit-chain-verifies"
	maxEvidencePerControl = 20
)

// controls evaluates the control table from the pack's other sections. Each row names the
// sections and records it rests on; the verifier evaluates it again from the same sections.
func (d *deriver) controls(p *Pack) []Control {
	now := p.Period.To
	if p.GeneratedAt.Before(now) {
		now = p.GeneratedAt
	}
	out := []Control{}
	for _, name := range p.Datasets {
		ds, ok := d.dataset(name)
		if !ok {
			continue
		}
		tier, _ := d.tier(ds.Tier)
		c := controlCtx{d: d, p: p, ds: ds, tier: tier, now: now}
		out = append(out, c.schedule(), c.retention(), c.encrypted(), c.worm(), c.crossRegion(), c.newestPoint(),
			c.drill(), c.noPlaintextAbroad())
	}
	for _, a := range p.Audit {
		out = append(out, Control{
			ID: ControlAuditVerifies, Title: "the audit chain verifies", Status: StatusPass,
			Detail: fmt.Sprintf("region %s: records %d to %d verified (signatures, hash links, checkpoints) from anchor %d; %d after the newest checkpoint",
				a.Region, a.FirstSeq, a.LastSeq, a.AnchorSeq, a.Unanchored),
			Evidence: []string{fmt.Sprintf("audit[%s]", a.Region)},
		})
	}
	return out
}

type controlCtx struct {
	d    *deriver
	p    *Pack
	ds   DatasetInfo
	tier TierInfo
	now  time.Time
}

func (c controlCtx) row(id, title string) Control {
	return Control{ID: id, Title: title, Dataset: c.ds.Name, Evidence: []string{}}
}

func (c controlCtx) set(ctl Control, pass bool, format string, args ...any) Control {
	ctl.Status = StatusFail
	if pass {
		ctl.Status = StatusPass
	}
	ctl.Detail = fmt.Sprintf(format, args...)
	if len(ctl.Evidence) > maxEvidencePerControl {
		ctl.Evidence = append(ctl.Evidence[:maxEvidencePerControl], fmt.Sprintf("... %d more", len(ctl.Evidence)-maxEvidencePerControl))
	}
	return ctl
}

// placementOf returns the index of the dataset's placement row at location, or -1.
func (c controlCtx) placementOf(location string) int {
	return slices.IndexFunc(c.p.Placement, func(pl Placement) bool { return pl.Dataset == c.ds.Name && pl.Location == location })
}

func (c controlCtx) backups() []int {
	var out []int
	for i, b := range c.p.Objectives.Backups {
		if b.Dataset == c.ds.Name && b.Outcome == audit.OutcomeOK {
			out = append(out, i)
		}
	}
	return out
}

// schedule: the backups of the period came at least as often as the tier's RPO requires,
// and the last one is not older than that.
func (c controlCtx) schedule() Control {
	ctl := c.row(ControlSchedule, "backups at least as frequent as the tier requires")
	rpo := time.Duration(c.tier.RPOSeconds) * time.Second
	idx := c.backups()
	if len(idx) == 0 {
		return c.set(ctl, false, "tier %s requires a backup every %s at most (RPO); no successful backup in the period",
			c.tier.Name, human(rpo))
	}
	runs := c.p.Objectives.Backups
	worst, at := time.Duration(0), ""
	for k := 1; k < len(idx); k++ {
		gap := runs[idx[k]].Time.Sub(runs[idx[k-1]].Time)
		if gap > worst {
			worst, at = gap, fmt.Sprintf("objectives.backups[%d]", idx[k])
		}
	}
	last := runs[idx[len(idx)-1]]
	if tail := c.now.Sub(last.Time); tail > worst {
		worst, at = tail, "since "+last.Ref
	}
	ctl.Evidence = append(ctl.Evidence, at)
	return c.set(ctl, worst <= rpo, "tier %s: scheduled every %s, RPO %s; %d backups in the period, longest gap %s",
		c.tier.Name, human(time.Duration(c.tier.BackupEverySeconds)*time.Second), human(rpo), len(idx), human(worst))
}

// retention: the primary keeps at least the tier's keep_last points, or every point ever
// written if fewer were.
func (c controlCtx) retention() Control {
	ctl := c.row(ControlRetention, "minimum retention is met")
	i := c.placementOf(c.ds.Primary)
	if i < 0 {
		return c.set(ctl, false, "the primary %s was not read", c.ds.Primary)
	}
	written := 0
	for _, r := range c.d.all {
		if r.Event.Kind == audit.KindRestorePoint && r.Event.Outcome == audit.OutcomeOK && r.Event.Dataset == c.ds.Name &&
			r.Event.Location == c.ds.Primary && r.Time.Before(c.p.Period.To) {
			written++
		}
	}
	held := len(c.p.Placement[i].Points)
	want := min(c.tier.KeepLast, max(written, held))
	ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("placement[%d]", i))
	return c.set(ctl, held >= want, "tier %s keeps the last %d; the primary holds %d points (%d written in the records)",
		c.tier.Name, c.tier.KeepLast, held, written)
}

// encrypted: every point written in the period was sealed under a data key (epoch > 0)
// wrapped by the home KEK.
func (c controlCtx) encrypted() Control {
	ctl := c.row(ControlEncrypted, "recovery points are encrypted")
	n, bad := 0, 0
	c.d.each(audit.KindRestorePoint, func(r Record) {
		if r.Event.Dataset != c.ds.Name || r.Event.Outcome != audit.OutcomeOK {
			return
		}
		n++
		if r.Event.KeyEpoch == 0 {
			bad++
			ctl.Evidence = append(ctl.Evidence, r.Ref())
		}
	})
	if n == 0 {
		ctl.Status, ctl.Detail = StatusNotApplicable, "no restore point was written in the period"
		return ctl
	}
	if bad == 0 {
		ctl.Evidence = append(ctl.Evidence, "keys.access")
	}
	return c.set(ctl, bad == 0, "%d points written in the period, %d without a data key epoch; data keys are wrapped by the KEK of %s",
		n, bad, c.ds.Home)
}

// worm: the primary's store enforces legal holds and retention.
func (c controlCtx) worm() Control {
	ctl := c.row(ControlWORM, "the primary is on a WORM location")
	i := c.placementOf(c.ds.Primary)
	if i < 0 {
		return c.set(ctl, false, "the primary %s was not read", c.ds.Primary)
	}
	pl := c.p.Placement[i]
	ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("placement[%d]", i))
	how := "drflow's adapter enforces holds and retention"
	if pl.ServerEnforced {
		how = "the storage service enforces holds and retention"
	}
	if !pl.WORM {
		how = "the store does not enforce holds and retention"
	}
	return c.set(ctl, pl.WORM, "primary %s (%s): %s", pl.Location, providerOf(c.d, pl.Location), how)
}

func providerOf(d *deriver, location string) string {
	l, _ := d.location(location)
	return l.Provider
}

// crossRegion: where the dataset has restorable replicas in another region (or its tier is
// level 1), one of them holds a point no older than the RPO behind the primary's newest.
func (c controlCtx) crossRegion() Control {
	ctl := c.row(ControlCrossRegion, "a cross-region copy exists where the tier asks for one")
	prim, _ := c.d.location(c.ds.Primary)
	var candidates []string
	for _, r := range c.ds.Replicas {
		l, _ := c.d.location(r.Location)
		if l.Region != prim.Region && (r.Mode == audit.CopyModeFull || r.Mode == audit.CopyModeEncrypted) {
			candidates = append(candidates, r.Location)
		}
	}
	if len(candidates) == 0 && c.tier.Level != 1 {
		ctl.Status, ctl.Detail = StatusNotApplicable, fmt.Sprintf("tier %s (level %d) does not ask for one and none is configured", c.tier.Name, c.tier.Level)
		return ctl
	}
	if len(candidates) == 0 {
		return c.set(ctl, false, "tier %s is level 1, but no replica in another region may hold restorable copies", c.tier.Name)
	}
	pi := c.placementOf(c.ds.Primary)
	var newest time.Time
	if pi >= 0 {
		newest = c.p.Placement[pi].NewestAsOf
	}
	rpo := time.Duration(c.tier.RPOSeconds) * time.Second
	var found []string
	for _, loc := range candidates {
		i := c.placementOf(loc)
		if i < 0 || c.p.Placement[i].NewestPoint == "" {
			continue
		}
		ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("placement[%d]", i))
		if lag := newest.Sub(c.p.Placement[i].NewestAsOf); lag <= rpo {
			found = append(found, fmt.Sprintf("%s (%s behind the primary)", loc, human(max(lag, 0))))
		}
	}
	if len(found) == 0 {
		return c.set(ctl, false, "no replica in another region (%s) holds a point within the RPO (%s) of the primary's newest",
			strings.Join(candidates, ", "), human(rpo))
	}
	return c.set(ctl, true, "current copies in %s", strings.Join(found, ", "))
}

// newestPoint: the primary's newest point is younger than the RPO at the end of the period.
func (c controlCtx) newestPoint() Control {
	ctl := c.row(ControlNewestPoint, "the newest point is younger than the RPO")
	rpo := time.Duration(c.tier.RPOSeconds) * time.Second
	i := c.placementOf(c.ds.Primary)
	if i < 0 || c.p.Placement[i].NewestPoint == "" {
		return c.set(ctl, false, "the primary %s holds no restore point", c.ds.Primary)
	}
	pl := c.p.Placement[i]
	ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("placement[%d]", i))
	if n := len(pl.Refs); n > 0 {
		ctl.Evidence = append(ctl.Evidence, pl.Refs[n-1])
	}
	age := c.now.Sub(pl.NewestAsOf)
	return c.set(ctl, age <= rpo, "newest point %s is %s old at %s; RPO %s",
		pl.NewestPoint, human(max(age, 0)), c.now.Format(time.RFC3339), human(rpo))
}

// drill: the newest drill of the period restored and verified within the RTO.
func (c controlCtx) drill() Control {
	ctl := c.row(ControlDrillRTO, "the newest drill's restore time is within the RTO")
	last := -1
	for i, x := range c.p.Objectives.Drills {
		if x.Dataset == c.ds.Name {
			last = i
		}
	}
	rto := time.Duration(c.tier.RTOSeconds) * time.Second
	if last < 0 {
		return c.set(ctl, false, "no drill in the period (tier %s drills every %s)", c.tier.Name,
			human(time.Duration(c.tier.DrillEverySeconds)*time.Second))
	}
	x := c.p.Objectives.Drills[last]
	ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("objectives.drills[%d]", last), x.Ref)
	took := time.Duration(0)
	if x.RTOSeconds != nil {
		took = time.Duration(*x.RTOSeconds * float64(time.Second))
	}
	ok := x.Outcome == audit.OutcomeOK && took <= rto
	return c.set(ctl, ok, "drill of %s at %s: %s, restored in %s; RTO %s", x.Point, x.Time.Format(time.RFC3339), x.Outcome, human(took), human(rto))
}

// noPlaintextAbroad: outside the home jurisdiction no location holds a full copy, and no
// full copy was transferred there.
func (c controlCtx) noPlaintextAbroad() Control {
	ctl := c.row(ControlNoPlainAbroad, "no plaintext copy exists outside the home jurisdiction")
	var bad []string
	for i, pl := range c.p.Placement {
		if pl.Dataset != c.ds.Name || pl.Jurisdiction == c.ds.Home {
			continue
		}
		ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("placement[%d]", i))
		switch {
		case pl.Mode == audit.CopyModeFull:
			bad = append(bad, fmt.Sprintf("%s holds full copies in %s", pl.Location, pl.Jurisdiction))
		case len(pl.Points) > 0 && (pl.Mode == ModeDenied || pl.Role == RoleUnlisted):
			bad = append(bad, fmt.Sprintf("%s (%s, policy: %s) holds %d points in %s", pl.Location, pl.Role, pl.Mode, len(pl.Points), pl.Jurisdiction))
		}
	}
	for i, t := range c.p.Transfers {
		if t.Dataset == c.ds.Name && t.Outcome == audit.OutcomeOK && t.ToJurisdiction != c.ds.Home && t.Mode == audit.CopyModeFull {
			bad = append(bad, fmt.Sprintf("transfers[%d] copied a full copy to %s", i, t.ToJurisdiction))
			ctl.Evidence = append(ctl.Evidence, fmt.Sprintf("transfers[%d]", i))
		}
	}
	if len(bad) > 0 {
		return c.set(ctl, false, "%s", strings.Join(bad, "; "))
	}
	return c.set(ctl, true, "copies outside %s are encrypted with keys that stay in %s, or metadata only", c.ds.Home, c.ds.Home)
}

// human prints a duration in the largest unit that keeps it readable.
func human(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%.1fh", d.Hours())
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%.1fm", d.Minutes())
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}
