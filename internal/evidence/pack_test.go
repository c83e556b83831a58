package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/providers"
)

// history is a synthetic but complete deployment history written straight into a real audit
// log and real local stores: backups every 5 minutes replicated to a full copy at home, an
// encrypted copy in the US and a catalog in APAC, drills, a hold, a KEK rotation.
type history struct {
	d      testdeploy.Deployment
	stores map[string]providers.Store
	keys   map[string]ed25519.PublicKey
	signer ed25519.PrivateKey
	start  time.Time
	end    time.Time
	// Events and figures written.
	events, backups, drills int
	backupTimes, drillTimes []time.Time
	deniedAt                time.Time
}

// count returns how many of ts lie at or after from.
func count(ts []time.Time, from time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(from) {
			n++
		}
	}
	return n
}

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// writeHistory writes backups backup runs and drills drill runs (each drill after a backup,
// evenly spread) into a log of segments of segEvents records.
func writeHistory(tb testing.TB, backups, drills, segEvents int) *history {
	tb.Helper()
	ctx := context.Background()
	h := &history{d: testdeploy.New(tb, testdeploy.Options{Replicated: true, Replication: "sync"}), stores: map[string]providers.Store{},
		start: t0}
	for _, loc := range h.d.Config.Locations {
		st, err := stores.Open(ctx, loc)
		require.NoError(tb, err)
		h.stores[loc.Name] = st
	}
	signer, err := audit.LoadOrCreateSigner(filepath.Join(h.d.Root, "audit.key"))
	require.NoError(tb, err)
	h.keys = map[string]ed25519.PublicKey{"eu-west-1": audit.PublicKey(signer)}
	h.signer = signer
	// The log seals records on its own goroutine, reading the clock while this one advances it.
	var clockMu sync.Mutex
	now := t0
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		clockMu.Lock()
		now = now.Add(d)
		clockMu.Unlock()
	}
	log, err := audit.Open(ctx, audit.Options{Store: h.stores["eu-primary"], Region: "eu-west-1", Signer: signer, Clock: clock,
		Buffered: true, SegmentEvents: segEvents, CheckpointEvery: 4})
	require.NoError(tb, err)
	rec := func(e audit.Event) {
		e.Time = now
		require.NoError(tb, log.Record(ctx, e))
		h.events++
	}
	put := func(loc, key string) {
		_, err := h.stores[loc].Put(ctx, key, strings.NewReader("x"), providers.PutOptions{})
		require.NoError(tb, err)
	}
	rec(audit.Event{Kind: audit.KindKey, Outcome: audit.OutcomeOK, Actor: "drflow worker", Jurisdiction: "EU", Operation: "rotate_kek", KeyID: "eu-kek/v1"})
	rec(audit.Event{Kind: audit.KindKey, Outcome: audit.OutcomeOK, Actor: "drflow worker", Dataset: "files", Location: "eu-primary",
		Jurisdiction: "EU", Operation: "wrap", KeyID: "eu-kek/v1", KeyEpoch: 1})
	drillEvery := max(backups/max(drills, 1), 1)
	var prevAsOf time.Time
	for i := range backups {
		advance(5 * time.Minute)
		asOf := now.Add(-20 * time.Second)
		point := fmt.Sprintf("%s-%08x", asOf.Format("20060102T150405.000Z"), i)
		rec(audit.Event{Kind: audit.KindKey, Outcome: audit.OutcomeOK, Actor: "drflow worker", Dataset: "files", Location: "eu-primary",
			Jurisdiction: "EU", Operation: "unwrap", KeyID: "eu-kek/v1", KeyEpoch: 1})
		rec(audit.Event{Kind: audit.KindRestorePoint, Outcome: audit.OutcomeOK, Actor: "workflow backup-files", Dataset: "files",
			Point: point, Location: "eu-primary", Jurisdiction: "EU", KeyID: "eu-kek/v1", KeyEpoch: 1, Bytes: 1 << 20, Chunks: 12,
			ManifestHash: fmt.Sprintf("%064x", i)})
		put("eu-primary", "datasets/files/points/"+point)
		for _, dst := range []struct{ loc, jur, mode, basis string }{
			{"eu-replica", "EU", "full", ""}, {"us-replica", "US", "encrypted", "scc"}, {"ap-catalog", "APAC", "metadata", ""},
		} {
			rec(audit.Event{Kind: audit.KindPolicy, Outcome: audit.OutcomeOK, Actor: "workflow replicate", Dataset: "files",
				Location: "eu-primary", Jurisdiction: "EU", Destination: dst.loc, DestJurisdiction: dst.jur, LegalBasis: dst.basis,
				Reason: "policy eu-gdpr allows " + dst.mode + " copies in " + dst.jur})
			rec(audit.Event{Kind: audit.KindCopy, Outcome: audit.OutcomeOK, Actor: "workflow replicate", Dataset: "files", Point: point,
				Location: "eu-primary", Jurisdiction: "EU", Destination: dst.loc, DestJurisdiction: dst.jur, CopyMode: dst.mode,
				LegalBasis: dst.basis, Bytes: 1 << 20, Chunks: 14, ManifestHash: fmt.Sprintf("%064x", i)})
			if dst.mode == "metadata" {
				put(dst.loc, "datasets/files/catalog/"+point+".json")
			} else {
				put(dst.loc, "datasets/files/points/"+point)
			}
		}
		rec(audit.Event{Kind: audit.KindVerify, Outcome: audit.OutcomeOK, Actor: "workflow backup-files", Dataset: "files", Point: point,
			Location: "eu-primary", Jurisdiction: "EU", Bytes: 1 << 20, Chunks: 1, Reason: "1 of 12 chunks checked (sample 10%, seed 1), 0 failures"})
		rpo := int64(0)
		if !prevAsOf.IsZero() {
			rpo = now.Sub(prevAsOf).Milliseconds()
		}
		prevAsOf = asOf
		rec(audit.Event{Kind: audit.KindBackup, Outcome: audit.OutcomeOK, Actor: "workflow backup-files", Dataset: "files", Point: point,
			Location: "eu-primary", Jurisdiction: "EU", Tier: "tier1", RPOMillis: rpo, RPOObjectiveMillis: 900_000, Bytes: 1 << 20})
		h.backups++
		h.backupTimes = append(h.backupTimes, now)
		if h.drills < drills && i%drillEvery == drillEvery-1 {
			advance(time.Minute)
			rto := int64(90_000)
			if h.drills == 0 {
				rto = 4_000_000 // the first drill misses the 1 h RTO
			}
			rec(audit.Event{Kind: audit.KindRestore, Outcome: audit.OutcomeOK, Actor: "workflow drill-files", Dataset: "files", Point: point,
				Location: "eu-replica", Jurisdiction: "EU", Bytes: 1 << 20, Chunks: 12})
			rec(audit.Event{Kind: audit.KindDrill, Outcome: audit.OutcomeOK, Actor: "workflow drill-files", Dataset: "files", Point: point,
				Location: "eu-replica", Jurisdiction: "EU", Tier: "tier1", RPOMillis: now.Sub(asOf).Milliseconds(), RTOMillis: rto,
				RPOObjectiveMillis: 900_000, RTOObjectiveMillis: 3_600_000, Bytes: 1 << 20})
			h.drills++
			h.drillTimes = append(h.drillTimes, now)
		}
		if i == backups/2 {
			rec(audit.Event{Kind: audit.KindKey, Outcome: audit.OutcomeOK, Actor: "drflow worker", Jurisdiction: "EU", Operation: "rotate_kek",
				KeyID: "eu-kek/v2", Reason: "new active version; v1 retired"})
			rec(audit.Event{Kind: audit.KindPolicy, Outcome: audit.OutcomeDenied, Actor: "workflow replicate", Dataset: "files",
				Location: "eu-primary", Jurisdiction: "EU", Destination: "cn-replica", DestJurisdiction: "CN",
				Reason: "policy eu-gdpr has no rule for CN, so nothing may go there"})
			h.deniedAt = now
		}
	}
	require.NoError(tb, log.Close(ctx))
	h.end = now.Add(time.Minute)
	return h
}

