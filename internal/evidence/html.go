package evidence

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The report is one HTML file that an auditor opens from the pack's directory, often on a
// machine without network access, and that a verifier re-renders from evidence.json and
// compares byte for byte. So it fetches nothing (styles are inline, charts are SVG drawn
// here), carries no script, and depends on nothing but the pack: no clock, no map order.
//
// Everything the template shows is prepared below as plain strings and numbers, so the
// template only iterates slices and html/template escapes every value that comes from the
// pack. No value is ever marked as safe HTML.

//go:embed report.html.tmpl
var reportTemplateText string

// reportTemplate is parsed once; a template that does not parse is a bug that every test run
// catches.
var reportTemplate = template.Must(template.New("report").Parse(reportTemplateText))

// RenderHTML renders p as the pack's human-readable report (FileHTML). The same pack always
// renders to the same bytes.
func RenderHTML(p *Pack) ([]byte, error) {
	if p == nil {
		return nil, errors.New("render the evidence report: no pack")
	}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, newReportView(p)); err != nil {
		return nil, fmt.Errorf("render the evidence report: %w", err)
	}
	return buf.Bytes(), nil
}

// Chart kinds, as in the data-kind attribute of each chart.
const (
	chartBackupRPO = "backup-rpo"
	chartDrillRPO  = "drill-rpo"
	chartDrillRTO  = "drill-rto"
)

// Chart geometry in SVG user units; the SVG scales to the width the page gives it. The backup
// chart, with a point per backup, spans the page; the two drill charts share a row.
const (
	chartWideWidth = 1000
	chartWidth     = 600
	chartHeight    = 220
	chartLeft      = 64 // room for value labels
	chartRight     = 16
	chartTop       = 14
	chartBottom    = 34 // room for time labels
)

// reportView is everything the template shows.
type reportView struct {
	Title       string
	Schema      string
	GeneratedAt string
	GeneratedBy string
	From, To    string
	Datasets    []string
	// SealHash and SealRef say whether a signed audit record vouches for the observations
	// (configuration, placement, holds); without SealRef they are the generator's word only.
	SealHash string
	SealRef  reportRef
	Counts   []reportCount
	Failing  int

	Tiers          []reportTier
	DatasetConfigs []reportDatasetConfig

	Controls   []reportControl
	Objectives []reportObjectives
	Summary    []reportShare
	Placement  []reportJurisdiction
	Transfers  []reportTransfer
	KEKs       []KEKInfo
	Escrow     []reportEscrow
	Access     []reportAccess
	KeyEvents  []reportKeyEvent
	Holds      []reportHold
	Audit      []reportAudit
}

// reportCount is one figure of the summary; Alert marks one an auditor should look at.
type reportCount struct {
	Label, Value string
	Alert        bool
}

type reportTier struct {
	Name, Level, RPO, RTO, BackupEvery, DrillEvery, Replication, Retention string
}

type reportDatasetConfig struct {
	Name, Classification, Tier, Policy, Home, Primary string
	Replicas                                          []string
}

// reportRef is one piece of evidence: an audit record or a section of the pack. Href is the
// in-page anchor that shows it, if any.
type reportRef struct {
	Text, Href, Title string
}

type reportControl struct {
	ID, Title, Dataset, Status, Badge, Detail string
	Evidence                                  []reportRef
}

// reportObjectives is one dataset's part of the objectives section.
type reportObjectives struct {
	ID, Dataset, Tier, Objectives string
	Charts                        []reportChart
	Drills                        []reportRun
	MissedBackups                 []reportRun
}

// reportChart is one SVG chart, or the note that replaces it when there is nothing to plot.
// Coordinates are preformatted numbers.
type reportChart struct {
	Dataset, Kind, Title, Note string
	Width, Height              int
	Left, Right, Top, Bottom   string
	Polyline                   string
	Runs                       []reportPoint
	Objectives                 []reportLine
	XTicks, YTicks             []reportTick
}

type reportPoint struct {
	CX, CY, Class, Title string
}

type reportLine struct {
	X1, Y1, X2, Y2, LabelX, LabelY, Label string
}

type reportTick struct {
	X, Y, Label, Anchor string
	// X2 and Y2 end the tick's grid line.
	X2, Y2 string
}

// reportRun is one run in a table.
type reportRun struct {
	ID, Time, Point, Location, Outcome, RPO, RTO, RPOObjective, RTOObjective, Status, Badge string
	Ref                                                                                     reportRef
}

type reportShare struct {
	Dataset, Tier                  string
	Backups, BackupsMet, BackupPct string
	Drills, DrillsMet, DrillPct    string
	BackupAlert, DrillAlert        bool
	NewestDrill                    string
	NewestDrillRef                 reportRef
}

