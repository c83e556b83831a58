package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/runbooks"
	"github.com/drflow/drflow/workflows"
)

// holdPlaceRunbook is the runbook `drflow hold place` runs: the placement and its report,
// durable and audited like any runbook, on the workers that hold the dataset's keys.
func holdPlaceRunbook(args map[string]runbooks.Value) runbooks.Runbook {
	return runbooks.Runbook{
		Name:        "hold-place",
		Description: "Place one legal hold on the primary and every replica, and report it read back from every location (drflow hold place).",
		Steps: []runbooks.Step{
			{ID: "place", Action: &runbooks.Action{Name: runbooks.ActionHoldPlace, Args: args}},
			{ID: "report", Action: &runbooks.Action{Name: runbooks.ActionHoldReport, Args: map[string]runbooks.Value{
				"hold": args["hold"], "dataset": args["dataset"]}}},
		},
	}
}

func holdPlaceCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "hold place")
	wf := addWorkflowFlags(fs)
	*wf.wait = true
	dataset := fs.String("dataset", "", "the dataset whose restore points are held (required)")
	from := fs.String("from", "", "hold points whose data is as of this time or later (RFC 3339 or YYYY-MM-DD)")
	to := fs.String("to", "", "hold points whose data is as of this time or earlier")
	var points listFlag
	fs.Var(&points, "point", "hold this restore point (repeat; instead of --from/--to)")
	ongoing := fs.Bool("ongoing", false, "also hold every point created while the hold is active")
	reason := fs.String("reason", "", "why: the case, matter or ticket (required)")
	requestedBy := fs.String("requested-by", os.Getenv("USER"), "who asks for the hold")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: drflow hold place NAME --dataset D [--from T --to T | --point ID...] [--ongoing] --reason TEXT --requested-by WHO

Places legal hold NAME on the selected restore points of D at its primary and every replica:
the store's own hold on every object (S3 Object Lock legal hold, GCS temporary hold, Azure
legal hold, local sidecar hold) and drflow's record, which prune, GC, shred and copies obey
even where the store cannot hold. Prints where the hold is server-enforced and where only
drflow enforces it. Releasing needs a second person: drflow hold release.`)
		fs.PrintDefaults()
	}
	name, err := parseFlagsWithArg(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *dataset == "" || *reason == "" {
		return fmt.Errorf("%w: --dataset and --reason are required", errUsage)
	}
	if len(points) > 0 && (*from != "" || *to != "") {
		return fmt.Errorf("%w: select points by --point or by --from/--to, not both", errUsage)
	}
	a := map[string]runbooks.Value{"hold": runbooks.S(name), "dataset": runbooks.S(*dataset), "reason": runbooks.S(*reason),
		"requested_by": runbooks.S(*requestedBy), "ongoing": runbooks.S(fmt.Sprint(*ongoing))}
	for flagName, v := range map[string]string{"from": *from, "to": *to} {
		if v == "" {
			continue
		}
		if _, err := runbooks.ParseTime(v); err != nil {
			return fmt.Errorf("%w: --%s: %v", errUsage, flagName, err)
		}
		a[flagName] = runbooks.S(v)
	}
	if len(points) > 0 {
		a["points"] = runbooks.L(points...)
	}
	rb := holdPlaceRunbook(a)
	if _, err := validateAgainst(rb, *wf.config); err != nil {
		return err
	}
	return runRunbook(ctx, e, wf, workflows.RunbookInput{Runbook: rb, RequestedBy: *requestedBy})
}

func holdReleaseCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "hold release")
	wf := addWorkflowFlags(fs)
	dataset := fs.String("dataset", "", "the dataset of the hold (required)")
	reason := fs.String("reason", "", "why the hold ends (required)")
	requestedBy := fs.String("requested-by", os.Getenv("USER"), "who asks for the release; someone else of the legal approver group must approve")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: drflow hold release NAME --dataset D --reason TEXT --requested-by WHO [--wait]

Starts the hold-release runbook: it waits until an approver of the configuration's "legal"
approver group other than the requester approves (drflow runbook approve RUN --gate approve
--as WHO), then releases the hold everywhere; the store's hold stays on objects another
active hold covers.`)
		fs.PrintDefaults()
	}
	name, err := parseFlagsWithArg(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *dataset == "" || *reason == "" {
		return fmt.Errorf("%w: --dataset and --reason are required", errUsage)
	}
	rb, err := runbooks.Builtin("hold-release")
	if err != nil {
		return err
	}
	if _, err := validateAgainst(rb, *wf.config); err != nil {
		return err
	}
	params := map[string]runbooks.Value{"dataset": runbooks.S(*dataset), "hold": runbooks.S(name), "reason": runbooks.S(*reason)}
	return runRunbook(ctx, e, wf, workflows.RunbookInput{Runbook: rb, Params: params, RequestedBy: *requestedBy})
}

