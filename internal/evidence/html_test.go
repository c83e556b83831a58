package evidence

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// htmlInjection is what a hostile reason or detail might carry; the report must show it as
// text.
const htmlInjection = `<script>alert(1)</script>`

// htmlTestPack is a month of evidence for the sample deployment's shape: EU and US, three
// datasets, 20 backups (two of which missed their RPO, two of which have no known RPO), three
// drills (one missed its RTO), a denied transfer, an active hold, a KEK rotation and its
// escrow split, and controls that pass and fail. A full copy of orders-db turned up in the US,
// outside its home.
func htmlTestPack() *Pack {
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	f := func(v float64) *float64 { return &v }
	p := &Pack{
		Schema:      Schema,
		GeneratedAt: time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC),
		GeneratedBy: "compliance-officer",
		Period:      Period{From: day(1, 0), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		Datasets:    []string{"customers", "orders-db", "us-logs"},
		Seal:        Seal{ObservationsSHA256: strings.Repeat("0f", 32), Ref: "eu-west-1#239"},
		Config: ConfigSummary{
			Jurisdictions: []JurisdictionInfo{{Name: "EU", Regions: []string{"eu-west-1", "eu-central-1"}}, {Name: "US", Regions: []string{"us-east-1"}}},
			Locations: []LocationInfo{
				{Name: "eu-primary", Provider: "s3", Region: "eu-west-1", Jurisdiction: "EU", ObjectLock: true},
				{Name: "eu-secondary", Provider: "gcs", Region: "eu-central-1", Jurisdiction: "EU"},
				{Name: "us-dr", Provider: "azblob", Region: "us-east-1", Jurisdiction: "US", ObjectLock: true},
			},
			Tiers: []TierInfo{
				{Name: "tier1", Level: 1, RPOSeconds: 900, RTOSeconds: 3600, BackupEverySeconds: 300, DrillEverySeconds: 7 * 86400, Replication: "sync", KeepLast: 24, KeepDaily: 7, KeepWeekly: 4},
				{Name: "tier2", Level: 2, RPOSeconds: 4 * 3600, RTOSeconds: 8 * 3600, BackupEverySeconds: 3600, DrillEverySeconds: 14 * 86400, Replication: "async", KeepLast: 12, KeepDaily: 14},
				{Name: "tier3", Level: 3, RPOSeconds: 86400, RTOSeconds: 3 * 86400, BackupEverySeconds: 12 * 3600, DrillEverySeconds: 30 * 86400, Replication: "async", KeepLast: 7, KeepMonthly: 12},
			},
			Datasets: []DatasetInfo{
				{Name: "customers", Classification: "personal", Tier: "tier1", Policy: "eu-personal", Home: "EU", Primary: "eu-primary", Replicas: []ReplicaRuleInfo{
					{Location: "eu-secondary", Mode: "full", Rule: "home"},
					{Location: "us-dr", Mode: "encrypted", LegalBasis: "scc", Rule: "eu-personal: US encrypted"},
				}},
				{Name: "orders-db", Classification: "personal", Tier: "tier2", Policy: "eu-personal", Home: "EU", Primary: "eu-primary", Replicas: []ReplicaRuleInfo{
					{Location: "eu-secondary", Mode: "full", Rule: "home"},
				}},
				{Name: "us-logs", Classification: "internal", Tier: "tier3", Policy: "us-internal", Home: "US", Primary: "us-dr"},
			},
			KEKs: []KEKInfo{{Name: "eu-kek", Jurisdiction: "EU", Provider: "awskms"}, {Name: "us-kek", Jurisdiction: "US", Provider: "local"}},
		},
		Audit: []AuditLog{
			{Region: "eu-west-1", PublicKeySHA256: strings.Repeat("a1", 32), AnchorSeq: 88, FirstSeq: 89, LastSeq: 240, HeadHash: strings.Repeat("5e", 32), Records: 152, InPeriod: 150, Segments: []string{"audit/eu-west-1/segments/89.jsonl", "audit/eu-west-1/segments/200.jsonl"}, Checkpoints: []string{"audit/eu-west-1/heads/199.json", "audit/eu-west-1/heads/238.json"}, Unanchored: 2},
			{Region: "eu-central-1", PublicKeySHA256: strings.Repeat("b2", 32), FirstSeq: 1, LastSeq: 40, HeadHash: strings.Repeat("7c", 32), Records: 40, InPeriod: 40, Segments: []string{"audit/eu-central-1/segments/1.jsonl"}, Checkpoints: []string{"audit/eu-central-1/heads/40.json"}},
			{Region: "us-east-1", PublicKeySHA256: strings.Repeat("c3", 32), AnchorSeq: 12, FirstSeq: 13, LastSeq: 70, HeadHash: strings.Repeat("9d", 32), Records: 58, InPeriod: 55, Segments: []string{"audit/us-east-1/segments/13.jsonl"}, Checkpoints: []string{"audit/us-east-1/heads/70.json"}},
		},
		Placement: []Placement{
			{Dataset: "customers", Location: "eu-primary", Role: "primary", Region: "eu-west-1", Jurisdiction: "EU", Mode: "full", WORM: true, ServerEnforced: true, Points: []string{"cu-01", "cu-02", "cu-03"}, NewestPoint: "cu-03", NewestAsOf: day(29, 12), Refs: []string{"eu-west-1#100", "eu-west-1#101", "eu-west-1#102"}},
			{Dataset: "customers", Location: "eu-secondary", Role: "replica", Region: "eu-central-1", Jurisdiction: "EU", Mode: "full", Points: []string{"cu-02", "cu-03"}, NewestPoint: "cu-03", NewestAsOf: day(29, 12), Refs: []string{"eu-central-1#20", "eu-central-1#21"}},
			{Dataset: "customers", Location: "us-dr", Role: "replica", Region: "us-east-1", Jurisdiction: "US", Mode: "encrypted", WORM: true, Points: []string{"cu-03"}, NewestPoint: "cu-03", NewestAsOf: day(29, 12), Refs: []string{"us-east-1#40"}},
			{Dataset: "orders-db", Location: "eu-primary", Role: "primary", Region: "eu-west-1", Jurisdiction: "EU", Mode: "full", WORM: true, ServerEnforced: true, Points: []string{"od-01", "od-02"}, NewestPoint: "od-02", NewestAsOf: day(28, 6), Refs: []string{"eu-west-1#150", "eu-west-1#151"}},
			{Dataset: "orders-db", Location: "eu-secondary", Role: "replica", Region: "eu-central-1", Jurisdiction: "EU", Mode: "full", Points: []string{"od-02"}, NewestPoint: "od-02", NewestAsOf: day(28, 6), Refs: []string{"eu-central-1#30"}},
			{Dataset: "orders-db", Location: "us-dr", Role: "replica", Region: "us-east-1", Jurisdiction: "US", Mode: "full", Points: []string{"od-00"}, NewestPoint: "od-00", NewestAsOf: day(2, 6), Unbacked: []string{"od-00"}, Refs: []string{}},
			{Dataset: "us-logs", Location: "us-dr", Role: "primary", Region: "us-east-1", Jurisdiction: "US", Mode: "full", WORM: true, Points: []string{"ul-01", "ul-02"}, NewestPoint: "ul-02", NewestAsOf: day(27, 0), Refs: []string{"us-east-1#50", "us-east-1#51"}},
		},
		Transfers: []Transfer{
			{Time: day(29, 12), Dataset: "customers", Point: "cu-03", From: "eu-primary", FromJurisdiction: "EU", To: "us-dr", ToJurisdiction: "US", Outcome: "ok", Mode: "encrypted", Objects: 42, Bytes: 3 << 30, ManifestHash: strings.Repeat("e4", 32), Rule: "eu-personal: US may hold encrypted copies", LegalBasis: "scc", Refs: []string{"eu-west-1#120", "us-east-1#40"}},
			{Time: day(12, 3), Dataset: "orders-db", Point: "od-01", From: "eu-primary", FromJurisdiction: "EU", To: "us-dr", ToJurisdiction: "US", Outcome: "denied", Rule: "eu-personal: orders-db names no replica in US", Refs: []string{"eu-west-1#130"}},
		},
		Keys: Keys{
			KEKs: []KEKInfo{{Name: "eu-kek", Jurisdiction: "EU", Provider: "awskms"}, {Name: "us-kek", Jurisdiction: "US", Provider: "local"}},
			Events: []KeyEvent{
				{Time: day(1, 2), Jurisdiction: "EU", Operation: "wrap", KeyID: "eu-kek/v1", Dataset: "customers", Location: "eu-primary", Epoch: 1, Outcome: "ok", Ref: "eu-west-1#95"},
				{Time: day(10, 9), Jurisdiction: "EU", Operation: "unwrap", KeyID: "eu-kek/v1", Dataset: "customers", Location: "eu-primary", Epoch: 1, Outcome: "ok", Ref: "eu-west-1#110"},
				{Time: day(14, 10), Jurisdiction: "EU", Operation: "rotate_kek", KeyID: "eu-kek/v2", Outcome: "ok", Ref: "eu-west-1#125"},
				{Time: day(14, 11), Jurisdiction: "EU", Operation: "split", KeyID: "eu-kek/v2", Outcome: "ok", Ref: "eu-west-1#126"},
				{Time: day(15, 4), Jurisdiction: "EU", Operation: "rewrap", KeyID: "eu-kek/v2", Dataset: "customers", Location: "eu-primary", Epoch: 2, Outcome: "ok", Ref: "eu-west-1#127"},
				{Time: day(20, 8), Jurisdiction: "US", Operation: "unwrap", KeyID: "us-kek/v1", Dataset: "us-logs", Location: "us-dr", Epoch: 1, Outcome: "failed", Ref: "us-east-1#45"},
			},
			Escrow: []Escrow{{Time: day(14, 11), Jurisdiction: "EU", KeyID: "eu-kek/v2", Threshold: 3, Shares: 5, Holders: []string{"legal-counsel", "compliance-officer", "ciso", "dpo", "cfo"}, Ref: "eu-west-1#126"}},
			Access: []Access{
				{Dataset: "customers", Jurisdiction: "EU", Holders: "EU workers holding eu-kek", KeyID: "eu-kek/v1", From: day(1, 0), Until: day(14, 10), Ended: "revoke", Refs: []string{"eu-west-1#95", "eu-west-1#125"}},
				{Dataset: "customers", Jurisdiction: "EU", Holders: "EU workers holding eu-kek", KeyID: "eu-kek/v2", From: day(14, 10), Refs: []string{"eu-west-1#125"}},
				{Dataset: "us-logs", Jurisdiction: "US", Holders: "US workers holding us-kek", KeyID: "us-kek/v1", From: day(1, 0), Refs: []string{"us-east-1#15"}},
			},
		},
		Holds: []Hold{{
			Dataset: "customers", Name: "litigation-2026-17", State: "active", RequestedBy: "legal-counsel",
			Reason: "Claim 2026-17 " + htmlInjection, PlacedAt: day(18, 9), Ongoing: true,
			Approvers: []string{"compliance-officer"}, Points: []string{"cu-02", "cu-03"},
			Coverage: []HoldCoverage{
				{Location: "eu-primary", Mode: "full", Objects: 84, Held: 84, Enforcement: "server"},
				{Location: "eu-secondary", Mode: "full", Objects: 84, Held: 80, Enforcement: "drflow-adapter"},
				{Location: "us-dr", Mode: "encrypted", Objects: 42, Held: 42, Enforcement: "drflow"},
			},
			Steps: []HoldStep{
				{Time: day(18, 9), Operation: "placed", Actor: "legal-counsel", Outcome: "ok", Ref: "eu-west-1#200"},
				{Time: day(18, 10), Operation: "approved", Actor: "compliance-officer", Outcome: "ok", Ref: "eu-west-1#201"},
				{Time: day(18, 10), Operation: "applied", Location: "eu-primary", Outcome: "ok", Ref: "eu-west-1#202"},
				{Time: day(18, 11), Operation: "covered", Location: "us-dr", Outcome: "ok", Ref: "us-east-1#60"},
			},
		}},
	}

	// Backups: customers every three days (the first has no RPO, one missed 15 min),
	// orders-db every five (the first has no RPO), us-logs weekly (one missed 24 h).
	rpo := map[string][]*float64{
		"customers": {nil, f(310), f(295), f(320), f(1300), f(305), f(290), f(300), f(315), f(298)},
		"orders-db": {nil, f(3700), f(3650), f(3720), f(3600), f(3690)},
		"us-logs":   {f(43300), f(43100), f(90000), f(43200)},
	}
	every := map[string]int{"customers": 3, "orders-db": 5, "us-logs": 7}
	objective := map[string]float64{"customers": 900, "orders-db": 4 * 3600, "us-logs": 86400}
	tier := map[string]string{"customers": "tier1", "orders-db": "tier2", "us-logs": "tier3"}
	where := map[string]string{"customers": "eu-primary", "orders-db": "eu-primary", "us-logs": "us-dr"}
	region := map[string]string{"customers": "eu-west-1", "orders-db": "eu-west-1", "us-logs": "us-east-1"}
	seq := 300
	for _, ds := range p.Datasets {
		for i, v := range rpo[ds] {
			seq++
			p.Objectives.Backups = append(p.Objectives.Backups, Run{
				Time: day(1+i*every[ds], 2), Dataset: ds, Tier: tier[ds], Point: fmt.Sprintf("%s-%02d", ds[:2], i+1),
				Location: where[ds], Outcome: "ok", RPOSeconds: v, RPOObjectiveSeconds: objective[ds],
				Met: v == nil || *v <= objective[ds], Ref: fmt.Sprintf("%s#%d", region[ds], seq),
			})
		}
	}
	p.Objectives.Drills = []Run{
		{Time: day(10, 9), Dataset: "customers", Tier: "tier1", Point: "cu-04", Location: "eu-primary", Outcome: "ok", RPOSeconds: f(300), RTOSeconds: f(1200), RPOObjectiveSeconds: 900, RTOObjectiveSeconds: 3600, Met: true, Ref: "eu-west-1#110"},
		{Time: day(15, 9), Dataset: "orders-db", Tier: "tier2", Point: "od-03", Location: "eu-primary", Outcome: "ok", RPOSeconds: f(3650), RTOSeconds: f(32400), RPOObjectiveSeconds: 4 * 3600, RTOObjectiveSeconds: 8 * 3600, Met: false, Ref: "eu-west-1#140"},
		{Time: day(20, 9), Dataset: "us-logs", Tier: "tier3", Point: "us-02", Location: "us-dr", Outcome: "ok", RPOSeconds: f(43200), RTOSeconds: f(7200), RPOObjectiveSeconds: 86400, RTOObjectiveSeconds: 3 * 86400, Met: true, Ref: "us-east-1#46"},
	}
	p.Objectives.Summary = []ObjectiveShare{
		{Dataset: "customers", Tier: "tier1", Backups: 10, BackupsMet: 9, BackupShare: 0.9, Drills: 1, DrillsMet: 1, DrillShare: 1, NewestDrill: &p.Objectives.Drills[0]},
		{Dataset: "orders-db", Tier: "tier2", Backups: 6, BackupsMet: 6, BackupShare: 1, Drills: 1, DrillsMet: 0, DrillShare: 0},
		{Dataset: "us-logs", Tier: "tier3", Backups: 4, BackupsMet: 3, BackupShare: 0.75, Drills: 1, DrillsMet: 1, DrillShare: 1, NewestDrill: &p.Objectives.Drills[2]},
	}
	p.Controls = []Control{
		{ID: "backup-frequency", Title: "backups at least as frequent as the tier requires", Dataset: "customers", Status: StatusFail, Detail: "tier tier1: RPO 15m; longest gap 3d", Evidence: []string{"objectives.backups[4]"}},
		{ID: "primary-worm", Title: "the primary is WORM storage", Dataset: "customers", Status: StatusPass, Detail: "eu-primary: object lock enforced by the service", Evidence: []string{"placement[0]"}},
		{ID: "cross-region-copy", Title: "a copy in another region", Dataset: "customers", Status: StatusPass, Detail: "eu-secondary holds cu-03", Evidence: []string{"placement[1]", "eu-central-1#21"}},
		{ID: "no-plaintext-abroad", Title: "no full copy outside the home jurisdiction", Dataset: "orders-db", Status: StatusFail, Detail: "us-dr (US) holds a full copy " + htmlInjection, Evidence: []string{"placement[5]", "transfers[1]"}},
		{ID: "newest-drill-within-rto", Title: "the newest drill met the RTO", Dataset: "orders-db", Status: StatusFail, Detail: "drill of od-03 took 9h, RTO 8h", Evidence: []string{"objectives.drills[1]", "eu-west-1#140"}},
		{ID: "cross-region-copy", Title: "a copy in another region", Dataset: "us-logs", Status: StatusNotApplicable, Detail: "tier3 requires no replica", Evidence: []string{}},
		{ID: "newest-drill-within-rto", Title: "the newest drill met the RTO", Dataset: "us-logs", Status: StatusPass, Detail: "drill of us-02 took 2h, RTO 72h", Evidence: []string{"objectives.drills[2]", "us-east-1#46"}},
		{ID: "audit-chain-verifies", Title: "the audit chain verifies", Status: StatusPass, Detail: "region eu-west-1: records 89 to 240 verified", Evidence: []string{"audit[eu-west-1]"}},
	}
	return p
}

