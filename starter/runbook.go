package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/runbooks"
	"github.com/drflow/drflow/workflows"
)

// paramFlags collects repeated --param k=v flags.
type paramFlags []string

func (p *paramFlags) String() string     { return strings.Join(*p, ",") }
func (p *paramFlags) Set(v string) error { *p = append(*p, v); return nil }

// listFlag collects a repeatable flag (--point A --point B).
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// loadRunbook reads FILE, or the built-in runbook NAME when no such file exists, and checks
// it against the configuration at cfgPath: every problem is reported with its line.
func loadRunbook(arg, cfgPath string) (runbooks.Runbook, *config.Config, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return runbooks.Runbook{}, nil, err
	}
	cat := runbooks.ConfigCatalog(cfg)
	if _, err := os.Stat(arg); err == nil {
		rb, err := runbooks.LoadWith(arg, cat)
		return rb, cfg, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return runbooks.Runbook{}, nil, err
	}
	if strings.ContainsAny(arg, "/.") {
		return runbooks.Runbook{}, nil, fmt.Errorf("runbook file %s does not exist (built-in runbooks: %s)", arg, strings.Join(runbooks.BuiltinNames(), ", "))
	}
	rb, err := runbooks.Builtin(arg)
	if err != nil {
		return rb, nil, err
	}
	return rb, cfg, runbooks.Validate(rb, cat)
}

// validateAgainst checks a runbook built in code against the configuration at path.
func validateAgainst(rb runbooks.Runbook, path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg, runbooks.Validate(rb, runbooks.ConfigCatalog(cfg))
}

func runbookValidateCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "runbook validate")
	cfgPath := fs.String("config", defaultConf, "configuration whose datasets, locations and approver groups the runbook may name")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drflow runbook validate FILE|NAME [--config F]\n\nChecks a runbook before anything runs; every problem is reported with its line and field.")
		fs.PrintDefaults()
	}
	file, err := parseFlagsWithArg(fs, args, "FILE")
	if err != nil {
		return err
	}
	rb, _, err := loadRunbook(file, *cfgPath)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	var count func([]runbooks.Step)
	count = func(steps []runbooks.Step) {
		for _, s := range steps {
			counts[s.Kind()]++
			count(s.Parallel)
			if s.Compensate != nil {
				counts["compensation"]++
			}
		}
	}
	count(rb.Steps)
	fmt.Fprintf(e.stdout, "%s: runbook %s is valid against %s: %d steps (%d actions, %d approval gates, %d parallel, %d waits, %d compensations), %d parameters\n",
		file, rb.Name, *cfgPath, len(rb.Steps), counts["action"], counts["approval"], counts["parallel"], counts["wait"], counts["compensation"], len(rb.Params))
	return nil
}

func runbookRunCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "runbook run")
	wf := addWorkflowFlags(fs)
	var params paramFlags
	fs.Var(&params, "param", "a parameter value, NAME=VALUE (repeat; a list parameter takes comma-separated values)")
	as := fs.String("as", os.Getenv("USER"), "who starts the run (no approval gate of the run accepts their own vote)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drflow runbook run FILE|NAME --param k=v ... --as WHO [--wait]\n\nBuilt-in runbooks: %s\n", strings.Join(runbooks.BuiltinNames(), ", "))
		fs.PrintDefaults()
	}
	file, err := parseFlagsWithArg(fs, args, "FILE|NAME")
	if err != nil {
		return err
	}
	rb, cfg, err := loadRunbook(file, *wf.config)
	if err != nil {
		return err
	}
	given, err := parseParams(rb, params)
	if err != nil {
		return err
	}
	if err := checkParamNames(rb, given, cfg); err != nil {
		return err
	}
	in := workflows.RunbookInput{Runbook: rb, Params: given, RequestedBy: *as}
	return runRunbook(ctx, e, wf, in)
}

// runRunbook starts a runbook run and, with --wait, follows it to its end.
func runRunbook(ctx context.Context, e *env, wf workflowFlags, in workflows.RunbookInput) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var err error
	if in.Labels, err = runbookLabels(*wf.config); err != nil {
		return err
	}
	c, err := dialTemporal(ctx, *wf.config, *wf.temporalAddress, *wf.namespace, *wf.dialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	id := workflows.RunbookWorkflowID(in.Runbook.Name, time.Now())
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, workflows.RunbookWorkflow, in)
	if err != nil {
		return fmt.Errorf("start runbook %s: %w", in.Runbook.Name, err)
	}
	fmt.Fprintf(e.stdout, "started runbook %s as %s, requested by %s\n", in.Runbook.Name, id, in.RequestedBy)
	fmt.Fprintf(e.stdout, "  Web UI: %s/namespaces/%s/workflows/%s\n", webUI, *wf.namespace, id)
	if !*wf.wait {
		fmt.Fprintf(e.stdout, "  follow it: drflow runbook status %s\n", id)
		return nil
	}
	return followRunbook(ctx, e, c, run, *wf.asJSON)
}

