package schedules

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/workflows"
)

// ManagedMemoKey is the memo key that marks a schedule as created by drflow. Apply updates
// and deletes only schedules that carry it, so schedules made by people or other tools in the
// same namespace are never touched. One drflow configuration manages a namespace: a
// drflow-managed schedule whose dataset is not in the applied configuration is deleted.
const ManagedMemoKey = "drflow-managed"

// note is the note every drflow schedule carries, shown in the Web UI.
const note = "managed by drflow: `drflow schedules apply` replaces changes made elsewhere"

// managedMemo is the value stored under ManagedMemoKey. A schedule's memo cannot be updated,
// so it holds only what never changes for a schedule ID.
type managedMemo struct {
	Dataset string `json:"dataset"`
	Kind    string `json:"kind"`
}

// Outcomes of Apply for one schedule.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
	Deleted   = "deleted"
)

// Change is what Apply did, or with DryRun would do, to one schedule.
type Change struct {
	ID      string `json:"id"`
	Dataset string `json:"dataset"`
	Kind    string `json:"kind"`
	Outcome string `json:"outcome"` // Created, Updated, Unchanged or Deleted
	// Diffs say what an update changes, e.g. "interval 5m -> 10m".
	Diffs []string `json:"diffs,omitempty"`
}

// Options tune Apply.
type Options struct {
	// DryRun computes the changes without making them.
	DryRun bool
	// Paused creates missing schedules paused. Apply never pauses or unpauses a schedule
	// that exists: a person may have paused it on purpose.
	Paused bool
	// DataConverter is the client's data converter, used to read the schedules' inputs and
	// memos; nil means the SDK's default.
	DataConverter converter.DataConverter
}

func (o Options) dc() converter.DataConverter {
	if o.DataConverter == nil {
		return converter.GetDefaultDataConverter()
	}
	return o.DataConverter
}

// Apply makes the namespace's drflow schedules match want (from Plan): it creates missing
// schedules, updates those whose spec, policies or action differ, and deletes drflow-managed
// schedules that want does not have. Changes come in want's order, deletions last, sorted by
// ID. A failure on one schedule does not stop the others; the errors are joined.
func Apply(ctx context.Context, c client.Client, want []Schedule, opts Options) ([]Change, error) {
	sc := c.ScheduleClient()
	var changes []Change
	var errs []error
	wanted := make(map[string]bool, len(want))
	for _, s := range want {
		wanted[s.ID] = true
		ch, err := applyOne(ctx, sc, s, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changes = append(changes, ch)
	}

	managed, err := listManaged(ctx, sc, opts.dc())
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range managed {
		if wanted[m.id] {
			continue
		}
		if !opts.DryRun {
			err := sc.GetHandle(ctx, m.id).Delete(ctx)
			if isNotFound(err) {
				// Listing is eventually consistent: someone deleted it a moment ago.
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("delete schedule %s: %w", m.id, err))
				continue
			}
		}
		changes = append(changes, Change{ID: m.id, Dataset: m.memo.Dataset, Kind: m.memo.Kind, Outcome: Deleted})
	}
	return changes, errors.Join(errs...)
}

func applyOne(ctx context.Context, sc client.ScheduleClient, s Schedule, opts Options) (Change, error) {
	ch := Change{ID: s.ID, Dataset: s.Dataset, Kind: s.Kind}
	h := sc.GetHandle(ctx, s.ID)
	desc, err := h.Describe(ctx)
	if isNotFound(err) {
		ch.Outcome = Created
		if opts.DryRun {
			return ch, nil
		}
		_, err := sc.Create(ctx, client.ScheduleOptions{
			ID:             s.ID,
			Spec:           s.spec(),
			Action:         s.action(),
			Overlap:        s.Overlap,
			CatchupWindow:  s.CatchupWindow,
			PauseOnFailure: s.PauseOnFailure,
			Note:           note,
			Paused:         opts.Paused,
			Memo:           map[string]any{ManagedMemoKey: managedMemo{Dataset: s.Dataset, Kind: s.Kind}},
		})
		if err != nil {
			return ch, fmt.Errorf("create schedule %s: %w%s", s.ID, err, searchAttrHint(err))
		}
		return ch, nil
	}
	if err != nil {
		return ch, fmt.Errorf("describe schedule %s: %w", s.ID, err)
	}
	if _, ok := readManaged(desc.Memo, opts.dc()); !ok {
		return ch, fmt.Errorf("schedule %s exists but was not created by drflow (its memo has no %q); drflow leaves it alone: delete or rename it to let drflow schedule %s of %s",
			s.ID, ManagedMemoKey, s.Kind, s.Dataset)
	}
	ch.Diffs = diff(s, desc.Schedule, opts.dc())
	if len(ch.Diffs) == 0 {
		ch.Outcome = Unchanged
		return ch, nil
	}
	ch.Outcome = Updated
	if opts.DryRun {
		return ch, nil
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			sched := in.Description.Schedule
			spec := s.spec()
			sched.Spec = &spec
			sched.Action = s.action()
			sched.Policy = &client.SchedulePolicies{Overlap: s.Overlap, CatchupWindow: s.CatchupWindow, PauseOnFailure: s.PauseOnFailure}
			// State (paused, note, remaining actions) stays as it is.
			return &client.ScheduleUpdate{Schedule: &sched}, nil
		},
	})
	if err != nil {
		return ch, fmt.Errorf("update schedule %s: %w%s", s.ID, err, searchAttrHint(err))
	}
	return ch, nil
}

