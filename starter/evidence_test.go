package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/evidence"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

// evidenceRun is a demo-like history: sync backups replicated to a full copy at home, an
// encrypted copy in the US and a catalog in APAC; a copy to CN denied; drills from the
// primary and the home replica; a legal hold; a KEK rotation and an escrow split.
type evidenceRun struct {
	d        testdeploy.Deployment
	stateDir string
	srv      *testservers.TemporalServer
	points   []string
	start    time.Time
}

func runForEvidence(ctx context.Context, t *testing.T) evidenceRun {
	t.Helper()
	r := evidenceRun{start: time.Now().UTC()}
	r.d = testdeploy.New(t, testdeploy.Options{Replicated: true, Replication: "sync"})
	r.stateDir = filepath.Join(r.d.Root, "var", "state")
	acts, err := activities.New(ctx, r.d.Config, activities.Options{StateDir: r.stateDir, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	r.srv = testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: r.srv.Address, Namespace: r.srv.Namespace, Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	testworker.Start(t, c, acts, workflows.ControlTaskQueue, workflows.RegionTaskQueue("eu-west-1"), workflows.RegionTaskQueue("eu-central-1"))

	exec := func(id string, wf, in, out any) {
		t.Helper()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, wf, in)
		require.NoError(t, err)
		require.NoError(t, run.Get(ctx, out), id)
	}
	for i := range 2 {
		var b workflows.BackupResult
		exec(workflows.BackupWorkflowID("files")+"-"+string(rune('a'+i)), workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"}, &b)
		require.Len(t, b.Replicas, 3)
		r.points = append(r.points, b.RestorePoint)
	}
	var denied workflows.ReplicaResult
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "copy-to-cn", TaskQueue: workflows.ControlTaskQueue},
		workflows.ReplicateWorkflow, workflows.ReplicateInput{Dataset: "files", RestorePoint: r.points[1], Location: "cn-replica"})
	require.NoError(t, err)
	require.Error(t, run.Get(ctx, &denied), "the policy allows nothing in CN")
	var drill workflows.DrillResult
	exec("drill-primary", workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files"}, &drill)
	exec("drill-replica", workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files", Location: "eu-replica"}, &drill)

	code, _, errOut := runCLI(t, "hold", "place", "case-42", "--dataset", "files", "--point", r.points[0], "--reason", "litigation 42",
		"--requested-by", "counsel", "--config", r.d.ConfigPath, "--temporal-address", r.srv.Address, "--namespace", r.srv.Namespace)
	require.Equal(t, exitOK, code, errOut)
	_, err = acts.RotateKey(ctx, activities.KeyOpInput{Dataset: "files", Key: "kek", Reason: "annual rotation"})
	require.NoError(t, err)
	_, err = acts.EscrowKEK(ctx, activities.KeyOpInput{Dataset: "files", Threshold: 2, Holders: []string{"alice", "bob", "carol"},
		Dir: filepath.Join(r.d.Root, "escrow")})
	require.NoError(t, err)
	require.NoError(t, acts.Audit.(*audit.Log).Flush(ctx))
	return r
}

func TestEvidencePackEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := runForEvidence(ctx, t)
	out := filepath.Join(t.TempDir(), "pack")
	code, stdout, errOut := runCLI(t, "evidence", "--config", r.d.ConfigPath, "--from", r.start.Add(-time.Hour).Format(time.RFC3339),
		"--to", time.Now().UTC().Add(time.Minute).Format(time.RFC3339), "--out", out)
	require.Equal(t, exitOK, code, errOut)
	t.Log(stdout)
	p := readPack(t, out)

	// Placement, read from the stores.
	byLoc := map[string]evidence.Placement{}
	for _, pl := range p.Placement {
		byLoc[pl.Location] = pl
	}
	for loc, mode := range map[string]string{"eu-primary": "full", "eu-replica": "full", "us-replica": "encrypted", "ap-catalog": "metadata"} {
		pl := byLoc[loc]
		assert.Equal(t, mode, pl.Mode, loc)
		assert.Equal(t, r.points, pl.Points, loc)
		assert.Len(t, pl.Refs, 2, "%s: each point is backed by the record that wrote or copied it", loc)
		assert.Empty(t, pl.Unbacked, loc)
	}
	assert.Equal(t, "US", byLoc["us-replica"].Jurisdiction)
	assert.Equal(t, evidence.ModeDenied, byLoc["cn-replica"].Mode)
	assert.Empty(t, byLoc["cn-replica"].Points, "nothing reached CN")

	// Transfers: US and APAC per backup, with rule and legal basis; the denied one to CN.
	var toUS, toAP, deniedCN int
	for _, tr := range p.Transfers {
		switch {
		case tr.To == "us-replica" && tr.Outcome == "ok":
			toUS++
			assert.Equal(t, "scc", tr.LegalBasis)
			assert.Equal(t, "encrypted", tr.Mode)
			assert.Positive(t, tr.Bytes)
			assert.Positive(t, tr.Objects)
			assert.NotEmpty(t, tr.ManifestHash)
			assert.Contains(t, tr.Rule, "allows encrypted copies in US")
			assert.Len(t, tr.Refs, 2, "the copy's record and the policy decision's")
		case tr.To == "ap-catalog" && tr.Outcome == "ok":
			toAP++
			assert.Equal(t, "metadata", tr.Mode)
		case tr.To == "cn-replica":
			deniedCN++
			assert.Equal(t, "denied", tr.Outcome)
			assert.Contains(t, tr.Rule, "CN")
		}
	}
	assert.Equal(t, []int{2, 2, 1}, []int{toUS, toAP, deniedCN})

	// Keys: the rotation, the escrow with its holders, and access per KEK version.
	ops := map[string]int{}
	for _, e := range p.Keys.Events {
		ops[e.Operation]++
	}
	assert.Positive(t, ops["rotate_kek"], "rotation: %v", ops)
	assert.Positive(t, ops["wrap"], "data key wraps: %v", ops)
	require.Len(t, p.Keys.Escrow, 1)
	assert.Equal(t, 2, p.Keys.Escrow[0].Threshold)
	assert.Equal(t, 3, p.Keys.Escrow[0].Shares)
	assert.Equal(t, []string{"alice", "bob", "carol"}, p.Keys.Escrow[0].Holders)
	var versions []string
	for _, a := range p.Keys.Access {
		versions = append(versions, a.KeyID)
		assert.Contains(t, a.Holders, "drflow workers in EU")
		assert.Contains(t, a.Holders, "any 2 of the 3 escrow custodians")
	}
	assert.Contains(t, versions, "eu-kek/v1")
	assert.Contains(t, versions, "eu-kek/v2", "the rotation opened access for the new version")
	require.Len(t, p.Keys.Unwraps, 1)
	assert.Positive(t, p.Keys.Unwraps[0].OK)

	// Holds, read back from the stores, with their audited steps.
	require.Len(t, p.Holds, 1)
	h := p.Holds[0]
	assert.Equal(t, "case-42", h.Name)
	assert.Equal(t, "active", h.State)
	assert.Equal(t, []string{r.points[0]}, h.Points)
	assert.Len(t, h.Coverage, 4, "primary and three replicas")
	for _, cv := range h.Coverage {
		assert.Positive(t, cv.Objects, cv.Location)
	}
	var steps []string
	for _, s := range h.Steps {
		steps = append(steps, s.Operation)
	}
	assert.Contains(t, steps, "placed")
	assert.Contains(t, steps, "applied")

	// Objectives: every backup's RPO and every drill's RPO and RTO, from signed records.
	require.Len(t, p.Objectives.Backups, 2)
	assert.Nil(t, p.Objectives.Backups[0].RPOSeconds, "the first backup's RPO is unknown")
	require.NotNil(t, p.Objectives.Backups[1].RPOSeconds)
	assert.Equal(t, 900.0, p.Objectives.Backups[1].RPOObjectiveSeconds)
	require.Len(t, p.Objectives.Drills, 2)
	assert.Equal(t, "eu-replica", p.Objectives.Drills[1].Location)
	for _, x := range p.Objectives.Drills {
		require.NotNil(t, x.RTOSeconds)
		assert.True(t, x.Met)
		assert.Equal(t, 3600.0, x.RTOObjectiveSeconds)
	}
	require.Len(t, p.Objectives.Summary, 1)
	assert.Equal(t, 1.0, p.Objectives.Summary[0].DrillShare)
	require.NotNil(t, p.Objectives.Summary[0].NewestDrill)

	assert.NotEmpty(t, p.Seal.Ref, "the observations are signed in the audit log")

	// Controls.
	status := map[string]string{}
	for _, c := range p.Controls {
		status[c.ID] = c.Status
		assert.NotEmpty(t, c.Evidence, c.ID)
	}
	for _, id := range []string{evidence.ControlSchedule, evidence.ControlRetention, evidence.ControlEncrypted, evidence.ControlWORM,
		evidence.ControlCrossRegion, evidence.ControlNewestPoint, evidence.ControlDrillRTO, evidence.ControlNoPlainAbroad,
		evidence.ControlAuditVerifies} {
		assert.Equal(t, evidence.StatusPass, status[id], "%s: %+v", id, p.Controls)
	}

	// Nothing in the pack names a bucket path, a file or carries plaintext.
	raw, err := os.ReadFile(filepath.Join(out, evidence.FileEvidence))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), r.d.Root, "no local path in evidence.json")

	// Verified offline with the public key only.
	keyFile := filepath.Join(t.TempDir(), "eu-west-1.pem")
	code, pem, errOut := runCLI(t, "audit", "key", "--config", r.d.ConfigPath, "--region", "eu-west-1")
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, os.WriteFile(keyFile, []byte(pem), 0o644))
	code, stdout, errOut = runCLI(t, "audit", "verify", out, "--key", "eu-west-1="+keyFile)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, stdout, "verifies")
	t.Log(stdout)

	t.Run("tampering", func(t *testing.T) { checkTamperKinds(t, out, keyFile) })
}