func renderHTML(t *testing.T, p *Pack) string {
	t.Helper()
	page, err := RenderHTML(p)
	require.NoError(t, err)
	return string(page)
}

// TestRenderHTMLDeterministic: a verifier re-renders the pack it decoded from evidence.json
// and compares bytes, so the same pack, and its JSON round trip, render identically, and
// rendering changes nothing in the pack.
func TestRenderHTMLDeterministic(t *testing.T) {
	p := htmlTestPack()
	before, err := json.Marshal(p)
	require.NoError(t, err)
	first := renderHTML(t, p)
	for range 3 {
		require.Equal(t, first, renderHTML(t, p))
	}
	after, err := json.Marshal(p)
	require.NoError(t, err)
	require.JSONEq(t, string(before), string(after), "rendering changed the pack")

	var decoded Pack
	require.NoError(t, json.Unmarshal(before, &decoded))
	// Decoded times may carry another location than the fixture's; the page shows UTC.
	decoded.GeneratedAt = decoded.GeneratedAt.In(time.FixedZone("CET", 3600))
	require.Equal(t, first, renderHTML(t, &decoded))

	_, err = RenderHTML(nil)
	require.Error(t, err)
}

func TestRenderHTMLSections(t *testing.T) {
	page := renderHTML(t, htmlTestPack())
	require.True(t, strings.HasPrefix(page, "<!DOCTYPE html>"), "the page starts with %.40q", page)
	for _, id := range []string{"summary", "controls", "objectives", "placement", "transfers", "keys", "holds", "audit"} {
		assert.Equal(t, 1, strings.Count(page, `id="`+id+`"`), "section %s", id)
		assert.Contains(t, page, `href="#`+id+`"`, "the header links to %s", id)
	}
	// The summary names the period, the datasets and who generated the pack.
	for _, want := range []string{"2026-11-01 00:00:00 UTC", "2026-12-01 00:00:00 UTC", "compliance-officer", "<code>orders-db</code>", "2026-12-01 06:00:00 UTC"} {
		assert.Contains(t, page, want)
	}
	summary := htmlSection(t, page, "summary")
	assert.Regexp(t, `signed by audit record <a class="ref" href="#audit-0" title="[^"]*">eu-west-1#239</a>`, summary)
	assert.Contains(t, summary, strings.Repeat("0f", 32))
	assert.NotContains(t, summary, "unsigned")
}