func (s Schedule) spec() client.ScheduleSpec {
	return client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: s.Every}}, Jitter: s.Jitter}
}

func (s Schedule) action() *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:        s.WorkflowID,
		Workflow:  s.WorkflowType,
		Args:      []any{s.Input},
		TaskQueue: s.TaskQueue,
		// Set at start, so runs are filterable before the workflow upserts its own.
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAttrDataset.ValueSet(cmp.Or(s.Label, s.Dataset)),
			workflows.SearchAttrKind.ValueSet(s.Kind),
			workflows.SearchAttrTier.ValueSet(int64(s.Tier)),
		),
	}
}

// searchAttrHint explains the usual cause of a rejected action: drflow's search attributes
// are not registered in the namespace.
func searchAttrHint(err error) string {
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) && strings.Contains(strings.ToLower(invalid.Error()), "search attribute") {
		return " (register drflow's search attributes in the namespace: temporal operator search-attribute create --name DrDataset --type Keyword, and likewise DrKind Keyword, DrTier Int)"
	}
	return ""
}

// diff lists how got differs from s, in words; nil when it does not.
//
//nolint:gocyclo // one comparison per schedule field
func diff(s Schedule, got client.Schedule, dc converter.DataConverter) []string {
	var d []string
	add := func(what string, old, new any) {
		d = append(d, fmt.Sprintf("%s %v -> %v", what, old, new))
	}
	if got.Spec == nil {
		d = append(d, "spec missing")
	} else {
		if g, w := intervalsText(got.Spec.Intervals), intervalsText(s.spec().Intervals); g != w {
			add("interval", g, w)
		}
		if got.Spec.Jitter != s.Jitter {
			add("jitter", duration(got.Spec.Jitter), duration(s.Jitter))
		}
		if extra := extraSpec(got.Spec); extra != "" {
			d = append(d, "remove "+extra)
		}
	}
	if got.Policy == nil {
		d = append(d, "policies missing")
	} else {
		if got.Policy.Overlap != s.Overlap {
			add("overlap", got.Policy.Overlap, s.Overlap)
		}
		if got.Policy.CatchupWindow != s.CatchupWindow {
			add("catch-up window", duration(got.Policy.CatchupWindow), duration(s.CatchupWindow))
		}
		if got.Policy.PauseOnFailure != s.PauseOnFailure {
			add("pause on failure", got.Policy.PauseOnFailure, s.PauseOnFailure)
		}
	}
	a, ok := got.Action.(*client.ScheduleWorkflowAction)
	if !ok {
		return append(d, fmt.Sprintf("action %T -> start workflow", got.Action))
	}
	if w, _ := a.Workflow.(string); w != s.WorkflowType {
		add("workflow type", a.Workflow, s.WorkflowType)
	}
	if a.ID != s.WorkflowID {
		add("workflow ID", a.ID, s.WorkflowID)
	}
	if a.TaskQueue != s.TaskQueue {
		add("task queue", a.TaskQueue, s.TaskQueue)
	}
	if g, w := argsText(a.Args, dc), inputText(s.Input); g != w {
		add("input", g, w)
	}
	if g, w := attrsText(a.TypedSearchAttributes), attrsText(s.action().TypedSearchAttributes); g != w {
		add("search attributes", g, w)
	}
	if a.WorkflowExecutionTimeout != 0 || a.WorkflowRunTimeout != 0 || a.WorkflowTaskTimeout != 0 || a.RetryPolicy != nil {
		d = append(d, "remove workflow timeouts and retry policy set elsewhere")
	}
	return d
}

