package webui

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/evidence"
	"github.com/drflow/drflow/internal/testservers"
)

// TestEvidenceReportInChromium is what an auditor does with an evidence pack: open its
// index.html from disk, offline, in a browser. Every chart must be drawn with every run on
// it, the controls table must show the failing controls, and the page must fetch nothing.
func TestEvidenceReportInChromium(t *testing.T) {
	driver := testservers.ChromeDriver(t)
	p, want := evidenceReportPack()
	page, err := evidence.RenderHTML(p)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), evidence.FileHTML)
	require.NoError(t, os.WriteFile(path, page, 0o644))

	b := newBrowser(t, driver)
	b.open((&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String())
	b.waitFor("the report, loaded", uiWait, `return document.readyState === "complete" && document.getElementById("audit") ? "yes" : "";`)

	var charts []struct {
		Dataset, Kind string
		Width, Height float64
		Runs, Missed  int
		// Drawn counts the run circles that have a size on the page.
		Drawn int
	}
	require.NoError(t, evalJSON(b, &charts, `
		return JSON.stringify([...document.querySelectorAll("svg.chart")].map(svg => {
			const r = svg.getBoundingClientRect();
			const runs = [...svg.querySelectorAll("circle.run")];
			return {Dataset: svg.dataset.dataset, Kind: svg.dataset.kind, Width: r.width, Height: r.height,
				Runs: runs.length, Missed: svg.querySelectorAll("circle.run.missed").length,
				Drawn: runs.filter(c => { const b = c.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length};
		}));`))
	require.Len(t, charts, len(want.charts), "one chart per dataset and kind")
	total := 0
	for _, c := range charts {
		key := c.Dataset + "/" + c.Kind
		assert.Positive(t, c.Width, "width of %s", key)
		assert.Positive(t, c.Height, "height of %s", key)
		assert.Equal(t, want.charts[key], c.Runs, "runs on %s", key)
		assert.Equal(t, c.Runs, c.Drawn, "runs drawn on %s", key)
		assert.Equal(t, want.missed[key], c.Missed, "missed runs on %s", key)
		total += c.Runs
	}
	var circles int
	require.NoError(t, b.eval(&circles, `return document.querySelectorAll("circle.run").length;`))
	assert.Equal(t, want.runs, circles)
	assert.Equal(t, want.runs, total)

	// A missed run is red, a met one is not.
	var fills []string
	require.NoError(t, b.eval(&fills, `return [document.querySelector("circle.run.missed"), document.querySelector("circle.run:not(.missed)")]
		.map(c => getComputedStyle(c).fill);`))
	assert.Equal(t, []string{"rgb(211, 47, 47)", "rgb(31, 95, 160)"}, fills)

	var controls struct{ Rows, Fail, Pass int }
	require.NoError(t, evalJSON(b, &controls, `return JSON.stringify({
		Rows: document.querySelectorAll("#controls table tbody tr").length,
		Fail: document.querySelectorAll("#controls table tbody .badge.fail").length,
		Pass: document.querySelectorAll("#controls table tbody .badge.pass").length});`))
	assert.Equal(t, len(p.Controls), controls.Rows)
	assert.Equal(t, want.failing, controls.Fail)
	assert.Equal(t, want.passing, controls.Pass)

	var fetched int
	require.NoError(t, b.eval(&fetched, `return performance.getEntriesByType("resource").length;`))
	assert.Zero(t, fetched, "the report fetched something")

	// The header stays in view while the auditor reads the last section.
	var headerTop float64
	require.NoError(t, b.eval(&headerTop, `document.getElementById("audit").scrollIntoView(); return document.querySelector("header.top").getBoundingClientRect().top;`))
	assert.Zero(t, headerTop)
	require.NoError(t, b.eval(nil, `window.scrollTo(0, 0); return null;`))

	shot := fullPageScreenshot(t, b)
	requireRenderedPNG(t, "evidence-report.png", shot)
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, cfg.Width, 800)
	var height int
	require.NoError(t, b.eval(&height, `return document.documentElement.scrollHeight;`))
	assert.GreaterOrEqual(t, cfg.Height, height, "the screenshot shows the whole page")

	dir := os.Getenv("DRFLOW_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(testservers.RepoRoot(t), "var", "screenshots")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out := filepath.Join(dir, "evidence-report.png")
	require.NoError(t, os.WriteFile(out, shot, 0o644))
	t.Logf("screenshot: %s (%dx%d)", out, cfg.Width, cfg.Height)
}

