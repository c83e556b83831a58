package chaos_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/chaos"
	"github.com/drflow/drflow/internal/chaos/faultproxy"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/workflows"
)

// The storage family's deployment: one dataset whose primary and (sync) replica are Object
// Lock buckets of one MinIO, both reached through the fault proxy.
const (
	storageDataset       = "files"
	storagePrimary       = "primary"
	storageReplica       = "replica"
	storagePrimaryBucket = "chaos-primary"
	storageReplicaBucket = "chaos-replica"
	storageRegion        = "us-east-1" // MinIO's region, which signatures name
	// storageFaultRate is the share of requests that fail or stall during a trial.
	storageFaultRate = 0.10
	// storageRunTimeout bounds one workflow run; Temporal's backoff (5s, doubling) makes a
	// run that several faults hit take a minute or two.
	storageRunTimeout = 8 * time.Minute
)

const storageConfig = `jurisdictions:
  - {name: US, regions: [us-east-1]}
keys:
  - {name: us-kek, jurisdiction: US, provider: local, path: keys/us.keyring}
locations:
  - {name: primary, provider: s3, bucket: chaos-primary, endpoint: "%[1]s", path_style: true, region: us-east-1, object_lock: true}
  - {name: replica, provider: s3, bucket: chaos-replica, endpoint: "%[1]s", path_style: true, region: us-east-1, object_lock: true}
policies:
  - {name: us-only, home: US}
tiers:
  - {name: tier1, level: 1, rpo: 15m, rto: 1h, backup_every: 5m, replication: sync}
datasets:
  - {name: files, classification: internal, policy: us-only, tier: tier1, primary: primary, replicas: [replica],
     source: {type: directory, path: source}}
`

// storageEnv is the deployment, its servers, worker and the test's own view of both
// repositories.
type storageEnv struct {
	t       *testing.T
	proxy   *faultproxy.Proxy
	client  client.Client
	source  string
	scratch string
	repos   map[string]*repo.Repo // by location, opened on the worker's stores (through the proxy)
}

func newStorageEnv(t *testing.T) *storageEnv {
	t.Helper()
	ctx := context.Background()
	minio := testservers.MinIO(t)
	minio.CreateBucket(t, storagePrimaryBucket, true)
	minio.CreateBucket(t, storageReplicaBucket, true)
	proxy, err := faultproxy.New(faultproxy.Options{Upstream: minio.Endpoint, MinDelay: 20 * time.Millisecond, MaxDelay: 1500 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })

	// The worker's S3 credentials come from the environment, as in production.
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))

	cfgPath := filepath.Join(dir, "drflow.yaml")
	require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(nil, storageConfig, proxy.URL()), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "source"), 0o755))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)

	logger := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	acts, err := activities.New(ctx, cfg, activities.Options{StateDir: filepath.Join(dir, "state"), Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = acts.Close(context.Background()) })

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c := srv.Client(t)
	startStorageWorkers(t, c, acts)

	e := &storageEnv{t: t, proxy: proxy, client: c, source: filepath.Join(dir, "source"), scratch: filepath.Join(dir, "restores"),
		repos: map[string]*repo.Repo{}}
	for _, loc := range []string{storagePrimary, storageReplica} {
		r, err := repo.Open(repo.Options{Store: acts.Stores[loc], Dataset: storageDataset, Keys: acts.Keys["US"], Audit: acts.Audit, Logger: logger})
		require.NoError(t, err)
		e.repos[loc] = r
	}
	return e
}

// startStorageWorkers runs the control queue's and the region's workers in this process, as
// drflow-worker does on one machine (see internal/testworker), and logs every failed activity
// attempt with its error: the trials' record of what the faults did.
func startStorageWorkers(t *testing.T, c client.Client, acts *activities.Activities) {
	t.Helper()
	acts.Schedules = schedules.Pauser{Client: c, Config: acts.Config}
	log := &storageAttemptLog{t: t}
	for _, queue := range []string{workflows.ControlTaskQueue, workflows.RegionTaskQueue(storageRegion)} {
		w := worker.New(c, queue, worker.Options{Interceptors: []interceptor.WorkerInterceptor{log}})
		workflows.Register(w)
		w.RegisterActivity(acts)
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}
	// Runs before the workers stop: an attempt that ends later is not logged.
	t.Cleanup(log.close)
}

