package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/workflows"
)

// TestChaosCorruption damages repository objects on purpose and requires every damage to be
// detected by all three ways a user checks a restore point: `drflow verify`, a restore drill
// (RestoreDrillWorkflow on a Temporal dev server with an in-process worker) and `drflow
// restore --to DIR`, which must refuse and leave nothing in DIR that differs from the source.
//
// Each trial starts from the pristine repository, picks one of the dataset's restore points
// and damages objects that this point needs (Repo.PointObjects): it flips a bit of, truncates
// or deletes a pack, a pack index or the point's manifest, or swaps the ciphertexts of two of
// the point's chunks within a pack or across two packs. The damage goes through the store's
// own API (Put, Delete), as a store that loses or rots data without noticing would serve it:
// detecting it is the repository format's job. Then the trial puts the pristine objects back.
//
// Pack damage stays within the pack's blobs: the trailer after them is a second copy of the
// pack index, kept to rebuild a lost index, that no restore, verify or drill reads, so its
// damage costs no restore point anything (and a user can see it nowhere yet).
//
// Detected means: verify exits 1 and its report names the damaged pack or point (a deleted
// index leaves nothing to name the pack by: its chunks are "in no pack index"); the drill
// fails with an integrity, format, not-found or verification error, never passes and never
// keeps retrying; the restore exits 1 naming the pack or point, and the target holds no entry
// that differs from the source. A deleted manifest counts as detected when the point's
// verify, drill and restore fail as not found: a drill of a named point must never fall back
// to another point. A quarter of the bit flips in indexes and manifests hit the clear preamble
// (magic, version, key epoch), and two fixed cases before the trials flip a key epoch.
//
// A failure names the seed, trial, kind and object. The same seed and trial draw the same
// kind, class and relative position, but data keys, and with them chunk boundaries, pack and
// point IDs, are new in every run, so the bytes hit differ.
func TestChaosCorruption(t *testing.T) {
	plan := PlanFor(t, "corruption", 12, 100)
	start := time.Now()
	f := newCorrFixture(t)

	sum := Summary{Plan: plan}
	// The clean control: an undamaged repository verifies, drills and restores byte for byte,
	// so that detection below is not just "everything fails".
	for _, p := range f.points {
		sum.BytesVerified += f.control(p)
	}

	// Two fixed cases first, which a seed draws rarely: a flipped key epoch in the clear
	// preamble of an index and of a manifest looks like a missing data key, and must still be
	// reported as damage to that index or manifest.
	last := f.points[len(f.points)-1]
	for _, key := range []string{last.indexes[0], last.manifest} {
		d := f.flipEpoch(last, key)
		if o := f.probe(d); len(o.missed()) > 0 {
			t.Errorf("seed=%d fixed case: %s of %s not detected by %s\n%s", plan.Seed, d.desc, key, strings.Join(o.missed(), ", "), o.log)
		}
		f.repair(d)
	}

	counts := map[string]int{}
	refused := 0
	for i := range plan.Trials {
		rng := plan.Rand(i)
		d := f.inject(rng)
		counts[d.kind]++
		if d.sameLen {
			counts["same_length"]++
		}
		if d.across {
			counts["across_packs"]++
		}
		if d.preamble {
			counts["preamble"]++
		}
		sum.Injected++
		o := f.probe(d)
		if o.restoreRefused {
			refused++
		}
		if o.corruptFiles > 0 {
			sum.Corrupt++
		}
		t.Logf("trial %d: %s %s of point %s: %s: %s", i, d.kind, d.class, d.point.id, strings.Join(d.objects, ","), d.desc)
		if missed := o.missed(); len(missed) == 0 {
			sum.Detected++
			sum.Completed++
		} else {
			t.Errorf("seed=%d trial=%d kind=%s class=%s object=%s: %s not detected by %s\n%s",
				plan.Seed, i, d.kind, d.class, strings.Join(d.objects, ","), d.desc, strings.Join(missed, ", "), o.log)
		}
		f.repair(d)
	}

	// The repaired repository is the pristine one: the latest point still restores exactly.
	sum.BytesVerified += f.control(f.points[len(f.points)-1])
	sum.Notes = []string{
		fmt.Sprintf("bitflip=%d truncate=%d delete=%d swap=%d", counts[corrBitflip], counts[corrTruncate], counts[corrDelete], counts[corrSwap]),
		fmt.Sprintf("bitflip_preamble=%d swap_same_length=%d swap_across_packs=%d", counts["preamble"], counts["same_length"], counts["across_packs"]),
		fmt.Sprintf("restores_refused=%d", refused),
		fmt.Sprintf("packs=%d points=%d", len(f.packs), len(f.points)),
		fmt.Sprintf("duration=%s", time.Since(start).Round(time.Second)),
	}
	Report(t, sum)
	if sum.Detected != sum.Injected {
		t.Errorf("detected %d of %d injected corruptions; 100%% required", sum.Detected, sum.Injected)
	}
}

