package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/workflows"
)

const (
	regionsMarker     = "PLAINTEXT-MARKER-regions-7f3a"
	regionsSecretName = "payroll-john-smith.csv"
	euRegion          = "eu-west-1"
	usRegion          = "us-east-1"
	apRegion          = "ap-southeast-1"
)

// TestRegionalWorkers runs drflow split by region, as README.md describes: three
// drflow-worker processes on one Temporal dev server, "--region eu-west-1 --control",
// "--region us-east-1" and "--region ap-southeast-1", over testdeploy's ThreeRegions layout
// (one home dataset per region: files in EU, us-files in US, ap-files in APAC).
//
// Each process works in its own copy of the deployment ("view"): the configuration file, its
// own state directory, its own key directory (where only its jurisdiction's keyring is ever
// created), and links to just the store directories and source its worker is meant to open:
// the locations of its region and the replica locations of the datasets homed there (copies
// are written from home). The other regions' keyrings, stores and sources are not in its
// view at all, so a worker that tried to open them would fail or leave a new file behind,
// which the test would see.
//
// It runs sync-tier backups with replication, drills from replicas, a US worker outage and
// retention, then checks that:
//   - every data activity ran on the worker of its task queue's region, and every workflow
//     task and planning activity on the control worker: ActivityTaskStarted identities in
//     every history, mapped to the process IDs the test started;
//   - the US worker never held or opened the EU KEK: no EU keyring in its view, the EU KEK's
//     secret in none of its files, logs or stores, its audit log has key events of the US KEK
//     only, the EU dataset's copy at us-replica is ciphertext with DEKs wrapped by the EU KEK,
//     and a drill of the EU dataset from that copy, which the design routes to the US worker,
//     fails there as NotServed: it holds no key of EU;
//   - SIGKILLing the US worker stalls only US work: a US backup stays scheduled on the US
//     queue (not failed, no attempt lost) while EU and APAC backups, including the EU
//     dataset's encrypted copy into the US bucket (written by the EU worker), complete; once
//     the US worker is back, the US backup and its replication complete.
//
// The EU full replica is in eu-west-1 here, not in a second EU region: a worker serves one
// region's queue, and a drill from a replica runs on the queue of the replica's region, so
// a replica in eu-central-1 would need a fourth process, an eu-central-1 worker.
func TestRegionalWorkers(t *testing.T) {
	began := time.Now()
	files := map[string]string{}
	var total int64
	for i, name := range []string{"a.txt", "sub/b.txt", regionsSecretName} {
		files[name] = strings.Repeat(fmt.Sprintf("%s row %d\n", regionsMarker, i), 3000)
		total += int64(len(files[name]))
	}
	d := testdeploy.New(t, testdeploy.Options{Files: files, ThreeRegions: true, Replication: "sync", KeepLast: 1})
	bin := testservers.GoBinary(t, "./worker")
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	regionOf := map[int]string{} // worker process ID -> the region it serves
	eu := newRegionWorker(t, d, euRegion, true, "source", "eu-primary", "eu-replica", "us-replica", "ap-replica")
	us := newRegionWorker(t, d, usRegion, false, "source-us", "us-primary", "us-replica")
	ap := newRegionWorker(t, d, apRegion, false, "source-ap", "ap-primary", "ap-replica")
	for _, w := range []*regionWorker{eu, us, ap} {
		w.start(t, bin, srv, regionOf)
	}
	setup := time.Since(began)

	var runs []client.WorkflowRun // every run started, for the identity check
	start := func(id string, wf, in any) client.WorkflowRun {
		t.Helper()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, wf, in)
		require.NoError(t, err)
		runs = append(runs, run)
		return run
	}
	datasets := []string{"files", "us-files", "ap-files"}
	backupAll := func(names ...string) map[string]client.WorkflowRun {
		out := map[string]client.WorkflowRun{}
		for _, ds := range names {
			out[ds] = start(workflows.BackupWorkflowID(ds), workflows.BackupWorkflow, workflows.BackupInput{Dataset: ds})
		}
		return out
	}
	result := func(run client.WorkflowRun) workflows.BackupResult {
		t.Helper()
		var res workflows.BackupResult
		require.NoError(t, run.Get(ctx, &res), run.GetID())
		return res
	}
	wantCopies := map[string]map[string]config.CopyMode{
		"files":    {"eu-replica": config.CopyFull, "us-replica": config.CopyEncrypted, "ap-replica": config.CopyMetadata},
		"us-files": {"us-replica": config.CopyFull},
		"ap-files": {"ap-replica": config.CopyFull},
	}
	checkCopies := func(res workflows.BackupResult) {
		t.Helper()
		want := wantCopies[res.Dataset]
		require.Len(t, res.Replicas, len(want), res.Dataset)
		for _, r := range res.Replicas {
			assert.Equal(t, workflows.ReplicaCopied, r.Status, "%s at %s", res.Dataset, r.Location)
			assert.Equal(t, want[r.Location], r.Mode, "%s at %s", res.Dataset, r.Location)
			assert.Positive(t, r.ObjectsCopied, "%s at %s", res.Dataset, r.Location)
		}
	}

	// 1. Every region backs up its dataset and copies it, all at once.
	t0 := time.Now()
	first := map[string]workflows.BackupResult{}
	for ds, run := range backupAll(datasets...) {
		first[ds] = result(run)
		checkCopies(first[ds])
	}
	backups := time.Since(t0)

	// 2. Drills from replicas. The EU full copy (eu-replica) and the US dataset's own copy
	// (us-replica) restore and verify on their regions' workers. A drill of the EU dataset
	// from its encrypted copy in the US would write plaintext where that copy is: the US
	// worker refuses it by policy, at once and for good, and audits the refusal.
	t0 = time.Now()
	drillFrom := func(ds, loc string) client.WorkflowRun {
		return start(workflows.DrillWorkflowID(ds)+"-from-"+loc, workflows.RestoreDrillWorkflow,
			workflows.DrillInput{Dataset: ds, Location: loc})
	}
	euDrill, usDrill, abroad := drillFrom("files", "eu-replica"), drillFrom("us-files", "us-replica"), drillFrom("files", "us-replica")
	for ds, run := range map[string]client.WorkflowRun{"files": euDrill, "us-files": usDrill} {
		var dr workflows.DrillResult
		require.NoError(t, run.Get(ctx, &dr), run.GetID())
		assert.True(t, dr.Verified, run.GetID())
		assert.Equal(t, first[ds].RestorePoint, dr.RestorePoint, run.GetID())
		assert.Equal(t, total, dr.BytesRestored, run.GetID())
	}
	err := abroad.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr, "a drill of the EU dataset on the US worker must fail")
	assert.Equal(t, activities.ErrTypePolicyDenied, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Error(), "plaintext restore of dataset files from us-replica (US) refused")
	drills := time.Since(t0)

	// 3. The US worker dies (SIGKILL). A US backup started now waits, scheduled on the US
	// queue, while EU and APAC backups complete, the EU dataset's encrypted copy into the
	// US bucket included: the EU worker writes it.
	t0 = time.Now()
	us.kill(t)
	usBackup := backupAll("us-files")["us-files"]
	describe := func() *workflowservice.DescribeWorkflowExecutionResponse {
		desc, err := c.DescribeWorkflowExecution(ctx, usBackup.GetID(), usBackup.GetRunID())
		require.NoError(t, err)
		return desc
	}
	require.Eventually(t, func() bool {
		desc, err := c.DescribeWorkflowExecution(ctx, usBackup.GetID(), usBackup.GetRunID())
		return err == nil && len(desc.GetPendingActivities()) == 1 && desc.GetPendingActivities()[0].GetActivityType().GetName() == "Backup"
	}, 30*time.Second, 20*time.Millisecond, "the US backup never scheduled its Backup activity")
	others := backupAll("files", "ap-files")
	second := map[string]workflows.BackupResult{}
	for ds, run := range others {
		second[ds] = result(run)
		checkCopies(second[ds])
	}
	assert.Equal(t, first["files"].RestorePoint, second["files"].PreviousPoint)
	desc := describe()
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())
	require.Len(t, desc.GetPendingActivities(), 1)
	pending := desc.GetPendingActivities()[0]
	assert.Equal(t, "Backup", pending.GetActivityType().GetName())
	assert.Equal(t, enums.PENDING_ACTIVITY_STATE_SCHEDULED, pending.GetState(), "no worker may have started the US backup")
	assert.EqualValues(t, 1, pending.GetAttempt())
	assert.Nil(t, pending.GetLastFailure(), "a stalled activity has not failed")
	assert.Equal(t, []string{workflows.RegionTaskQueue(usRegion)}, scheduledQueues(t, ctx, c, usBackup, "Backup"))
	pointsAt := func(ds, loc string) []string { return objectKeys(t, ctx, d, loc, "datasets/"+ds+"/points/") }
	assert.Len(t, pointsAt("us-files", "us-primary"), 1, "no US restore point may be written while the US worker is down")
	assert.Len(t, pointsAt("files", "us-replica"), 2, "the EU dataset's copy reached the US bucket without the US worker")
	outage := time.Since(t0)

	// 4. The US worker is back: the stalled backup and its replication complete.
	t0 = time.Now()
	us.start(t, bin, srv, regionOf)
	second["us-files"] = result(usBackup)
	checkCopies(second["us-files"])
	assert.Equal(t, first["us-files"].RestorePoint, second["us-files"].PreviousPoint)
	started := activityStarts(t, ctx, c, usBackup)
	require.Contains(t, started, "Backup")
	assert.Equal(t, us.pids[1], pidOf(t, started["Backup"].identity), "the restarted US worker ran the stalled backup")
	assert.EqualValues(t, 1, started["Backup"].attempt, "the stalled backup lost no attempt")
	recovery := time.Since(t0)

	// 5. Retention (keep_last 1) of every dataset, at its primary and every replica: each
	// region's worker prunes its dataset's first point everywhere, the EU worker the EU
	// dataset's ciphertext in the US and its catalog entry in APAC too.
	t0 = time.Now()
	retention := map[string]client.WorkflowRun{}
	for _, ds := range datasets {
		retention[ds] = start(workflows.RetentionWorkflowID(ds), workflows.RetentionWorkflow, workflows.RetentionInput{Dataset: ds})
	}
	for ds, run := range retention {
		var rr workflows.RetentionResult
		require.NoError(t, run.Get(ctx, &rr), run.GetID())
		kept, pruned := []string{second[ds].RestorePoint}, []string{first[ds].RestorePoint}
		assert.Equal(t, kept, rr.Kept, ds)
		assert.Equal(t, pruned, rr.Pruned, ds)
		require.Len(t, rr.Replicas, len(wantCopies[ds]), ds)
		for _, r := range rr.Replicas {
			assert.Equal(t, string(wantCopies[ds][r.Location]), r.Mode, "%s at %s", ds, r.Location)
			assert.Equal(t, kept, r.Kept, "%s at %s", ds, r.Location)
			assert.Equal(t, pruned, r.Pruned, "%s at %s", ds, r.Location)
		}
		dsCfg, ok := d.Config.Dataset(ds)
		require.True(t, ok, ds)
		primary := dsCfg.Primary
		for loc, mode := range wantCopies[ds] {
			prefix := "datasets/" + ds + "/points/"
			if mode == config.CopyMetadata {
				prefix = "datasets/" + ds + "/catalog/"
			}
			assertOnlyPoint(t, objectKeys(t, ctx, d, loc, prefix), kept[0], ds+" at "+loc)
		}
		assertOnlyPoint(t, pointsAt(ds, primary), kept[0], ds+" at "+primary)
	}
	retentions := time.Since(t0)

	// 6. Who ran what: every workflow task and planning activity on the control worker,
	// every data activity on its region's worker.
	ranOn := map[string]map[string]bool{} // activity type -> regions of the workers that ran it
	copyTo := map[string]string{}         // replicate workflow ID -> region of the worker that copied
	dataActivities := 0
	for _, run := range runs {
		walkHistory(t, ctx, c, run.GetID(), run.GetRunID(), func(wfID string, s activityStart) {
			region, ok := regionOf[pidOf(t, s.identity)]
			require.True(t, ok, "%s: %s ran on %q, which no test worker is", wfID, s.activity, s.identity)
			if s.activity == "" { // a workflow task
				assert.Equal(t, euRegion, region, "%s: workflow task on the %s worker", wfID, region)
				return
			}
			if ranOn[s.activity] == nil {
				ranOn[s.activity] = map[string]bool{}
			}
			ranOn[s.activity][region] = true
			if s.queue == workflows.ControlTaskQueue {
				assert.Equal(t, euRegion, region, "%s: %s on the control queue ran on the %s worker", wfID, s.activity, region)
				return
			}
			dataActivities++
			assert.Equal(t, s.queue, workflows.RegionTaskQueue(region), "%s: %s scheduled on %s ran on the %s worker", wfID, s.activity, s.queue, region)
			if s.activity == "Replicate" {
				copyTo[wfID] = region
			}
		})
	}
	all := map[string]bool{euRegion: true, usRegion: true, apRegion: true}
	assert.Equal(t, all, ranOn["Backup"])
	assert.Equal(t, all, ranOn["Replicate"])
	assert.Equal(t, all, ranOn["Retention"])
	assert.Equal(t, map[string]bool{euRegion: true, usRegion: true}, ranOn["Drill"])
	assert.Equal(t, map[string]bool{euRegion: true}, ranOn["Plan"])
	assert.Equal(t, map[string]bool{euRegion: true}, ranOn["PlanReplication"])
	for _, p := range []string{first["files"].RestorePoint, second["files"].RestorePoint} {
		assert.Equal(t, euRegion, copyTo[workflows.ReplicateWorkflowID("files", p, "us-replica")], "the EU worker writes the EU dataset's copy in the US")
	}
	assert.Equal(t, usRegion, copyTo[workflows.ReplicateWorkflowID("us-files", second["us-files"].RestorePoint, "us-replica")])

	// 7. Stop the workers (their audit logs flush), then look at what each one left behind.
	for _, w := range []*regionWorker{eu, us, ap} {
		w.stop(t)
	}
	eu.checkView(t, "eu.keyring")
	us.checkView(t, "us.keyring")
	ap.checkView(t, "ap.keyring")

	// The EU KEK's secret is in the EU view and nowhere the US or APAC workers write.
	raw, err := os.ReadFile(filepath.Join(eu.view, "keys", "eu.keyring"))
	require.NoError(t, err)
	var ring struct {
		Versions []struct {
			Key []byte `json:"key"`
		} `json:"versions"`
	}
	require.NoError(t, json.Unmarshal(raw, &ring))
	require.NotEmpty(t, ring.Versions)
	var secrets [][]byte
	for _, v := range ring.Versions {
		require.NotEmpty(t, v.Key)
		secrets = append(secrets, v.Key, []byte(base64.StdEncoding.EncodeToString(v.Key)),
			[]byte(base64.RawURLEncoding.EncodeToString(v.Key)), []byte(hex.EncodeToString(v.Key)))
	}
	assert.NotEmpty(t, filesHolding(t, eu.view, secrets), "the search finds the EU KEK where it is")
	for _, where := range []string{us.view, ap.view, us.logPath, ap.logPath,
		d.StoreDir("us-primary"), d.StoreDir("us-replica"), d.StoreDir("ap-primary"), d.StoreDir("ap-replica")} {
		assert.Empty(t, filesHolding(t, where, secrets), "the EU KEK's secret outside EU")
	}
	// Outside EU, the EU dataset is ciphertext and EU-wrapped keys only: no plaintext, no
	// file name, and DEKs that only the EU KEK unwraps.
	for _, loc := range []string{"us-replica", "ap-replica"} {
		assert.Empty(t, filesHolding(t, d.StoreDir(loc), [][]byte{[]byte(regionsMarker), []byte(regionsSecretName)}), "plaintext at %s", loc)
	}
	keyObjects := objectKeys(t, ctx, d, "us-replica", keys.KeysPrefix("files"))
	require.NotEmpty(t, keyObjects, "the encrypted copy carries its wrapped DEKs")
	st := openStore(t, ctx, d, "us-replica")
	for _, key := range keyObjects {
		rc, err := st.Get(ctx, key, providers.GetOptions{})
		require.NoError(t, err)
		var obj struct {
			KEKID        string `json:"kek_id"`
			Jurisdiction string `json:"jurisdiction"`
			WrappedDEK   []byte `json:"wrapped_dek"`
		}
		require.NoError(t, json.NewDecoder(rc).Decode(&obj), key)
		require.NoError(t, rc.Close())
		assert.True(t, strings.HasPrefix(obj.KEKID, "eu-kek/"), "%s is wrapped by %q", key, obj.KEKID)
		assert.Equal(t, "EU", obj.Jurisdiction, key)
		assert.NotEmpty(t, obj.WrappedDEK, key)
	}

	// Audit: each region's log verifies; only the EU one has EU key operations, and the EU
	// log records the encrypted copies into the US.
	euEvents := auditEvents(t, ctx, d, eu, "eu-primary")
	var euKEK, usCopies int
	for _, ev := range euEvents {
		if ev.Kind == audit.KindKey && strings.HasPrefix(ev.KeyID, "eu-kek/") {
			euKEK++
		}
		if ev.Kind == audit.KindCopy && ev.Destination == "us-replica" && ev.Outcome == audit.OutcomeOK {
			assert.Equal(t, string(config.CopyEncrypted), ev.CopyMode)
			usCopies++
		}
	}
	assert.Positive(t, euKEK, "the EU log has the EU KEK's operations")
	assert.Equal(t, 2, usCopies, "the EU log has both encrypted copies into the US")
	for w, primary := range map[*regionWorker]string{us: "us-primary", ap: "ap-primary"} {
		own, denied := 0, 0
		for _, ev := range auditEvents(t, ctx, d, w, primary) {
			if ev.Kind == audit.KindRestore && ev.Outcome == audit.OutcomeDenied && ev.Dataset == "files" {
				denied++ // the refused drill of the EU dataset from its US copy
				continue
			}
			assert.NotEqual(t, "files", ev.Dataset, "%s log: %+v", w.region, ev)
			assert.NotContains(t, ev.KeyID, "eu-kek", "%s log: %+v", w.region, ev)
			if ev.Kind == audit.KindKey {
				assert.NotEqual(t, "EU", ev.Jurisdiction, "%s log: %+v", w.region, ev)
				own++
			}
		}
		assert.Positive(t, own, "%s log has its own key operations", w.region)
		if w == us {
			assert.Equal(t, 1, denied, "the US log has the refused drill")
		} else {
			assert.Zero(t, denied, "%s log", w.region)
		}
	}
	for _, w := range []*regionWorker{us, ap} {
		log, err := os.ReadFile(w.logPath)
		require.NoError(t, err)
		for _, s := range []string{"eu-kek", "eu.keyring", eu.view, regionsMarker, regionsSecretName} {
			assert.NotContains(t, string(log), s, "%s worker log", w.region)
		}
	}

	t.Logf("%d workflow runs (plus children), %d data activities on their regions' workers; setup %.1fs, backups %.1fs, drills %.1fs, "+
		"US outage %.1fs, US recovery %.1fs, retention %.1fs, total %.1fs",
		len(runs), dataActivities, setup.Seconds(), backups.Seconds(), drills.Seconds(), outage.Seconds(), recovery.Seconds(),
		retentions.Seconds(), time.Since(began).Seconds())
}