// TestRenderHTMLSelfContained: the page must open offline and fetch nothing.
func TestRenderHTMLSelfContained(t *testing.T) {
	page := renderHTML(t, htmlTestPack())
	lower := strings.ToLower(page)
	for _, banned := range []string{"http://", "https://", "<script", "<link", "@import", "url(", "<img", "<iframe", "<object", "<embed", " src=", "//cdn"} {
		assert.NotContains(t, lower, banned)
	}
	assert.Equal(t, 1, strings.Count(lower, "<style>"))
}

var (
	htmlChart  = regexp.MustCompile(`(?s)<svg class="chart" data-dataset="([^"]*)" data-kind="([^"]*)".*?</svg>`)
	htmlNoRuns = regexp.MustCompile(`<p class="no-runs" data-dataset="([^"]*)" data-kind="([^"]*)">`)
	htmlCircle = regexp.MustCompile(`<circle class="run( missed)?"`)
)

// htmlChartCounts counts the points the pack should plot per dataset and chart kind, and
// those among them that missed their objectives.
func htmlChartCounts(p *Pack) (points, missed map[string]int) {
	points, missed = map[string]int{}, map[string]int{}
	add := func(key string, v *float64, met bool) {
		if v != nil {
			points[key]++
			if !met {
				missed[key]++
			}
		}
	}
	for _, b := range p.Objectives.Backups {
		add(b.Dataset+"/backup-rpo", b.RPOSeconds, b.Met)
	}
	for _, d := range p.Objectives.Drills {
		add(d.Dataset+"/drill-rpo", d.RPOSeconds, d.Met)
		add(d.Dataset+"/drill-rto", d.RTOSeconds, d.Met)
	}
	return points, missed
}

