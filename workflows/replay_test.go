package workflows

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
)

// historiesDir holds histories recorded from real runs on a dev server, one file per
// workflow type and path. Replaying them with today's code fails when a change would break
// workflows that are running in production (a non-deterministic change): such a change needs
// workflow.GetVersion, not a re-recording.
//
// To record them again (after an intended, versioned change, or to add a path), run the
// end-to-end tests with DRFLOW_RECORD_HISTORIES=1:
//
//	DRFLOW_RECORD_HISTORIES=1 go test -run 'EndToEnd' ./workflows/
//
// BackupWorkflow-progress-signals.json is not recorded again: it comes from a backup whose
// activity still signalled its progress to the workflow, and shows that such runs replay on
// code without the signal's handler.
const historiesDir = "testdata/histories"

// recordHistory writes the history of a finished run to historiesDir as name.json, when
// DRFLOW_RECORD_HISTORIES is set.
func recordHistory(t *testing.T, c client.Client, workflowID, runID, name string) {
	t.Helper()
	if os.Getenv("DRFLOW_RECORD_HISTORIES") == "" {
		return
	}
	ctx := context.Background()
	hist := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(historiesDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(historiesDir, name+".json"), data, 0o644))
	t.Logf("recorded %s (%d events)", name, len(hist.Events))
}

func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	// One recorded history per workflow at least; the name starts with the workflow type.
	covered := map[string]bool{}
	for _, f := range files {
		covered[strings.SplitN(filepath.Base(f), "-", 2)[0]] = true
	}
	for _, fn := range All() {
		wf := workflowName(fn)
		assert.True(t, covered[wf], "no recorded history of %s in %s", wf, historiesDir)
	}

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			Register(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