// regionWorker is one drflow-worker process serving one region, in its own view of the
// deployment.
type regionWorker struct {
	region  string
	control bool
	view    string   // the worker's copy of the deployment: its working directory
	stores  []string // the store locations linked into the view
	source  string   // the source directory linked into the view, relative to it
	logPath string   // its stderr, across restarts
	cmd     *exec.Cmd
	pids    []int // every process started, in order
}

// newRegionWorker writes the view of the worker of region: the deployment's configuration,
// links to the shared store directories of locs and to the source directory, and nothing
// else; the worker creates its keyring and state there.
func newRegionWorker(t *testing.T, d testdeploy.Deployment, region string, control bool, source string, locs ...string) *regionWorker {
	t.Helper()
	w := &regionWorker{region: region, control: control, view: filepath.Join(d.Root, "views", region), stores: locs,
		source: source, logPath: filepath.Join(d.Root, "logs", region+".log")}
	require.NoError(t, os.MkdirAll(filepath.Join(w.view, "stores"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Dir(w.logPath), 0o755))
	cfg, err := os.ReadFile(d.ConfigPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(w.view, "drflow.yaml"), cfg, 0o644))
	for _, loc := range locs {
		require.NoError(t, os.MkdirAll(d.StoreDir(loc), 0o700))
		require.NoError(t, os.Symlink(d.StoreDir(loc), filepath.Join(w.view, "stores", loc)))
	}
	require.NoError(t, os.Symlink(filepath.Join(d.Root, source), filepath.Join(w.view, source)))
	t.Cleanup(func() {
		if w.cmd != nil && w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(w.logPath)
			t.Logf("%s worker log (tail):\n%s", region, tail(string(b), 6000))
		}
	})
	return w
}

