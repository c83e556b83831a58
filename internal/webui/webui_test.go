package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/internal/testworker"
	"github.com/drflow/drflow/workflows"
)

// uiWait bounds each wait for the single-page app to fetch and render what a test expects.
const uiWait = 30 * time.Second

// TestDrillInWebUI is what an SRE does after a restore drill: find it in the Web UI's workflow
// list by drflow's search attributes, with the measured RTO and RPO as columns, open it, and
// read its search attributes and result.
func TestDrillInWebUI(t *testing.T) {
	// Installing and starting the servers has its own limits; the deadline is for drflow's work.
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions(), UI: true})
	driver := testservers.ChromeDriver(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c := srv.Client(t)
	startWorkers(ctx, t, c)
	backupID, drill, drillRun := backupAndDrill(ctx, t, c)

	// The UI lists from the same visibility store; wait until it holds both finished runs and
	// the drill's final figures, so that one page load shows them.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for query, want := range map[string]int{
			`DrDataset="files" AND ExecutionStatus="Completed"`:            2,
			`DrKind="drill" AND DrObjectivesMet=true AND DrRtoSeconds > 0`: 1,
		} {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: srv.Namespace, Query: query})
			require.NoError(ct, err)
			require.Len(ct, resp.Executions, want, query)
		}
	}, uiWait, 100*time.Millisecond)

	b := newBrowser(t, driver)
	workflowsURL := srv.UIURL + "/namespaces/" + url.PathEscape(srv.Namespace) + "/workflows"

	// Unfiltered, the list shows both runs: the filter below is what hides the backup.
	b.open(workflowsURL)
	rows := listRows(t, b, "both the backup and the drill", backupID, drill.WorkflowID)
	require.Len(t, rows, 2)

	// Show drflow's figures as columns, as a person does with the table's column settings
	// (the UI keeps them in local storage, per namespace).
	columns := []string{"Status", "Workflow ID", "Type", "DrRtoSeconds", "DrRpoSeconds", "DrObjectivesMet", "DrTier", "End"}
	setColumns(t, b, srv.Namespace, columns)

	query := `DrDataset="files" AND DrKind="drill"`
	b.open(workflowsURL + "?query=" + url.QueryEscape(query))
	rows = listRows(t, b, "the drill", drill.WorkflowID)
	require.Len(t, rows, 1, "only the drill matches %s", query)
	row := rows[0]
	assert.Equal(t, drill.WorkflowID, row["Workflow ID"])
	assert.Equal(t, "RestoreDrillWorkflow", row["Type"])
	assert.Equal(t, "Completed", row["Status"])
	assert.Equal(t, number(drill.RTOSeconds), row["DrRtoSeconds"])
	assert.Equal(t, number(drill.RPOSeconds), row["DrRpoSeconds"])
	assert.Equal(t, "true", row["DrObjectivesMet"])
	assert.Equal(t, "1", row["DrTier"])
	assert.NotContains(t, b.text(), backupID)
	saveScreenshot(t, b, "drill-list.png")

	// The row's link opens the drill's own page, on its history tab with input and result.
	b.click(`tr[data-testid="workflows-summary-configurable-table-row"] a[href*="/workflows/` + drill.WorkflowID + `/"]`)
	page := b.waitFor("the drill's result", uiWait,
		`return location.pathname.includes(arguments[0]) && document.body.innerText.includes('"rto_seconds"') ? document.body.innerText : "";`,
		"/workflows/"+drill.WorkflowID+"/"+drillRun+"/history")
	for _, want := range []string{
		`"dataset": "files"`,
		`"restore_point": "` + drill.RestorePoint + `"`,
		`"rto_seconds": ` + number(drill.RTOSeconds),
		`"rpo_seconds": ` + number(drill.RPOSeconds),
		`"verified": true`,
	} {
		assert.Contains(t, page, want)
	}
	saveScreenshot(t, b, "drill-result.png")

	b.click(`#search-attributes-tab`)
	page = b.waitFor("the drill's search attributes", uiWait,
		`return document.body.innerText.includes('"DrRtoSeconds"') ? document.body.innerText : "";`)
	for _, want := range []string{
		`"DrDataset": "files"`,
		`"DrKind": "drill"`,
		`"DrTier": 1`,
		`"DrObjectivesMet": true`,
		`"DrRtoSeconds": ` + number(drill.RTOSeconds),
		`"DrRpoSeconds": ` + number(drill.RPOSeconds),
	} {
		assert.Contains(t, page, want)
	}
	saveScreenshot(t, b, "drill-search-attributes.png")
}