// evalJSON runs script, which returns JSON text, and decodes that into out: WebDriver would
// return the objects themselves, but with JavaScript's names and numbers as it likes.
func evalJSON(b *browser, out any, script string) error {
	var raw string
	if err := b.eval(&raw, script); err != nil {
		return err
	}
	return json.Unmarshal([]byte(raw), out)
}

// fullPageScreenshot returns a PNG of the whole page, not just the window: WebDriver's own
// screenshot stops at the viewport, so it asks Chromium through chromedriver's DevTools
// passthrough.
func fullPageScreenshot(t *testing.T, b *browser) []byte {
	t.Helper()
	var size struct{ Width, Height float64 }
	require.NoError(t, evalJSON(b, &size, `return JSON.stringify({
		Width: document.documentElement.scrollWidth, Height: document.documentElement.scrollHeight});`))
	var shot struct {
		Data string `json:"data"`
	}
	err := b.do(http.MethodPost, b.session+"/goog/cdp/execute", map[string]any{
		"cmd": "Page.captureScreenshot",
		"params": map[string]any{
			"format": "png", "captureBeyondViewport": true,
			"clip": map[string]any{"x": 0, "y": 0, "width": size.Width, "height": size.Height, "scale": 1},
		},
	}, &shot)
	require.NoError(t, err, "full-page screenshot")
	raw, err := base64.StdEncoding.DecodeString(shot.Data)
	require.NoError(t, err)
	return raw
}

// evidenceReportWant is what the page must show of evidenceReportPack's pack.
type evidenceReportWant struct {
	charts, missed   map[string]int // runs plotted per "<dataset>/<kind>", and those missed
	runs             int
	failing, passing int
}

