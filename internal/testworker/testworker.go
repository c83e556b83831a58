// Package testworker runs drflow's workflows and activities in a test's own process, the way
// drflow-worker does in single-machine mode, for tests outside the workflows package (whose
// own tests cannot import this package).
package testworker

import (
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/schedules"
	"github.com/drflow/drflow/workflows"
)

// Start runs one worker per queue (default: the control queue and eu-west-1's, the region of
// internal/testdeploy) with every drflow workflow and acts registered, and stops them when t
// ends.
func Start(t testing.TB, c client.Client, acts *activities.Activities, queues ...string) {
	t.Helper()
	if len(queues) == 0 {
		queues = []string{workflows.ControlTaskQueue, workflows.RegionTaskQueue("eu-west-1")}
	}
	if acts.Schedules == nil && acts.Config != nil {
		acts.Schedules = schedules.Pauser{Client: c, Config: acts.Config}
	}
	for _, queue := range queues {
		w := worker.New(c, queue, worker.Options{})
		workflows.Register(w)
		w.RegisterActivity(acts)
		if err := w.Start(); err != nil {
			t.Fatalf("start worker on %s: %v", queue, err)
		}
		t.Cleanup(w.Stop)
	}
}