func (h *history) build(tb testing.TB, from, to time.Time) (string, *Pack, Stats) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "pack")
	ctx := context.Background()
	log, err := audit.Open(ctx, audit.Options{Store: h.stores["eu-primary"], Region: "eu-west-1", Signer: h.signer,
		Clock: func() time.Time { return h.end }})
	require.NoError(tb, err)
	defer func() { require.NoError(tb, log.Close(ctx)) }()
	p, st, err := Build(ctx, BuildOptions{Config: h.d.Config, Stores: h.stores, PublicKeys: h.keys,
		Period: Period{From: from, To: to}, Out: out, GeneratedBy: "test", Now: func() time.Time { return h.end }, Recorder: log})
	require.NoError(tb, err)
	require.NotEmpty(tb, p.Seal.Ref, "the observations are signed")
	return out, p, st
}

func TestPackFromSyntheticHistory(t *testing.T) {
	h := writeHistory(t, 40, 4, 7)
	// The period starts halfway: the pack starts at a checkpoint before it, not at genesis.
	from := t0.Add(100 * time.Minute)
	dir, p, st := h.build(t, from, h.end)
	require.Len(t, p.Audit, 1)
	a := p.Audit[0]
	assert.Positive(t, a.AnchorSeq, "anchored at a checkpoint before the period")
	assert.Less(t, a.Records, uint64(h.events), "the records before the anchor are left out")
	assert.Equal(t, st.Records, a.Records)
	assert.Equal(t, uint64(h.events+1), a.LastSeq, "and the record that signs the observations")

	// Only the period's runs are reported, and each one's figures are there.
	inPeriod := count(h.backupTimes, from)
	require.Less(t, inPeriod, h.backups)
	assert.Len(t, p.Objectives.Backups, inPeriod)
	for _, b := range p.Objectives.Backups {
		assert.False(t, b.Time.Before(from))
		require.NotNil(t, b.RPOSeconds)
		assert.True(t, b.Met)
	}
	assert.Len(t, p.Objectives.Drills, count(h.drillTimes, from))
	assert.Equal(t, 1.0, p.Objectives.Summary[0].DrillShare, "the drill that missed its RTO was before the period")

	// The pre-period points are in the stores but written before the pack's first record.
	for _, pl := range p.Placement {
		switch pl.Location {
		case "eu-primary", "eu-replica", "us-replica", "ap-catalog":
			assert.Len(t, pl.Points, 40, pl.Location)
			assert.NotEmpty(t, pl.Unbacked, pl.Location)
			assert.Len(t, pl.Refs, 40-len(pl.Unbacked), pl.Location)
		case "cn-replica":
			assert.Empty(t, pl.Points)
		}
	}
	assert.Len(t, p.Transfers, 2*inPeriod+count([]time.Time{h.deniedAt}, from), "US and APAC per backup, and the denied copy to CN")
	var versions []string
	for _, ac := range p.Keys.Access {
		versions = append(versions, ac.KeyID)
	}
	assert.Contains(t, versions, "eu-kek/v2")

	rep, err := VerifyPack(context.Background(), dir, h.keys)
	require.NoError(t, err)
	assert.Positive(t, rep.Figures)
	assert.NotEmpty(t, rep.Warnings, "points older than the pack's records are pointed out")

	t.Run("a pack from genesis", func(t *testing.T) {
		dir, p, _ := h.build(t, t0.Add(-time.Hour), h.end)
		assert.Zero(t, p.Audit[0].AnchorSeq)
		assert.Len(t, p.Objectives.Backups, 40)
		assert.Len(t, p.Objectives.Drills, 4)
		// The first drill missed its RTO, but the newest met it.
		assert.False(t, p.Objectives.Drills[0].Met)
		assert.InDelta(t, 0.75, p.Objectives.Summary[0].DrillShare, 1e-9)
		_, err := VerifyPack(context.Background(), dir, h.keys)
		require.NoError(t, err)
	})
	t.Run("tampering", func(t *testing.T) { tamperCases(t, dir, h.keys, p) })
}