func intervalsText(in []client.ScheduleIntervalSpec) string {
	parts := make([]string, len(in))
	for i, iv := range in {
		parts[i] = "every " + duration(iv.Every)
		if iv.Offset != 0 {
			parts[i] += " offset " + duration(iv.Offset)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// extraSpec names the parts of spec that drflow never sets.
func extraSpec(spec *client.ScheduleSpec) string {
	var parts []string
	if len(spec.Calendars) > 0 || len(spec.CronExpressions) > 0 {
		parts = append(parts, "calendar times")
	}
	if len(spec.Skip) > 0 {
		parts = append(parts, "skipped times")
	}
	if !spec.StartAt.IsZero() || !spec.EndAt.IsZero() {
		parts = append(parts, "start/end bounds")
	}
	if spec.TimeZoneName != "" {
		parts = append(parts, "time zone "+spec.TimeZoneName)
	}
	return strings.Join(parts, ", ")
}

// argsText renders the action's stored arguments as compact JSON, decoded with the client's
// data converter so that a payload codec does not make every input look changed.
func argsText(args []any, dc converter.DataConverter) string {
	vals := make([]any, 0, len(args))
	for _, a := range args {
		p, ok := a.(*commonpb.Payload)
		if !ok {
			vals = append(vals, a)
			continue
		}
		var v any
		if err := dc.FromPayload(p, &v); err != nil {
			return fmt.Sprintf("undecodable input (%v)", err)
		}
		vals = append(vals, v)
	}
	if len(vals) == 1 {
		return compactJSON(vals[0])
	}
	return compactJSON(vals)
}

func inputText(in any) string {
	// Round-trip through JSON so field order and omitted fields match what was stored.
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Sprintf("unencodable input (%v)", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("unencodable input (%v)", err)
	}
	return compactJSON(v)
}

func compactJSON(v any) string {
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// attrsText renders drflow's search attributes of an action.
func attrsText(sa temporal.SearchAttributes) string {
	ds, _ := sa.GetKeyword(workflows.SearchAttrDataset)
	kind, _ := sa.GetKeyword(workflows.SearchAttrKind)
	tier, ok := sa.GetInt64(workflows.SearchAttrTier)
	tierText := "unset"
	if ok {
		tierText = fmt.Sprint(tier)
	}
	return fmt.Sprintf("%s=%q %s=%q %s=%s", workflows.SearchAttrDataset.GetName(), ds,
		workflows.SearchAttrKind.GetName(), kind, workflows.SearchAttrTier.GetName(), tierText)
}

func duration(d time.Duration) string { return config.FormatDuration(d) }

type managedSchedule struct {
	id   string
	memo managedMemo
}

// listManaged returns every schedule in the namespace that drflow created, sorted by ID.
// Listing reads the visibility store, which may lag a moment behind creates and deletes.
func listManaged(ctx context.Context, sc client.ScheduleClient, dc converter.DataConverter) ([]managedSchedule, error) {
	it, err := sc.List(ctx, client.ScheduleListOptions{PageSize: 1000})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var out []managedSchedule
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if m, ok := readManaged(e.Memo, dc); ok {
			out = append(out, managedSchedule{id: e.ID, memo: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

func readManaged(memo *commonpb.Memo, dc converter.DataConverter) (managedMemo, bool) {
	var m managedMemo
	p, ok := memo.GetFields()[ManagedMemoKey]
	if !ok {
		return m, false
	}
	// A marker that does not decode still marks the schedule as drflow's.
	_ = dc.FromPayload(p, &m)
	return m, true
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// Pauser pauses and resumes the drflow-managed schedules of datasets: ransomware recovery
// freezes a dataset's backups and retention so that nothing new (possibly encrypted by the
// attacker) is written and nothing old is pruned while responders work.
type Pauser struct {
	Client client.Client
	Config *config.Config
}

// SetPaused pauses (or unpauses) every schedule Plan derives for dataset, with note shown on
// each, and returns their IDs. A schedule that does not exist (never applied) is skipped.
func (p Pauser) SetPaused(ctx context.Context, dataset string, pause bool, note string) ([]string, error) {
	plan, err := Plan(p.Config)
	if err != nil {
		return nil, err
	}
	done := []string{}
	for _, s := range plan {
		if s.Dataset != dataset {
			continue
		}
		h := p.Client.ScheduleClient().GetHandle(ctx, s.ID)
		if pause {
			err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
		} else {
			err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
		}
		switch {
		case isNotFound(err):
			continue
		case err != nil:
			return done, fmt.Errorf("schedule %s: %w", s.ID, err)
		}
		done = append(done, s.ID)
	}
	return done, nil
}