// followRunbook prints every step's change of status until the run ends, with the command
// that answers each approval gate, then the final state.
func followRunbook(ctx context.Context, e *env, c client.Client, run client.WorkflowRun, asJSON bool) error {
	resCh := make(chan error, 1)
	var res workflows.RunbookResult
	go func() { resCh <- run.Get(ctx, &res) }()
	seen := map[string]string{}
	ticker := time.NewTicker(progressEvery)
	defer ticker.Stop()
	for {
		select {
		case err := <-resCh:
			st, qerr := queryRunbook(ctx, c, run.GetID(), run.GetRunID())
			if qerr == nil {
				printChanges(e, run.GetID(), st, seen)
			}
			if asJSON && qerr == nil {
				_ = printJSON(e, st)
			} else if qerr == nil {
				printRunbookState(e, st)
			}
			if err != nil {
				return fmt.Errorf("runbook %s failed: %w", run.GetID(), err)
			}
			return nil
		case <-ticker.C:
			if st, err := queryRunbook(ctx, c, run.GetID(), run.GetRunID()); err == nil {
				printChanges(e, run.GetID(), st, seen)
			}
		}
	}
}

func printChanges(e *env, id string, st workflows.RunbookState, seen map[string]string) {
	for _, s := range st.Steps {
		key := s.Status + strings.Join(s.WaitingFor, ",")
		if seen[s.ID] == key {
			continue
		}
		seen[s.ID] = key
		if s.Status == workflows.StepPending {
			continue
		}
		line := fmt.Sprintf("step %s: %s", s.ID, s.Status)
		if s.Error != "" {
			line += ": " + s.Error
		}
		fmt.Fprintln(e.stderr, line)
		if s.Status == workflows.StepWaiting {
			if s.Message != "" {
				fmt.Fprintf(e.stderr, "  %s\n", s.Message)
			}
			fmt.Fprintf(e.stderr, "  waiting for %s; approve with: drflow runbook approve %s --gate %s --as NAME\n",
				strings.Join(s.WaitingFor, " or "), id, s.ID)
		}
	}
}

func queryRunbook(ctx context.Context, c client.Client, id, runID string) (workflows.RunbookState, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var st workflows.RunbookState
	v, err := c.QueryWorkflow(qctx, id, runID, workflows.RunbookStateQuery)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

func printRunbookState(e *env, st workflows.RunbookState) {
	fmt.Fprintf(e.stdout, "runbook %s, requested by %s: %s\n", st.Runbook, st.RequestedBy, st.Status)
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tKIND\tSTATUS\tDETAIL")
	for _, s := range st.Steps {
		id := s.ID
		if s.Parent != "" {
			id = "  " + id
		}
		kind := s.Kind
		if s.Action != "" {
			kind += " " + s.Action
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", id, kind, s.Status, stepSummary(s))
	}
	_ = tw.Flush()
	if st.Error != "" {
		fmt.Fprintf(e.stdout, "error: %s\n", st.Error)
	}
}

// stepSummary is one line of a step's outputs, votes or error.
func stepSummary(s workflows.StepState) string {
	var parts []string
	if len(s.WaitingFor) > 0 {
		parts = append(parts, "waiting for "+strings.Join(s.WaitingFor, ", "))
	}
	for _, v := range s.Votes {
		verb := "approved"
		if v.Reject {
			verb = "rejected: " + v.Reason
		}
		parts = append(parts, v.Approver+" "+verb)
	}
	keys := make([]string, 0, len(s.Outputs))
	for k := range s.Outputs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "message" || k == "workflow_id" {
			continue
		}
		parts = append(parts, k+"="+s.Outputs[k].String())
	}
	if s.Error != "" {
		parts = append(parts, s.Error)
	}
	return strings.Join(parts, "; ")
}

// parseParams turns --param k=v flags into values of the runbook's parameter types.
func parseParams(rb runbooks.Runbook, flags []string) (map[string]runbooks.Value, error) {
	given := map[string]runbooks.Value{}
	for _, f := range flags {
		name, val, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: --param %q: want NAME=VALUE", errUsage, f)
		}
		idx := slices.IndexFunc(rb.Params, func(p runbooks.Param) bool { return p.Name == name })
		if idx >= 0 && rb.Params[idx].Type == runbooks.TypeList {
			var items []string
			for _, it := range strings.Split(val, ",") {
				if it = strings.TrimSpace(it); it != "" {
					items = append(items, it)
				}
			}
			given[name] = runbooks.L(items...)
			continue
		}
		given[name] = runbooks.S(val)
	}
	if _, err := runbooks.ResolveParams(rb, given); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return given, nil
}