// start starts the worker process and records its process ID, which its Temporal identity
// (pid@host@) names.
func (w *regionWorker) start(t *testing.T, bin string, srv *testservers.TemporalServer, regionOf map[int]string) {
	t.Helper()
	args := []string{"--config", filepath.Join(w.view, "drflow.yaml"), "--region", w.region,
		"--state-dir", filepath.Join(w.view, "state"), "--temporal-address", srv.Address, "--namespace", srv.Namespace,
		"--metrics-addr", ""}
	if w.control {
		args = append(args, "--control")
	}
	log, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = w.view
	cmd.Stdout, cmd.Stderr = io.Discard, log
	require.NoError(t, cmd.Start())
	w.cmd = cmd
	w.pids = append(w.pids, cmd.Process.Pid)
	regionOf[cmd.Process.Pid] = w.region
}

// kill SIGKILLs the worker and waits until it is gone.
func (w *regionWorker) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(os.Kill))
	_ = w.cmd.Wait()
}

// stop sends SIGTERM and requires a clean exit.
func (w *regionWorker) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "%s worker exit", w.region)
	case <-time.After(time.Minute):
		t.Fatalf("%s worker did not stop within a minute of SIGTERM", w.region)
	}
}

// checkView requires that the worker created nothing in its view but its own keyring and
// state: no other jurisdiction's keyring, no store directory besides the links it was given.
func (w *regionWorker) checkView(t *testing.T, keyring string) {
	t.Helper()
	assert.ElementsMatch(t, []string{"drflow.yaml", "keys", "state", "stores", w.source}, dirNames(t, w.view), "%s view", w.region)
	for _, name := range dirNames(t, filepath.Join(w.view, "keys")) {
		assert.True(t, strings.HasPrefix(name, keyring), "%s view holds key file %s", w.region, name)
	}
	assert.FileExists(t, filepath.Join(w.view, "keys", keyring))
	assert.ElementsMatch(t, w.stores, dirNames(t, filepath.Join(w.view, "stores")), "%s view's stores", w.region)
	for _, loc := range w.stores {
		fi, err := os.Lstat(filepath.Join(w.view, "stores", loc))
		require.NoError(t, err)
		assert.Equal(t, fs.ModeSymlink, fi.Mode().Type(), "%s view: store %s is still the link it was given", w.region, loc)
	}
	assert.Equal(t, []string{w.region + ".key"}, dirNames(t, filepath.Join(w.view, "state", "audit")), "%s audit signing keys", w.region)
}