func TestRenderHTMLCharts(t *testing.T) {
	p := htmlTestPack()
	page := renderHTML(t, p)
	points, missed := htmlChartCounts(p)
	// The fixture's figures, so that a broken count above cannot pass unnoticed.
	require.Equal(t, map[string]int{
		"customers/backup-rpo": 9, "customers/drill-rpo": 1, "customers/drill-rto": 1,
		"orders-db/backup-rpo": 5, "orders-db/drill-rpo": 1, "orders-db/drill-rto": 1,
		"us-logs/backup-rpo": 4, "us-logs/drill-rpo": 1, "us-logs/drill-rto": 1,
	}, points)
	require.Equal(t, map[string]int{"customers/backup-rpo": 1, "orders-db/drill-rpo": 1, "orders-db/drill-rto": 1, "us-logs/backup-rpo": 1}, missed)

	charts := htmlChart.FindAllStringSubmatch(page, -1)
	require.Len(t, charts, 9, "three charts per dataset")
	for _, c := range charts {
		key := c[1] + "/" + c[2]
		circles := htmlCircle.FindAllStringSubmatch(c[0], -1)
		red := 0
		for _, m := range circles {
			if m[1] != "" {
				red++
			}
		}
		assert.Len(t, circles, points[key], "points of %s", key)
		assert.Equal(t, missed[key], red, "missed points of %s", key)
		assert.Equal(t, 1, strings.Count(c[0], `class="objective"`), "objective line of %s", key)
		assert.Contains(t, c[0], `<polyline class="trend" points="`, key)
		assert.Equal(t, 3, strings.Count(c[0], " UTC</text>"), "time labels of %s", key)
	}
	assert.Empty(t, htmlNoRuns.FindAllString(page, -1))
	assert.Equal(t, 9+5+4+3*2, len(htmlCircle.FindAllString(page, -1)))

	// Human units: the customers' RPO axis is in minutes with its 15 min objective, the
	// orders-db RTO axis in hours.
	assert.Contains(t, page, ">objective 15 min</text>")
	assert.Contains(t, page, ">objective 8 h</text>")
	assert.Regexp(t, `text-anchor="end">\d+ min</text>`, page)
	assert.Regexp(t, `text-anchor="end">\d+ h</text>`, page)
}

