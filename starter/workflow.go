package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/labels"
	"github.com/drflow/drflow/workflows"
)

const (
	defaultTemporalAddress = "127.0.0.1:7233"
	defaultNamespace       = "default"
	// progressEvery is how often --wait asks a running workflow for its progress.
	progressEvery = time.Second
	// progressPrintEvery limits how often --wait prints new figures within one phase.
	progressPrintEvery = 10 * time.Second
	// queryTimeout bounds one progress query, so a busy worker cannot stall --wait.
	queryTimeout = 5 * time.Second
	// webUI is where the Temporal dev server serves its Web UI.
	webUI = "http://localhost:8233"
)

// workflowFlags are the flags shared by the commands that start a workflow.
type workflowFlags struct {
	config          *string
	temporalAddress *string
	namespace       *string
	dialTimeout     *time.Duration
	wait            *bool
	asJSON          *bool
}

func addWorkflowFlags(fs *flag.FlagSet) workflowFlags {
	return workflowFlags{
		config:          fs.String("config", defaultConf, "configuration file"),
		temporalAddress: fs.String("temporal-address", envOr("TEMPORAL_ADDRESS", defaultTemporalAddress), "Temporal frontend host:port (env TEMPORAL_ADDRESS)"),
		namespace:       fs.String("namespace", envOr("TEMPORAL_NAMESPACE", defaultNamespace), "Temporal namespace (env TEMPORAL_NAMESPACE)"),
		dialTimeout:     fs.Duration("dial-timeout", 10*time.Second, "how long to try to reach Temporal"),
		wait:            fs.Bool("wait", false, "wait for the workflow to finish, printing its progress, then print its result"),
		asJSON:          fs.Bool("json", false, "with --wait, print the result as JSON"),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parseFlagsWithDataset parses args that hold exactly one positional DATASET, with flags
// before or after it.
func parseFlagsWithDataset(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("%w: DATASET is required (see -h)", errUsage)
	}
	dataset := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[1:]); err != nil {
		return "", err
	}
	return dataset, nil
}

// loadDataset loads the configuration and checks that it has dataset.
func loadDataset(path, dataset string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if _, ok := cfg.Dataset(dataset); ok {
		return nil
	}
	known := make([]string, 0, len(cfg.Datasets))
	for _, d := range cfg.Datasets {
		known = append(known, d.Name)
	}
	sort.Strings(known)
	list := strings.Join(known, ", ")
	if list == "" {
		list = "none"
	}
	return fmt.Errorf("dataset %q is not in %s (known: %s)", dataset, path, list)
}

// temporalClient is a Temporal client and the data converter its payloads go through: the
// deployment's payload codec when it has one.
type temporalClient struct {
	client.Client
	dc converter.DataConverter
}

// dialTemporal connects to Temporal, giving up after timeout with an actionable message. The
// payloads it sends and reads go through the payload codec of the configuration at cfgPath
// (or DRFLOW_CODEC_KEY_FILE), so that they match what the workers send and read.
func dialTemporal(ctx context.Context, cfgPath, address, namespace string, timeout time.Duration) (*temporalClient, error) {
	dc, err := payloadConverter(cfgPath)
	if err != nil {
		return nil, err
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.DialContext(dialCtx, client.Options{HostPort: address, Namespace: namespace, Logger: quietLogger{}, DataConverter: dc})
	if err != nil {
		return nil, fmt.Errorf("cannot reach Temporal at %s (is the server running? set --temporal-address or TEMPORAL_ADDRESS): %w", address, err)
	}
	return &temporalClient{Client: c, dc: dc}, nil
}

// payloadConverter is the data converter of the deployment whose configuration is at cfgPath:
// the SDK's default one wrapped in the payload codec if the deployment has a payload keyring.
func payloadConverter(cfgPath string) (converter.DataConverter, error) {
	keyFile := os.Getenv(config.EnvCodecKeyFile)
	if keyFile == "" && cfgPath == defaultConf {
		if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
			cfgPath = "" // commands that only talk to Temporal run without a configuration
		}
	}
	if keyFile == "" && cfgPath != "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return nil, err
		}
		keyFile = cfg.PayloadKeyFile()
	}
	if keyFile == "" {
		return converter.GetDefaultDataConverter(), nil
	}
	c, err := codec.Open(keyFile)
	if err != nil {
		return nil, err
	}
	return c.DataConverter(), nil
}

// datasetLabel is how Temporal names dataset under the configuration's search_attributes:
// its name, or a keyed hash of it.
func datasetLabel(cfgPath, dataset string) (string, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	lab, err := labels.New(cfg)
	if err != nil {
		return "", err
	}
	return lab.Dataset(dataset), nil
}