// holdTargets opens the dataset's primary and replica stores for reading hold records and
// object states; no key is needed for that.
func holdTargets(ctx context.Context, cfgPath, dataset string) ([]holds.Target, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	ds, ok := cfg.Dataset(dataset)
	if !ok {
		return nil, loadDataset(cfgPath, dataset)
	}
	pol, _ := cfg.Policy(ds.Policy)
	var out []holds.Target
	for _, name := range append([]string{ds.Primary}, ds.Replicas...) {
		loc, _ := cfg.Location(name)
		mode := holds.ModePrimary
		if name != ds.Primary {
			m, _, _, ok := pol.Decide(loc.Jurisdiction)
			if !ok {
				continue
			}
			mode = string(m)
		}
		st, err := stores.Open(ctx, loc)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		out = append(out, holds.Target{Store: st, Mode: mode})
	}
	return out, nil
}

func holdListCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "hold list")
	cfgPath := fs.String("config", defaultConf, "configuration file")
	dataset := fs.String("dataset", "", "the dataset (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataset == "" {
		return fmt.Errorf("%w: --dataset is required", errUsage)
	}
	targets, err := holdTargets(ctx, *cfgPath, *dataset)
	if err != nil {
		return err
	}
	list, err := holds.List(ctx, *dataset, targets)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(e.stdout, "dataset %s has no legal hold\n", *dataset)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOLD\tSTATE\tPOINTS\tLOCATIONS\tREQUESTED BY\tPLACED\tREASON")
	for _, h := range list {
		state := h.State
		if h.Ongoing {
			state += " (ongoing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", h.Name, state, len(h.Points), strings.Join(h.Locations, ","), h.RequestedBy,
			h.PlacedAt.UTC().Format(time.RFC3339), h.Reason)
	}
	return tw.Flush()
}

func holdShowCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "hold show")
	cfgPath := fs.String("config", defaultConf, "configuration file")
	dataset := fs.String("dataset", "", "the dataset (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drflow hold show NAME --dataset D [--json]\n\nPrints every covered point and every object's hold state per location, as the stores report it.")
		fs.PrintDefaults()
	}
	name, err := parseFlagsWithArg(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *dataset == "" {
		return fmt.Errorf("%w: --dataset is required", errUsage)
	}
	targets, err := holdTargets(ctx, *cfgPath, *dataset)
	if err != nil {
		return err
	}
	rep, err := holds.Inspect(ctx, *dataset, name, targets)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, rep)
	}
	printHoldReport(e, rep)
	return nil
}

func printHoldReport(e *env, rep holds.Report) {
	o := rep.Order
	fmt.Fprintf(e.stdout, "legal hold %s of %s: %s\n", rep.Hold, rep.Dataset, rep.State)
	fmt.Fprintf(e.stdout, "  placed %s by %s: %s\n", o.PlacedAt.UTC().Format(time.RFC3339), o.RequestedBy, o.Reason)
	if r := rep.Release; r != nil {
		fmt.Fprintf(e.stdout, "  released %s by %s, approved by %s: %s\n", r.ReleasedAt.UTC().Format(time.RFC3339), r.RequestedBy,
			strings.Join(r.ApprovedBy, ", "), r.Reason)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tMODE\tENFORCED BY\tPOINT\tOBJECT\tPRESENT\tSTORE HOLD\tPROTECTED BY")
	for _, l := range rep.Locations {
		if !l.Recorded {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t(hold not recorded here)\t\t\t\n", l.Location, l.Mode, l.Enforcement)
			continue
		}
		for _, p := range l.Points {
			for _, ob := range p.Objects {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Location, l.Mode, l.Enforcement, p.ID, ob.Key,
					yesNo(ob.Present), yesNo(ob.LegalHold), ob.Enforcement)
			}
		}
	}
	_ = tw.Flush()
	for _, l := range rep.Locations {
		fmt.Fprintf(e.stdout, "%s (%s): %d objects, %d missing, %d held by the store; %s\n", l.Location, l.Mode, l.Objects, l.Missing,
			l.Held, enforcementWords(l.Enforcement))
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(e.stdout, "problem: %s\n", p)
	}
}

func enforcementWords(enf string) string {
	switch enf {
	case holds.EnforcedByServer:
		return "server-enforced: the storage service refuses deletion and overwrite"
	case holds.EnforcedByAdapter:
		return "enforced by drflow's local adapter (sidecar holds), not by the file system"
	default:
		return "drflow-enforced only: this store cannot hold objects; drflow's prune, GC, shred and copy refuse"
	}
}