type reportJurisdiction struct {
	Name      string
	Regions   []string
	Locations []string
	KEKs      []string
	Known     bool
	Rows      []reportPlacement
}

type reportPlacement struct {
	ID, Dataset, Location, Role, Region, Mode, WORM, Points, Newest, NewestAsOf string
	// Violation says why the row is red: a full copy outside the dataset's home.
	Violation string
	Unbacked  []string
	Refs      []reportRef
}

type reportTransfer struct {
	ID, Time, Dataset, Point, From, To, Outcome, Badge, Mode, Objects, Bytes string
	Rule, LegalBasis, ManifestHash                                           string
	Denied                                                                   bool
	Refs                                                                     []reportRef
}

type reportEscrow struct {
	Time, Jurisdiction, KeyID, Quorum string
	Holders                           []string
	Ref                               reportRef
}

type reportAccess struct {
	Dataset, Jurisdiction, Holders, KeyID, From, Until, Ended string
	Refs                                                      []reportRef
}

type reportKeyEvent struct {
	Time, Jurisdiction, Operation, KeyID, Dataset, Location, Epoch, Outcome, Badge string
	Ref                                                                            reportRef
}

type reportHold struct {
	ID, Dataset, Name, State, Badge, RequestedBy, Reason, PlacedAt, ReleasedAt string
	Ongoing                                                                    bool
	Approvers, Points                                                          []string
	Coverage                                                                   []reportCoverage
	Steps                                                                      []reportHoldStep
}

type reportCoverage struct {
	Location, Mode, Objects, Held, Enforcement string
	Partial                                    bool
}

type reportHoldStep struct {
	Time, Operation, Actor, Location, Outcome, Badge string
	Ref                                              reportRef
}

type reportAudit struct {
	ID, Region, PublicKey, Anchor, FirstSeq, LastSeq, HeadHash, Records, InPeriod string
	Segments, Checkpoints, Unanchored                                             string
	UnanchoredAlert                                                               bool
}

// newReportView prepares p for the template. It reads slices in their order and uses maps
// only to look things up, so the view, and with it the page, depends on p alone.
func newReportView(p *Pack) *reportView {
	r := newReportRefs(p)
	v := &reportView{
		Title:       "drflow evidence pack, " + reportDate(p.Period.From) + " to " + reportDate(p.Period.To),
		Schema:      p.Schema,
		GeneratedAt: reportTime(p.GeneratedAt),
		GeneratedBy: p.GeneratedBy,
		From:        reportTime(p.Period.From),
		To:          reportTime(p.Period.To),
		Datasets:    p.Datasets,
		SealHash:    p.Seal.ObservationsSHA256,
		KEKs:        p.Keys.KEKs,
	}
	if p.Seal.Ref != "" {
		v.SealRef = r.ref(p.Seal.Ref)
	}
	if len(v.KEKs) == 0 {
		v.KEKs = p.Config.KEKs
	}
	v.Controls, v.Failing = reportControls(p, r)
	v.Counts = reportCounts(p, v.Failing)
	v.Tiers, v.DatasetConfigs = reportConfig(p)
	v.Objectives = reportAllObjectives(p, r)
	v.Summary = reportShares(p, r)
	v.Placement = reportPlacements(p, r)
	v.Transfers = reportTransfers(p, r)
	v.Escrow, v.Access, v.KeyEvents = reportKeys(p, r)
	v.Holds = reportHolds(p, r)
	v.Audit = reportAuditLogs(p)
	return v
}

func reportCounts(p *Pack, failing int) []reportCount {
	pass, na := 0, 0
	for _, c := range p.Controls {
		switch c.Status {
		case StatusPass:
			pass++
		case StatusNotApplicable:
			na++
		}
	}
	missedBackups, missedDrills := 0, 0
	for _, b := range p.Objectives.Backups {
		missedBackups += reportCount01(!b.Met)
	}
	for _, d := range p.Objectives.Drills {
		missedDrills += reportCount01(!d.Met)
	}
	denied := 0
	for _, t := range p.Transfers {
		denied += reportCount01(t.Outcome == "denied")
	}
	active := 0
	for _, h := range p.Holds {
		active += reportCount01(h.State == "active")
	}
	var records, unanchored uint64
	for _, a := range p.Audit {
		records += a.Records
		unanchored += a.Unanchored
	}
	n := strconv.Itoa
	return []reportCount{
		{Label: "Controls passing", Value: n(pass) + " of " + n(len(p.Controls))},
		{Label: "Controls failing", Value: n(failing), Alert: failing > 0},
		{Label: "Controls not applicable", Value: n(na)},
		{Label: "Datasets", Value: n(len(p.Datasets))},
		{Label: "Backups (missed objective)", Value: n(len(p.Objectives.Backups)) + " (" + n(missedBackups) + ")", Alert: missedBackups > 0},
		{Label: "Drills (missed objective)", Value: n(len(p.Objectives.Drills)) + " (" + n(missedDrills) + ")", Alert: missedDrills > 0},
		{Label: "Copies observed", Value: n(len(p.Placement))},
		{Label: "Transfers (denied)", Value: n(len(p.Transfers)) + " (" + n(denied) + ")", Alert: denied > 0},
		{Label: "Key events", Value: n(len(p.Keys.Events))},
		{Label: "Legal holds (active)", Value: n(len(p.Holds)) + " (" + n(active) + ")"},
		{Label: "Audit logs (records)", Value: n(len(p.Audit)) + " (" + strconv.FormatUint(records, 10) + ")"},
		{Label: "Records not yet checkpointed", Value: strconv.FormatUint(unanchored, 10), Alert: unanchored > 0},
	}
}

