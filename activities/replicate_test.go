package activities

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/providers"
)

// plaintextMarker is in every source file; no replica's bytes may contain it.
const plaintextMarker = "PLAINTEXT-MARKER-7f3a"

// captureRecorder forwards events to the real audit log and keeps a copy for assertions.
type captureRecorder struct {
	next audit.Recorder
	mu   sync.Mutex
	evs  []audit.Event
}

func (c *captureRecorder) Record(ctx context.Context, e audit.Event) error {
	if err := c.next.Record(ctx, e); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, e)
	return nil
}

func (c *captureRecorder) events(kind string) []audit.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []audit.Event
	for _, e := range c.evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// replFixture is a multi-jurisdiction configuration on local stores: home EU, with a full
// replica in EU, an encrypted one in the US (SCC), a metadata-only one in APAC and a
// location in CN, where the policy allows nothing.
type replFixture struct {
	cfg      *config.Config
	stores   map[string]string // location -> directory
	stateDir string
	scratch  string
}

func newReplFixture(t *testing.T) replFixture {
	t.Helper()
	files := map[string]string{}
	for i, name := range []string{"a.txt", "sub/b.txt", secretName} {
		files[name] = strings.Repeat(fmt.Sprintf("%s line %d of %s\n", plaintextMarker, i, name), 3000)
	}
	d := testdeploy.New(t, testdeploy.Options{Files: files, Replicated: true})
	f := replFixture{cfg: d.Config, stores: map[string]string{}, stateDir: filepath.Join(d.Root, "state"),
		scratch: filepath.Join(d.Root, "scratch")}
	for _, l := range []string{"eu-primary", "eu-replica", "us-replica", "ap-catalog", "cn-replica"} {
		f.stores[l] = d.StoreDir(l)
	}
	return f
}

func (f replFixture) activities(t *testing.T) (*Activities, *captureRecorder) {
	t.Helper()
	a, err := New(context.Background(), f.cfg, Options{StateDir: f.stateDir, ScratchDir: f.scratch, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close(context.Background())) })
	rec := &captureRecorder{next: a.Audit}
	a.Audit = rec
	return a, rec
}

func planReplication(t *testing.T, a *Activities, location string) (ReplicationPlan, error) {
	t.Helper()
	val, err := activityEnv(a).ExecuteActivity(a.PlanReplication, ReplicationPlanInput{Dataset: "files", Location: location})
	if err != nil {
		return ReplicationPlan{}, err
	}
	var p ReplicationPlan
	require.NoError(t, val.Get(&p))
	return p, nil
}

func replicate(a *Activities, in ReplicateActivityInput) (ReplicateActivityResult, error) {
	val, err := activityEnv(a).ExecuteActivity(a.Replicate, in)
	if err != nil {
		return ReplicateActivityResult{}, err
	}
	var res ReplicateActivityResult
	return res, val.Get(&res)
}

// storeKeys lists every object of a store.
func storeKeys(t *testing.T, st providers.Store) []string {
	t.Helper()
	var out []string
	require.NoError(t, st.List(context.Background(), "", func(oi providers.ObjectInfo) error {
		out = append(out, oi.Key)
		return nil
	}))
	return out
}

// assertNoPlaintext checks that no file under dir contains the plaintext marker.
func assertNoPlaintext(t *testing.T, dir string) {
	t.Helper()
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		assert.False(t, bytes.Contains(data, []byte(plaintextMarker)), "%s holds plaintext", p)
		assert.False(t, bytes.Contains(data, []byte(secretName)), "%s holds a file name", p)
		return nil
	}))
	assert.NotZero(t, files)
}

func TestPlanReplication(t *testing.T) {
	f := newReplFixture(t)
	a, rec := f.activities(t)
	tests := []struct {
		give     string
		wantMode string
		wantMech string
		wantJur  string
	}{
		{"eu-replica", "full", "", "EU"},
		{"us-replica", "encrypted", "scc", "US"},
		{"ap-catalog", "metadata", "", "APAC"},
		{"cn-replica", "denied", "", "CN"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			p, err := planReplication(t, a, tt.give)
			require.NoError(t, err)
			assert.Equal(t, tt.wantMode, p.Mode)
			assert.Equal(t, tt.wantMech, p.Mechanism)
			assert.Equal(t, tt.wantJur, p.DestJurisdiction)
			assert.Equal(t, "eu-primary", p.Source)
			assert.Equal(t, "eu-west-1", p.SourceRegion)
			assert.Equal(t, "EU", p.Home)
			assert.Equal(t, tt.give == "cn-replica", p.Denied())
			assert.NotEmpty(t, p.Rule)
		})
	}

	evs := rec.events(audit.KindPolicy)
	require.Len(t, evs, len(tests), "every decision is audited")
	for i, tt := range tests {
		e := evs[i]
		assert.Equal(t, "files", e.Dataset)
		assert.Equal(t, tt.give, e.Destination)
		assert.Equal(t, tt.wantJur, e.DestJurisdiction)
		assert.Equal(t, tt.wantMech, e.LegalBasis)
		assert.NoError(t, audit.Validate(e))
		if tt.wantMode == "denied" {
			assert.Equal(t, audit.OutcomeDenied, e.Outcome)
			assert.Empty(t, e.CopyMode)
			for _, want := range []string{"files", "cn-replica", "CN", "eu-gdpr"} {
				assert.Contains(t, e.Reason, want)
			}
		} else {
			assert.Equal(t, audit.OutcomeOK, e.Outcome)
			assert.Equal(t, tt.wantMode, e.CopyMode)
		}
	}

	t.Run("bad input", func(t *testing.T) {
		_, err := planReplication(t, a, "eu-primary")
		assertNonRetryable(t, err, ErrTypeInvalidInput)
		_, err = planReplication(t, a, "nowhere")
		assertNonRetryable(t, err, ErrTypeNotFound)
		_, err = activityEnv(a).ExecuteActivity(a.PlanReplication, ReplicationPlanInput{Dataset: "nope", Location: "eu-replica"})
		assertNonRetryable(t, err, ErrTypeNotFound)
	})
}