// evidenceReportPack is a month of evidence for two jurisdictions (EU, US) and three
// datasets: 20 backups (the first of each dataset has no RPO yet, two miss it), three drills
// (one misses its RTO), a denied transfer, an active legal hold, a KEK rotation with its
// escrow split, and controls that pass and fail.
func evidenceReportPack() (*evidence.Pack, evidenceReportWant) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	at := func(days, hours int) time.Time { return from.Add(time.Duration(days*24+hours) * time.Hour) }
	f := func(v float64) *float64 { return &v }
	type dataset struct {
		name, tier, home, primary, region string
		rpo, rto                          float64
		backups                           []float64 // 0: unknown
		drillRPO, drillRTO                float64
	}
	datasets := []dataset{
		{"customers", "tier1", "EU", "eu-primary", "eu-west-1", 900, 3600, []float64{0, 310, 295, 320, 1300, 305, 290, 300, 315, 298}, 300, 1200},
		{"orders-db", "tier2", "EU", "eu-primary", "eu-west-1", 4 * 3600, 8 * 3600, []float64{0, 3700, 3650, 3720, 3600, 3690}, 3650, 32400},
		{"us-logs", "tier3", "US", "us-dr", "us-east-1", 86400, 3 * 86400, []float64{0, 43100, 90000, 43200}, 43200, 7200},
	}
	p := &evidence.Pack{
		Schema: evidence.Schema, GeneratedAt: at(30, 6), GeneratedBy: "compliance-officer",
		Period: evidence.Period{From: from, To: at(30, 0)},
		Seal:   evidence.Seal{ObservationsSHA256: "0f0f0f0f", Ref: "eu-west-1#519"},
		Config: evidence.ConfigSummary{
			Jurisdictions: []evidence.JurisdictionInfo{{Name: "EU", Regions: []string{"eu-west-1", "eu-central-1"}}, {Name: "US", Regions: []string{"us-east-1"}}},
			Locations: []evidence.LocationInfo{
				{Name: "eu-primary", Provider: "s3", Region: "eu-west-1", Jurisdiction: "EU", ObjectLock: true},
				{Name: "eu-secondary", Provider: "gcs", Region: "eu-central-1", Jurisdiction: "EU"},
				{Name: "us-dr", Provider: "azblob", Region: "us-east-1", Jurisdiction: "US", ObjectLock: true},
			},
			KEKs: []evidence.KEKInfo{{Name: "eu-kek", Jurisdiction: "EU", Provider: "awskms"}, {Name: "us-kek", Jurisdiction: "US", Provider: "local"}},
		},
		Audit: []evidence.AuditLog{
			{Region: "eu-west-1", AnchorSeq: 88, FirstSeq: 89, LastSeq: 520, HeadHash: "5e5e5e5e", Records: 432, InPeriod: 430, Segments: []string{"89.jsonl", "300.jsonl"}, Checkpoints: []string{"299.json", "518.json"}, Unanchored: 2},
			{Region: "us-east-1", FirstSeq: 1, LastSeq: 510, HeadHash: "9d9d9d9d", Records: 510, InPeriod: 480, Segments: []string{"1.jsonl"}, Checkpoints: []string{"510.json"}},
		},
		Transfers: []evidence.Transfer{
			{Time: at(5, 2), Dataset: "customers", Point: "cu-02", From: "eu-primary", FromJurisdiction: "EU", To: "us-dr", ToJurisdiction: "US", Outcome: "ok", Mode: "encrypted", Objects: 42, Bytes: 3 << 30, Rule: "eu-personal: US may hold encrypted copies", LegalBasis: "scc", Refs: []string{"eu-west-1#120", "us-east-1#40"}},
			{Time: at(12, 3), Dataset: "orders-db", Point: "or-03", From: "eu-primary", FromJurisdiction: "EU", To: "us-dr", ToJurisdiction: "US", Outcome: "denied", Rule: "eu-personal: orders-db names no replica in US", Refs: []string{"eu-west-1#130"}},
		},
		Keys: evidence.Keys{
			KEKs: []evidence.KEKInfo{{Name: "eu-kek", Jurisdiction: "EU", Provider: "awskms"}, {Name: "us-kek", Jurisdiction: "US", Provider: "local"}},
			Events: []evidence.KeyEvent{
				{Time: at(0, 2), Jurisdiction: "EU", Operation: "wrap", KeyID: "eu-kek/v1", Dataset: "customers", Location: "eu-primary", Epoch: 1, Outcome: "ok", Ref: "eu-west-1#95"},
				{Time: at(13, 10), Jurisdiction: "EU", Operation: "rotate_kek", KeyID: "eu-kek/v2", Outcome: "ok", Ref: "eu-west-1#125"},
				{Time: at(13, 11), Jurisdiction: "EU", Operation: "split", KeyID: "eu-kek/v2", Outcome: "ok", Ref: "eu-west-1#126"},
			},
			Escrow: []evidence.Escrow{{Time: at(13, 11), Jurisdiction: "EU", KeyID: "eu-kek/v2", Threshold: 3, Shares: 5, Holders: []string{"legal-counsel", "compliance-officer", "ciso", "dpo", "cfo"}, Ref: "eu-west-1#126"}},
			Access: []evidence.Access{
				{Dataset: "customers", Jurisdiction: "EU", Holders: "EU workers holding eu-kek", KeyID: "eu-kek/v1", From: from, Until: at(13, 10), Ended: "revoke", Refs: []string{"eu-west-1#95", "eu-west-1#125"}},
				{Dataset: "customers", Jurisdiction: "EU", Holders: "EU workers holding eu-kek", KeyID: "eu-kek/v2", From: at(13, 10), Refs: []string{"eu-west-1#125"}},
			},
		},
		Holds: []evidence.Hold{{
			Dataset: "customers", Name: "litigation-2026-17", State: "active", RequestedBy: "legal-counsel", Reason: "Claim 2026-17",
			PlacedAt: at(17, 9), Ongoing: true, Approvers: []string{"compliance-officer"}, Points: []string{"cu-02", "cu-03"},
			Coverage: []evidence.HoldCoverage{
				{Location: "eu-primary", Mode: "full", Objects: 84, Held: 84, Enforcement: "server"},
				{Location: "us-dr", Mode: "encrypted", Objects: 42, Held: 42, Enforcement: "drflow"},
			},
			Steps: []evidence.HoldStep{
				{Time: at(17, 9), Operation: "placed", Actor: "legal-counsel", Outcome: "ok", Ref: "eu-west-1#200"},
				{Time: at(17, 10), Operation: "approved", Actor: "compliance-officer", Outcome: "ok", Ref: "eu-west-1#201"},
			},
		}},
	}
	want := evidenceReportWant{charts: map[string]int{}, missed: map[string]int{}}
	seq := 300
	for k, ds := range datasets {
		p.Datasets = append(p.Datasets, ds.name)
		p.Config.Datasets = append(p.Config.Datasets, evidence.DatasetInfo{Name: ds.name, Tier: ds.tier, Home: ds.home, Primary: ds.primary})
		p.Config.Tiers = append(p.Config.Tiers, evidence.TierInfo{Name: ds.tier, Level: k + 1, RPOSeconds: int64(ds.rpo), RTOSeconds: int64(ds.rto)})
		var points []string
		met := 0
		for i, v := range ds.backups {
			seq++
			run := evidence.Run{
				Time: at(i*30/len(ds.backups), 2+k), Dataset: ds.name, Tier: ds.tier, Point: fmt.Sprintf("%s-%02d", ds.name[:2], i+1),
				Location: ds.primary, Outcome: "ok", RPOObjectiveSeconds: ds.rpo, Met: v <= ds.rpo, Ref: fmt.Sprintf("%s#%d", ds.region, seq),
			}
			if v > 0 {
				run.RPOSeconds = f(v)
				want.charts[ds.name+"/backup-rpo"]++
				if !run.Met {
					want.missed[ds.name+"/backup-rpo"]++
				}
			}
			met += boolToInt(run.Met)
			points = append(points, run.Point)
			p.Objectives.Backups = append(p.Objectives.Backups, run)
		}
		drill := evidence.Run{
			Time: at(9+5*k, 9), Dataset: ds.name, Tier: ds.tier, Point: points[len(points)/2], Location: ds.primary, Outcome: "ok",
			RPOSeconds: f(ds.drillRPO), RTOSeconds: f(ds.drillRTO), RPOObjectiveSeconds: ds.rpo, RTOObjectiveSeconds: ds.rto,
			Met: ds.drillRPO <= ds.rpo && ds.drillRTO <= ds.rto, Ref: fmt.Sprintf("%s#%d", ds.region, 500+k),
		}
		p.Objectives.Drills = append(p.Objectives.Drills, drill)
		for _, kind := range []string{"/drill-rpo", "/drill-rto"} {
			want.charts[ds.name+kind]++
			if !drill.Met {
				want.missed[ds.name+kind]++
			}
		}
		share := evidence.ObjectiveShare{
			Dataset: ds.name, Tier: ds.tier, Backups: len(ds.backups), BackupsMet: met, BackupShare: float64(met) / float64(len(ds.backups)),
			Drills: 1, DrillsMet: boolToInt(drill.Met), DrillShare: float64(boolToInt(drill.Met)),
		}
		if drill.Met {
			share.NewestDrill = &drill
		}
		p.Objectives.Summary = append(p.Objectives.Summary, share)
		p.Placement = append(p.Placement, evidence.Placement{
			Dataset: ds.name, Location: ds.primary, Role: "primary", Region: ds.region, Jurisdiction: ds.home, Mode: "full",
			WORM: true, ServerEnforced: ds.home == "EU", Points: points, NewestPoint: points[len(points)-1], NewestAsOf: at(29, 2), Refs: []string{fmt.Sprintf("%s#%d", ds.region, seq)},
		})
		status := evidence.StatusPass
		if !drill.Met {
			status = evidence.StatusFail
		}
		p.Controls = append(p.Controls,
			evidence.Control{ID: "newest-drill-within-rto", Title: "the newest drill met the RTO", Dataset: ds.name, Status: status, Detail: "RTO " + fmt.Sprint(ds.drillRTO) + " s against " + fmt.Sprint(ds.rto) + " s", Evidence: []string{fmt.Sprintf("objectives.drills[%d]", k), drill.Ref}},
			evidence.Control{ID: "primary-worm", Title: "the primary is WORM storage", Dataset: ds.name, Status: evidence.StatusPass, Detail: ds.primary + " enforces object lock", Evidence: []string{fmt.Sprintf("placement[%d]", k)}},
		)
	}
	// orders-db turned up in full in the US, outside its home.
	p.Placement = append(p.Placement, evidence.Placement{
		Dataset: "orders-db", Location: "us-dr", Role: "replica", Region: "us-east-1", Jurisdiction: "US", Mode: "full",
		Points: []string{"or-00"}, NewestPoint: "or-00", NewestAsOf: at(1, 6), Unbacked: []string{"or-00"}, Refs: []string{},
	})
	p.Controls = append(p.Controls,
		evidence.Control{ID: "no-plaintext-abroad", Title: "no full copy outside the home jurisdiction", Dataset: "orders-db", Status: evidence.StatusFail, Detail: "us-dr (US) holds a full copy", Evidence: []string{fmt.Sprintf("placement[%d]", len(p.Placement)-1), "transfers[1]"}},
		evidence.Control{ID: "cross-region-copy", Title: "a copy in another region", Dataset: "us-logs", Status: evidence.StatusNotApplicable, Detail: "tier3 requires no replica", Evidence: []string{}},
	)
	for _, c := range p.Controls {
		want.failing += boolToInt(c.Status == evidence.StatusFail)
		want.passing += boolToInt(c.Status == evidence.StatusPass)
	}
	for _, n := range want.charts {
		want.runs += n
	}
	return p, want
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