// runbookLabels returns the labels of every configured dataset when they are hashed (nil
// when datasets are named): runbooks name their children and search attributes with them.
func runbookLabels(cfgPath string) (map[string]string, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	lab, err := labels.New(cfg)
	if err != nil || !lab.Hashed() {
		return nil, err
	}
	out := map[string]string{}
	for _, ds := range cfg.Datasets {
		out[ds.Name] = lab.Dataset(ds.Name)
	}
	return out, nil
}

// runID returns a workflow ID for a run started now: base plus a UTC time suffix, so that
// repeated runs do not collide.
func runID(base string, now time.Time) string {
	return base + "-" + now.UTC().Format("20060102T150405Z")
}

func backupCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "backup")
	wf := addWorkflowFlags(fs)
	forceReread := fs.Bool("force-reread", false, "read every file again, also those unchanged since the previous restore point (by default unchanged files are not read, but for a sampled 2%)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drflow backup DATASET [flags]")
		fs.PrintDefaults()
	}
	dataset, err := parseFlagsWithDataset(fs, args)
	if err != nil {
		return err
	}
	if err := loadDataset(*wf.config, dataset); err != nil {
		return err
	}
	label, err := datasetLabel(*wf.config, dataset)
	if err != nil {
		return err
	}
	var res workflows.BackupResult
	done, err := startWorkflow(ctx, e, wf, workflows.BackupWorkflowID(label), workflows.BackupWorkflow,
		workflows.BackupInput{Dataset: dataset, ForceReread: *forceReread}, &res)
	if err != nil || !done {
		return err
	}
	if *wf.asJSON {
		return printJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "backup of %s: restore point %s (data as of %s)\n", res.Dataset, res.RestorePoint, res.DataAsOf.UTC().Format(time.RFC3339))
	if res.RPOKnown {
		fmt.Fprintf(e.stdout, "  RPO %.1fs (objective %.0fs): %s\n", res.RPOSeconds, res.RPOObjectiveSeconds, metMissed(res.RPOMet))
	} else {
		fmt.Fprintf(e.stdout, "  RPO unknown: first restore point of the dataset (objective %.0fs)\n", res.RPOObjectiveSeconds)
	}
	fmt.Fprintf(e.stdout, "  read %d bytes, uploaded %d bytes (%d new chunks, %d reused)\n", res.BytesRead, res.BytesUploaded, res.ChunksNew, res.ChunksReused)
	if res.FilesUnchanged > 0 {
		fmt.Fprintf(e.stdout, "  %d files (%d bytes) unchanged since the previous restore point, not read (--force-reread reads them)\n", res.FilesUnchanged, res.BytesUnchanged)
	}
	for _, r := range res.Replicas {
		fmt.Fprintf(e.stdout, "  replica %s (%s, %s): %d objects, %d bytes\n", r.Location, r.Jurisdiction, r.Mode, r.ObjectsCopied, r.BytesCopied)
	}
	return nil
}

func drillCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "drill")
	wf := addWorkflowFlags(fs)
	point := fs.String("point", workflows.RestorePointLatest, `restore point: "latest", "random" or a restore point ID`)
	location := fs.String("location", "", "location to restore from (default: the dataset's primary)")
	target := fs.String("target", workflows.DrillTargetDir, `where to restore: "dir" or "postgres"`)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drflow drill DATASET [flags]")
		fs.PrintDefaults()
	}
	dataset, err := parseFlagsWithDataset(fs, args)
	if err != nil {
		return err
	}
	in := workflows.DrillInput{Dataset: dataset, RestorePoint: *point, Location: *location, Target: *target}
	if err := in.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := loadDataset(*wf.config, dataset); err != nil {
		return err
	}
	label, err := datasetLabel(*wf.config, dataset)
	if err != nil {
		return err
	}
	var res workflows.DrillResult
	done, err := startWorkflow(ctx, e, wf, workflows.DrillWorkflowID(label), workflows.RestoreDrillWorkflow, in, &res)
	if err != nil || !done {
		return err
	}
	if *wf.asJSON {
		return printJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "drill of %s: restored %s from %s into %s (%d bytes)\n", res.Dataset, res.RestorePoint, res.Location, res.Target, res.BytesRestored)
	fmt.Fprintf(e.stdout, "  verified: %s\n", yesNo(res.Verified))
	fmt.Fprintf(e.stdout, "  RPO %.1fs (objective %.0fs): %s\n", res.RPOSeconds, res.RPOObjectiveSeconds, metMissed(res.RPOMet))
	fmt.Fprintf(e.stdout, "  RTO %.1fs (objective %.0fs): %s\n", res.RTOSeconds, res.RTOObjectiveSeconds, metMissed(res.RTOMet))
	fmt.Fprintf(e.stdout, "objectives %s\n", metMissed(res.ObjectivesMet()))
	return nil
}

func metMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// startWorkflow dials Temporal and starts wfn on the control queue with an ID made from
// base. Without --wait it returns done=false once the workflow is started; with --wait it
// follows the workflow's progress, stores its result in result and returns done=true.
func startWorkflow(ctx context.Context, e *env, wf workflowFlags, base string, wfn, input, result any) (done bool, err error) {
	c, err := dialTemporal(ctx, *wf.config, *wf.temporalAddress, *wf.namespace, *wf.dialTimeout)
	if err != nil {
		return false, err
	}
	defer c.Close()

	id := runID(base, time.Now())
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, wfn, input)
	if err != nil {
		return false, fmt.Errorf("start workflow %s: %w", id, err)
	}
	// The ID and the Web UI link go to stderr when stdout carries the JSON result.
	info := e.stdout
	if *wf.wait && *wf.asJSON {
		info = e.stderr
	}
	fmt.Fprintf(info, "started workflow %s\n", id)
	fmt.Fprintf(info, "  Web UI: %s/namespaces/%s/workflows/%s\n", webUI, *wf.namespace, id)
	if !*wf.wait {
		return false, nil
	}
	if err := waitForResult(ctx, e, c, run, result); err != nil {
		return false, err
	}
	return true, nil
}

// waitForResult prints the workflow's phase to stderr whenever it changes, until the
// workflow finishes, then stores its result in result.
func waitForResult(ctx context.Context, e *env, c *temporalClient, run client.WorkflowRun, result any) error {
	resCh := make(chan error, 1)
	getCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { resCh <- run.Get(getCtx, result) }()

	ticker := time.NewTicker(progressEvery)
	defer ticker.Stop()
	var last workflows.Progress
	var lastAt time.Time
	for {
		select {
		case err := <-resCh:
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("stopped waiting; workflow %s keeps running: %w", run.GetID(), ctx.Err())
				}
				return fmt.Errorf("workflow %s failed: %w", run.GetID(), err)
			}
			return nil
		case <-ticker.C:
			p, ok := queryProgress(ctx, c, run)
			if !ok || p.Phase == "" {
				continue
			}
			// A new phase and its first figures at once; new figures within a phase at most
			// every progressPrintEvery.
			first := progressDetail(last) == "" && progressDetail(p) != ""
			if p.Phase != last.Phase || first || p.BytesDone != last.BytesDone && time.Since(lastAt) >= progressPrintEvery {
				last, lastAt = p, time.Now()
				fmt.Fprintf(e.stderr, "phase: %s%s\n", p.Phase, progressDetail(p))
			}
		}
	}
}

// queryProgress asks the workflow for its phase and, while it runs, its running data
// activity's heartbeat details for the bytes done and ETA, which the workflow does not hold.
func queryProgress(ctx context.Context, c *temporalClient, run client.WorkflowRun) (workflows.Progress, bool) {
	var p workflows.Progress
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	val, err := c.QueryWorkflow(qctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
	if err != nil || val.Get(&p) != nil {
		return p, false
	}
	if p.Phase == "done" {
		return p, true
	}
	if live, ok := activityProgress(qctx, c, run); ok {
		p.BytesDone, p.BytesTotal, p.ETASeconds = live.BytesDone, live.BytesTotal, live.ETASeconds
	}
	return p, true
}

// activityProgress is the last heartbeat of the workflow's running data activity, if any.
func activityProgress(ctx context.Context, c *temporalClient, run client.WorkflowRun) (activities.Progress, bool) {
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return activities.Progress{}, false
	}
	for _, pa := range desc.GetPendingActivities() {
		if len(pa.GetHeartbeatDetails().GetPayloads()) == 0 {
			continue
		}
		var p activities.Progress
		if c.dc.FromPayloads(pa.GetHeartbeatDetails(), &p) == nil {
			return p, true
		}
	}
	return activities.Progress{}, false
}

func progressDetail(p workflows.Progress) string {
	var parts []string
	if p.BytesTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d bytes", p.BytesDone, p.BytesTotal))
	} else if p.BytesDone > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes", p.BytesDone))
	}
	if p.ETASeconds >= 0 && p.BytesTotal > 0 {
		parts = append(parts, fmt.Sprintf("ETA %.0fs", p.ETASeconds))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// quietLogger keeps the Temporal SDK's connection chatter out of the command's output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