func reportConfig(p *Pack) ([]reportTier, []reportDatasetConfig) {
	tiers := make([]reportTier, 0, len(p.Config.Tiers))
	for _, t := range p.Config.Tiers {
		var keep []string
		for _, k := range []struct {
			n    int
			what string
		}{{t.KeepLast, "last"}, {t.KeepDaily, "daily"}, {t.KeepWeekly, "weekly"}, {t.KeepMonthly, "monthly"}} {
			if k.n > 0 {
				keep = append(keep, strconv.Itoa(k.n)+" "+k.what)
			}
		}
		tiers = append(tiers, reportTier{
			Name: t.Name, Level: strconv.Itoa(t.Level),
			RPO: reportSetting(t.RPOSeconds), RTO: reportSetting(t.RTOSeconds),
			BackupEvery: reportSetting(t.BackupEverySeconds), DrillEvery: reportSetting(t.DrillEverySeconds),
			Replication: t.Replication, Retention: strings.Join(keep, ", "),
		})
	}
	datasets := make([]reportDatasetConfig, 0, len(p.Config.Datasets))
	for _, d := range p.Config.Datasets {
		c := reportDatasetConfig{Name: d.Name, Classification: d.Classification, Tier: d.Tier, Policy: d.Policy, Home: d.Home, Primary: d.Primary}
		for _, rr := range d.Replicas {
			s := rr.Location + ": " + rr.Mode
			if rr.LegalBasis != "" {
				s += " (" + rr.LegalBasis + ")"
			}
			c.Replicas = append(c.Replicas, s)
		}
		datasets = append(datasets, c)
	}
	return tiers, datasets
}

func reportControls(p *Pack, r *reportRefs) ([]reportControl, int) {
	failing := 0
	controls := make([]reportControl, 0, len(p.Controls))
	for _, c := range p.Controls {
		failing += reportCount01(c.Status == StatusFail)
		controls = append(controls, reportControl{
			ID: c.ID, Title: c.Title, Dataset: c.Dataset, Status: c.Status, Badge: reportBadge(c.Status),
			Detail: c.Detail, Evidence: r.refs(c.Evidence),
		})
	}
	return controls, failing
}

// reportDatasetOrder is the pack's datasets, then any other dataset that a run names, in the
// order the runs name them, so that no run goes unplotted.
func reportDatasetOrder(p *Pack) []string {
	seen := map[string]bool{}
	var names []string
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, d := range p.Datasets {
		add(d)
	}
	for _, runs := range [][]Run{p.Objectives.Backups, p.Objectives.Drills} {
		for _, run := range runs {
			add(run.Dataset)
		}
	}
	return names
}

func reportAllObjectives(p *Pack, r *reportRefs) []reportObjectives {
	axis := reportTimeAxis(p)
	tierOf := map[string]string{}
	for _, d := range p.Config.Datasets {
		tierOf[d.Name] = d.Tier
	}
	tiers := map[string]TierInfo{}
	for _, t := range p.Config.Tiers {
		tiers[t.Name] = t
	}
	var out []reportObjectives
	for k, name := range reportDatasetOrder(p) {
		backups, _ := reportRunsOf(p.Objectives.Backups, name)
		drills, drillIndex := reportRunsOf(p.Objectives.Drills, name)
		o := reportObjectives{ID: "objectives-" + strconv.Itoa(k), Dataset: name, Tier: tierOf[name]}
		if t, ok := tiers[o.Tier]; ok {
			o.Objectives = "RPO " + reportSeconds(float64(t.RPOSeconds)) + ", RTO " + reportSeconds(float64(t.RTOSeconds))
		}
		o.Charts = []reportChart{
			newReportChart(name, chartBackupRPO, axis, backups, len(backups) > 0),
			newReportChart(name, chartDrillRPO, axis, drills, len(drills) > 0),
			newReportChart(name, chartDrillRTO, axis, drills, len(drills) > 0),
		}
		for n, d := range drills {
			row := newReportRun(d, r)
			row.ID = "drill-" + strconv.Itoa(drillIndex[n])
			o.Drills = append(o.Drills, row)
		}
		for _, b := range backups {
			if !b.Met {
				o.MissedBackups = append(o.MissedBackups, newReportRun(b, r))
			}
		}
		out = append(out, o)
	}
	return out
}