// Damage kinds and object classes.
const (
	corrBitflip  = "bitflip"
	corrTruncate = "truncate"
	corrDelete   = "delete"
	corrSwap     = "swap"

	corrClassPack     = "pack"
	corrClassIndex    = "index"
	corrClassManifest = "manifest"
	corrClassChunks   = "chunks"
)

const corrDataset = "files"

// Bounds on one command line run and one drill, which take about a second each.
const (
	corrCLITimeout   = 2 * time.Minute
	corrDrillTimeout = 2 * time.Minute
)

// corrFixture is a deployment with two restore points of a small tree, a Temporal dev
// server with an in-process worker, and the drflow command line.
type corrFixture struct {
	t        *testing.T
	ctx      context.Context
	d        testdeploy.Deployment
	stateDir string
	acts     *activities.Activities
	client   client.Client
	store    providers.Store
	bin      string
	points   []corrPoint
	// pristine holds every object of the dataset as the backups left it.
	pristine map[string][]byte
	// packs are the dataset's packs by store key.
	packs map[string]*corrPack
}

// corrPoint is a restore point, the tree it holds and the objects it needs.
type corrPoint struct {
	id       string
	tree     map[string]corrEntry
	bytes    int64
	manifest string
	packs    []string // store keys of the packs holding its chunks
	indexes  []string // store keys of their indexes
}

// corrEntry is one entry of a source tree.
type corrEntry struct {
	mode    fs.FileMode // type bits only
	content []byte
	target  string
}

func newCorrFixture(t *testing.T) *corrFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	t.Cleanup(cancel)

	// The drflow command line, as users run it; built before anything else starts.
	bin := testservers.GoBinary(t, "./starter")

	// The same tree in every run.
	src := rand.NewChaCha8([32]byte{'d', 'r', 'f', 'l', 'o', 'w'})
	rng := rand.New(src)
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = src.Read(b)
		return b
	}
	logLines := func(name string, n int) []byte {
		var b bytes.Buffer
		levels := []string{"INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"}
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "2025-03-%02dT%02d:%02d:%02d.%03dZ %-5s %s request id=%08x took=%dms status=%d\n",
				1+i/86400%28, i/3600%24, i/60%60, i%60, rng.IntN(1000), levels[rng.IntN(len(levels))], name,
				rng.Uint32(), rng.IntN(900), []int{200, 200, 200, 204, 404, 500}[rng.IntN(6)])
		}
		return b.Bytes()[:n]
	}
	prose := func(n int) []byte {
		words := strings.Fields("restore point chunk pack index manifest verify drill recovery objective tier region key epoch " +
			"the a of to and is in that every each which backup dataset location store sealed authenticated")
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
		}
		return b.Bytes()[:n]
	}

	// A small tree: incompressible media and data, compressible logs and text, small keys of
	// equal size (so that some swapped chunks have equal lengths and only their binding to the
	// chunk ID gives them away), whole files and long runs shared between files.
	big := random(12 << 20)
	photo2 := random(1536 << 10)
	files := map[string]string{
		"docs/readme.md":            string(prose(20 << 10)),
		"docs/guide/chapter-1.md":   string(prose(5 << 10)),
		"docs/guide/chapter-2.md":   string(prose(60 << 10)),
		"docs/guide/chapter-3.md":   string(prose(33 << 10)),
		"etc/app-1.key":             string(random(4096)),
		"etc/app-2.key":             string(random(4096)),
		"etc/app-3.key":             string(random(4096)),
		"etc/app-4.key":             string(random(4096)),
		"data/big.bin":              string(big),
		"data/big-copy.bin":         string(big),
		"data/mixed.bin":            string(append(random(200<<10), big[:6<<20]...)),
		"logs/app.log":              string(logLines("api", 5<<20)),
		"media/photo-1.jpg":         string(random(700 << 10)),
		"media/photo-2.jpg":         string(photo2),
		"media/photo-3.jpg":         string(random(2560 << 10)),
		"empty.txt":                 "",
		"docs/guide/.chapter-4.swp": string(random(300)),
	}
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{corrDataset}, Files: files})
	require.NoError(t, os.Symlink("logs/app.log", filepath.Join(d.Source, "current.log")))
	require.NoError(t, os.MkdirAll(filepath.Join(d.Source, "tmp", "cache"), 0o755))

	f := &corrFixture{t: t, ctx: ctx, d: d, bin: bin, stateDir: filepath.Join(d.Root, "var", "state")}
	// The worker's state directory is where the command line looks by default.
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: f.stateDir,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = acts.Close(context.Background()) })
	f.acts = acts
	f.store = acts.Stores["eu-primary"]
	require.NotNil(t, f.store)

	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	f.client = c
	testworker.Start(t, c, acts)

	// Two restore points: the tree, then the tree with files added. Nothing is changed or
	// removed, so the second point references every chunk of the first and every pack of
	// the dataset holds only chunks that the points needing it reference: damage to any
	// blob of a pack a point needs is damage to that point.
	f.backup()
	more := map[string][]byte{
		"inbox/report.bin":        random(2 << 20),
		"inbox/photo-2-copy.jpg":  photo2,
		"logs/app.1.log":          logLines("worker", 1<<20),
		"etc/app-5.key":           random(4096),
		"docs/guide/chapter-5.md": prose(9 << 10),
	}
	for name, b := range more {
		path := filepath.Join(d.Source, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, b, 0o644))
	}
	f.backup()

	f.snapshot()
	return f
}

