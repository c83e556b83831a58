package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drflow/drflow/runbooks"
	"github.com/drflow/drflow/workflows"
)

// The crash trials' dataset: files of crashFileSize incompressible bytes, a few of them
// rewritten before each trial so that every backup uploads new packs and every retention
// leaves packs to collect.
const (
	crashDataset  = "files"
	crashFiles    = 8
	crashFileSize = 4 << 20
	crashKeepLast = 2
	// crashKillWithin bounds the random moment of the kill once the trial's target activity
	// is running.
	crashKillWithin = 300 * time.Millisecond
	crashTrialLimit = 6 * time.Minute
)

// crashTargets are the data activities a trial's kill aims at, one per kind of run: the
// backup, its copies to the replicas, retention (prune and GC), the drill and the hold
// placement of the runbook.
var crashTargets = []string{"Backup", "Replicate", "Retention", "Drill", "PlaceHold"}

// crashLocations are where restore points live: the primary and the two data replicas (the
// APAC catalog holds metadata only). Drills run from the first two: the US copy is encrypted
// abroad, and a drill there (plaintext in the US) is refused by policy.
var crashLocations = []string{"eu-primary", "eu-replica", "us-replica"}

// TestChaosCrash kills the real drflow-worker process with SIGKILL at a random moment while a
// backup (with its synchronous copies to the replicas), a retention run (prune and GC), a
// restore drill and, every other trial, a legal-hold runbook run at once on one dataset. A
// new worker process starts right away. Every workflow must complete; afterwards every
// restore point that must exist does (none lost), every present point verifies in full at
// every location (none corrupt), no point appears that no backup reported (no duplicate),
// and every object a hold covers is still present.
func TestChaosCrash(t *testing.T) {
	plan := PlanFor(t, "crash", 3, 20)
	p := newProcDeploy(t, procDeployOptions{Dataset: crashDataset, KeepLast: crashKeepLast, GCGrace: 2 * time.Second})
	rewriteFiles(t, p.d.Source, plan.Rand(-1), namesOf(crashFiles), crashFileSize)

	l := &crashLedger{p: p, reported: map[string]time.Time{}, held: map[string]bool{}, verified: map[string]bool{},
		interrupted: map[string]int{}, hits: map[string]int{}, unreported: map[string]bool{}}
	ctx := context.Background()
	for range crashKeepLast {
		t.Logf("setup: restore point %s", l.backup(ctx))
	}

	sum := Summary{Plan: plan}
	for i := range plan.Trials {
		l.trial(ctx, i, plan.Rand(i), &sum)
	}
	// At the end, every point at every location is checked in full once more.
	l.verified = map[string]bool{}
	l.check(ctx, &sum, true)
	sum.Notes = append(sum.Notes, fmt.Sprintf("kills=%d", sum.Trials), fmt.Sprintf("targets_hit=%s", countsNote(l.hits)),
		fmt.Sprintf("pending_at_kill=%s", countsNote(l.interrupted)),
		fmt.Sprintf("resumed_backups=%d", l.resumed), fmt.Sprintf("duplicates=%d", l.duplicates),
		fmt.Sprintf("holds=%d", len(l.holds)), fmt.Sprintf("points_pruned=%d", l.pruned))
	Report(t, sum)
	require.Zero(t, sum.Lost, "restore points lost (seed %d)", plan.Seed)
	require.Zero(t, sum.Corrupt, "restore points corrupt (seed %d)", plan.Seed)
	require.Zero(t, l.duplicates, "restore points no backup reported (seed %d)", plan.Seed)
	require.Equal(t, sum.Runs, sum.Completed, "every run completes (seed %d)", plan.Seed)
}

// crashLedger is what the completed runs reported, against which the stores are checked.
type crashLedger struct {
	p *procDeploy
	// reported maps every point a completed backup reported to its data_as_of.
	reported map[string]time.Time
	// held are the points a completed hold placement covers; holds names the holds.
	held  map[string]bool
	holds []string
	// verified are location/point pairs already verified in full.
	verified    map[string]bool
	interrupted map[string]int // activity types pending at a kill
	hits        map[string]int // target activities seen running just before their kill
	resumed     int
	duplicates  int
	unreported  map[string]bool // location/point of points no backup reported, counted once
	pruned      int
}

// backup runs a backup to completion (no fault) and records its point.
func (l *crashLedger) backup(ctx context.Context) string {
	t := l.p.t
	ctx, cancel := context.WithTimeout(ctx, crashTrialLimit)
	defer cancel()
	run, err := l.p.start(ctx, workflows.BackupWorkflowID(crashDataset), workflows.BackupWorkflow, workflows.BackupInput{Dataset: crashDataset})
	require.NoError(t, err)
	var res workflows.BackupResult
	require.NoError(t, run.Get(ctx, &res))
	l.reported[res.RestorePoint] = res.DataAsOf
	return res.RestorePoint
}

// crashRun is one workflow started in a trial, with where its result goes.
type crashRun struct {
	kind string
	run  client.WorkflowRun
	out  any
}