// TestRenderHTMLChartsWithoutRuns: a dataset without drills gets a note instead of empty
// drill charts, and one whose backups have no known RPO a note instead of a backup chart.
func TestRenderHTMLChartsWithoutRuns(t *testing.T) {
	p := htmlTestPack()
	var drills []Run
	for _, d := range p.Objectives.Drills {
		if d.Dataset != "us-logs" {
			drills = append(drills, d)
		}
	}
	p.Objectives.Drills = drills
	for i := range p.Objectives.Backups {
		if p.Objectives.Backups[i].Dataset == "orders-db" {
			p.Objectives.Backups[i].RPOSeconds = nil
		}
	}
	page := renderHTML(t, p)
	notes := htmlNoRuns.FindAllStringSubmatch(page, -1)
	var got []string
	for _, n := range notes {
		got = append(got, n[1]+"/"+n[2])
	}
	assert.Equal(t, []string{"orders-db/backup-rpo", "us-logs/drill-rpo", "us-logs/drill-rto"}, got)
	assert.Contains(t, page, "No drills in the period.")
	assert.Contains(t, page, "No backup in the period has a known RPO")
	assert.Len(t, htmlChart.FindAllString(page, -1), 6)
}

// TestRenderHTMLEscapes: pack data is text, wherever it appears.
func TestRenderHTMLEscapes(t *testing.T) {
	p := htmlTestPack()
	p.Objectives.Drills[0].Ref = `eu-west-1#110"><script>alert(2)</script>`
	p.Datasets = append(p.Datasets, `x" onmouseover="alert(3)`)
	page := renderHTML(t, p)
	assert.NotContains(t, page, "<script")
	assert.NotContains(t, page, `" onmouseover="`)
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;", "the control's detail and the hold's reason, as text")
	assert.Equal(t, 2, strings.Count(page, "&lt;script&gt;alert(1)&lt;/script&gt;"))
	assert.Contains(t, page, "&lt;script&gt;alert(2)&lt;/script&gt;", "the drill's record, in its tooltip and its table row")
}