// backup runs BackupWorkflow and records the point with the tree it backed up.
func (f *corrFixture) backup() {
	t := f.t
	t.Helper()
	run, err := f.client.ExecuteWorkflow(f.ctx, client.StartWorkflowOptions{ID: workflows.BackupWorkflowID(corrDataset),
		TaskQueue: workflows.ControlTaskQueue}, workflows.BackupWorkflow, workflows.BackupInput{Dataset: corrDataset})
	require.NoError(t, err)
	var res workflows.BackupResult
	require.NoError(t, run.Get(f.ctx, &res))
	tree, n := corrReadTree(t, f.d.Source)
	f.points = append(f.points, corrPoint{id: res.RestorePoint, tree: tree, bytes: n,
		manifest: repo.PointObjectKey(corrDataset, res.RestorePoint)})
}

// snapshot keeps every object of the dataset, decodes every pack's layout and lists the
// objects each point needs.
func (f *corrFixture) snapshot() {
	t := f.t
	t.Helper()
	f.pristine = map[string][]byte{}
	prefix := "datasets/" + corrDataset + "/"
	var names []string
	require.NoError(t, f.store.List(f.ctx, prefix, func(oi providers.ObjectInfo) error {
		names = append(names, oi.Key)
		return nil
	}))
	for _, k := range names {
		f.pristine[k] = f.get(k)
	}

	mgr := f.acts.Keys["EU"]
	require.NotNil(t, mgr)
	f.packs = map[string]*corrPack{}
	for k, b := range f.pristine {
		if !strings.HasPrefix(k, prefix+"packs/") {
			continue
		}
		id := k[strings.LastIndexByte(k, '/')+1:]
		idxKey := prefix + "index/" + id
		idx, ok := f.pristine[idxKey]
		require.True(t, ok, "pack %s has no index", k)
		p, err := corrDecodePack(f.ctx, mgr, f.store, corrDataset, k, idxKey, id, b, idx)
		require.NoError(t, err)
		f.packs[k] = p
	}
	require.GreaterOrEqual(t, len(f.packs), 3, "the tree should fill several packs")

	r, err := repo.Open(repo.Options{Store: f.store, Dataset: corrDataset, Keys: mgr, Audit: f.acts.Audit})
	require.NoError(t, err)
	for i := range f.points {
		p := &f.points[i]
		objs, err := r.PointObjects(f.ctx, p.id)
		require.NoError(t, err)
		for _, k := range objs {
			switch {
			case strings.HasPrefix(k, prefix+"packs/"):
				p.packs = append(p.packs, k)
			case strings.HasPrefix(k, prefix+"index/"):
				p.indexes = append(p.indexes, k)
			}
		}
		require.Contains(t, objs, p.manifest)
		require.NotEmpty(t, p.packs)
		require.Len(t, p.indexes, len(p.packs))
	}
	last := f.points[len(f.points)-1]
	require.Len(t, last.packs, len(f.packs), "the newest point needs every pack")
	require.Less(t, len(f.points[0].packs), len(f.packs), "the first point needs only its own packs")
}

