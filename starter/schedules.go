package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/schedules"
)

// scheduleFlags are the flags shared by the schedules commands.
type scheduleFlags struct {
	config          *string
	temporalAddress *string
	namespace       *string
	dialTimeout     *time.Duration
	asJSON          *bool
}

// addScheduleFlags adds the connection and configuration flags of the workflow commands to
// fs (the same names, defaults and environment variables), without --wait.
func addScheduleFlags(fs *flag.FlagSet) scheduleFlags {
	scratch := flag.NewFlagSet("", flag.ContinueOnError)
	wf := addWorkflowFlags(scratch)
	for _, name := range []string{"config", "temporal-address", "namespace", "dial-timeout"} {
		f := scratch.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	return scheduleFlags{
		config:          wf.config,
		temporalAddress: wf.temporalAddress,
		namespace:       wf.namespace,
		dialTimeout:     wf.dialTimeout,
		asJSON:          fs.Bool("json", false, "print machine-readable JSON"),
	}
}

// startScheduleCmd parses the flags of a schedules command (extra adds its own), loads the
// configuration, derives its schedules and only then dials Temporal, so a bad configuration
// is reported without waiting for a server. The caller closes the client.
func startScheduleCmd(ctx context.Context, e *env, verb, about string, args []string, extra func(*flag.FlagSet)) (scheduleFlags, []schedules.Schedule, *temporalClient, error) {
	fs := newFlags(e, "schedules "+verb)
	sf := addScheduleFlags(fs)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drflow schedules %s [flags]\n%s\n", verb, about)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return sf, nil, nil, err
	}
	cfg, err := config.Load(*sf.config)
	if err != nil {
		return sf, nil, nil, err
	}
	want, err := schedules.Plan(cfg)
	if err != nil {
		return sf, nil, nil, err
	}
	c, err := dialTemporal(ctx, *sf.config, *sf.temporalAddress, *sf.namespace, *sf.dialTimeout)
	if err != nil {
		return sf, nil, nil, err
	}
	return sf, want, c, nil
}

// scheduleApplyReport is the JSON output of schedules apply.
type scheduleApplyReport struct {
	DryRun  bool               `json:"dry_run"`
	Changes []schedules.Change `json:"changes"`
}

func schedulesApplyCmd(ctx context.Context, e *env, args []string) error {
	var dryRun, paused *bool
	sf, want, c, err := startScheduleCmd(ctx, e, "apply",
		"Creates, updates and deletes the Temporal Schedules of every dataset's backups, drills and retention.", args,
		func(fs *flag.FlagSet) {
			dryRun = fs.Bool("dry-run", false, "print what would change without changing anything")
			paused = fs.Bool("paused", false, "create missing schedules paused (existing schedules keep their state)")
		})
	if err != nil {
		return err
	}
	defer c.Close()

	changes, applyErr := schedules.Apply(ctx, c, want, schedules.Options{DryRun: *dryRun, Paused: *paused, DataConverter: c.dc})
	if *sf.asJSON {
		if changes == nil {
			changes = []schedules.Change{}
		}
		if err := printJSON(e, scheduleApplyReport{DryRun: *dryRun, Changes: changes}); err != nil {
			return err
		}
		return applyErr
	}
	byID := make(map[string]schedules.Schedule, len(want))
	for _, s := range want {
		byID[s.ID] = s
	}
	counts := map[string]int{}
	for _, ch := range changes {
		counts[ch.Outcome]++
		fmt.Fprintf(e.stdout, "%-12s %s%s\n", scheduleOutcomeWord(ch.Outcome, *dryRun), ch.ID, scheduleChangeDetail(ch, byID[ch.ID], *paused))
	}
	summary := fmt.Sprintf("%d created, %d updated, %d unchanged, %d deleted", counts[schedules.Created],
		counts[schedules.Updated], counts[schedules.Unchanged], counts[schedules.Deleted])
	if *dryRun {
		summary = "dry run, nothing changed: would be " + summary
	}
	fmt.Fprintln(e.stdout, summary)
	return applyErr
}

func scheduleOutcomeWord(outcome string, dryRun bool) string {
	if !dryRun || outcome == schedules.Unchanged {
		return outcome
	}
	return "would " + strings.TrimSuffix(outcome, "d")
}

func scheduleChangeDetail(ch schedules.Change, s schedules.Schedule, paused bool) string {
	switch ch.Outcome {
	case schedules.Created:
		d := fmt.Sprintf(": %s of %s every %s, overlap %s, catch-up %s", s.Kind, s.Dataset,
			config.FormatDuration(s.Every), s.Overlap, config.FormatDuration(s.CatchupWindow))
		if paused {
			d += ", paused"
		}
		return d
	case schedules.Updated:
		return ": " + strings.Join(ch.Diffs, "; ")
	case schedules.Deleted:
		return fmt.Sprintf(": %s of %s, dataset no longer configured", ch.Kind, ch.Dataset)
	}
	return ""
}

func schedulesListCmd(ctx context.Context, e *env, args []string) error {
	sf, want, c, err := startScheduleCmd(ctx, e, "list",
		"Prints every drflow schedule: interval, overlap policy, state, next runs and the last run.", args, nil)
	if err != nil {
		return err
	}
	defer c.Close()

	statuses, err := schedules.Statuses(ctx, c, want, c.dc)
	if err != nil {
		return err
	}
	if *sf.asJSON {
		if statuses == nil {
			statuses = []schedules.Status{}
		}
		return printJSON(e, statuses)
	}
	if len(statuses) == 0 {
		fmt.Fprintf(e.stdout, "no drflow schedules: %s has no datasets\n", *sf.config)
		return nil
	}
	for _, st := range statuses {
		printScheduleStatus(e, st)
	}
	return nil
}

func printScheduleStatus(e *env, st schedules.Status) {
	head := fmt.Sprintf("%s  %s of %s", st.ID, st.Kind, st.Dataset)
	switch {
	case !st.Exists:
		fmt.Fprintf(e.stdout, "%s  not created (run drflow schedules apply)\n", head)
		return
	case !st.Managed:
		fmt.Fprintf(e.stdout, "%s  exists but was not created by drflow; apply leaves it alone\n", head)
		return
	}
	state := "active"
	if st.Paused {
		state = "paused"
	}
	fmt.Fprintf(e.stdout, "%s  %s  overlap %s  %s\n", head, st.Interval, st.Overlap, state)
	if !st.InConfig {
		fmt.Fprintln(e.stdout, "  dataset no longer configured: the next apply deletes this schedule")
	}
	next := make([]string, len(st.NextRuns))
	for i, t := range st.NextRuns {
		next[i] = t.UTC().Format(time.RFC3339)
	}
	if len(next) == 0 {
		next = []string{"none"}
	}
	fmt.Fprintf(e.stdout, "  next runs: %s\n", strings.Join(next, ", "))
	if st.LastRun == nil {
		fmt.Fprintln(e.stdout, "  last run:  none")
	} else {
		fmt.Fprintf(e.stdout, "  last run:  %s %s (%s)\n", st.LastRun.ScheduledAt.UTC().Format(time.RFC3339), st.LastRun.Result, st.LastRun.WorkflowID)
	}
	if st.SkippedOverlap > 0 || st.MissedCatchup > 0 {
		fmt.Fprintf(e.stdout, "  runs: %d started, %d skipped while the previous one ran, %d missed during an outage\n",
			st.Actions, st.SkippedOverlap, st.MissedCatchup)
	}
}