// reportRunsOf returns dataset's runs oldest first, with their indexes in runs; runs of the
// same time keep the pack's order.
func reportRunsOf(runs []Run, dataset string) ([]Run, []int) {
	var index []int
	for i, run := range runs {
		if run.Dataset == dataset {
			index = append(index, i)
		}
	}
	sort.SliceStable(index, func(a, b int) bool { return runs[index[a]].Time.Before(runs[index[b]].Time) })
	mine := make([]Run, len(index))
	for k, i := range index {
		mine[k] = runs[i]
	}
	return mine, index
}

func newReportRun(run Run, r *reportRefs) reportRun {
	status := "met"
	if !run.Met {
		status = "missed"
	}
	out := reportRun{
		Time: reportTime(run.Time), Point: run.Point, Location: run.Location, Outcome: run.Outcome,
		RPO: "unknown", RTO: "–", RPOObjective: reportSeconds(run.RPOObjectiveSeconds), RTOObjective: "–",
		Status: status, Badge: reportBadge(status), Ref: r.ref(run.Ref),
	}
	if run.RPOSeconds != nil {
		out.RPO = reportSeconds(*run.RPOSeconds)
	}
	if run.RTOSeconds != nil {
		out.RTO = reportSeconds(*run.RTOSeconds)
	}
	if run.RTOObjectiveSeconds > 0 {
		out.RTOObjective = reportSeconds(run.RTOObjectiveSeconds)
	}
	return out
}

// reportAxis is the time range every chart shares: the pack's period, widened to any run
// outside it, so that charts of different datasets line up.
type reportAxis struct{ from, to time.Time }

func reportTimeAxis(p *Pack) reportAxis {
	a := reportAxis{from: p.Period.From, to: p.Period.To}
	for _, runs := range [][]Run{p.Objectives.Backups, p.Objectives.Drills} {
		for _, run := range runs {
			if a.from.IsZero() || run.Time.Before(a.from) {
				a.from = run.Time
			}
			if a.to.IsZero() || run.Time.After(a.to) {
				a.to = run.Time
			}
		}
	}
	if !a.to.After(a.from) {
		a.to = a.from.Add(time.Hour)
	}
	return a
}

// x is the horizontal position of t on a chart width units wide.
func (a reportAxis) x(t time.Time, width int) float64 {
	span := a.to.Sub(a.from).Seconds()
	return chartLeft + t.Sub(a.from).Seconds()/span*float64(width-chartLeft-chartRight)
}