// corrDamage is what a trial did to the repository.
type corrDamage struct {
	kind, class string
	point       corrPoint
	// objects are the store keys changed; desc says how.
	objects []string
	desc    string
	// names are the IDs (of a pack or point) of which verify's report must name one; none
	// for a deleted index, whose pack nothing names any more.
	names []string
	// Of a swap: blobs of the same length; blobs of two packs. Of a bit flip: in the preamble.
	sameLen, across, preamble bool
}

// inject damages the repository as rng draws.
func (f *corrFixture) inject(rng *rand.Rand) corrDamage {
	t := f.t
	t.Helper()
	d := corrDamage{kind: []string{corrBitflip, corrTruncate, corrDelete, corrSwap}[rng.IntN(4)]}
	d.point = f.points[rng.IntN(len(f.points))]
	if d.kind == corrSwap {
		d.class = corrClassChunks
		f.swap(rng, &d)
		return d
	}
	d.class = []string{corrClassPack, corrClassIndex, corrClassManifest}[rng.IntN(3)]
	var key string
	switch d.class {
	case corrClassPack:
		key = d.point.packs[rng.IntN(len(d.point.packs))]
	case corrClassIndex:
		key = d.point.indexes[rng.IntN(len(d.point.indexes))]
	default:
		key = d.point.manifest
	}
	d.objects = []string{key}
	switch {
	case d.class == corrClassManifest:
		d.names = []string{d.point.id}
	case d.class == corrClassPack || d.kind != corrDelete:
		d.names = []string{key[strings.LastIndexByte(key, '/')+1:]}
	}
	orig := f.pristine[key]
	// The bytes the point needs: a pack's blobs, all of an index or manifest.
	needed := int64(len(orig))
	if p := f.packs[key]; p != nil {
		needed = p.blobsEnd
	}
	switch d.kind {
	case corrBitflip:
		at, bit := rng.Int64N(needed), byte(1)<<rng.IntN(8)
		// A quarter of the flips in an index or manifest hit its clear preamble (magic,
		// version, key epoch), which is read before anything is authenticated.
		if d.class != corrClassPack && rng.IntN(4) == 0 {
			at = rng.Int64N(corrPreambleLen)
			d.preamble = true
		}
		b := bytes.Clone(orig)
		b[at] ^= bit
		f.put(key, b)
		d.desc = fmt.Sprintf("bit %#02x of byte %d of %d", bit, at, len(orig))
	case corrTruncate:
		n := rng.Int64N(needed)
		f.put(key, orig[:n])
		d.desc = fmt.Sprintf("truncated from %d to %d bytes", len(orig), n)
	case corrDelete:
		require.NoError(t, f.store.Delete(f.ctx, key))
		d.desc = fmt.Sprintf("deleted (%d bytes)", len(orig))
	}
	return d
}

// flipEpoch flips the lowest bit of the key epoch in the preamble of an index or manifest
// that point p needs.
func (f *corrFixture) flipEpoch(p corrPoint, key string) corrDamage {
	d := corrDamage{kind: corrBitflip, class: corrClassIndex, point: p, objects: []string{key}, preamble: true,
		names: []string{key[strings.LastIndexByte(key, '/')+1:]}, desc: "key epoch's lowest bit flipped"}
	if key == p.manifest {
		d.class = corrClassManifest
	}
	b := bytes.Clone(f.pristine[key])
	b[corrPreambleLen-1] ^= 1
	f.put(key, b)
	return d
}