// startWorkers serves every queue of the test deployment from this process, as the
// single-machine setup does, with real activities on a local store.
func startWorkers(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	d := testdeploy.New(t, testdeploy.Options{})
	acts, err := activities.New(ctx, d.Config, activities.Options{StateDir: filepath.Join(d.Root, "state"), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, acts.Close(context.Background())) })
	testworker.Start(t, c, acts)
}

// backupAndDrill backs up the dataset "files" and drills a restore of it, and returns the
// backup's workflow ID, the drill's result and the drill's run ID.
func backupAndDrill(ctx context.Context, t *testing.T, c client.Client) (string, workflows.DrillResult, string) {
	t.Helper()
	backupID := workflows.BackupWorkflowID("files")
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: backupID, TaskQueue: workflows.ControlTaskQueue},
		workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"})
	require.NoError(t, err)
	var backup workflows.BackupResult
	require.NoError(t, run.Get(ctx, &backup))

	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.DrillWorkflowID("files"), TaskQueue: workflows.ControlTaskQueue},
		workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files"})
	require.NoError(t, err)
	var drill workflows.DrillResult
	require.NoError(t, run.Get(ctx, &drill))
	require.True(t, drill.Verified)
	require.Equal(t, backup.RestorePoint, drill.RestorePoint)
	require.Positive(t, drill.RTOSeconds)
	return backupID, drill, run.GetRunID()
}

// listRows waits until the workflow table shows a row for each of ids and returns every row
// as column title to cell text.
func listRows(t *testing.T, b *browser, what string, ids ...string) []map[string]string {
	t.Helper()
	raw := b.waitFor(what+" in the workflow list", uiWait, `
		const titles = [...document.querySelectorAll('th[data-testid^="workflows-summary-table-header-cell-"]')]
			.map(th => th.textContent.trim());
		const rows = [...document.querySelectorAll('tr[data-testid="workflows-summary-configurable-table-row"]')].map(tr => {
			const cells = [...tr.querySelectorAll('td[data-testid="workflows-summary-table-body-cell"]')];
			return Object.fromEntries(titles.map((title, i) => [title, cells[i] ? cells[i].textContent.trim() : ""]));
		});
		const shown = new Set(rows.map(r => r["Workflow ID"]));
		return arguments[0].every(id => shown.has(id)) ? JSON.stringify(rows) : "";`, ids)
	var rows []map[string]string
	require.NoError(t, json.Unmarshal([]byte(raw), &rows))
	return rows
}

// setColumns sets the workflow table's columns for namespace in the UI's local storage; the
// next page load shows them.
func setColumns(t *testing.T, b *browser, namespace string, titles []string) {
	t.Helper()
	columns := make([]map[string]any, len(titles))
	for i, title := range titles {
		columns[i] = map[string]any{"label": title, "pinned": false}
	}
	setting, err := json.Marshal(map[string]any{namespace: columns})
	require.NoError(t, err)
	require.NoError(t, b.eval(nil, `localStorage.setItem("namespace-workflow-table-columns", arguments[0]); return null;`, string(setting)))
}

// number is how the UI writes a float: JavaScript's shortest round-trip decimal, which Go's
// 'f' format with precision -1 matches for the magnitudes of RPO and RTO.
func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// saveScreenshot writes the page as name into $DRFLOW_SCREENSHOT_DIR (kept after the test)
// or a temporary directory, and checks that it is a real picture of a page.
func saveScreenshot(t *testing.T, b *browser, name string) {
	t.Helper()
	dir := os.Getenv("DRFLOW_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	shot := b.screenshot()
	requireRenderedPNG(t, name, shot)
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	t.Logf("screenshot: %s", path)
}

// requireRenderedPNG fails unless shot decodes as a PNG of a page with content: at least 1%
// of its pixels differ from its most common (background) colour.
func requireRenderedPNG(t *testing.T, name string, shot []byte) {
	t.Helper()
	require.NotEmpty(t, shot, "%s is empty", name)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err, "%s is not a PNG", name)
	bounds := img.Bounds()
	require.Greater(t, bounds.Dx(), 100, "%s width", name)
	require.Greater(t, bounds.Dy(), 100, "%s height", name)
	counts := map[color.RGBA]int{}
	total := 0
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
			total++
		}
	}
	background := 0
	for _, n := range counts {
		background = max(background, n)
	}
	assert.Greater(t, len(counts), 16, "%s has only %d colours", name, len(counts))
	assert.Greater(t, total-background, total/100, "%s is almost all one colour", name)
}
