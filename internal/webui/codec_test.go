package webui

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/workflows"
)

// codecUnreachable is the Web UI's (2.42.1) banner on a workflow page whose payloads it could
// not send to the configured codec server.
const codecUnreachable = "Codec Server could not connect"

// TestWebUIDecodesSealedPayloadsWithCodecServer is what an SRE sees of a drill whose payloads
// drflow seals with the deployment's payload keyring. The dev server's Web UI is configured
// with a codec server (--ui-codec-endpoint) that answers CORS for the UI's origin: while it
// runs, the drill's page shows its input and result as readable JSON; once it is stopped, the
// same page, reloaded, shows only the sealed payloads the Temporal server holds (encoding
// "binary/encrypted", base64 metadata and ciphertext) under the UI's banner that the codec
// server could not be reached, and none of the drill's fields.
func TestWebUIDecodesSealedPayloadsWithCodecServer(t *testing.T) {
	keyring := filepath.Join(t.TempDir(), "payload-keyring.json")
	_, err := codec.CreateKeyring(keyring, time.Now())
	require.NoError(t, err)
	cdc, err := codec.Open(keyring)
	require.NoError(t, err)

	// The codec server's address goes into the dev server's flags and the UI's origin into the
	// codec server's CORS: listen first, serve once the UI's port is known.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := testservers.Temporal(t, testservers.TemporalOptions{
		SearchAttributes: workflows.SearchAttributeDefinitions(),
		UI:               true,
		UICodecEndpoint:  "http://" + ln.Addr().String(),
	})
	uiPort := strings.TrimPrefix(srv.UIURL, "http://127.0.0.1:")
	codecServer := &http.Server{
		Handler: codec.Handler(cdc, codec.ServerOptions{
			UIOrigins:  []string{srv.UIURL, "http://localhost:" + uiPort},
			Namespaces: []string{srv.Namespace},
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- codecServer.Serve(ln) }()
	t.Cleanup(func() { _ = codecServer.Close() })

	driver := testservers.ChromeDriver(t)
	// Installing and starting the servers has its own limits; the deadline is for drflow's work.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The worker and the client that starts the drill seal every payload, as drflow does.
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: srv.Namespace, DataConverter: cdc.DataConverter()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	startWorkers(ctx, t, c)
	_, drill, drillRun := backupAndDrill(ctx, t, c)

	// What the Temporal server holds, read without the keyring: the drill's sealed input and
	// result, whose base64 the UI shows when it cannot decode them.
	input, result := sealedDrill(ctx, t, srv.Client(t), drill.WorkflowID, drillRun)
	encoded := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, p := range []*commonpb.Payload{input, result} {
		require.Equal(t, codec.EncodingEncrypted, string(p.GetMetadata()["encoding"]))
		require.NotContains(t, string(p.GetData()), `"dataset"`)
	}

	b := newBrowser(t, driver)
	page := srv.UIURL + "/namespaces/" + url.PathEscape(srv.Namespace) + "/workflows/" +
		url.PathEscape(drill.WorkflowID) + "/" + url.PathEscape(drillRun) + "/history"
	sealedEncoding := `"encoding": "` + encoded(codec.EncodingEncrypted) + `"`

	// With the codec server: the Input and Result cards and the event history decoded, and
	// nothing sealed left on the page.
	b.open(page)
	text := b.waitFor("the drill's decoded input and result", uiWait, `
		const text = document.body.innerText;
		return text.includes('"rto_seconds"') && text.includes("Workflow Execution Completed") &&
			!text.includes(arguments[0]) ? text : "";`, encoded(codec.EncodingEncrypted))
	for _, want := range []string{
		`"dataset": "files"`,
		`"restore_point": "` + drill.RestorePoint + `"`,
		`"rto_seconds": ` + number(drill.RTOSeconds),
		`"rpo_seconds": ` + number(drill.RPOSeconds),
		`"verified": true`,
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, codecUnreachable)
	saveScreenshot(t, b, "codec-decoded.png")

	// Without it: the same page, reloaded, shows the payloads as the server holds them.
	require.NoError(t, codecServer.Shutdown(ctx))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
	b.open(page)
	text = b.waitFor("the drill's sealed input and result", uiWait, `
		const text = document.body.innerText;
		return text.includes(arguments[0]) && text.includes(arguments[1]) && text.includes(arguments[2]) &&
			text.includes("Workflow Execution Completed") ? text : "";`,
		codecUnreachable, `"data": "`+base64.StdEncoding.EncodeToString(input.GetData())+`"`,
		`"data": "`+base64.StdEncoding.EncodeToString(result.GetData())+`"`)
	for _, want := range []string{
		sealedEncoding,
		`"encryption-cipher": "` + encoded("AES-256-GCM") + `"`,
		`"encryption-key-id": "` + encoded(cdc.ActiveKey()) + `"`,
	} {
		assert.Contains(t, text, want)
	}
	for _, unwanted := range []string{`"dataset"`, `"rto_seconds"`, `"rpo_seconds"`, `"verified"`, drill.RestorePoint} {
		assert.NotContains(t, text, unwanted)
	}
	saveScreenshot(t, b, "codec-sealed.png")
}

// sealedDrill returns the drill's input and result payloads as the Temporal server keeps
// them, read by c, a client without the payload keyring.
func sealedDrill(ctx context.Context, t *testing.T, c client.Client, id, runID string) (input, result *commonpb.Payload) {
	t.Helper()
	events := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for events.HasNext() {
		ev, err := events.Next()
		require.NoError(t, err)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			payloads := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
			require.Len(t, payloads, 1)
			input = payloads[0]
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			payloads := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()
			require.Len(t, payloads, 1)
			result = payloads[0]
		}
	}
	if input == nil || result == nil {
		t.Fatalf("the history of %s/%s lacks its input or result", id, runID)
	}
	return input, result
}