// swap exchanges the sealed blobs of two of the point's chunks, in one pack or across two,
// leaving the indexes as they are. Half the time it picks two blobs of the same length, if
// the point has such (small incompressible files): then every offset and length in the
// indexes still fits, and only each blob's binding to its chunk ID gives the swap away.
func (f *corrFixture) swap(rng *rand.Rand, d *corrDamage) {
	t := f.t
	t.Helper()
	type pick struct {
		pack *corrPack
		blob int
	}
	byLen := map[int64][]pick{}
	var all []pick
	for _, k := range d.point.packs {
		p := f.packs[k]
		for i, b := range p.blobs {
			byLen[b.n] = append(byLen[b.n], pick{p, i})
			all = append(all, pick{p, i})
		}
	}
	require.GreaterOrEqual(t, len(all), 2)
	var lens []int64
	for n, ps := range byLen {
		if len(ps) >= 2 {
			lens = append(lens, n)
		}
	}
	slices.Sort(lens)
	pool := all
	if rng.IntN(2) == 0 && len(lens) > 0 {
		pool = byLen[lens[rng.IntN(len(lens))]]
	}
	i := rng.IntN(len(pool))
	j := rng.IntN(len(pool) - 1)
	if j >= i {
		j++
	}
	a, b := pool[i], pool[j]
	sa, sb := a.pack.blobs[a.blob], b.pack.blobs[b.blob]
	d.sameLen = sa.n == sb.n
	if a.pack == b.pack {
		if sb.off < sa.off {
			sa, sb = sb, sa
		}
		orig := f.pristine[a.pack.key]
		f.put(a.pack.key, slices.Concat(orig[:sa.off], orig[sb.off:sb.off+sb.n], orig[sa.off+sa.n:sb.off],
			orig[sa.off:sa.off+sa.n], orig[sb.off+sb.n:]))
		d.objects = []string{a.pack.key}
		d.names = []string{a.pack.id}
		d.desc = fmt.Sprintf("swapped blobs at %d (%d bytes) and %d (%d bytes) within the pack", sa.off, sa.n, sb.off, sb.n)
		return
	}
	pa, pb := f.pristine[a.pack.key], f.pristine[b.pack.key]
	ca, cb := pa[sa.off:sa.off+sa.n], pb[sb.off:sb.off+sb.n]
	f.put(a.pack.key, slices.Concat(pa[:sa.off], cb, pa[sa.off+sa.n:]))
	f.put(b.pack.key, slices.Concat(pb[:sb.off], ca, pb[sb.off+sb.n:]))
	d.objects = []string{a.pack.key, b.pack.key}
	d.names = []string{a.pack.id, b.pack.id}
	d.across = true
	d.desc = fmt.Sprintf("swapped the blob at %d (%d bytes) of the first pack with the blob at %d (%d bytes) of the second",
		sa.off, sa.n, sb.off, sb.n)
}

// repair puts the damaged objects back as they were and checks that the dataset is pristine.
func (f *corrFixture) repair(d corrDamage) {
	t := f.t
	t.Helper()
	for _, k := range d.objects {
		f.put(k, f.pristine[k])
		require.Equal(t, f.pristine[k], f.get(k), "repair %s", k)
	}
	got := map[string]int64{}
	require.NoError(t, f.store.List(f.ctx, "datasets/"+corrDataset+"/", func(oi providers.ObjectInfo) error {
		got[oi.Key] = oi.Size
		return nil
	}))
	want := map[string]int64{}
	for k, b := range f.pristine {
		want[k] = int64(len(b))
	}
	require.Equal(t, want, got, "the dataset after repair")
}

// corrOutcome is what the three checks made of a damage.
type corrOutcome struct {
	verifyFailed, drillFailed, restoreRefused bool
	// verifyNamed and restoreNamed: the command's report names the damaged pack or point
	// (where one can be named), so that its failure is about the damage.
	verifyNamed, restoreNamed bool
	// corruptFiles counts entries left in a restore or drill target that differ from the
	// source (or that the source does not have).
	corruptFiles int
	log          string
}

func (o corrOutcome) missed() []string {
	var m []string
	if !o.verifyFailed {
		m = append(m, "verify")
	} else if !o.verifyNamed {
		m = append(m, "verify's report (it names neither pack nor point damaged)")
	}
	if !o.drillFailed {
		m = append(m, "drill")
	}
	if !o.restoreRefused {
		m = append(m, "restore")
	} else if !o.restoreNamed {
		m = append(m, "restore's error (it names neither pack nor point damaged)")
	}
	if o.corruptFiles > 0 {
		m = append(m, fmt.Sprintf("the restore target (%d corrupt entries left)", o.corruptFiles))
	}
	return m
}

