package workflows

import (
	"context"
	"encoding/base64"
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

	"github.com/drflow/drflow/internal/codec"
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

// sealedHistoriesDir holds histories recorded with the payload codec on: every payload in
// them is sealed with the test keyring beside them (payload.keyring, a key made for this
// and nothing else). They are recorded by the starter package's
// TestHistoriesHoldNoPlaintextPayloads:
//
//	DRFLOW_RECORD_HISTORIES=1 go test -run TestHistoriesHoldNoPlaintextPayloads ./starter/
const sealedHistoriesDir = "testdata/histories-sealed"

// Histories whose payloads are sealed replay through the codec's data converter, as a worker
// of a deployment with a codec replays them; without it they cannot even be decoded.
func TestReplaySealedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(sealedHistoriesDir, "*.json"))
	require.NoError(t, err)
	covered := map[string]bool{}
	for _, f := range files {
		covered[strings.SplitN(strings.TrimSuffix(filepath.Base(f), ".json"), "-", 2)[0]] = true
	}
	for _, fn := range All() {
		wf := workflowName(fn)
		assert.True(t, covered[wf], "no sealed history of %s in %s", wf, sealedHistoriesDir)
	}
	// Git keeps no file modes, and the keyring refuses to load unless only its owner can read it.
	ring, err := os.ReadFile(filepath.Join(sealedHistoriesDir, "payload.keyring"))
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "payload.keyring")
	require.NoError(t, os.WriteFile(keyFile, ring, 0o600))
	cdc, err := codec.Open(keyFile)
	require.NoError(t, err)

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			// Search attribute values are json/plain by design; every payload is sealed.
			assert.True(t, strings.Contains(string(data), base64.StdEncoding.EncodeToString([]byte(codec.EncodingEncrypted))), "sealed payloads")

			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: cdc.DataConverter()})
			require.NoError(t, err)
			Register(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))

			plain := worker.NewWorkflowReplayer()
			Register(plain)
			assert.Error(t, plain.ReplayWorkflowHistoryFromJSONFile(nil, f), "replayed without the codec")
		})
	}
}