func readPack(t *testing.T, dir string) evidence.Pack {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, evidence.FileEvidence))
	require.NoError(t, err)
	var p evidence.Pack
	require.NoError(t, json.Unmarshal(raw, &p))
	return p
}

// checkTamperKinds edits copies of a good pack in every way an auditor must catch and
// checks that verification names the file and the kind.
func checkTamperKinds(t *testing.T, good, keyFile string) {
	p := readPack(t, good)
	require.NotEmpty(t, p.Audit)
	segs := p.Audit[0].Segments
	require.GreaterOrEqual(t, len(segs), 3, "the run writes several segments")
	// Records reordered, deleted and inserted inside a segment of many records are checked by
	// the evidence package's own tests; here every record is a segment of its own (each was
	// committed while nothing else waited).
	mid, last := segs[len(segs)/2], segs[len(segs)-1]
	cases := []struct {
		name   string
		tamper func(dir string)
		file   string
		what   string
	}{
		{"edit a record", func(dir string) {
			editFile(t, filepath.Join(dir, mid), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1)
			})
		}, mid, "edited"},
		{"delete a record", func(dir string) { require.NoError(t, os.WriteFile(filepath.Join(dir, mid), nil, 0o644)) }, mid, "deleted"},
		{"insert a record", func(dir string) {
			editLines(t, filepath.Join(dir, mid), func(l [][]byte) [][]byte { return slices.Insert(l, 0, l[0]) })
		}, mid, "inserted"},
		{"drop the newest records and their listing", func(dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, last)))
			editFile(t, filepath.Join(dir, evidence.FileEvidence), func(b []byte) []byte {
				return regexp.MustCompile(`,\s*"`+regexp.QuoteMeta(last)+`"`).ReplaceAll(b, nil)
			})
		}, "", "truncated"},
		{"delete a segment", func(dir string) { require.NoError(t, os.Remove(filepath.Join(dir, segs[0]))) }, segs[0], "deleted"},
		{"swap two segments", func(dir string) {
			a, b := filepath.Join(dir, segs[0]), filepath.Join(dir, segs[1])
			require.NoError(t, os.Rename(a, a+".tmp"))
			require.NoError(t, os.Rename(b, a))
			require.NoError(t, os.Rename(a+".tmp", b))
		}, segs[0], "reordered"},
		{"add a file", func(dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "audit", "extra.jsonl"), []byte("{}\n"), 0o644))
		}, "audit/extra.jsonl", "inserted"},
		{"change a figure in evidence.json", func(dir string) {
			editFile(t, filepath.Join(dir, evidence.FileEvidence), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"rto_objective_seconds": 3600`), []byte(`"rto_objective_seconds": 7200`), 1)
			})
		}, evidence.FileEvidence, "unbacked figure"},
		{"change the report", func(dir string) {
			editFile(t, filepath.Join(dir, evidence.FileHTML), func(b []byte) []byte { return append(b, "<!-- all pass -->"...) })
		}, evidence.FileHTML, "edited"},
	}
	keys, err := keyFlags{"eu-west-1": keyFile}.load()
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pack")
			require.NoError(t, os.CopyFS(dir, os.DirFS(good)))
			tc.tamper(dir)
			_, err := evidence.VerifyPack(context.Background(), dir, keys)
			var f *evidence.Finding
			require.True(t, errors.As(err, &f), "tampering goes unnoticed: %v", err)
			assert.ErrorIs(t, err, evidence.ErrTampered)
			assert.Equal(t, tc.what, f.What, f.Error())
			if tc.file != "" {
				assert.Contains(t, f.File, strings.TrimSuffix(tc.file, ".jsonl"), f.Error())
			}
			code, _, errOut := runCLI(t, "audit", "verify", dir, "--key", "eu-west-1="+keyFile)
			assert.Equal(t, exitFailed, code)
			assert.Contains(t, errOut, tc.what)
		})
	}
	t.Run("another key", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.pem")
		signer, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "other.key"))
		require.NoError(t, err)
		pem, err := audit.EncodePublicKey(audit.PublicKey(signer))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(other, pem, 0o644))
		code, _, errOut := runCLI(t, "audit", "verify", good, "--key", "eu-west-1="+other)
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, errOut, "wrong key")
	})
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func editLines(t *testing.T, path string, fn func([][]byte) [][]byte) {
	t.Helper()
	l := fn(lines(t, path))
	require.NoError(t, os.WriteFile(path, append(bytes.Join(l, []byte("\n")), '\n'), 0o644))
}

func editFile(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	changed := fn(data)
	require.NotEqual(t, data, changed, "the edit changed nothing in %s", path)
	require.NoError(t, os.WriteFile(path, changed, 0o644))
}