// storageAttemptLog logs failed activity attempts until the test ends.
type storageAttemptLog struct {
	interceptor.WorkerInterceptorBase
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (l *storageAttemptLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func (l *storageAttemptLog) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &storageAttempt{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, log: l}
}

type storageAttempt struct {
	interceptor.ActivityInboundInterceptorBase
	log *storageAttemptLog
}

func (a *storageAttempt) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	began := time.Now()
	res, err := a.Next.ExecuteActivity(ctx, in)
	if err != nil {
		info := activity.GetInfo(ctx)
		a.log.mu.Lock()
		if !a.log.closed {
			a.log.t.Logf("activity %s of %s, attempt %d, failed after %s: %v", info.ActivityType.Name, info.WorkflowExecution.ID,
				info.Attempt, time.Since(began).Round(time.Millisecond), err)
		}
		a.log.mu.Unlock()
	}
	return res, err
}

// storageCase is one trial: how the source changes and which faults its runs meet.
type storageCase struct {
	name  string
	rules []faultproxy.Rule
	rng   *rand.Rand // draws the source change and seeds the proxy
	// grow is the size of the file the trial adds (random within bounds if 0).
	grow int
}

// randomMix spreads storageFaultRate over every kind of fault with random weights.
func randomMix(rng *rand.Rand) []faultproxy.Rule {
	kinds := faultproxy.Kinds()
	w := make([]float64, len(kinds))
	var sum float64
	for i := range w {
		w[i] = 0.5 + rng.Float64()
		sum += w[i]
	}
	rules := make([]faultproxy.Rule, len(kinds))
	for i, k := range kinds {
		rules[i] = faultproxy.Rule{Kind: k, Rate: storageFaultRate * w[i] / sum}
	}
	return rules
}

// ambiguousCases hit, once each, the writes whose success a client can miss: the upstream
// stores the object, then the connection is reset before the answer. The SDK's retry of a
// conditional create then meets the object it wrote.
func ambiguousCases(seed uint64) []storageCase {
	manifests := func(bucket string) *regexp.Regexp {
		return regexp.MustCompile("^/" + bucket + "/datasets/" + storageDataset + "/points/")
	}
	rng := func(i uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1000+i)) }
	return []storageCase{
		{name: "ambiguous manifest write at the primary", rng: rng(0), rules: []faultproxy.Rule{
			{Kind: faultproxy.ResetAfter, Rate: 1, Limit: 1, Methods: []string{http.MethodPut}, Path: manifests(storagePrimaryBucket)}}},
		{name: "ambiguous manifest write at the replica", rng: rng(1), rules: []faultproxy.Rule{
			{Kind: faultproxy.ResetAfter, Rate: 1, Limit: 1, Methods: []string{http.MethodPut}, Path: manifests(storageReplicaBucket)}}},
		{name: "ambiguous multipart completion of packs", rng: rng(2), grow: 9 << 20, rules: []faultproxy.Rule{
			{Kind: faultproxy.ResetAfter, Rate: 1, Limit: 2, Methods: []string{http.MethodPost},
				Path:  regexp.MustCompile("^/chaos-(primary|replica)/datasets/" + storageDataset + "/packs/"),
				Match: func(r *http.Request) bool { return r.URL.Query().Has("uploadId") }}}},
	}
}

// storagePoint is a restore point that a completed backup reported, and what it holds.
type storagePoint struct {
	id    string
	trial string
	size  int64             // plaintext bytes of the source
	files map[string]string // slash path -> sha256 of the source files
}

// storageTally is what the trials found.
type storageTally struct {
	runs, completed int
	lost, corrupt   int
	duplicates      int
	extra           map[string]bool // location/point of the duplicates counted
	verified        int64
	retries         int
	faults          faultproxy.Stats
}