// tamperCases edits copies of a good pack in every way an auditor must catch, here with
// segments of several records.
func tamperCases(t *testing.T, good string, keys map[string]ed25519.PublicKey, p *Pack) {
	segs := p.Audit[0].Segments
	require.GreaterOrEqual(t, len(segs), 3)
	seg := segs[1]
	cases := []struct {
		name, file, what string
		tamper           func(dir string)
	}{
		{"edit a record", seg, "edited", func(dir string) {
			edit(t, filepath.Join(dir, seg), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"bytes":1048576`), []byte(`"bytes":1048577`), 1)
			})
		}},
		{"swap two records", seg, "reordered", func(dir string) {
			editSegment(t, filepath.Join(dir, seg), func(l [][]byte) [][]byte { l[2], l[3] = l[3], l[2]; return l })
		}},
		{"delete a record", seg, "deleted", func(dir string) {
			editSegment(t, filepath.Join(dir, seg), func(l [][]byte) [][]byte { return slices.Delete(l, 2, 3) })
		}},
		{"insert a record", seg, "inserted", func(dir string) {
			editSegment(t, filepath.Join(dir, seg), func(l [][]byte) [][]byte { return slices.Insert(l, 2, l[4]) })
		}},
		{"delete a segment", seg, "deleted", func(dir string) { require.NoError(t, os.Remove(filepath.Join(dir, seg))) }},
		{"delete a checkpoint", p.Audit[0].Checkpoints[0], "deleted", func(dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, p.Audit[0].Checkpoints[0])))
		}},
		{"a figure", FileEvidence, "unbacked figure", func(dir string) {
			edit(t, filepath.Join(dir, FileEvidence), func(b []byte) []byte {
				return regexp.MustCompile(`"drills_met": \d+`).ReplaceAll(b, []byte(`"drills_met": 99`))
			})
		}},
		{"a placement observation", FileEvidence, "unbacked figure", func(dir string) {
			edit(t, filepath.Join(dir, FileEvidence), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"mode": "encrypted"`), []byte(`"mode": "full"`), 1)
			})
		}},
		{"an extra file", "keys/us-east-1.pem", "inserted", func(dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "keys", "us-east-1.pem"), []byte("x"), 0o644))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pack")
			require.NoError(t, os.CopyFS(dir, os.DirFS(good)))
			tc.tamper(dir)
			_, err := VerifyPack(context.Background(), dir, keys)
			var f *Finding
			require.True(t, errors.As(err, &f), "not detected: %v", err)
			assert.Equal(t, tc.what, f.What, f.Error())
			assert.Equal(t, tc.file, f.File, f.Error())
		})
	}
}