// checkParamNames refuses dataset and location values the configuration does not have,
// before the run starts rather than at its first step.
func checkParamNames(rb runbooks.Runbook, given map[string]runbooks.Value, cfg *config.Config) error {
	cat := runbooks.ConfigCatalog(cfg)
	for _, p := range rb.Params {
		v, ok := given[p.Name]
		if !ok {
			continue
		}
		switch {
		case p.Type == runbooks.TypeDataset && !cat.HasDataset(v.Scalar):
			return fmt.Errorf("%w: --param %s=%s: no such dataset in the configuration", errUsage, p.Name, v.Scalar)
		case p.Type == runbooks.TypeLocation && !cat.HasLocation(v.Scalar):
			return fmt.Errorf("%w: --param %s=%s: no such location in the configuration", errUsage, p.Name, v.Scalar)
		}
	}
	return nil
}

func runbookStatusCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "runbook status")
	wf := addWorkflowFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drflow runbook status RUN_ID [--json]")
		fs.PrintDefaults()
	}
	id, err := parseFlagsWithArg(fs, args, "RUN_ID")
	if err != nil {
		return err
	}
	c, err := dialTemporal(ctx, *wf.config, *wf.temporalAddress, *wf.namespace, *wf.dialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := queryRunbook(ctx, c, id, "")
	if err != nil {
		return fmt.Errorf("runbook run %s: %w", id, err)
	}
	if *wf.asJSON {
		return printJSON(e, st)
	}
	printRunbookState(e, st)
	return nil
}

func runbookApproveCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "runbook approve")
	wf := addWorkflowFlags(fs)
	gate := fs.String("gate", "", "the ID of the approval step (required)")
	as := fs.String("as", os.Getenv("USER"), "who votes (one of the gate's approvers, not the run's requester)")
	reject := fs.Bool("reject", false, "vote against: the gate closes and the run fails (and compensates)")
	reason := fs.String("reason", "", "why (required with --reject)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drflow runbook approve RUN_ID --gate G --as WHO [--reject --reason TEXT]")
		fs.PrintDefaults()
	}
	id, err := parseFlagsWithArg(fs, args, "RUN_ID")
	if err != nil {
		return err
	}
	if *gate == "" {
		return fmt.Errorf("%w: --gate is required (drflow runbook status %s shows the open gates)", errUsage, id)
	}
	c, err := dialTemporal(ctx, *wf.config, *wf.temporalAddress, *wf.namespace, *wf.dialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	vote := workflows.ApprovalVote{Gate: *gate, Approver: *as, Reject: *reject, Reason: *reason}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.ApproveUpdate,
		Args: []any{vote}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return fmt.Errorf("vote refused: %w", err)
	}
	var gs workflows.GateState
	if err := h.Get(ctx, &gs); err != nil {
		return fmt.Errorf("vote refused: %w", err)
	}
	if *wf.asJSON {
		return printJSON(e, gs)
	}
	fmt.Fprintf(e.stdout, "vote of %s at gate %s of %s accepted: gate %s (%d of %d approvals: %s)\n", *as, gs.Gate, id, gs.Status,
		len(gs.Approvals), gs.Needed, strings.Join(gs.Approvals, ", "))
	return nil
}

func runbookListCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "runbook list")
	wf := addWorkflowFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "Built-in runbooks (drflow runbook run NAME):")
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	for _, name := range runbooks.BuiltinNames() {
		rb, err := runbooks.Builtin(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, firstSentence(rb.Description))
	}
	_ = tw.Flush()
	c, err := dialTemporal(ctx, *wf.config, *wf.temporalAddress, *wf.namespace, min(*wf.dialTimeout, 3*time.Second))
	if err != nil {
		fmt.Fprintf(e.stdout, "\nRuns: not listed (%v)\n", err)
		return nil
	}
	defer c.Close()
	return listRunbookRuns(ctx, e, c)
}

func listRunbookRuns(ctx context.Context, e *env, c client.Client) error {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("%s = %q", workflows.SearchAttrKind.GetName(), workflows.KindRunbook), PageSize: 20})
	if err != nil {
		return fmt.Errorf("list runbook runs: %w", err)
	}
	fmt.Fprintln(e.stdout, "\nRecent runs (drflow runbook status RUN_ID):")
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RUN_ID\tSTATUS\tSTARTED")
	for _, ex := range resp.GetExecutions() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", ex.GetExecution().GetWorkflowId(), strings.ToLower(ex.GetStatus().String()),
			ex.GetStartTime().AsTime().UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

// parseFlagsWithArg parses args that hold exactly one positional argument, with flags before
// or after it.
func parseFlagsWithArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("%w: %s is required (see -h)", errUsage, what)
	}
	arg := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[1:]); err != nil {
		return "", err
	}
	return arg, nil
}