// TestChaosStorage is the storage-fault family: while 10% of the requests to the object store
// fail or stall (5xx answers, connections reset before or after the server acted, slow
// answers, bodies cut short), a backup writes a restore point to the primary, its sync tier
// copies it to the replica (ReplicateWorkflow), and restore drills run from both. Every run
// must complete; afterwards, with faults off, every reported point must be at both
// locations exactly once and verify, the replica's copy must restore the source byte for
// byte, and each drill must have restored the source's size.
//
// After the random trials, three targeted ones reset the connection after the server stored
// the object, exactly once, on the writes whose loss a client cannot see: a manifest at the
// primary, a manifest at the replica, the completion of multipart pack uploads.
func TestChaosStorage(t *testing.T) {
	plan := chaos.PlanFor(t, "storage", 2, 10)
	e := newStorageEnv(t)
	ctx := context.Background()

	cases := make([]storageCase, 0, plan.Trials+3)
	for i := range plan.Trials {
		rng := plan.Rand(i)
		cases = append(cases, storageCase{name: fmt.Sprintf("trial %d", i), rng: rng, rules: randomMix(rng)})
	}
	cases = append(cases, ambiguousCases(plan.Seed)...)

	tally := storageTally{extra: map[string]bool{}}
	var points []storagePoint
	before := e.proxy.Stats()
	for i, tc := range cases {
		where := fmt.Sprintf("seed=%d %s", plan.Seed, tc.name)
		size, files := e.changeSource(tc, i)
		pt, ok := e.runTrial(ctx, where, tc, size, &tally)
		if ok {
			pt.files = files
			points = append(points, pt)
		}
		tally.lost += e.checkPoints(ctx, where, points, &tally)
		if ok {
			e.checkPoint(ctx, where, pt, &tally)
		}
	}
	tally.faults = e.proxy.Stats().Sub(before)

	// Last, every point again at both locations: later trials must not have damaged earlier
	// points.
	for _, pt := range points {
		for _, loc := range []string{storagePrimary, storageReplica} {
			res, err := e.repos[loc].Verify(ctx, pt.id, repo.VerifyOptions{Actor: "chaos storage"})
			if err != nil || !res.OK() || res.BytesChecked != pt.size {
				tally.corrupt++
				t.Errorf("seed=%d final check: point %s (%s) at %s: verify: %v, %d failures, %d of %d bytes",
					plan.Seed, pt.id, pt.trial, loc, err, len(res.Failures), res.BytesChecked, pt.size)
				continue
			}
			tally.verified += res.BytesChecked
		}
	}

	sum := chaos.Summary{Plan: plan, Runs: tally.runs, Completed: tally.completed, Lost: tally.lost, Corrupt: tally.corrupt,
		BytesVerified: tally.verified, Notes: []string{
			fmt.Sprintf("faults=%d requests=%d", tally.faults.Injected(), tally.faults.Exposed),
			faultBreakdown(tally.faults),
			fmt.Sprintf("duplicates=%d activity_retries=%d targeted=%d", tally.duplicates, tally.retries, len(cases)-plan.Trials),
		}}
	chaos.Report(t, sum)
	if tally.completed != tally.runs || tally.lost+tally.corrupt+tally.duplicates > 0 {
		t.Errorf("seed=%d: %s", plan.Seed, sum)
	}
}

func faultBreakdown(s faultproxy.Stats) string {
	var parts []string
	for _, k := range faultproxy.Kinds() {
		parts = append(parts, fmt.Sprintf("%s=%d", k, s.Faults[k]))
	}
	return strings.Join(parts, " ")
}

// changeSource changes the source directory for trial i (faults play no part here) and returns
// its size and file hashes. The first trial writes a base file large enough for a multipart
// pack upload; each adds a file, rewrites a small one and sometimes removes an older one.
func (e *storageEnv) changeSource(tc storageCase, i int) (int64, map[string]string) {
	t := e.t
	t.Helper()
	rng := tc.rng
	var seed [32]byte
	for j := range 4 {
		v := rng.Uint64()
		for k := range 8 {
			seed[j*8+k] = byte(v >> (8 * k))
		}
	}
	data := rand.NewChaCha8(seed)
	write := func(name string, n int) {
		b := make([]byte, n)
		_, _ = data.Read(b)
		require.NoError(t, os.WriteFile(filepath.Join(e.source, name), b, 0o644))
	}
	if i == 0 {
		write("base.bin", 10<<20)
	}
	grow := tc.grow
	if grow == 0 {
		grow = 256<<10 + rng.IntN(3<<20)
	}
	write(fmt.Sprintf("added-%02d.bin", i), grow)
	require.NoError(t, os.WriteFile(filepath.Join(e.source, "notes.txt"), fmt.Appendf(nil, "after %s\n", tc.name), 0o644))
	if i > 1 && rng.IntN(3) == 0 {
		err := os.Remove(filepath.Join(e.source, fmt.Sprintf("added-%02d.bin", rng.IntN(i-1))))
		if !errors.Is(err, fs.ErrNotExist) {
			require.NoError(t, err)
		}
	}
	return hashTree(t, e.source)
}