// newReportChart plots one measure of runs (oldest first) against time, with the objective
// each run was judged against. hadRuns says whether the dataset had runs of the kind at all, to
// tell "no drills" from "no drill measured this".
//
//nolint:gocyclo,funlen // axis scaling with the edge cases of empty, single and flat series
func newReportChart(dataset, kind string, axis reportAxis, runs []Run, hadRuns bool) reportChart {
	type sample struct {
		run       Run
		value, ob float64
	}
	var samples []sample
	measure := "RPO"
	for _, run := range runs {
		value, objective := run.RPOSeconds, run.RPOObjectiveSeconds
		if kind == chartDrillRTO {
			measure = "RTO"
			value, objective = run.RTOSeconds, run.RTOObjectiveSeconds
		}
		// An unknown figure (a dataset's first backup, a drill that restored nothing) has no
		// place on the chart; the tables still list the run.
		if value == nil || math.IsNaN(*value) || math.IsInf(*value, 0) {
			continue
		}
		if math.IsNaN(objective) || math.IsInf(objective, 0) || objective < 0 {
			objective = 0 // no line rather than a broken scale
		}
		samples = append(samples, sample{run: run, value: max(*value, 0), ob: objective})
	}
	width := chartWidth
	if kind == chartBackupRPO {
		width = chartWideWidth
	}
	c := reportChart{Dataset: dataset, Kind: kind, Width: width, Height: chartHeight}
	switch kind {
	case chartBackupRPO:
		c.Title = "Backups: RPO at each backup"
	case chartDrillRPO:
		c.Title = "Drills: RPO of the restored point"
	default:
		c.Title = "Drills: RTO (time to restore)"
	}
	if len(samples) == 0 {
		switch {
		case kind == chartBackupRPO && !hadRuns:
			c.Note = "No backups in the period."
		case kind == chartBackupRPO:
			c.Note = "No backup in the period has a known RPO (a dataset's first backup has none)."
		case !hadRuns:
			c.Note = "No drills in the period."
		default:
			c.Note = "No drill in the period measured its " + measure + "."
		}
		return c
	}

	top := 0.0
	for _, s := range samples {
		top = max(top, s.value, s.ob)
	}
	scale := newReportScale(top * 1.05)
	plotBottom := float64(chartHeight - chartBottom)
	y := func(v float64) float64 {
		return plotBottom - v/scale.top*(plotBottom-chartTop)
	}
	c.Left, c.Right = reportNum(chartLeft), reportNum(float64(width-chartRight))
	c.Top, c.Bottom = reportNum(chartTop), reportNum(plotBottom)

	var line strings.Builder
	for i, s := range samples {
		cx, cy := reportNum(axis.x(s.run.Time, width)), reportNum(y(s.value))
		if i > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(cx + "," + cy)
		class, verdict := "run", "met"
		if !s.run.Met {
			class, verdict = "run missed", "missed"
		}
		title := reportTime(s.run.Time) + ": " + measure + " " + reportSeconds(s.value)
		if s.ob > 0 {
			title += " (objective " + reportSeconds(s.ob) + ")"
		}
		title += ", " + verdict
		if s.run.Ref != "" {
			title += ", " + s.run.Ref
		}
		c.Runs = append(c.Runs, reportPoint{CX: cx, CY: cy, Class: class, Title: title})
	}
	c.Polyline = line.String()

	// The objective is the tier's at each run: a step where it changed during the period.
	// Each stretch runs from the first run judged against it to the next change.
	for i := 0; i < len(samples); {
		j := i
		for j < len(samples) && samples[j].ob == samples[i].ob {
			j++
		}
		if ob := samples[i].ob; ob > 0 {
			x1, x2 := float64(chartLeft), float64(width-chartRight)
			if i > 0 {
				x1 = axis.x(samples[i].run.Time, width)
			}
			if j < len(samples) {
				x2 = axis.x(samples[j].run.Time, width)
			}
			yo := reportNum(y(ob))
			c.Objectives = append(c.Objectives, reportLine{
				X1: reportNum(x1), Y1: yo, X2: reportNum(x2), Y2: yo,
				LabelX: reportNum(x1 + 4), LabelY: reportNum(y(ob) - 4), Label: "objective " + reportSeconds(ob),
			})
		}
		i = j
	}

	for k := 0; k <= scale.steps; k++ {
		v := float64(k) * scale.step
		yv := reportNum(y(v * scale.perUnit))
		c.YTicks = append(c.YTicks, reportTick{
			X: reportNum(chartLeft - 6), Y: yv, X2: reportNum(float64(width - chartRight)), Y2: yv,
			Label: reportTrim(v) + " " + scale.unit, Anchor: "end",
		})
	}
	ticks := []struct {
		t      time.Time
		anchor string
	}{{axis.from, "start"}, {axis.from.Add(axis.to.Sub(axis.from) / 2), "middle"}, {axis.to, "end"}}
	for _, tk := range ticks {
		x := reportNum(axis.x(tk.t, width))
		c.XTicks = append(c.XTicks, reportTick{
			X: x, Y: reportNum(plotBottom + 18), X2: x, Y2: reportNum(plotBottom + 4),
			Label: tk.t.UTC().Format("2006-01-02 15:04"), Anchor: tk.anchor,
		})
	}
	return c
}

// reportScale is a chart's value axis: from 0 to top seconds, labelled every step units.
type reportScale struct {
	unit          string
	perUnit, step float64
	steps         int
	top           float64 // seconds
}

// newReportScale picks the unit from the largest value and a round step (1, 2, 2.5 or 5
// times a power of ten) that divides the axis into at most five parts.
func newReportScale(largest float64) reportScale {
	s := reportScale{unit: "s", perUnit: 1}
	switch {
	case largest >= 2*3600:
		s.unit, s.perUnit = "h", 3600
	case largest >= 2*60:
		s.unit, s.perUnit = "min", 60
	}
	m := largest / s.perUnit
	if m <= 0 {
		m = 1
	}
	raw := m / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	s.step = 10 * mag
	for _, f := range []float64{1, 2, 2.5, 5} {
		if f*mag >= raw {
			s.step = f * mag
			break
		}
	}
	s.steps = int(math.Ceil(m/s.step - 1e-9))
	s.top = float64(s.steps) * s.step * s.perUnit
	return s
}

