package workflows

import (
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
)

// ErrTypeReplicationFailed is the error type of a backup whose sync tier required a copy that
// could not be made. The restore point exists on the primary; it is not durable as the tier
// defines it.
const ErrTypeReplicationFailed = "ReplicationFailed"

// replicateAll copies a new restore point to every replica of the dataset, each by its own
// ReplicateWorkflow child (one ID per point and location, so a retried backup does not start
// a second copy of the same point to the same place).
//
// A sync tier waits for every copy and fails if any fails: the point is not durable until
// every replica holds it. An async tier starts the copies, abandons them to run on their own
// and returns once each has started; their outcome is in their own runs.
func replicateAll(ctx workflow.Context, dataset, point string, plan activities.PlanResult) ([]ReplicaResult, error) {
	results := make([]ReplicaResult, len(plan.Replicas))
	if len(plan.Replicas) == 0 {
		return results, nil
	}
	wait := plan.Replication == string(config.ReplicationSync)
	policy := enumspb.PARENT_CLOSE_POLICY_ABANDON
	if wait {
		// A cancelled sync backup cancels its copies too.
		policy = enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL
	}
	futures := make([]workflow.ChildWorkflowFuture, len(plan.Replicas))
	label := labelOr(plan.Label, dataset)
	for i, loc := range plan.Replicas {
		id := ReplicateWorkflowID(label, point, loc)
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        id,
			TaskQueue:         ControlTaskQueue,
			ParentClosePolicy: policy,
			// Filterable from the moment it starts, before its own upsert.
			TypedSearchAttributes: temporal.NewSearchAttributes(
				SearchAttrDataset.ValueSet(label),
				SearchAttrTier.ValueSet(int64(plan.TierLevel)),
				SearchAttrKind.ValueSet(KindReplicate),
			),
		})
		futures[i] = workflow.ExecuteChildWorkflow(cctx, ReplicateWorkflow,
			ReplicateInput{Dataset: dataset, RestorePoint: point, Location: loc, Label: plan.Label})
		results[i] = ReplicaResult{Location: loc, WorkflowID: id}
	}

	var failed []string
	for i, f := range futures {
		loc := plan.Replicas[i]
		if !wait {
			if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
				failed = append(failed, fmt.Sprintf("%s (could not start: %s)", loc, reason(err)))
				continue
			}
			results[i].Status = ReplicaStarted
			continue
		}
		var r ReplicaResult
		if err := f.Get(ctx, &r); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s)", loc, reason(err)))
			continue
		}
		r.Status, r.WorkflowID = ReplicaCopied, results[i].WorkflowID
		results[i] = r
	}
	if len(failed) > 0 {
		verb := "required by its sync tier"
		if !wait {
			verb = "of its async tier"
		}
		msg := fmt.Sprintf("restore point %s of dataset %s is on its primary, but copies %s failed: %s",
			point, dataset, verb, strings.Join(failed, "; "))
		return results, temporal.NewApplicationError(msg, ErrTypeReplicationFailed)
	}
	return results, nil
}

// reason is the message of the innermost application error of a failed child (a policy
// denial, an activity's failure) without the layers of child and activity wrappers.
func reason(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