// probe runs verify, a drill and a restore of the damaged point.
func (f *corrFixture) probe(d corrDamage) corrOutcome {
	t := f.t
	t.Helper()
	var o corrOutcome
	var log strings.Builder

	// drflow verify: exit 1 with the point reported as failed.
	names := func(out string) bool {
		return len(d.names) == 0 || slices.ContainsFunc(d.names, func(n string) bool { return strings.Contains(out, n) })
	}
	code, stdout, stderr := f.cli("verify", corrDataset, "--point", d.point.id, "--json")
	fmt.Fprintf(&log, "verify: exit %d: %s%s", code, corrClip(stdout), corrClip(stderr))
	o.verifyFailed = code == 1
	var rep struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal([]byte(stdout), &rep) == nil && rep.OK {
		o.verifyFailed = false
	}
	o.verifyNamed = names(stdout + stderr)

	// A drill of the named point fails, as the damage (not something else) fails it, and
	// leaves no scratch target behind.
	res, err := f.drill(d.point.id)
	fmt.Fprintf(&log, "drill: verified=%v err=%v\n", res.Verified, err)
	var appErr *temporal.ApplicationError
	o.drillFailed = errors.As(err, &appErr) && slices.Contains([]string{activities.ErrTypeIntegrityFailure,
		activities.ErrTypeNotFound, activities.ErrTypeUnsupportedFormat, activities.ErrTypeVerificationFailed}, appErr.Type())
	o.corruptFiles += f.scratchLeft(&log)

	// drflow restore --to: exit 1, and whatever is left in the target is byte-exact.
	target := filepath.Join(f.d.Root, "restore-target")
	code, stdout, stderr = f.cli("restore", corrDataset, "--point", d.point.id, "--to", target)
	fmt.Fprintf(&log, "restore: exit %d: %s%s", code, corrClip(stdout), corrClip(stderr))
	o.restoreRefused = code == 1
	o.restoreNamed = names(stdout + stderr)
	o.corruptFiles += corrCompareTree(d.point.tree, target, &log)
	require.NoError(t, os.RemoveAll(target))
	o.log = log.String()
	return o
}

// control checks that an undamaged point verifies, drills and restores exactly; it returns
// the source bytes compared.
func (f *corrFixture) control(p corrPoint) int64 {
	t := f.t
	t.Helper()
	code, stdout, stderr := f.cli("verify", corrDataset, "--point", p.id)
	require.Equal(t, 0, code, "clean verify of %s: %s%s", p.id, stdout, stderr)

	res, err := f.drill(p.id)
	require.NoError(t, err, "clean drill of %s", p.id)
	require.True(t, res.Verified)
	require.Equal(t, p.id, res.RestorePoint)
	require.Equal(t, p.bytes, res.BytesRestored)
	var log strings.Builder
	require.Zero(t, f.scratchLeft(&log), log.String())

	target := filepath.Join(f.d.Root, "restore-target")
	code, stdout, stderr = f.cli("restore", corrDataset, "--point", p.id, "--to", target)
	require.Equal(t, 0, code, "clean restore of %s: %s%s", p.id, stdout, stderr)
	got, n := corrReadTree(t, target)
	require.Equal(t, len(p.tree), len(got), "entries restored")
	for path, want := range p.tree {
		g, ok := got[path]
		require.True(t, ok, "restored tree lacks %s", path)
		require.Equal(t, want.mode, g.mode, path)
		require.Equal(t, want.target, g.target, path)
		require.True(t, bytes.Equal(want.content, g.content), "content of %s", path)
	}
	require.Equal(t, p.bytes, n)
	require.NoError(t, os.RemoveAll(target))
	return n
}