// activityStart is one ActivityTaskStarted (or, with an empty activity, WorkflowTaskStarted)
// event with what was scheduled.
type activityStart struct {
	activity string
	queue    string
	identity string
	attempt  int32
}

// walkHistory calls fn for every workflow and activity task start of the run and, recursively,
// of its child workflows.
func walkHistory(t *testing.T, ctx context.Context, c client.Client, id, runID string, fn func(wfID string, s activityStart)) {
	t.Helper()
	scheduled := map[int64]activityStart{}
	var children [][2]string
	it := c.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		switch {
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			a := ev.GetActivityTaskScheduledEventAttributes()
			scheduled[ev.GetEventId()] = activityStart{activity: a.GetActivityType().GetName(), queue: a.GetTaskQueue().GetName()}
		case ev.GetActivityTaskStartedEventAttributes() != nil:
			a := ev.GetActivityTaskStartedEventAttributes()
			s, ok := scheduled[a.GetScheduledEventId()]
			require.True(t, ok, "%s: activity started without being scheduled", id)
			s.identity, s.attempt = a.GetIdentity(), a.GetAttempt()
			fn(id, s)
		case ev.GetWorkflowTaskStartedEventAttributes() != nil:
			fn(id, activityStart{identity: ev.GetWorkflowTaskStartedEventAttributes().GetIdentity()})
		case ev.GetChildWorkflowExecutionStartedEventAttributes() != nil:
			we := ev.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution()
			children = append(children, [2]string{we.GetWorkflowId(), we.GetRunId()})
		}
	}
	for _, ch := range children {
		walkHistory(t, ctx, c, ch[0], ch[1], fn)
	}
}

