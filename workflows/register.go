package workflows

import (
	"reflect"
	"runtime"
	"strings"

	"go.temporal.io/sdk/worker"
)

// All lists every drflow workflow function. The worker, the test workers and the replay test
// register exactly this list (through Register), so a new workflow is added here once and
// cannot be forgotten in one of them.
func All() []any {
	return []any{
		BackupWorkflow,
		RestoreDrillWorkflow,
		ReplicateWorkflow,
		RetentionWorkflow,
		RunbookWorkflow,
	}
}

// Registry is what workflows are registered with: a worker.Worker, a
// worker.WorkflowReplayer or the SDK test suite's environment.
type Registry interface {
	RegisterWorkflow(w interface{})
}

// Register registers every workflow of All with r.
func Register(r Registry) {
	for _, wf := range All() {
		r.RegisterWorkflow(wf)
	}
}

var (
	_ Registry = worker.Worker(nil)
	_ Registry = worker.WorkflowReplayer(nil)
)

// workflowName is the type name Temporal gives a workflow function: its Go name without the
// package path.
func workflowName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	return full[strings.LastIndex(full, ".")+1:]
}