func reportShares(p *Pack, r *reportRefs) []reportShare {
	out := make([]reportShare, 0, len(p.Objectives.Summary))
	for _, s := range p.Objectives.Summary {
		row := reportShare{
			Dataset: s.Dataset, Tier: s.Tier,
			Backups: strconv.Itoa(s.Backups), BackupsMet: strconv.Itoa(s.BackupsMet), BackupPct: reportPercent(s.BackupShare, s.Backups),
			Drills: strconv.Itoa(s.Drills), DrillsMet: strconv.Itoa(s.DrillsMet), DrillPct: reportPercent(s.DrillShare, s.Drills),
			BackupAlert: s.BackupsMet < s.Backups, DrillAlert: s.DrillsMet < s.Drills || s.Drills == 0,
			NewestDrill: "none in the period",
		}
		if d := s.NewestDrill; d != nil {
			row.NewestDrill = reportTime(d.Time)
			if d.Point != "" {
				row.NewestDrill += ", " + d.Point
			}
			if d.Location != "" {
				row.NewestDrill += " at " + d.Location
			}
			if d.RTOSeconds != nil {
				row.NewestDrill += ", RTO " + reportSeconds(*d.RTOSeconds)
			}
			row.NewestDrillRef = r.ref(d.Ref)
		}
		out = append(out, row)
	}
	return out
}

// reportPercent shows a share of n runs; with no runs there is no share to show.
func reportPercent(share float64, n int) string {
	if n == 0 {
		return "–"
	}
	return strconv.FormatFloat(math.Round(share*1000)/10, 'f', 1, 64) + " %"
}

//nolint:gocyclo // one case per copy mode and jurisdiction state
func reportPlacements(p *Pack, r *reportRefs) []reportJurisdiction {
	home := map[string]string{}
	for _, d := range p.Config.Datasets {
		home[d.Name] = d.Home
	}
	var out []reportJurisdiction
	index := map[string]int{}
	for _, j := range p.Config.Jurisdictions {
		if _, dup := index[j.Name]; dup {
			continue
		}
		index[j.Name] = len(out)
		rj := reportJurisdiction{Name: j.Name, Regions: j.Regions, Known: true}
		for _, l := range p.Config.Locations {
			if l.Jurisdiction == j.Name {
				s := l.Name + " (" + l.Provider + ", " + l.Region
				if l.ObjectLock {
					s += ", object lock"
				}
				rj.Locations = append(rj.Locations, s+")")
			}
		}
		for _, k := range p.Config.KEKs {
			if k.Jurisdiction == j.Name {
				rj.KEKs = append(rj.KEKs, k.Name)
			}
		}
		out = append(out, rj)
	}
	for i, pl := range p.Placement {
		// A copy in a jurisdiction the configuration does not name still gets a card: the
		// report hides nothing the stores showed.
		k, ok := index[pl.Jurisdiction]
		if !ok {
			k = len(out)
			index[pl.Jurisdiction] = k
			out = append(out, reportJurisdiction{Name: pl.Jurisdiction})
		}
		row := reportPlacement{
			ID: "placement-" + strconv.Itoa(i), Dataset: pl.Dataset, Location: pl.Location, Role: pl.Role,
			Region: pl.Region, Mode: pl.Mode, WORM: "no", Points: strconv.Itoa(len(pl.Points)),
			Newest: pl.NewestPoint, NewestAsOf: reportMinute(pl.NewestAsOf), Unbacked: pl.Unbacked, Refs: r.refs(pl.Refs),
		}
		if row.Newest == "" {
			row.Newest = "–"
		}
		switch {
		case pl.WORM && pl.ServerEnforced:
			row.WORM = "the service"
		case pl.WORM:
			row.WORM = "drflow's adapter"
		}
		if pl.Mode == "full" {
			switch h := home[pl.Dataset]; {
			case h == "":
				row.Violation = "full copy of a dataset whose home the configuration does not name"
			case h != pl.Jurisdiction:
				row.Violation = "full copy outside the dataset's home " + h
			}
		}
		out[k].Rows = append(out[k].Rows, row)
	}
	return out
}

func reportTransfers(p *Pack, r *reportRefs) []reportTransfer {
	out := make([]reportTransfer, 0, len(p.Transfers))
	for i, t := range p.Transfers {
		out = append(out, reportTransfer{
			ID: "transfer-" + strconv.Itoa(i), Time: reportTime(t.Time), Dataset: t.Dataset, Point: t.Point,
			From: t.From + " (" + t.FromJurisdiction + ")", To: t.To + " (" + t.ToJurisdiction + ")",
			Outcome: t.Outcome, Badge: reportBadge(t.Outcome), Mode: t.Mode,
			Objects: strconv.FormatInt(t.Objects, 10), Bytes: reportBytes(t.Bytes),
			Rule: t.Rule, LegalBasis: t.LegalBasis, ManifestHash: t.ManifestHash,
			Denied: t.Outcome == "denied", Refs: r.refs(t.Refs),
		})
	}
	return out
}