// TestRenderHTMLPlacement: one card per jurisdiction, each listing its copies; the full copy
// of orders-db in the US is flagged, and nothing else is.
func TestRenderHTMLPlacement(t *testing.T) {
	page := renderHTML(t, htmlTestPack())
	section := htmlSection(t, page, "placement")
	cards := regexp.MustCompile(`(?s)<div class="card" data-jurisdiction="([^"]*)">(.*?)</table>`).FindAllStringSubmatch(section, -1)
	require.Len(t, cards, 2)
	assert.Equal(t, "EU", cards[0][1])
	assert.Equal(t, "US", cards[1][1])
	assert.Contains(t, cards[0][2], "<code>eu-west-1</code>, <code>eu-central-1</code>")
	assert.Equal(t, 4, strings.Count(cards[0][2], `<tr id="placement-`))
	assert.Equal(t, 3, strings.Count(cards[1][2], `<tr id="placement-`))
	assert.Equal(t, 1, strings.Count(section, `class="violation"`))
	assert.Contains(t, section, `<tr id="placement-5" class="violation">`)
	assert.Contains(t, section, "full copy outside the dataset&#39;s home EU")
	assert.Contains(t, section, "1 without an audit record: od-00")
	assert.Contains(t, section, "<td>the service</td>")
	assert.Contains(t, section, "<td>drflow&#39;s adapter</td>")

	// The controls' evidence links to the rows it names.
	controls := htmlSection(t, page, "controls")
	assert.Contains(t, controls, `<a class="ref" href="#placement-5">placement[5]</a>`)
	assert.Contains(t, controls, `<a class="ref" href="#transfer-1">transfers[1]</a>`)
	assert.Contains(t, controls, `<a class="ref" href="#drill-1">objectives.drills[1]</a>`)
	assert.Contains(t, controls, `<a class="ref" href="#audit-0">audit[eu-west-1]</a>`)
	assert.Equal(t, 3, strings.Count(controls, `<span class="badge fail">fail</span>`))
	assert.Equal(t, 1+8, strings.Count(controls, "</tr>"), "the header and a row per control")
}

