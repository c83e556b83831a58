package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/protojson"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

// TestPayloadCodecEndToEnd: with codec.key_file in the configuration, the CLI and the worker
// seal every payload, so the history the Temporal server keeps holds no dataset name or
// figure in the clear; the CLI still prints the result, and the codec server decodes the
// history's payloads for the Web UI's origin.
func TestPayloadCodecEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	path := writeFilesConfig(t)
	keyFile := filepath.Join(filepath.Dir(path), "keys", "payload.keyring")
	code, out, errOut := runCLI(t, "codec-key", "create", "--file", keyFile)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "active key k-")
	appendFile(t, path, "codec:\n  key_file: keys/payload.keyring\n")

	srv, _ := sealedWorker(ctx, t, path)

	code, out, errOut = runCLI(t, "backup", "files", "--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace, "--wait", "--json")
	require.Equal(t, exitOK, code, errOut)
	var res workflows.BackupResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	assert.Equal(t, "files", res.Dataset, "the CLI decodes the result")

	// The server's copy of the history: every payload sealed, no name in the clear.
	raw := srv.Client(t)
	hist := raw.GetWorkflowHistory(ctx, res.WorkflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var sealed []*commonpb.Payload
	var dump strings.Builder
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		b, err := protojson.Marshal(ev)
		require.NoError(t, err)
		dump.Write(b)
		if a := ev.GetWorkflowExecutionCompletedEventAttributes(); a != nil {
			sealed = a.GetResult().GetPayloads()
		}
	}
	require.Len(t, sealed, 1)
	assert.Equal(t, codec.EncodingEncrypted, string(sealed[0].Metadata["encoding"]))
	// Search attribute values (DrDataset, DrKind, ...) are not payloads and stay readable.
	for _, clear := range []string{`"dataset":"files"`, "restore_point", res.RestorePoint, "rpo_seconds", "bytes_read"} {
		assert.NotContains(t, dump.String(), clear, "history holds %q in the clear", clear)
		assert.NotContains(t, dump.String(), b64(clear), "history holds %q in the clear", clear)
	}
	// Schedules carry sealed inputs and memos; a second apply still finds nothing to change.
	sched := []string{"schedules", "apply", "--config", path, "--temporal-address", srv.Address, "--namespace", srv.Namespace}
	code, out, errOut = runCLI(t, sched...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "6 created, 0 updated, 0 unchanged, 0 deleted")
	code, out, errOut = runCLI(t, sched...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "0 created, 0 updated, 6 unchanged, 0 deleted")

	var viaRaw workflows.BackupResult
	assert.Error(t, raw.GetWorkflow(ctx, res.WorkflowID, "").Get(ctx, &viaRaw), "a client without the key cannot read the result")

	// The codec server decodes it for the Web UI.
	addr := freeAddr(t)
	const ui = "http://127.0.0.1:8233"
	sctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	var srvOut bytes.Buffer
	go func() {
		done <- run(sctx, []string{"codec-server", "--listen", addr, "--ui-origin", ui, "--config", path, "--namespace", srv.Namespace}, &srvOut, io.Discard)
	}()
	t.Cleanup(func() { stop(); assert.Equal(t, exitOK, <-done) })
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: sealed})
	require.NoError(t, err)
	var resp *http.Response
	require.Eventually(t, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/"+srv.Namespace+"/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Origin", ui)
		req.Header.Set("Content-Type", "application/json")
		resp, err = http.DefaultClient.Do(req)
		return err == nil
	}, time.Minute, 20*time.Millisecond, "the codec server never answered")
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, ui, resp.Header.Get("Access-Control-Allow-Origin"))
	var decoded commonpb.Payloads
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(data, &decoded))
	require.Len(t, decoded.Payloads, 1)
	var viaServer workflows.BackupResult
	require.NoError(t, json.Unmarshal(decoded.Payloads[0].Data, &viaServer))
	assert.Equal(t, res.RestorePoint, viaServer.RestorePoint)
}

// sealedWorker starts a dev server and an in-process worker for the configuration at path,
// which names a payload keyring, and returns the server and a client that seals like the
// worker.
func sealedWorker(ctx context.Context, t *testing.T, path string) (*testservers.TemporalServer, client.Client) {
	t.Helper()
	cfg, err := config.Load(path)
	require.NoError(t, err)
	cdc, err := codec.Open(cfg.PayloadKeyFile())
	require.NoError(t, err)
	acts, err := activities.New(ctx, cfg, activities.Options{StateDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions()})
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace, Logger: quietLogger{}, DataConverter: cdc.DataConverter()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	testworker.Start(t, c, acts)
	return srv, c
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(text)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// b64 is s as protojson renders bytes, to catch a clear payload in the history dump.
func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}

func TestCodecKeyCommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "payload.keyring")
	code, out, errOut := runCLI(t, "codec-key", "create", "--file", file)
	require.Equal(t, exitOK, code, errOut)
	first, err := codec.LoadKeyring(file)
	require.NoError(t, err)

	code, _, errOut = runCLI(t, "codec-key", "create", "--file", file)
	assert.Equal(t, exitFailed, code, "create never overwrites a keyring")
	assert.Contains(t, errOut, "exists")
	code, out2, errOut := runCLI(t, "codec-key", "create", "--if-missing", "--file", file)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, out, out2, "--if-missing keeps and reports the keyring")

	code, out, errOut = runCLI(t, "codec-key", "rotate", "--file", file)
	require.Equal(t, exitOK, code, errOut)
	rotated, err := codec.LoadKeyring(file)
	require.NoError(t, err)
	assert.Len(t, rotated.Keys, 2)
	assert.Equal(t, first.Keys[0], rotated.Keys[0], "the old key stays")
	assert.Contains(t, out, "active key "+rotated.Active)

	code, _, errOut = runCLI(t, "codec-key", "rotate", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "no --file")
}