func (l *crashLedger) trial(ctx context.Context, i int, rng *rand.Rand, sum *Summary) {
	t, p := l.p.t, l.p
	ctx, cancel := context.WithTimeout(ctx, crashTrialLimit)
	defer cancel()
	names := namesOf(crashFiles)
	rng.Shuffle(len(names), func(a, b int) { names[a], names[b] = names[b], names[a] })
	rewriteFiles(t, p.d.Source, rng, names[:2+rng.IntN(3)], crashFileSize)
	points, err := p.points(ctx, crashDataset, "eu-primary")
	require.NoError(t, err)
	require.NotEmpty(t, points)
	newest := points[len(points)-1].ID

	var runs []crashRun
	start := func(kind, id string, wf, in, out any) {
		run, err := p.start(ctx, id, wf, in)
		require.NoError(t, err, "trial %d (seed %d): start %s", i, sum.Seed, kind)
		runs = append(runs, crashRun{kind: kind, run: run, out: out})
	}
	var backup workflows.BackupResult
	var retention workflows.RetentionResult
	var drill workflows.DrillResult
	var hold workflows.RunbookResult
	start("backup", workflows.BackupWorkflowID(crashDataset), workflows.BackupWorkflow, workflows.BackupInput{Dataset: crashDataset}, &backup)
	start("retention", workflows.RetentionWorkflowID(crashDataset), workflows.RetentionWorkflow, workflows.RetentionInput{Dataset: crashDataset}, &retention)
	drillFrom := crashLocations[rng.IntN(2)]
	start("drill", workflows.DrillWorkflowID(crashDataset), workflows.RestoreDrillWorkflow,
		workflows.DrillInput{Dataset: crashDataset, Location: drillFrom}, &drill)
	holdName := ""
	if i%2 == 0 {
		holdName = fmt.Sprintf("trial-%d", i)
		in := workflows.RunbookInput{Runbook: holdPlaceRunbook(holdName, newest), RequestedBy: "chaos"}
		start("hold", workflows.RunbookWorkflowID("hold-place", time.Now()), workflows.RunbookWorkflow, in, &hold)
	}
	sum.Runs += len(runs)

	// The fault: a SIGKILL at a random moment of the target activity (or, if it finished
	// before it was seen running, wherever the runs are then), then a new worker process.
	target := crashTargets[rng.IntN(len(crashTargets)-1)]
	if holdName != "" && rng.IntN(len(crashTargets)) == 0 {
		target = "PlaceHold"
	}
	delay := time.Duration(rng.Int64N(int64(crashKillWithin)))
	hit := l.awaitRunning(ctx, runs, target)
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		t.Fatalf("trial %d (seed %d): %v", i, sum.Seed, ctx.Err())
	}
	l.notePending(ctx, runs)
	p.killWorker()
	p.startWorker()
	if hit {
		l.hits[target]++
	}

	for _, r := range runs {
		err := r.run.Get(ctx, r.out)
		require.NoError(t, err, "trial %d (seed %d): the %s run %s did not complete after the kill at %s", i, sum.Seed, r.kind, r.run.GetID(), delay)
		sum.Completed++
	}
	l.reported[backup.RestorePoint] = backup.DataAsOf
	if backup.Resumed {
		l.resumed++
	}
	l.pruned += len(retention.Pruned)
	if !drill.Verified {
		sum.Corrupt++
		t.Errorf("trial %d (seed %d): the drill of %s from %s did not verify", i, sum.Seed, drill.RestorePoint, drillFrom)
	}
	sum.BytesVerified += drill.BytesRestored
	if holdName != "" {
		require.Equal(t, workflows.RunCompleted, hold.Status, "trial %d (seed %d): hold placement: %s", i, sum.Seed, hold.Error)
		l.held[newest] = true
		l.holds = append(l.holds, holdName)
	}
	t.Logf("trial %d: kill %s into %s (seen running: %v); backup %s (resumed %v), retention pruned %d, drill from %s of %s in %.1fs, hold %q",
		i, delay.Round(time.Millisecond), target, hit, backup.RestorePoint, backup.Resumed, len(retention.Pruned), drillFrom, drill.RestorePoint,
		drill.RTOSeconds, holdName)
	l.check(ctx, sum, false)
}

// notePending counts the activity types running or scheduled at the moment of the kill, in
// the runs and in their child workflows (a backup's copies to its replicas).
func (l *crashLedger) notePending(ctx context.Context, runs []crashRun) {
	for _, r := range runs {
		l.notePendingIn(ctx, r.run.GetID(), r.run.GetRunID(), 2)
	}
}

func (l *crashLedger) notePendingIn(ctx context.Context, id, runID string, depth int) {
	d, err := l.p.c.DescribeWorkflowExecution(ctx, id, runID)
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return
	}
	for _, a := range d.GetPendingActivities() {
		l.interrupted[a.GetActivityType().GetName()]++
	}
	if depth == 0 {
		return
	}
	for _, c := range d.GetPendingChildren() {
		l.notePendingIn(ctx, c.GetWorkflowId(), c.GetRunId(), depth-1)
	}
}

