package testservers

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func greet(ctx workflow.Context, name string) (string, error) {
	return "hello " + name, nil
}

// TestTemporalDevServer proves the harness: search attributes are registered, the Web UI
// answers, a workflow runs on a real worker, and history survives a restart on the same
// SQLite file.
func TestTemporalDevServer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "temporal.db")
	srv := Temporal(t, TemporalOptions{UI: true, DBFile: db, SearchAttributes: map[string]string{
		"DrDataset": "Keyword", "DrRpoSeconds": "Double",
	}})
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace})
	require.NoError(t, err)
	assert.Equal(t, enums.INDEXED_VALUE_TYPE_KEYWORD, attrs.CustomAttributes["DrDataset"])
	assert.Equal(t, enums.INDEXED_VALUE_TYPE_DOUBLE, attrs.CustomAttributes["DrRpoSeconds"])

	resp, err := http.Get(srv.UIURL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the Web UI answers")

	w := worker.New(c, "harness", worker.Options{})
	w.RegisterWorkflow(greet)
	require.NoError(t, w.Start())
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "harness-greet", TaskQueue: "harness"}, greet, "drflow")
	require.NoError(t, err)
	var got string
	require.NoError(t, run.Get(ctx, &got))
	assert.Equal(t, "hello drflow", got)
	w.Stop()

	// A second server on the same file sees the finished workflow.
	srv.stop()
	again := Temporal(t, TemporalOptions{DBFile: db})
	desc, err := again.Client(t).DescribeWorkflowExecution(ctx, "harness-greet", "")
	require.NoError(t, err)
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.WorkflowExecutionInfo.Status)
}

// A server that lost the race for its port fails in a way Temporal recognises and retries;
// other failures are not mistaken for it.
func TestStartFailureThatLostAPort(t *testing.T) {
	for _, tc := range []struct {
		say  string
		want bool
	}{
		{"listen tcp 127.0.0.1:33499: bind: address already in use", true},
		{"config is broken", false},
	} {
		p, err := tryStart(t, Spec{Name: "doomed", Path: "bash", Args: []string{"-c", "echo '" + tc.say + "'; exit 1"},
			Ready: func(context.Context) error { return errors.New("not yet") }})
		require.Error(t, err)
		assert.Equal(t, tc.want, portTaken(p, err), tc.say)
	}
}
