package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drflow/drflow/activities"
)

// startWorkers runs one worker per queue in this process, registering every drflow workflow
// and acts, as drflow-worker does in single-machine mode.
func startWorkers(t testing.TB, c client.Client, acts *activities.Activities, queues ...string) {
	t.Helper()
	for _, queue := range queues {
		w := worker.New(c, queue, worker.Options{})
		Register(w)
		w.RegisterActivity(acts)
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}
}