func TestReplicate(t *testing.T) {
	f := newReplFixture(t)
	a, rec := f.activities(t)
	pt := backup(t, activityEnv(a), a, "run-1").Point
	ctx := context.Background()

	for _, dest := range []string{"eu-replica", "us-replica"} {
		t.Run(dest, func(t *testing.T) {
			p, err := planReplication(t, a, dest)
			require.NoError(t, err)
			in := ReplicateActivityInput{Dataset: "files", Point: pt, Location: dest, Mode: p.Mode, LegalBasis: p.Mechanism}
			res, err := replicate(a, in)
			require.NoError(t, err)
			assert.Equal(t, p.Mode, res.Mode)
			assert.Equal(t, p.DestJurisdiction, res.Jurisdiction)
			assert.NotZero(t, res.ObjectsCopied)
			assert.NotZero(t, res.BytesCopied)
			assert.NotEmpty(t, res.ManifestHash)

			// The copy is restorable from the destination alone, with the home key.
			r, err := repo.Open(repo.Options{Store: a.Stores[dest], Dataset: "files", Keys: a.Keys["EU"], Audit: a.Audit})
			require.NoError(t, err)
			v, err := r.Verify(ctx, pt, repo.VerifyOptions{})
			require.NoError(t, err)
			assert.True(t, v.OK())
			assert.NotZero(t, v.ChunksChecked)
			assertNoPlaintext(t, f.stores[dest])

			// Again: idempotent, nothing new moves.
			again, err := replicate(a, in)
			require.NoError(t, err)
			assert.Zero(t, again.ObjectsCopied)
		})
	}

	t.Run("metadata", func(t *testing.T) {
		p, err := planReplication(t, a, "ap-catalog")
		require.NoError(t, err)
		res, err := replicate(a, ReplicateActivityInput{Dataset: "files", Point: pt, Location: "ap-catalog", Mode: p.Mode})
		require.NoError(t, err)
		assert.Equal(t, "metadata", res.Mode)
		assert.Equal(t, []string{"datasets/files/catalog/" + pt + ".json"}, storeKeys(t, a.Stores["ap-catalog"]),
			"a metadata copy writes the catalog entry only")
		assertNoPlaintext(t, f.stores["ap-catalog"])
	})

	copies := rec.events(audit.KindCopy)
	modes := map[string]string{}
	for _, e := range copies {
		modes[e.Destination] = e.CopyMode
		assert.Equal(t, audit.OutcomeOK, e.Outcome)
	}
	assert.Equal(t, map[string]string{"eu-replica": "full", "us-replica": "encrypted", "ap-catalog": "metadata"}, modes)
	for _, e := range copies {
		if e.Destination == "us-replica" {
			assert.Equal(t, "scc", e.LegalBasis)
		}
	}
}