// hashTree returns the total size and the sha256 of every regular file under dir.
func hashTree(t *testing.T, dir string) (int64, map[string]string) {
	t.Helper()
	var size int64
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		size += n
		files[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	require.NoError(t, err)
	return size, files
}

// runTrial runs the backup (with its copy to the replica) and a drill from each location with
// the case's faults on, and reports the new point if the backup completed.
func (e *storageEnv) runTrial(ctx context.Context, where string, tc storageCase, size int64, tally *storageTally) (storagePoint, bool) {
	t := e.t
	proxyRand := rand.New(rand.NewPCG(tc.rng.Uint64(), tc.rng.Uint64()))
	require.NoError(t, e.proxy.SetRules(tc.rules, proxyRand))
	before, retries, began := e.proxy.Stats(), tally.retries, time.Now()
	e.proxy.Enable()
	defer func() {
		e.proxy.Disable()
		t.Logf("%s: %s activity_retries=%d in %s", where, e.proxy.Stats().Sub(before), tally.retries-retries,
			time.Since(began).Round(time.Second))
	}()

	var backup workflows.BackupResult
	tally.runs++
	if !e.run(ctx, where, workflows.BackupWorkflowID(storageDataset), workflows.BackupWorkflow,
		workflows.BackupInput{Dataset: storageDataset}, &backup, tally) {
		return storagePoint{}, false
	}
	tally.completed++
	pt := storagePoint{id: backup.RestorePoint, trial: tc.name, size: size}
	// The sync tier's copy ran as a child ReplicateWorkflow.
	tally.runs++
	switch {
	case len(backup.Replicas) != 1 || backup.Replicas[0].Status != workflows.ReplicaCopied:
		t.Errorf("%s: backup %s reports replicas %+v, want one copied", where, pt.id, backup.Replicas)
	default:
		tally.completed++
		tally.retries += e.retries(ctx, backup.Replicas[0].WorkflowID, "")
	}

	for _, loc := range []string{storagePrimary, storageReplica} {
		var drill workflows.DrillResult
		tally.runs++
		if !e.run(ctx, where, workflows.DrillWorkflowID(storageDataset), workflows.RestoreDrillWorkflow,
			workflows.DrillInput{Dataset: storageDataset, RestorePoint: pt.id, Location: loc}, &drill, tally) {
			continue
		}
		if !drill.Verified || drill.BytesRestored != size || drill.RestorePoint != pt.id {
			tally.corrupt++
			t.Errorf("%s: drill of %s at %s: verified=%v, %d bytes restored of %d, point %s",
				where, pt.id, loc, drill.Verified, drill.BytesRestored, size, drill.RestorePoint)
			continue
		}
		tally.completed++
		tally.verified += drill.BytesRestored
	}
	return pt, true
}

// run executes a workflow to its end and reports whether it completed.
func (e *storageEnv) run(ctx context.Context, where, id string, wf, in, out any, tally *storageTally) bool {
	t := e.t
	ctx, cancel := context.WithTimeout(ctx, storageRunTimeout)
	defer cancel()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, wf, in)
	if err != nil {
		t.Errorf("%s: start %s: %v", where, id, err)
		return false
	}
	err = run.Get(ctx, out)
	tally.retries += e.retries(context.Background(), run.GetID(), run.GetRunID())
	if err != nil {
		t.Errorf("%s: %s did not complete: %v\nrecent faults:\n%s", where, id, err, recentFaults(e.proxy, 20))
		if ctx.Err() != nil {
			e.describeStuck(run.GetID(), run.GetRunID())
			_ = e.client.TerminateWorkflow(context.Background(), run.GetID(), run.GetRunID(), "chaos storage: timed out")
		}
		return false
	}
	return true
}