// drill runs RestoreDrillWorkflow of a point and waits for it, at most a few minutes: a
// drill that retries a damaged repository instead of failing is a finding too.
func (f *corrFixture) drill(point string) (workflows.DrillResult, error) {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, corrDrillTimeout)
	defer cancel()
	run, err := f.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.DrillWorkflowID(corrDataset),
		TaskQueue: workflows.ControlTaskQueue}, workflows.RestoreDrillWorkflow,
		workflows.DrillInput{Dataset: corrDataset, RestorePoint: point})
	require.NoError(t, err)
	var res workflows.DrillResult
	err = run.Get(ctx, &res)
	if ctx.Err() != nil {
		// Still running: say why (a retried activity), then end it.
		why := "no pending activity"
		if desc, derr := f.client.DescribeWorkflowExecution(f.ctx, run.GetID(), run.GetRunID()); derr == nil {
			for _, pa := range desc.GetPendingActivities() {
				why = fmt.Sprintf("activity %s attempt %d, state %s, last failure: %v", pa.GetActivityType().GetName(),
					pa.GetAttempt(), enumspb.PendingActivityState_name[int32(pa.GetState())], pa.GetLastFailure().GetMessage())
			}
		}
		require.NoError(t, f.client.TerminateWorkflow(f.ctx, run.GetID(), run.GetRunID(), "chaos: drill did not end"))
		t.Errorf("drill of %s did not end within the bound: %s", point, why)
		return res, nil // not a detection: the drill neither failed nor passed
	}
	return res, err
}

// scratchLeft counts what drills left in the worker's scratch directory (nothing, ever).
func (f *corrFixture) scratchLeft(log *strings.Builder) int {
	des, err := os.ReadDir(f.acts.ScratchDir)
	require.NoError(f.t, err)
	for _, de := range des {
		fmt.Fprintf(log, "drill left %s in its scratch directory\n", de.Name())
	}
	return len(des)
}

// cli runs the drflow command line against the deployment and returns its exit code and
// output.
func (f *corrFixture) cli(args ...string) (code int, stdout, stderr string) {
	f.t.Helper()
	args = append(args, "--config", f.d.ConfigPath, "--state-dir", f.stateDir)
	// Each run takes about a second. One that hangs is stopped with SIGQUIT, so that its
	// goroutines are in the failure.
	ctx, cancel := context.WithTimeout(f.ctx, corrCLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		f.t.Fatalf("drflow %s did not end within %s:\n%s%s", strings.Join(args, " "), corrCLITimeout, out.String(), errOut.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		f.t.Fatalf("drflow %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func (f *corrFixture) get(key string) []byte {
	f.t.Helper()
	rc, err := f.store.Get(f.ctx, key, providers.GetOptions{})
	require.NoError(f.t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(f.t, err)
	return b
}

func (f *corrFixture) put(key string, b []byte) {
	f.t.Helper()
	_, err := f.store.Put(f.ctx, key, bytes.NewReader(b), providers.PutOptions{})
	require.NoError(f.t, err)
}

// corrReadTree reads every entry under root by slash path, and the bytes of its files.
func corrReadTree(t *testing.T, root string) (map[string]corrEntry, int64) {
	t.Helper()
	tree := map[string]corrEntry{}
	var n int64
	require.NoError(t, filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		e := corrEntry{mode: de.Type()}
		switch {
		case de.Type().IsRegular():
			if e.content, err = os.ReadFile(path); err != nil {
				return err
			}
			n += int64(len(e.content))
		case de.Type()&fs.ModeSymlink != 0:
			if e.target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		tree[filepath.ToSlash(rel)] = e
		return nil
	}))
	return tree, n
}

// corrCompareTree counts the entries under root (if it exists) that are not byte for byte an
// entry of want: a failed restore may leave nothing, or only files it verified.
func corrCompareTree(want map[string]corrEntry, root string, log *strings.Builder) int {
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	bad := 0
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		w, ok := want[rel]
		switch {
		case !ok || w.mode != de.Type():
			bad++
			fmt.Fprintf(log, "target holds %s, which the source does not have\n", rel)
		case de.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Equal(b, w.content) {
				bad++
				fmt.Fprintf(log, "target holds %s with content that differs from the source\n", rel)
			}
		case de.Type()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(path); err != nil || target != w.target {
				bad++
				fmt.Fprintf(log, "target holds symlink %s with another target\n", rel)
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(log, "walk target: %v\n", err)
		bad++
	}
	return bad
}

// corrClip shortens a command's output for a failure message.
func corrClip(s string) string {
	const limit = 4 << 10
	if len(s) <= limit {
		return s
	}
	return s[:limit] + fmt.Sprintf("... (%d more bytes)\n", len(s)-limit)
}