func TestRenderHTMLTransfersKeysHoldsAudit(t *testing.T) {
	page := renderHTML(t, htmlTestPack())

	transfers := htmlSection(t, page, "transfers")
	assert.Equal(t, 1, strings.Count(transfers, `class="denied"`))
	assert.Contains(t, transfers, `<span class="badge fail">denied</span>`)
	assert.Contains(t, transfers, "3 GiB")

	keys := htmlSection(t, page, "keys")
	for _, want := range []string{"<code>rotate_kek</code>", "<code>split</code>", "3 of 5", "legal-counsel, compliance-officer, ciso, dpo, cfo", "still able to decrypt", "revoke", `<span class="badge fail">failed</span>`} {
		assert.Contains(t, keys, want)
	}

	holds := htmlSection(t, page, "holds")
	for _, want := range []string{"litigation-2026-17", `<span class="badge active">active</span>`, "legal-counsel", "compliance-officer", "<code>cu-02</code>, <code>cu-03</code>", "drflow-adapter", `<td class="num alert">80</td>`, "<code>covered</code>"} {
		assert.Contains(t, holds, want)
	}

	audit := htmlSection(t, page, "audit")
	assert.Equal(t, 3, strings.Count(audit, `<tr id="audit-`))
	for _, want := range []string{"checkpoint 88", "genesis", strings.Repeat("5e", 32), `<td class="num alert">2</td>`} {
		assert.Contains(t, audit, want)
	}

	objectives := htmlSection(t, page, "objectives")
	for _, want := range []string{"90.0 %", "75.0 %", "100.0 %", "0.0 %", "none in the period", "RTO 20 min", `<tr id="drill-1" class="failing">`} {
		assert.Contains(t, objectives, want)
	}
}