// activityStarts returns the activity starts of run itself, by activity type (the last one
// of each type).
func activityStarts(t *testing.T, ctx context.Context, c client.Client, run client.WorkflowRun) map[string]activityStart {
	t.Helper()
	out := map[string]activityStart{}
	walkHistory(t, ctx, c, run.GetID(), run.GetRunID(), func(wfID string, s activityStart) {
		if wfID == run.GetID() && s.activity != "" {
			out[s.activity] = s
		}
	})
	return out
}

// scheduledQueues returns the task queues that activity was scheduled on by run itself.
func scheduledQueues(t *testing.T, ctx context.Context, c client.Client, run client.WorkflowRun, activity string) []string {
	t.Helper()
	var queues []string
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == activity {
			queues = append(queues, a.GetTaskQueue().GetName())
		}
	}
	return queues
}

// pidOf returns the process ID in a Temporal SDK identity ("pid@host@...").
func pidOf(t *testing.T, identity string) int {
	t.Helper()
	pid, _, _ := strings.Cut(identity, "@")
	n, err := strconv.Atoi(pid)
	require.NoError(t, err, "identity %q", identity)
	return n
}

func openStore(t *testing.T, ctx context.Context, d testdeploy.Deployment, loc string) providers.Store {
	t.Helper()
	st, err := stores.Open(ctx, mustLocation(t, d, loc))
	require.NoError(t, err)
	return st
}

