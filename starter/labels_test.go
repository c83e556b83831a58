package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/labels"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/workflows"
)

// With search_attributes: hashed, a dataset's name appears nowhere that Temporal shows in the
// clear: not in a workflow ID (children included), a schedule ID, a search attribute, or
// anywhere else in a history read without the codec. drflow's own commands still find the
// runs by the dataset's name.
func TestHashedSearchAttributesHideDatasetNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const secret = "payroll-zurich"
	d := testdeploy.New(t, testdeploy.Options{Datasets: []string{secret}, Replicated: true, Replication: "sync"})
	keyFile := filepath.Join(d.Root, "keys", "payload.keyring")
	ring, err := codec.CreateKeyring(keyFile, time.Now())
	require.NoError(t, err)
	appendFile(t, d.ConfigPath, "codec:\n  key_file: keys/payload.keyring\nsearch_attributes: hashed\n")
	cfg, err := config.Load(d.ConfigPath)
	require.NoError(t, err)
	label := labels.FromKeyring(ring).Dataset(secret)
	require.True(t, strings.HasPrefix(label, labels.Prefix), label)
	srv, _ := sealedWorker(ctx, t, d.ConfigPath)
	at := []string{"--config", d.ConfigPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace}

	code, out, errOut := runCLI(t, append([]string{"backup", secret, "--wait", "--json"}, at...)...)
	require.Equal(t, exitOK, code, errOut)
	var backup workflows.BackupResult
	require.NoError(t, json.Unmarshal([]byte(out), &backup))
	require.Len(t, backup.Replicas, 3)
	code, _, errOut = runCLI(t, append([]string{"drill", secret, "--wait"}, at...)...)
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = runCLI(t, append([]string{"hold", "place", "case-9", "--dataset", secret, "--point", backup.RestorePoint,
		"--reason", "audit", "--requested-by", "counsel"}, at...)...)
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = runCLI(t, append([]string{"schedules", "apply", "--paused"}, at...)...)
	require.Equal(t, exitOK, code, errOut)

	// drflow status finds the runs by the label and prints the name.
	code, out, errOut = runCLI(t, "status", "--config", d.ConfigPath, "--temporal-address", srv.Address, "--namespace", srv.Namespace, "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"dataset": "`+secret+`"`)
	assert.Contains(t, out, backup.RestorePoint, "the newest backup was found by its label")

	raw := srv.Client(t)
	resp, err := raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: srv.Namespace, PageSize: 100})
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, ex := range resp.GetExecutions() {
		id := ex.GetExecution().GetWorkflowId()
		assert.NotContains(t, id, secret, "workflow ID")
		if v, ok := ex.GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrDataset.GetName()]; ok {
			assert.Contains(t, string(v.GetData()), label, "%s: DrDataset", id)
		}
		kinds[ex.GetType().GetName()] = true
		hist := raw.GetWorkflowHistory(ctx, id, ex.GetExecution().GetRunId(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for hist.HasNext() {
			ev, err := hist.Next()
			require.NoError(t, err)
			text, err := protojson.Marshal(ev)
			require.NoError(t, err)
			assert.NotContains(t, string(text), secret, "%s event %d (%s)", id, ev.GetEventId(), ev.GetEventType())
		}
	}
	for _, wf := range []string{"BackupWorkflow", "ReplicateWorkflow", "RestoreDrillWorkflow", "RunbookWorkflow"} {
		assert.True(t, kinds[wf], "a %s ran", wf)
	}
	it, err := raw.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	require.NoError(t, err)
	n := 0
	for it.HasNext() {
		s, err := it.Next()
		require.NoError(t, err)
		n++
		assert.NotContains(t, s.ID, secret, "schedule ID")
		assert.Contains(t, s.ID, label)
	}
	assert.Equal(t, 3*len(cfg.Datasets), n, "backup, drill and retention schedules")
}