// TestRenderHTMLEmptyPack: a pack with nothing in it (no datasets, runs or logs) still
// renders every section, saying so.
func TestRenderHTMLEmptyPack(t *testing.T) {
	p := &Pack{Schema: Schema, Period: Period{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}}
	page := renderHTML(t, p)
	for _, id := range []string{"summary", "controls", "objectives", "placement", "transfers", "keys", "holds", "audit"} {
		assert.Contains(t, page, `<section id="`+id+`">`)
	}
	for _, want := range []string{"No transfers in the period.", "No legal holds.", "The pack carries no audit log.", "No key events in the period."} {
		assert.Contains(t, page, want)
	}
	assert.Empty(t, htmlChart.FindAllString(page, -1))
	assert.Contains(t, htmlSection(t, page, "summary"), `<span class="badge fail">unsigned</span>`)

	// A dataset with runs but no place in the pack's list is still plotted.
	f := 120.0
	p.Objectives.Backups = []Run{{Time: p.Period.From.Add(time.Hour), Dataset: "stray", RPOSeconds: &f, RPOObjectiveSeconds: 900, Met: true}}
	page = renderHTML(t, p)
	assert.Len(t, htmlChart.FindAllString(page, -1), 1)
	assert.Len(t, htmlNoRuns.FindAllString(page, -1), 2)
}

// TestRenderHTMLSize: a busy month (1,000 backups, 50 drills) stays a page a browser opens
// at once.
func TestRenderHTMLSize(t *testing.T) {
	p := htmlTestPack()
	p.Objectives.Backups, p.Objectives.Drills = nil, nil
	start := p.Period.From
	for i := range 1000 {
		ds := p.Datasets[i%3]
		rpo := 250 + float64(i%97)*9
		var v *float64
		if i >= 3 {
			v = &rpo
		}
		p.Objectives.Backups = append(p.Objectives.Backups, Run{
			Time: start.Add(time.Duration(i) * 43 * time.Minute), Dataset: ds, Tier: "tier1", Point: fmt.Sprintf("pt-%04d", i),
			Location: "eu-primary", Outcome: "ok", RPOSeconds: v, RPOObjectiveSeconds: 900, Met: rpo <= 900, Ref: fmt.Sprintf("eu-west-1#%d", 1000+i),
		})
	}
	for i := range 50 {
		rpo, rto := 300+float64(i)*7, 1800+float64(i)*97
		p.Objectives.Drills = append(p.Objectives.Drills, Run{
			Time: start.Add(time.Duration(i) * 14 * time.Hour), Dataset: p.Datasets[i%3], Tier: "tier1", Point: fmt.Sprintf("pt-%04d", i*20),
			Location: "eu-primary", Outcome: "ok", RPOSeconds: &rpo, RTOSeconds: &rto, RPOObjectiveSeconds: 900, RTOObjectiveSeconds: 3600,
			Met: rto <= 3600, Ref: fmt.Sprintf("eu-west-1#%d", 3000+i),
		})
	}
	page := renderHTML(t, p)
	t.Logf("1,000 backups and 50 drills: %d bytes", len(page))
	assert.Less(t, len(page), 2<<20)
	assert.Equal(t, 997+50+50, len(htmlCircle.FindAllString(page, -1)))
}

// htmlSection returns the section with the given id.
func htmlSection(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<section id="` + id + `">.*?</section>`).FindString(page)
	require.NotEmpty(t, m, "section %s", id)
	return m
}