// objectKeys lists the keys under prefix at location loc.
func objectKeys(t *testing.T, ctx context.Context, d testdeploy.Deployment, loc, prefix string) []string {
	t.Helper()
	var out []string
	require.NoError(t, openStore(t, ctx, d, loc).List(ctx, prefix, func(oi providers.ObjectInfo) error {
		out = append(out, oi.Key)
		return nil
	}))
	return out
}

func assertOnlyPoint(t *testing.T, keys []string, point, where string) {
	t.Helper()
	require.NotEmpty(t, keys, where)
	for _, k := range keys {
		assert.Contains(t, k, point, "%s still holds %s", where, k)
	}
}

// auditEvents verifies the audit log of w's region, kept at location loc and signed with the
// key in w's state directory, and returns its events.
func auditEvents(t *testing.T, ctx context.Context, d testdeploy.Deployment, w *regionWorker, loc string) []audit.Event {
	t.Helper()
	keyPath := filepath.Join(w.view, "state", "audit", w.region+".key")
	require.FileExists(t, keyPath)
	signer, err := audit.LoadOrCreateSigner(keyPath)
	require.NoError(t, err)
	var events []audit.Event
	_, err = audit.Verify(ctx, openStore(t, ctx, d, loc), w.region, audit.PublicKey(signer), audit.WithEntries(func(e audit.Entry) error {
		events = append(events, e.Event)
		return nil
	}))
	require.NoError(t, err, "%s audit log", w.region)
	require.NotEmpty(t, events, "%s audit log", w.region)
	return events
}

// filesHolding returns the regular files under root (root itself if it is a file; links are
// not followed) that contain any of needles.
func filesHolding(t *testing.T, root string, needles [][]byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(data, n) {
				out = append(out, path)
				break
			}
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}
