package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/labels"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/workflows"
)

// Verdicts of an objective.
const (
	verdictMet     = "met"
	verdictMissed  = "missed"
	verdictUnknown = "unknown"
)

const (
	// statusPageSize and statusMaxPages bound how many runs of one kind status reads while
	// looking for the newest closed one (runs in progress come first).
	statusPageSize = 20
	statusMaxPages = 5
	// storeTimeout bounds opening and listing one location for the newest restore point.
	storeTimeout = 10 * time.Second
)

// runStatus is the newest finished run of one kind, from Temporal visibility.
type runStatus struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	Status     string     `json:"status"` // Completed, Failed, Terminated, ...
	StartedAt  time.Time  `json:"started_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
	// RPOSeconds and RTOSeconds are the measured figures (search attributes DrRpoSeconds and
	// DrRtoSeconds); absent when the run did not measure them.
	RPOSeconds *float64 `json:"rpo_seconds,omitempty"`
	RTOSeconds *float64 `json:"rto_seconds,omitempty"`
	// RPO and RTO compare the figures with the tier's objectives; RTO only for drills.
	RPO string `json:"rpo"`
	RTO string `json:"rto,omitempty"`
	// Objectives is DrObjectivesMet: whether the run met everything it measured.
	Objectives string `json:"objectives"`
}

// kindStatus is what Temporal knows of one kind of run of a dataset.
type kindStatus struct {
	// Latest is the newest closed run; nil if there is none.
	Latest *runStatus `json:"latest"`
	// Running is the workflow ID of a run in progress, if any.
	Running string `json:"running,omitempty"`
}

// newestPoint is the newest restore point in the dataset's primary location.
type newestPoint struct {
	ID         string    `json:"id"`
	DataAsOf   time.Time `json:"data_as_of"`
	AgeSeconds float64   `json:"age_seconds"`
	// RPO says whether a disaster now would lose no more than the tier's RPO.
	RPO string `json:"rpo"`
}

// datasetStatus is one dataset's line of status.
type datasetStatus struct {
	Dataset             string     `json:"dataset"`
	Tier                string     `json:"tier"`
	TierLevel           int        `json:"tier_level"`
	RPOObjectiveSeconds float64    `json:"rpo_objective_seconds"`
	RTOObjectiveSeconds float64    `json:"rto_objective_seconds"`
	Backup              kindStatus `json:"backup"`
	Drill               kindStatus `json:"drill"`
	// NewestPoint is read from the primary location; StoreNote says why it was not.
	NewestPoint *newestPoint `json:"newest_point,omitempty"`
	StoreNote   string       `json:"store_note,omitempty"`
	// Objectives is met when the newest backup and drill met theirs and the newest restore
	// point is within the RPO; missed when any of them missed; unknown otherwise.
	Objectives string `json:"objectives"`
}

// statusReport is the output of status.
type statusReport struct {
	Temporal  string          `json:"temporal"`
	Namespace string          `json:"namespace"`
	CheckedAt time.Time       `json:"checked_at"`
	Datasets  []datasetStatus `json:"datasets"`
}

func statusCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status")
	path := fs.String("config", defaultConf, "configuration file")
	address := fs.String("temporal-address", envOr("TEMPORAL_ADDRESS", defaultTemporalAddress), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	namespace := fs.String("namespace", envOr("TEMPORAL_NAMESPACE", defaultNamespace), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "how long to try to reach Temporal")
	readStores := fs.Bool("stores", true, "also read each dataset's primary location for the age of its newest restore point (needs no key)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: drflow status [flags]

For every configured dataset: its newest backup and restore drill as Temporal recorded them
(their measured RPO and RTO, search attributes DrRpoSeconds and DrRtoSeconds) against the
objectives of the dataset's tier, and, when this machine can read the dataset's primary
location, the age of its newest restore point against the RPO. A location that cannot be read
is named, and its dataset's status then rests on Temporal's records alone.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	c, err := dialTemporal(ctx, *path, *address, *namespace, *dialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()

	now := time.Now()
	rep := statusReport{Temporal: *address, Namespace: *namespace, CheckedAt: now.UTC(), Datasets: []datasetStatus{}}
	for _, ds := range cfg.Datasets {
		st, err := datasetStatusOf(ctx, c, cfg, ds, *namespace, now, *readStores)
		if err != nil {
			return err
		}
		rep.Datasets = append(rep.Datasets, st)
	}
	if *asJSON {
		return printJSON(e, rep)
	}
	printStatus(e, rep)
	return nil
}

func datasetStatusOf(ctx context.Context, c client.Client, cfg *config.Config, ds config.Dataset, namespace string,
	now time.Time, readStores bool,
) (datasetStatus, error) {
	tier, _ := cfg.Tier(ds.Tier)
	st := datasetStatus{
		Dataset: ds.Name, Tier: tier.Name, TierLevel: tier.Level,
		RPOObjectiveSeconds: tier.RPO.Seconds(), RTOObjectiveSeconds: tier.RTO.Seconds(),
	}
	lab, err := labels.New(cfg)
	if err != nil {
		return st, err
	}
	label := lab.Dataset(ds.Name)
	if st.Backup, err = latestRun(ctx, c, namespace, label, workflows.KindBackup, tier); err != nil {
		return st, err
	}
	if st.Drill, err = latestRun(ctx, c, namespace, label, workflows.KindDrill, tier); err != nil {
		return st, err
	}
	switch {
	case !readStores:
		st.StoreNote = "not read (--stores=false)"
	default:
		st.NewestPoint, st.StoreNote = newestPointOf(ctx, cfg, ds, tier, now)
	}
	verdicts := []string{verdictUnknown, verdictUnknown, verdictUnknown}
	if st.Backup.Latest != nil {
		verdicts[0] = st.Backup.Latest.Objectives
	}
	if st.Drill.Latest != nil {
		verdicts[1] = st.Drill.Latest.Objectives
	}
	if st.NewestPoint != nil {
		verdicts[2] = st.NewestPoint.RPO
	} else if st.StoreNote != "" {
		verdicts = verdicts[:2] // Temporal-only: judged on the runs alone
	}
	st.Objectives = combine(verdicts)
	return st, nil
}

// combine is missed if any verdict is, met if all are, unknown otherwise.
func combine(verdicts []string) string {
	out := verdictMet
	for _, v := range verdicts {
		switch v {
		case verdictMissed:
			return verdictMissed
		case verdictUnknown:
			out = verdictUnknown
		}
	}
	return out
}

// latestRun finds the newest closed run of kind for dataset in Temporal visibility: of the
// closed runs on the first page that has any, the one started last. Visibility lists runs in
// progress first, then closed runs newest closed first; SQL visibility stores (the dev server's
// SQLite among them) do not support ORDER BY, so the query does not ask for an order.
func latestRun(ctx context.Context, c client.Client, namespace, dataset, kind string, tier config.Tier) (kindStatus, error) {
	var ks kindStatus
	query := fmt.Sprintf("%s = '%s' AND %s = '%s'",
		workflows.SearchAttrDataset.GetName(), dataset, workflows.SearchAttrKind.GetName(), kind)
	var token []byte
	for range statusMaxPages {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, PageSize: statusPageSize, Query: query, NextPageToken: token,
		})
		if err != nil {
			return ks, fmt.Errorf("list %s runs of %s in Temporal (query %q; are drflow's search attributes registered in namespace %s?): %w",
				kind, dataset, query, namespace, err)
		}
		var latest *workflowpb.WorkflowExecutionInfo
		for _, ex := range resp.GetExecutions() {
			switch {
			case ex.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
				if ks.Running == "" {
					ks.Running = ex.GetExecution().GetWorkflowId()
				}
			case latest == nil || ex.GetStartTime().AsTime().After(latest.GetStartTime().AsTime()):
				latest = ex
			}
		}
		if latest != nil {
			r := runOf(latest, kind, tier)
			ks.Latest = &r
			return ks, nil
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	return ks, nil
}

// runOf reads a closed run's figures from its search attributes.
func runOf(ex *workflowpb.WorkflowExecutionInfo, kind string, tier config.Tier) runStatus {
	r := runStatus{
		WorkflowID: ex.GetExecution().GetWorkflowId(), RunID: ex.GetExecution().GetRunId(), Status: statusName(ex.GetStatus()),
		StartedAt: ex.GetStartTime().AsTime().UTC(), RPO: verdictUnknown, Objectives: verdictUnknown,
	}
	if ex.GetCloseTime() != nil {
		closed := ex.GetCloseTime().AsTime().UTC()
		r.ClosedAt = &closed
	}
	fields := ex.GetSearchAttributes().GetIndexedFields()
	if v, ok := floatAttr(fields, workflows.SearchAttrRPOSeconds); ok {
		r.RPOSeconds = &v
		r.RPO = verdictOf(v <= tier.RPO.Seconds())
	}
	if kind == workflows.KindDrill {
		r.RTO = verdictUnknown
		if v, ok := floatAttr(fields, workflows.SearchAttrRTOSeconds); ok {
			r.RTOSeconds = &v
			r.RTO = verdictOf(v <= tier.RTO.Seconds())
		}
	}
	if v, ok := boolAttr(fields, workflows.SearchAttrObjectivesMet); ok {
		r.Objectives = verdictOf(v)
	}
	return r
}

func verdictOf(met bool) string {
	if met {
		return verdictMet
	}
	return verdictMissed
}

func floatAttr(fields map[string]*commonpb.Payload, key temporal.SearchAttributeKeyFloat64) (float64, bool) {
	var v float64
	return v, decodeAttr(fields, key.GetName(), &v)
}

func boolAttr(fields map[string]*commonpb.Payload, key temporal.SearchAttributeKeyBool) (bool, bool) {
	var v bool
	return v, decodeAttr(fields, key.GetName(), &v)
}

func decodeAttr(fields map[string]*commonpb.Payload, name string, v any) bool {
	p, ok := fields[name]
	if !ok || p == nil || len(p.GetData()) == 0 {
		return false
	}
	return converter.GetDefaultDataConverter().FromPayload(p, v) == nil
}

// statusName renders WORKFLOW_EXECUTION_STATUS_COMPLETED as "Completed".
func statusName(s enumspb.WorkflowExecutionStatus) string {
	name := strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_")
	if name == "" {
		return "Unknown"
	}
	return name[:1] + strings.ToLower(strings.ReplaceAll(name[1:], "_", " "))
}

// newestPointOf lists the restore points in the dataset's primary location. It opens no key:
// point IDs carry their data_as_of. A location that cannot be read yields a note instead.
func newestPointOf(ctx context.Context, cfg *config.Config, ds config.Dataset, tier config.Tier, now time.Time) (*newestPoint, string) {
	loc, _ := cfg.Location(ds.Primary)
	note := func(err error) string {
		return fmt.Sprintf("primary location %s not read (%v); status rests on Temporal's records alone", loc.Name, err)
	}
	if loc.Provider == providers.ProviderLocal {
		// Opening a local store creates its directory; one that is not here is elsewhere.
		if _, err := os.Stat(loc.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, note(fmt.Errorf("%s is not on this machine", loc.Path))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	st, err := stores.Open(ctx, loc)
	if err != nil {
		return nil, note(err)
	}
	prefix := repo.PointObjectKey(ds.Name, "") // the points' common prefix
	var newest *newestPoint
	err = st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		id := strings.TrimPrefix(oi.Key, prefix)
		asOf, err := repo.ParsePointID(id)
		if err != nil {
			return nil // not a restore point
		}
		if newest == nil || asOf.After(newest.DataAsOf) || (asOf.Equal(newest.DataAsOf) && id > newest.ID) {
			newest = &newestPoint{ID: id, DataAsOf: asOf}
		}
		return nil
	})
	if err != nil {
		return nil, note(err)
	}
	if newest == nil {
		return nil, ""
	}
	age := max(now.Sub(newest.DataAsOf), 0)
	newest.AgeSeconds = age.Seconds()
	newest.RPO = verdictOf(age <= tier.RPO)
	return newest, ""
}

func printStatus(e *env, rep statusReport) {
	fmt.Fprintf(e.stdout, "Temporal %s, namespace %s, at %s\n", rep.Temporal, rep.Namespace, rep.CheckedAt.Format(time.RFC3339))
	for _, d := range rep.Datasets {
		fmt.Fprintf(e.stdout, "\n%s (tier %s: RPO %s, RTO %s): objectives %s\n", d.Dataset, d.Tier,
			secondsText(d.RPOObjectiveSeconds), secondsText(d.RTOObjectiveSeconds), verdictText(d.Objectives))
		fmt.Fprintf(e.stdout, "  %-13s %s\n", "last backup", kindText(d.Backup))
		fmt.Fprintf(e.stdout, "  %-13s %s\n", "last drill", kindText(d.Drill))
		var point string
		switch {
		case d.NewestPoint != nil:
			point = fmt.Sprintf("%s, data as of %s, age %s: %s", d.NewestPoint.ID,
				d.NewestPoint.DataAsOf.UTC().Format(time.RFC3339), secondsText(d.NewestPoint.AgeSeconds), verdictText(d.NewestPoint.RPO))
		case d.StoreNote != "":
			point = d.StoreNote
		default:
			point = "none in " + d.Dataset + "'s primary location yet"
		}
		fmt.Fprintf(e.stdout, "  %-13s %s\n", "newest point", point)
	}
}

// kindText describes the newest run of a kind in one line.
func kindText(k kindStatus) string {
	running := ""
	if k.Running != "" {
		running = "; running now: " + k.Running
	}
	if k.Latest == nil {
		return "none finished" + running
	}
	r := k.Latest
	figures := "RPO " + figureText(r.RPOSeconds, r.RPO)
	if r.RTO != "" {
		figures += ", RTO " + figureText(r.RTOSeconds, r.RTO)
	}
	return fmt.Sprintf("%s %s: %s; objectives %s (%s)%s", r.StartedAt.Format(time.RFC3339), strings.ToLower(r.Status),
		figures, verdictText(r.Objectives), r.WorkflowID, running)
}

func figureText(v *float64, verdict string) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1fs %s", *v, verdictText(verdict))
}

// verdictText shouts a missed objective, as backup and drill do.
func verdictText(v string) string {
	if v == verdictMissed {
		return "MISSED"
	}
	return v
}

func secondsText(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