func reportKeys(p *Pack, r *reportRefs) ([]reportEscrow, []reportAccess, []reportKeyEvent) {
	escrow := make([]reportEscrow, 0, len(p.Keys.Escrow))
	for _, e := range p.Keys.Escrow {
		escrow = append(escrow, reportEscrow{
			Time: reportTime(e.Time), Jurisdiction: e.Jurisdiction, KeyID: e.KeyID,
			Quorum:  strconv.Itoa(e.Threshold) + " of " + strconv.Itoa(e.Shares),
			Holders: e.Holders, Ref: r.ref(e.Ref),
		})
	}
	access := make([]reportAccess, 0, len(p.Keys.Access))
	for _, a := range p.Keys.Access {
		until := "still able to decrypt"
		if !a.Until.IsZero() {
			until = reportTime(a.Until)
		}
		access = append(access, reportAccess{
			Dataset: a.Dataset, Jurisdiction: a.Jurisdiction, Holders: a.Holders, KeyID: a.KeyID,
			From: reportTime(a.From), Until: until, Ended: a.Ended, Refs: r.refs(a.Refs),
		})
	}
	events := make([]reportKeyEvent, 0, len(p.Keys.Events))
	for _, e := range p.Keys.Events {
		epoch := ""
		if e.Epoch > 0 {
			epoch = strconv.FormatUint(uint64(e.Epoch), 10)
		}
		events = append(events, reportKeyEvent{
			Time: reportTime(e.Time), Jurisdiction: e.Jurisdiction, Operation: e.Operation, KeyID: e.KeyID,
			Dataset: e.Dataset, Location: e.Location, Epoch: epoch, Outcome: e.Outcome, Badge: reportBadge(e.Outcome),
			Ref: r.ref(e.Ref),
		})
	}
	return escrow, access, events
}

func reportHolds(p *Pack, r *reportRefs) []reportHold {
	out := make([]reportHold, 0, len(p.Holds))
	for i, h := range p.Holds {
		rh := reportHold{
			ID: "hold-" + strconv.Itoa(i), Dataset: h.Dataset, Name: h.Name, State: h.State, Badge: reportBadge(h.State),
			RequestedBy: h.RequestedBy, Reason: h.Reason, PlacedAt: reportTime(h.PlacedAt), ReleasedAt: reportTime(h.ReleasedAt),
			Ongoing: h.Ongoing, Approvers: h.Approvers, Points: h.Points,
		}
		for _, c := range h.Coverage {
			rh.Coverage = append(rh.Coverage, reportCoverage{
				Location: c.Location, Mode: c.Mode, Objects: strconv.Itoa(c.Objects), Held: strconv.Itoa(c.Held),
				Enforcement: c.Enforcement, Partial: c.Held < c.Objects,
			})
		}
		for _, s := range h.Steps {
			rh.Steps = append(rh.Steps, reportHoldStep{
				Time: reportTime(s.Time), Operation: s.Operation, Actor: s.Actor, Location: s.Location,
				Outcome: s.Outcome, Badge: reportBadge(s.Outcome), Ref: r.ref(s.Ref),
			})
		}
		out = append(out, rh)
	}
	return out
}

func reportAuditLogs(p *Pack) []reportAudit {
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	out := make([]reportAudit, 0, len(p.Audit))
	for i, a := range p.Audit {
		anchor := "genesis"
		if a.AnchorSeq > 0 {
			anchor = "checkpoint " + u(a.AnchorSeq)
		}
		out = append(out, reportAudit{
			ID: "audit-" + strconv.Itoa(i), Region: a.Region, PublicKey: a.PublicKeySHA256, Anchor: anchor,
			FirstSeq: u(a.FirstSeq), LastSeq: u(a.LastSeq), HeadHash: a.HeadHash,
			Records: u(a.Records), InPeriod: u(a.InPeriod),
			Segments: strconv.Itoa(len(a.Segments)), Checkpoints: strconv.Itoa(len(a.Checkpoints)),
			Unanchored: u(a.Unanchored), UnanchoredAlert: a.Unanchored > 0,
		})
	}
	return out
}

// reportRefs turns evidence references into links to where the page shows them: an audit
// record ("<region>#<seq>", also at the end of "since <region>#<seq>") and "audit[<region>]"
// to the region's log, "placement[2]", "transfers[2]" and "holds[2]" to their rows,
// "objectives.drills[2]" to the drill's row, "objectives.backups[2]" to its dataset's charts
// and "keys.access" to the access table. Anything else is shown as it is.
type reportRefs struct {
	p        *Pack
	audit    map[string]int // region to its index in Pack.Audit
	datasets map[string]int // dataset to its index among the objectives' datasets
}

