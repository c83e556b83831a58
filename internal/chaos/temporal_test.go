package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/drflow/drflow/workflows"
)

// TestChaosTemporalRestart stops the Temporal dev server in the middle of a backup (its data
// activity running on the worker, its copies to the replicas still to come) and starts it
// again on the same SQLite file. The worker and the client reconnect by themselves; the run
// completes with exactly one new restore point, which verifies at every location.
func TestChaosTemporalRestart(t *testing.T) {
	plan := PlanFor(t, "temporal", 1, 3)
	p := newProcDeploy(t, procDeployOptions{Dataset: crashDataset, KeepLast: crashKeepLast, GCGrace: time.Hour})
	rewriteFiles(t, p.d.Source, plan.Rand(-1), namesOf(crashFiles), crashFileSize)
	l := &crashLedger{p: p, reported: map[string]time.Time{}, held: map[string]bool{}, verified: map[string]bool{},
		interrupted: map[string]int{}, hits: map[string]int{}, unreported: map[string]bool{}}
	ctx := context.Background()
	l.backup(ctx)

	sum := Summary{Plan: plan}
	var downtime time.Duration
	for i := range plan.Trials {
		downtime += l.restartTrial(ctx, i, &sum)
	}
	sum.Notes = append(sum.Notes, fmt.Sprintf("restarts=%d", sum.Trials), fmt.Sprintf("mean_downtime=%.1fs", downtime.Seconds()/float64(sum.Trials)),
		fmt.Sprintf("pending_at_restart=%s", countsNote(l.interrupted)), fmt.Sprintf("duplicates=%d", l.duplicates))
	Report(t, sum)
	require.Zero(t, sum.Lost, "restore points lost (seed %d)", plan.Seed)
	require.Zero(t, sum.Corrupt, "restore points corrupt (seed %d)", plan.Seed)
	require.Zero(t, l.duplicates, "restore points no backup reported (seed %d)", plan.Seed)
}

// restartTrial runs one backup through a server restart and returns how long the server was
// down.
func (l *crashLedger) restartTrial(ctx context.Context, i int, sum *Summary) time.Duration {
	t, p := l.p.t, l.p
	rng := sum.Rand(i)
	ctx, cancel := context.WithTimeout(ctx, crashTrialLimit)
	defer cancel()
	// Every file changes, so the backup uploads the whole tree again.
	rewriteFiles(t, p.d.Source, rng, namesOf(crashFiles), crashFileSize)
	before, err := p.points(ctx, crashDataset, "eu-primary")
	require.NoError(t, err)

	run, err := p.start(ctx, workflows.BackupWorkflowID(crashDataset), workflows.BackupWorkflow, workflows.BackupInput{Dataset: crashDataset})
	require.NoError(t, err)
	sum.Runs++
	require.Eventually(t, func() bool {
		d, err := p.c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return false
		}
		for _, a := range d.GetPendingActivities() {
			if a.GetActivityType().GetName() == "Backup" && a.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED {
				return true
			}
		}
		return false
	}, time.Minute, 5*time.Millisecond, "trial %d (seed %d): the backup activity never started", i, sum.Seed)
	l.notePending(ctx, []crashRun{{kind: "backup", run: run}})

	// The fault: the server goes away mid-activity, for as long as a restart takes.
	down := time.Now()
	p.srv.Restart(t)
	downtime := time.Since(down)

	var res workflows.BackupResult
	require.NoError(t, run.Get(ctx, &res), "trial %d (seed %d): the backup did not complete after the restart", i, sum.Seed)
	sum.Completed++
	l.reported[res.RestorePoint] = res.DataAsOf
	after, err := p.points(ctx, crashDataset, "eu-primary")
	require.NoError(t, err)
	require.Len(t, after, len(before)+1, "trial %d (seed %d): one new restore point", i, sum.Seed)
	t.Logf("trial %d: server down %.1fs; backup %s resumed=%v", i, downtime.Seconds(), res.RestorePoint, res.Resumed)
	l.check(ctx, sum, false)
	return downtime
}