// describeStuck logs what a run that did not end in time was waiting for: its pending
// activities with their attempts and last failures, and where this process's goroutines
// (the worker's included) stand.
func (e *storageEnv) describeStuck(id, runID string) {
	t := e.t
	desc, err := e.client.DescribeWorkflowExecution(context.Background(), id, runID)
	if err != nil {
		t.Logf("describe %s: %v", id, err)
	} else {
		for _, pa := range desc.GetPendingActivities() {
			t.Logf("%s: pending activity %s: attempt %d, state %s, last failure: %s", id, pa.GetActivityType().GetName(),
				pa.GetAttempt(), pa.GetState(), pa.GetLastFailure().GetMessage())
		}
	}
	f, err := os.CreateTemp("", "chaos-storage-goroutines-*.txt")
	if err != nil {
		t.Logf("goroutine dump: %v", err)
		return
	}
	defer f.Close()
	_ = pprof.Lookup("goroutine").WriteTo(f, 2)
	t.Logf("goroutines of the stuck run: %s", f.Name())
}

// retries counts the activity attempts of a run beyond each activity's first.
func (e *storageEnv) retries(ctx context.Context, id, runID string) int {
	n := 0
	it := e.client.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Logf("history of %s: %v", id, err)
			return n
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			n += int(a.GetAttempt() - 1)
		}
	}
	return n
}

func recentFaults(p *faultproxy.Proxy, n int) string {
	f := p.Faults()
	if len(f) > n {
		f = f[len(f)-n:]
	}
	var b strings.Builder
	for _, x := range f {
		fmt.Fprintf(&b, "  %s\n", x)
	}
	return b.String()
}

// checkPoints lists the points at both locations (faults off) and returns how many reported
// points are missing; a point no completed backup reported is a duplicate.
func (e *storageEnv) checkPoints(ctx context.Context, where string, want []storagePoint, tally *storageTally) int {
	t := e.t
	lost := 0
	ids := make([]string, len(want))
	for i, p := range want {
		ids[i] = p.id
	}
	for _, loc := range []string{storagePrimary, storageReplica} {
		listed, err := e.repos[loc].Points(ctx)
		require.NoError(t, err, "%s: list points at %s", where, loc)
		have := make([]string, len(listed))
		for i, p := range listed {
			have[i] = p.ID
		}
		for _, id := range ids {
			if !slices.Contains(have, id) {
				lost++
				t.Errorf("%s: restore point %s is missing at %s (have %v)", where, id, loc, have)
			}
		}
		for _, id := range have {
			if !slices.Contains(ids, id) && !tally.extra[loc+"/"+id] {
				tally.duplicates++
				tally.extra[loc+"/"+id] = true
				t.Errorf("%s: %s holds restore point %s that no completed backup reported (reported: %v)", where, loc, id, ids)
			}
		}
	}
	return lost
}

// checkPoint verifies the new point at the primary and restores the replica's copy, comparing
// every file with the source it was made from.
func (e *storageEnv) checkPoint(ctx context.Context, where string, pt storagePoint, tally *storageTally) {
	t := e.t
	res, err := e.repos[storagePrimary].Verify(ctx, pt.id, repo.VerifyOptions{Actor: "chaos storage"})
	if err != nil || !res.OK() || res.BytesChecked != pt.size {
		tally.corrupt++
		t.Errorf("%s: verify %s at the primary: %v, %d failures, %d of %d bytes", where, pt.id, err, len(res.Failures), res.BytesChecked, pt.size)
	} else {
		tally.verified += res.BytesChecked
	}

	target := filepath.Join(e.scratch, pt.id)
	sink, err := sources.NewDirectorySink(target)
	require.NoError(t, err)
	defer os.RemoveAll(target)
	rres, err := e.repos[storageReplica].Restore(ctx, pt.id, sink, repo.RestoreOptions{Actor: "chaos storage"})
	if err != nil {
		tally.corrupt++
		t.Errorf("%s: restore %s from the replica: %v", where, pt.id, err)
		return
	}
	size, files := hashTree(t, target)
	if size != pt.size || rres.Bytes != pt.size || !maps.Equal(files, pt.files) {
		tally.corrupt++
		t.Errorf("%s: the replica's copy of %s restores %d bytes in %d files, want %d bytes in %d files, byte for byte",
			where, pt.id, size, len(files), pt.size, len(pt.files))
		return
	}
	tally.verified += size
}