func edit(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	changed := fn(bytes.Clone(data))
	if bytes.Equal(data, changed) {
		t.Fatalf("the edit changed nothing in %s", path)
	}
	require.NoError(t, os.WriteFile(path, changed, 0o644))
}

func editSegment(t *testing.T, path string, fn func([][]byte) [][]byte) {
	t.Helper()
	edit(t, path, func(b []byte) []byte {
		l := fn(bytes.Split(bytes.TrimSuffix(bytes.Clone(b), []byte("\n")), []byte("\n")))
		return append(bytes.Join(l, []byte("\n")), '\n')
	})
}

// BenchmarkEvidencePack builds and verifies a pack of 1,000 backups (replicated three
// times), 50 drills and about 10,000 audit events, and reports the pack's size.
func BenchmarkEvidencePack(b *testing.B) {
	h := writeHistory(b, 1000, 50, 1000)
	b.Logf("history: %d events, %d backups, %d drills", h.events, h.backups, h.drills)
	var size int64
	var build, verify time.Duration
	for range b.N {
		start := time.Now()
		dir, _, st := h.build(b, t0.Add(-time.Hour), h.end)
		build += time.Since(start)
		start = time.Now()
		_, err := VerifyPack(context.Background(), dir, h.keys)
		require.NoError(b, err)
		verify += time.Since(start)
		size = st.Bytes
	}
	b.ReportMetric(float64(size)/(1<<20), "pack-MiB")
	b.ReportMetric(build.Seconds()/float64(b.N), "build-s")
	b.ReportMetric(verify.Seconds()/float64(b.N), "verify-s")
}