// TestReplicateRechecksPolicy calls the activity with inputs the workflow would never send
// after a denial: the activity must refuse by itself, audit it, and write nothing.
func TestReplicateRechecksPolicy(t *testing.T) {
	f := newReplFixture(t)
	a, rec := f.activities(t)
	pt := backup(t, activityEnv(a), a, "run-1").Point

	tests := []struct {
		name string
		give ReplicateActivityInput
	}{
		{"denied jurisdiction", ReplicateActivityInput{Dataset: "files", Point: pt, Location: "cn-replica", Mode: "encrypted", LegalBasis: "scc"}},
		{"denied jurisdiction in full", ReplicateActivityInput{Dataset: "files", Point: pt, Location: "cn-replica", Mode: "full"}},
		{"full where only encrypted is allowed", ReplicateActivityInput{Dataset: "files", Point: pt, Location: "us-replica", Mode: "full"}},
		{"encrypted where only metadata is allowed", ReplicateActivityInput{Dataset: "files", Point: pt, Location: "ap-catalog", Mode: "encrypted", LegalBasis: "scc"}},
		{"wrong legal basis", ReplicateActivityInput{Dataset: "files", Point: pt, Location: "us-replica", Mode: "encrypted", LegalBasis: "consent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.events(audit.KindPolicy))
			_, err := replicate(a, tt.give)
			assertNonRetryable(t, err, ErrTypePolicyDenied)
			for _, want := range []string{"files", tt.give.Location} {
				assert.Contains(t, err.Error(), want)
			}
			evs := rec.events(audit.KindPolicy)
			require.Len(t, evs, before+1, "the denial is audited")
			e := evs[len(evs)-1]
			assert.Equal(t, audit.OutcomeDenied, e.Outcome)
			assert.Equal(t, tt.give.Location, e.Destination)
			assert.Contains(t, e.Reason, tt.give.Location)
			assert.NoError(t, audit.Validate(e))
			assert.Empty(t, storeKeys(t, a.Stores[tt.give.Location]), "nothing reaches a denied destination")
		})
	}
	assert.Empty(t, rec.events(audit.KindCopy), "no copy started")
	assert.Contains(t, NonRetryableErrorTypes(), ErrTypePolicyDenied)

	// The denials are in the signed log, not only in the recorder.
	alog, ok := rec.next.(*audit.Log)
	require.True(t, ok)
	ctx := context.Background()
	require.NoError(t, alog.Flush(ctx))
	denied := 0
	_, err := audit.Verify(ctx, a.Stores["eu-primary"], "eu-west-1", alog.PublicKey(), audit.WithEntries(func(e audit.Entry) error {
		if e.Event.Kind == audit.KindPolicy && e.Event.Outcome == audit.OutcomeDenied {
			denied++
		}
		return nil
	}))
	require.NoError(t, err)
	assert.Equal(t, len(tests), denied)
}

func TestReplicateNotServed(t *testing.T) {
	f := newReplFixture(t)
	a, _ := f.activities(t)
	pt := backup(t, activityEnv(a), a, "run-1").Point
	delete(a.Stores, "us-replica") // a home-region worker without the destination's credentials
	_, err := replicate(a, ReplicateActivityInput{Dataset: "files", Point: pt, Location: "us-replica", Mode: "encrypted", LegalBasis: "scc"})
	assertNonRetryable(t, err, ErrTypeNotServed)

	_, err = replicate(a, ReplicateActivityInput{Dataset: "files", Point: "latest", Location: "eu-replica", Mode: "full"})
	assertNonRetryable(t, err, ErrTypeInvalidInput)
}

// A region's worker opens its own region's stores and the replica locations of the datasets
// homed there, which Replicate writes from home, and nothing else.
func TestRegionWorkerOpensReplicaTargetsOfItsDatasets(t *testing.T) {
	f := newReplFixture(t)
	tests := []struct {
		region string
		want   []string
	}{
		{"eu-west-1", []string{"ap-catalog", "eu-primary", "eu-replica", "us-replica"}},
		{"us-east-1", []string{"us-replica"}},
		{"cn-north-1", []string{"cn-replica"}},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			a, err := New(context.Background(), f.cfg, Options{Region: tt.region, StateDir: filepath.Join(f.stateDir, tt.region),
				Logger: zaptest.NewLogger(t)})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, a.Close(context.Background())) })
			var got []string
			for name := range a.Stores {
				got = append(got, name)
			}
			assert.ElementsMatch(t, tt.want, got)
		})
	}
}

// TestDrillFromCopyAbroadRefused: a drill writes plaintext where its copy is, so a drill of the
// encrypted US copy is refused by policy and audited, while one of the full EU copy runs.
func TestDrillFromCopyAbroadRefused(t *testing.T) {
	f := newReplFixture(t)
	a, rec := f.activities(t)
	env := activityEnv(a)
	pt := backup(t, env, a, "run-1").Point
	for _, dest := range []string{"eu-replica", "us-replica"} {
		p, err := planReplication(t, a, dest)
		require.NoError(t, err)
		_, err = replicate(a, ReplicateActivityInput{Dataset: "files", Point: pt, Location: dest, Mode: p.Mode, LegalBasis: p.Mechanism})
		require.NoError(t, err)
	}

	res, err := drill(env, a, DrillActivityInput{Dataset: "files", Point: pt, Location: "eu-replica"})
	require.NoError(t, err)
	assert.True(t, res.Verified)

	_, err = drill(env, a, DrillActivityInput{Dataset: "files", Point: pt, Location: "us-replica"})
	assertNonRetryable(t, err, ErrTypePolicyDenied)
	assert.Contains(t, err.Error(), "plaintext restore of dataset files from us-replica (US) refused")
	evs := rec.events(audit.KindRestore)
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1]
	assert.Equal(t, audit.OutcomeDenied, last.Outcome)
	assert.Equal(t, "us-replica", last.Location)
}