// check compares every location with the ledger. A point must exist if it is among the
// newest keep_last points that backups reported or if a hold covers it; a present point
// that no backup reported is a duplicate; every present point must verify in full (once,
// unless all is set); every object a hold covers must be present.
func (l *crashLedger) check(ctx context.Context, sum *Summary, all bool) {
	t, p := l.p.t, l.p
	must := l.mustExist()
	for _, loc := range crashLocations {
		points, err := p.points(ctx, crashDataset, loc)
		require.NoError(t, err)
		present := map[string]bool{}
		for _, pt := range points {
			present[pt.ID] = true
			if _, ok := l.reported[pt.ID]; !ok && !l.unreported[loc+"/"+pt.ID] {
				l.unreported[loc+"/"+pt.ID] = true
				l.duplicates++
				t.Errorf("seed %d: %s holds point %s that no completed backup reported", sum.Seed, loc, pt.ID)
			}
			key := loc + "/" + pt.ID
			if l.verified[key] && !all {
				continue
			}
			rep, err := p.verify(ctx, crashDataset, loc, pt.ID)
			require.NoError(t, err)
			if !rep.OK {
				sum.Corrupt++
				t.Errorf("seed %d: point %s at %s does not verify: %s", sum.Seed, pt.ID, loc, rep.Failures)
			}
			sum.BytesVerified += rep.BytesChecked
			l.verified[key] = true
		}
		for _, id := range must {
			if !present[id] {
				sum.Lost++
				t.Errorf("seed %d: point %s is missing at %s (held %v)", sum.Seed, id, loc, l.held[id])
			}
		}
	}
	for _, name := range l.holds {
		rep, err := p.hold(ctx, crashDataset, name)
		require.NoError(t, err)
		for _, ls := range rep.Locations {
			if ls.Recorded && ls.Missing > 0 {
				sum.Lost++
				t.Errorf("seed %d: hold %s: %d covered objects missing at %s", sum.Seed, name, ls.Missing, ls.Location)
			}
		}
	}
}

// mustExist lists the points retention must keep: the newest keep_last reported, and the held.
func (l *crashLedger) mustExist() []string {
	ids := slices.Collect(maps.Keys(l.reported))
	sort.Slice(ids, func(a, b int) bool { return l.reported[ids[a]].Before(l.reported[ids[b]]) })
	keep := map[string]bool{}
	for _, id := range ids[max(0, len(ids)-l.p.keepLast):] {
		keep[id] = true
	}
	for id := range l.held {
		keep[id] = true
	}
	return slices.Sorted(maps.Keys(keep))
}

// countsNote renders counts by name as "a:1,b:2", or "none".
func countsNote(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s:%d", strings.ReplaceAll(k, " ", "_"), counts[k]))
	}
	return strings.Join(parts, ",")
}

// awaitRunning watches the runs (and their child workflows) until an activity of type name
// is running on the worker, and reports whether it saw one before every run had passed it.
func (l *crashLedger) awaitRunning(ctx context.Context, runs []crashRun, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		running, open := l.scan(ctx, runs, name)
		if running {
			return true
		}
		if !open {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// scan reports whether an activity of type name is running in the runs or their children,
// and whether any run is still open.
func (l *crashLedger) scan(ctx context.Context, runs []crashRun, name string) (running, open bool) {
	var visit func(id, runID string, depth int)
	visit = func(id, runID string, depth int) {
		d, err := l.p.c.DescribeWorkflowExecution(ctx, id, runID)
		if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return
		}
		open = true
		for _, a := range d.GetPendingActivities() {
			if a.GetActivityType().GetName() == name && a.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED {
				running = true
			}
		}
		for _, c := range d.GetPendingChildren() {
			if depth > 0 {
				visit(c.GetWorkflowId(), c.GetRunId(), depth-1)
			}
		}
	}
	for _, r := range runs {
		visit(r.run.GetID(), r.run.GetRunID(), 2)
	}
	return running, open
}

// holdPlaceRunbook is the runbook `drflow hold place NAME --point POINT` runs.
func holdPlaceRunbook(name, point string) runbooks.Runbook {
	args := map[string]runbooks.Value{"hold": runbooks.S(name), "dataset": runbooks.S(crashDataset),
		"reason": runbooks.S("chaos trial"), "requested_by": runbooks.S("chaos"), "ongoing": runbooks.S("false"),
		"points": runbooks.L(point)}
	return runbooks.Runbook{
		Name: "hold-place",
		Steps: []runbooks.Step{
			{ID: "place", Action: &runbooks.Action{Name: runbooks.ActionHoldPlace, Args: args}},
			{ID: "report", Action: &runbooks.Action{Name: runbooks.ActionHoldReport, Args: map[string]runbooks.Value{
				"hold": args["hold"], "dataset": args["dataset"]}}},
		},
	}
}

func namesOf(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("data/file-%02d.bin", i)
	}
	return names
}