func newReportRefs(p *Pack) *reportRefs {
	r := &reportRefs{p: p, audit: map[string]int{}, datasets: map[string]int{}}
	for i, a := range p.Audit {
		if _, dup := r.audit[a.Region]; !dup {
			r.audit[a.Region] = i
		}
	}
	for i, name := range reportDatasetOrder(p) {
		r.datasets[name] = i
	}
	return r
}

var (
	reportSectionRef = regexp.MustCompile(`^(placement|transfers|holds|objectives\.backups|objectives\.drills|audit)\[([^\]]+)\]$`)
	reportRecordRef  = regexp.MustCompile(`(?:^|\s)([^\s#]+)#(\d+)$`)
)

//nolint:gocyclo // one case per evidence reference kind
func (r *reportRefs) ref(s string) reportRef {
	out := reportRef{Text: s}
	if s == "keys.access" {
		out.Href = "#keys-access"
		return out
	}
	if m := reportSectionRef.FindStringSubmatch(s); m != nil {
		if m[1] == "audit" {
			if i, ok := r.audit[m[2]]; ok {
				out.Href = "#audit-" + strconv.Itoa(i)
			}
			return out
		}
		i, err := strconv.Atoi(m[2])
		if err != nil || i < 0 {
			return out
		}
		switch m[1] {
		case "placement":
			if i < len(r.p.Placement) {
				out.Href = "#placement-" + m[2]
			}
		case "transfers":
			if i < len(r.p.Transfers) {
				out.Href = "#transfer-" + m[2]
			}
		case "holds":
			if i < len(r.p.Holds) {
				out.Href = "#hold-" + m[2]
			}
		case "objectives.drills":
			if i < len(r.p.Objectives.Drills) {
				out.Href = "#drill-" + m[2]
			}
		case "objectives.backups":
			// Backups are plotted, not listed: the link goes to the dataset's charts.
			if i < len(r.p.Objectives.Backups) {
				b := r.p.Objectives.Backups[i]
				out.Href = "#objectives-" + strconv.Itoa(r.datasets[b.Dataset])
				out.Title = "backup of " + b.Dataset + " at " + reportTime(b.Time)
				if b.RPOSeconds != nil {
					out.Title += ", RPO " + reportSeconds(*b.RPOSeconds)
				}
			}
		}
		return out
	}
	if m := reportRecordRef.FindStringSubmatch(s); m != nil {
		if i, ok := r.audit[m[1]]; ok {
			out.Href = "#audit-" + strconv.Itoa(i)
			out.Title = "record " + m[2] + " of the audit log of " + m[1] + " (in the pack's " + DirAudit + " directory)"
		}
	}
	return out
}

func (r *reportRefs) refs(list []string) []reportRef {
	out := make([]reportRef, 0, len(list))
	for _, s := range list {
		out = append(out, r.ref(s))
	}
	return out
}

// reportBadge is the CSS class of a status or outcome's badge.
func reportBadge(status string) string {
	switch status {
	case StatusPass, "ok", "met", "released":
		return "pass"
	case StatusFail, "failed", "denied", "missed", "refused":
		return "fail"
	case "active":
		return "active"
	default:
		return "neutral"
	}
}

// reportTime is t in UTC to the second; the zero time is "–".
func reportTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// reportMinute is reportTime for narrow cells.
func reportMinute(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func reportDate(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.UTC().Format("2006-01-02")
}

// reportSeconds shows a duration in seconds in the unit a person reads best: seconds below
// two minutes, minutes below two hours, hours above.
func reportSeconds(s float64) string {
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return "?"
	case math.Abs(s) >= 2*3600:
		return reportTrim(math.Round(s/3600*10)/10) + " h"
	case math.Abs(s) >= 2*60:
		return reportTrim(math.Round(s/60*10)/10) + " min"
	default:
		return reportTrim(math.Round(s*10)/10) + " s"
	}
}

// reportSetting shows a configured duration; 0 is one the summary does not carry.
func reportSetting(seconds int64) string {
	if seconds <= 0 {
		return "–"
	}
	return reportSeconds(float64(seconds))
}

// reportBytes shows a size in binary units.
func reportBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return reportTrim(math.Round(v*10)/10) + " " + []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
}

// reportTrim is v in the fewest digits that say it exactly: 15, 2.5.
func reportTrim(v float64) string {
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// reportNum is a coordinate to a tenth of a unit, enough on a chart a few hundred units wide.
func reportNum(v float64) string {
	return reportTrim(math.Round(v*10) / 10)
}

func reportCount01(b bool) int {
	if b {
		return 1
	}
	return 0
}
