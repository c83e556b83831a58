package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/evidence"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/workflows"
)

const (
	readyLine = "Press Ctrl-C to stop everything"
	// firstReadyTimeout also covers linking drflow and drflow-worker, which takes minutes
	// on a busy two-core machine with a cold build cache.
	firstReadyTimeout = 6 * time.Minute
	// againReadyTimeout is for the second run, whose binaries are up to date.
	againReadyTimeout = 2 * time.Minute
	// stopTimeout bounds Ctrl-C: the worker gets its graceful stop, then the dev server.
	stopTimeout = 90 * time.Second
)

// Lines the demo prints (through drflow backup/drill).
var (
	rpoUnknownLine = regexp.MustCompile(`(?m)^  RPO unknown: first restore point of the dataset \(objective 900s\)$`)
	rpoMetLine     = regexp.MustCompile(`(?m)^  RPO \d+\.\ds \(objective 900s\): met$`)
	rtoMetLine     = regexp.MustCompile(`(?m)^  RTO \d+\.\ds \(objective 3600s\): met$`)
	verifiedLine   = regexp.MustCompile(`(?m)^  verified: yes$`)
	drillLink      = regexp.MustCompile(`(?m)^  this drill: +(http://localhost:(\d+)/namespaces/default/workflows/(drflow-drill-customers-\S+))$`)
	drillsLink     = regexp.MustCompile(`(?m)^  all drills: +(http://localhost:(\d+)/namespaces/default/workflows\?query=DrKind%3D%22drill%22)$`)
	evidenceLine   = regexp.MustCompile(`(?m)^  evidence pack: +(\S+)/index\.html$`)
)

// TestDemo runs the demo twice in the same directory, as a user would run `make demo`, stop it
// with Ctrl-C and run it again.
func TestDemo(t *testing.T) {
	testservers.Tool(t, "temporal") // a first install is not part of the demo's deadline
	dir := t.TempDir()
	p := ports{frontend: testservers.FreePort(t), ui: testservers.FreePort(t), metrics: testservers.FreePort(t), codec: testservers.FreePort(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// First run: fresh directory, PostgreSQL on 127.0.0.1:5432 (the tests' requirement).
	first := startDemo(t, dir, p)
	out := first.waitReady(firstReadyTimeout)
	backup, drill := sections(t, out)
	assert.Regexp(t, rpoUnknownLine, backup, "a first backup has no previous restore point")
	assert.Regexp(t, verifiedLine, drill)
	assert.Regexp(t, rpoMetLine, drill)
	assert.Regexp(t, rtoMetLine, drill)
	assert.Contains(t, out, "dataset orders-db backs up database drflow_demo")
	cfg, err := config.Load(filepath.Join(dir, "drflow.yaml"))
	require.NoError(t, err, "the generated configuration loads")
	assertDatasets(t, cfg, "customers", "orders-db", "us-logs")

	link := drillLink.FindStringSubmatch(out)
	require.NotNil(t, link, "the drill's Web UI link is printed:\n%s", out)
	assert.Equal(t, fmt.Sprint(p.ui), link[2], "links point at the Web UI port in use")
	firstDrill := link[3]
	list := drillsLink.FindStringSubmatch(out)
	require.NotNil(t, list, "the filtered list link is printed:\n%s", out)
	assertPageAnswers(t, link[1])
	assertPageAnswers(t, list[1])

	// The demo seals every payload with its keyring: a client reads results with it only.
	require.NotEmpty(t, cfg.PayloadKeyFile(), "the demo configures a payload keyring")
	cdc, err := codec.Open(cfg.PayloadKeyFile())
	require.NoError(t, err)
	assertSealedDrill(ctx, t, p, cdc, firstDrill)
	c, err := client.Dial(client.Options{HostPort: p.frontendAddr(), Namespace: "default", Logger: quiet, DataConverter: cdc.DataConverter()})
	require.NoError(t, err)
	defer c.Close()
	assertSearchAttributesRegistered(ctx, t, c)
	attrs := drillAttributes(ctx, t, c, firstDrill)
	assert.Equal(t, "customers", attrs["DrDataset"])
	assert.Equal(t, "drill", attrs["DrKind"])
	assert.Equal(t, float64(1), attrs["DrTier"])
	assert.Equal(t, true, attrs["DrObjectivesMet"])
	assert.Contains(t, attrs, "DrRpoSeconds")
	assert.Contains(t, attrs, "DrRtoSeconds")
	assertSchedules(ctx, t, c, []string{"drflow-backup-customers", "drflow-drill-customers", "drflow-backup-orders-db"}, nil)
	runPrintedRunbook(ctx, t, c, out)
	c.Close()
	assertEvidencePack(ctx, t, dir, out)

	first.interrupt()
	assertClosed(t, p.frontendAddr(), p.uiAddr(), p.metricsAddr(), p.codecAddr())

	// Second run: same directory, so the history and restore points are there; without
	// PostgreSQL this time, so orders-db is left out.
	again := startDemo(t, dir, p, "DRFLOW_DEMO_POSTGRES=off")
	out = again.waitReady(againReadyTimeout)
	backup, drill = sections(t, out)
	assert.Regexp(t, rpoMetLine, backup, "the second backup measures the RPO since the first one")
	assert.Regexp(t, rtoMetLine, drill)
	assert.Contains(t, out, "leaving out the PostgreSQL dataset orders-db: DRFLOW_DEMO_POSTGRES=off")
	cfg, err = config.Load(filepath.Join(dir, "drflow.yaml"))
	require.NoError(t, err, "the generated configuration without orders-db loads")
	assertDatasets(t, cfg, "customers", "us-logs")

	c, err = client.Dial(client.Options{HostPort: p.frontendAddr(), Namespace: "default", Logger: quiet})
	require.NoError(t, err)
	defer c.Close()
	link = drillLink.FindStringSubmatch(out)
	require.NotNil(t, link, "the drill's Web UI link is printed:\n%s", out)
	require.NotEqual(t, firstDrill, link[3])
	drillAttributes(ctx, t, c, link[3])
	// The schedules follow the configuration: orders-db's are gone.
	assertSchedules(ctx, t, c, []string{"drflow-backup-customers"}, []string{"drflow-backup-orders-db"})
	desc, err := c.DescribeWorkflowExecution(ctx, firstDrill, "")
	require.NoError(t, err, "the first run's drill is still in the history")
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.WorkflowExecutionInfo.Status)
	c.Close()

	again.interrupt()
	assertClosed(t, p.frontendAddr(), p.uiAddr(), p.metricsAddr(), p.codecAddr())
}

// TestDemoRefusesBusyPorts checks that a busy port stops the demo at once, before it builds
// anything, with a message naming the port and the variable that moves it.
func TestDemoRefusesBusyPorts(t *testing.T) {
	tests := []struct {
		name, what, variable string
	}{
		{"frontend", "Temporal frontend", "DRFLOW_DEMO_PORT"},
		{"ui", "Temporal Web UI", "DRFLOW_DEMO_UI_PORT"},
		{"metrics", "worker metrics", "DRFLOW_DEMO_METRICS_PORT"},
		{"codec", "codec server", "DRFLOW_DEMO_CODEC_PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			busy := l.Addr().(*net.TCPAddr).Port
			dir := filepath.Join(t.TempDir(), "demo")
			env := []string{
				"DRFLOW_DEMO_DIR=" + dir,
				fmt.Sprintf("DRFLOW_DEMO_PORT=%d", testservers.FreePort(t)),
				fmt.Sprintf("DRFLOW_DEMO_UI_PORT=%d", testservers.FreePort(t)),
				fmt.Sprintf("DRFLOW_DEMO_METRICS_PORT=%d", testservers.FreePort(t)),
				fmt.Sprintf("DRFLOW_DEMO_CODEC_PORT=%d", testservers.FreePort(t)),
				fmt.Sprintf("%s=%d", tt.variable, busy), // the last one wins
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", script(t))
			cmd.Env = append(demoEnv(), env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the demo must fail:\n%s", out)
			assert.Equal(t, 1, exit.ExitCode())
			assert.Contains(t, string(out), fmt.Sprintf("port %d on 127.0.0.1 (%s) is already in use", busy, tt.what))
			assert.Contains(t, string(out), tt.variable+"=")
			assert.NoDirExists(t, dir, "nothing is built or written before the ports are checked")
		})
	}
}

// quiet keeps the SDK's connection chatter out of the test output.
var quiet = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))

type ports struct{ frontend, ui, metrics, codec int }

func (p ports) frontendAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.frontend) }
func (p ports) uiAddr() string       { return fmt.Sprintf("127.0.0.1:%d", p.ui) }
func (p ports) metricsAddr() string  { return fmt.Sprintf("127.0.0.1:%d", p.metrics) }
func (p ports) codecAddr() string    { return fmt.Sprintf("127.0.0.1:%d", p.codec) }

func script(t *testing.T) string {
	return filepath.Join(testservers.RepoRoot(t), "scripts", "demo.sh")
}

// demoEnv is the test's environment without demo settings, so only the test's apply.
func demoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DRFLOW_DEMO_") {
			env = append(env, kv)
		}
	}
	return env
}

// demoRun is one run of scripts/demo.sh in its own process group, as a terminal runs it.
type demoRun struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // set before done is closed
}

func startDemo(t *testing.T, dir string, p ports, env ...string) *demoRun {
	t.Helper()
	cmd := exec.Command("bash", script(t))
	cmd.Dir = testservers.RepoRoot(t)
	cmd.Env = append(demoEnv(),
		"DRFLOW_DEMO_DIR="+dir,
		fmt.Sprintf("DRFLOW_DEMO_PORT=%d", p.frontend),
		fmt.Sprintf("DRFLOW_DEMO_UI_PORT=%d", p.ui),
		fmt.Sprintf("DRFLOW_DEMO_METRICS_PORT=%d", p.metrics),
		fmt.Sprintf("DRFLOW_DEMO_CODEC_PORT=%d", p.codec))
	cmd.Env = append(cmd.Env, env...)
	r := &demoRun{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	// Own process group, so that Ctrl-C can be delivered to the whole group as a terminal
	// does, and a failed test can stop everything the demo started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	// A shell cannot trap a signal that was ignored when it started, and a test run in the
	// background of a non-interactive shell inherits SIGINT ignored. Catching SIGINT here
	// while the script starts makes exec hand it the default disposition, as in a terminal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT)
	err := cmd.Start()
	signal.Stop(sigs)
	require.NoError(t, err, "start scripts/demo.sh")
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(r.kill)
	return r
}

// waitReady returns the output once the demo says it is ready, failing t if it exits first or
// takes longer than timeout.
func (r *demoRun) waitReady(timeout time.Duration) string {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if out := r.out.String(); strings.Contains(out, readyLine) {
			return out
		}
		select {
		case <-r.done:
			require.FailNowf(r.t, "demo exited before it was ready", "%v\n%s", r.err, r.out.String())
		case <-deadline.C:
			require.FailNowf(r.t, "demo not ready in time", "no %q within %s\n%s", readyLine, timeout, r.out.String())
		case <-tick.C:
		}
	}
}

// interrupt presses Ctrl-C and checks that the demo stops everything and exits 0.
func (r *demoRun) interrupt() {
	r.t.Helper()
	require.NoError(r.t, syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT))
	select {
	case <-r.done:
	case <-time.After(stopTimeout):
		require.FailNowf(r.t, "demo did not stop", "still running %s after Ctrl-C\n%s", stopTimeout, r.out.String())
	}
	require.NoError(r.t, r.err, "the demo exits 0 after Ctrl-C\n%s", r.out.String())
	assert.Contains(r.t, r.out.String(), "stopping the worker and the Temporal dev server")
}

// kill stops a demo that is still running when the test ends: SIGTERM (the script stops
// what it started), then SIGKILL for the whole group.
func (r *demoRun) kill() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	if r.t.Failed() {
		r.t.Logf("demo output:\n%s", r.out.String())
	}
}

// sections splits the demo's output into what the backup and the drill printed.
func sections(t *testing.T, out string) (backup, drill string) {
	t.Helper()
	const backupStart, drillStart, end = "==> backing up dataset customers", "==> restore drill of dataset customers", "drflow demo is running."
	b, d, e := strings.Index(out, backupStart), strings.Index(out, drillStart), strings.Index(out, end)
	require.True(t, b >= 0 && b < d && d < e, "backup, drill and summary in order:\n%s", out)
	return out[b:d], out[d:e]
}

func assertDatasets(t *testing.T, cfg *config.Config, want ...string) {
	t.Helper()
	var got []string
	for _, d := range cfg.Datasets {
		got = append(got, d.Name)
	}
	assert.Equal(t, want, got)
}

// assertPageAnswers fetches a Web UI link (printed with localhost) from 127.0.0.1.
func assertPageAnswers(t *testing.T, link string) {
	t.Helper()
	url := strings.Replace(link, "http://localhost:", "http://127.0.0.1:", 1)
	resp, err := http.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", url)
}

func assertSearchAttributesRegistered(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	for name, typ := range workflows.SearchAttributeDefinitions() {
		got, ok := resp.CustomAttributes[name]
		if assert.True(t, ok, "search attribute %s is registered", name) {
			assert.Equal(t, typ, enumsShorthand(got), "type of %s", name)
		}
	}
}

// enumsShorthand turns INDEXED_VALUE_TYPE_KEYWORD into Keyword, as the CLI names types.
func enumsShorthand(v enums.IndexedValueType) string {
	for short, n := range enums.IndexedValueType_shorthandValue {
		if n == int32(v) {
			return short
		}
	}
	return v.String()
}

// drillAttributes finds the drill with a DrKind="drill" visibility query, as the Web UI's
// filtered list does, and returns its search attributes decoded.
func drillAttributes(ctx context.Context, t *testing.T, c client.Client, id string) map[string]any {
	t.Helper()
	attrs := map[string]any{}
	var decodeErr error
	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: "default", Query: `DrKind="drill"`, PageSize: 1000,
		})
		if err != nil {
			return false
		}
		for _, e := range resp.Executions {
			if e.Execution.WorkflowId != id || e.Status != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				continue
			}
			for name, p := range e.SearchAttributes.GetIndexedFields() {
				var v any
				if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
					decodeErr = fmt.Errorf("search attribute %s: %w", name, err)
				}
				attrs[name] = v
			}
			return true
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "DrKind=\"drill\" lists %s", id)
	require.NoError(t, decodeErr)
	return attrs
}

// assertSchedules waits until the namespace's schedules include every ID of present and none
// of absent (schedule lists come from visibility, which may lag a moment behind).
func assertSchedules(ctx context.Context, t *testing.T, c client.Client, present, absent []string) {
	t.Helper()
	var (
		mu   sync.Mutex // the condition runs on its own goroutine
		last []string
	)
	ok := assert.Eventually(t, func() bool {
		it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{})
		if err != nil {
			return false
		}
		var ids []string
		have := map[string]bool{}
		for it.HasNext() {
			s, err := it.Next()
			if err != nil {
				return false
			}
			ids = append(ids, s.ID)
			have[s.ID] = true
		}
		mu.Lock()
		last = ids
		mu.Unlock()
		for _, id := range present {
			if !have[id] {
				return false
			}
		}
		for _, id := range absent {
			if have[id] {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond)
	if !ok {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("schedules %v; want %v present and %v absent", last, present, absent)
	}
}

func assertClosed(t *testing.T, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		assert.Error(t, err, "nothing listens on %s after the demo stopped", addr)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	runbookRunCmd     = regexp.MustCompile(`(?m)^  (\S+drflow runbook run legal-hold (?:.*\\\n)*.*)$`)
	runbookApproveCmd = regexp.MustCompile(`(?m)^  (\S+drflow runbook approve RUN_ID .*)$`)
	startedRunbook    = regexp.MustCompile(`started runbook legal-hold as (\S+),`)
)

// runPrintedRunbook pastes the legal-hold commands the demo prints into a shell, as a person
// would: the run waits at its release gate, and the printed approval releases the hold.
func runPrintedRunbook(ctx context.Context, t *testing.T, c client.Client, out string) {
	t.Helper()
	run := runbookRunCmd.FindStringSubmatch(out)
	require.NotNil(t, run, "the demo prints how to run the legal-hold runbook:\n%s", out)
	approve := runbookApproveCmd.FindStringSubmatch(out)
	require.NotNil(t, approve, "the demo prints how to approve its gate:\n%s", out)
	shell := func(cmd string) string {
		sh := exec.CommandContext(ctx, "bash", "-c", cmd)
		sh.Dir = testservers.RepoRoot(t)
		b, err := sh.CombinedOutput()
		require.NoError(t, err, "%s\n%s", cmd, b)
		return string(b)
	}
	started := startedRunbook.FindStringSubmatch(shell(run[1]))
	require.NotNil(t, started, "runbook run prints the run's ID")
	id := started[1]
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		v, err := c.QueryWorkflow(ctx, id, "", workflows.RunbookStateQuery)
		require.NoError(ct, err)
		var st workflows.RunbookState
		require.NoError(ct, v.Get(&st))
		gate, _ := st.Step("approve-release")
		assert.Equal(ct, workflows.StepWaiting, gate.Status, "%+v", st)
	}, 2*time.Minute, 200*time.Millisecond)
	assert.Contains(t, shell(strings.ReplaceAll(approve[1], "RUN_ID", id)), "accepted: gate approved")
	var res workflows.RunbookResult
	require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &res))
	assert.Equal(t, workflows.RunCompleted, res.Status)
}

// assertSealedDrill reads the drill's result as the Temporal server keeps it (sealed, no
// dataset name in it) and as the demo's codec server decodes it for the Web UI's origin.
func assertSealedDrill(ctx context.Context, t *testing.T, p ports, cdc *codec.Codec, id string) {
	t.Helper()
	raw, err := client.Dial(client.Options{HostPort: p.frontendAddr(), Namespace: "default", Logger: quiet})
	require.NoError(t, err)
	defer raw.Close()
	var plain workflows.DrillResult
	require.Error(t, raw.GetWorkflow(ctx, id, "").Get(ctx, &plain), "without the keyring the result does not decode")
	hist := raw.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	require.True(t, hist.HasNext())
	ev, err := hist.Next()
	require.NoError(t, err)
	result := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult()
	require.Len(t, result.GetPayloads(), 1)
	assert.Equal(t, codec.EncodingEncrypted, string(result.GetPayloads()[0].GetMetadata()["encoding"]))
	assert.NotContains(t, string(result.GetPayloads()[0].GetData()), "customers")

	body, err := protojson.Marshal(result)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.codecAddr()+"/default/decode", bytes.NewReader(body))
	require.NoError(t, err)
	origin := fmt.Sprintf("http://localhost:%d", p.ui)
	req.Header.Set("Origin", origin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var decoded commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(data, &decoded))
	require.Len(t, decoded.Payloads, 1)
	var dr workflows.DrillResult
	require.NoError(t, json.Unmarshal(decoded.Payloads[0].Data, &dr))
	assert.Equal(t, "customers", dr.Dataset)
	assert.True(t, dr.Verified)
}

// assertEvidencePack checks the evidence pack the demo printed: it verifies offline with the
// region's public key and reports the demo's backup and drill with their figures.
func assertEvidencePack(ctx context.Context, t *testing.T, dir, out string) {
	t.Helper()
	m := evidenceLine.FindStringSubmatch(out)
	require.NotNil(t, m, "the evidence pack is printed:\n%s", out)
	pack := m[1]
	if !filepath.IsAbs(pack) {
		pack = filepath.Join("..", "..", pack)
	}
	pub, err := audit.LoadPublicKey(filepath.Join(dir, "state", "audit", "eu-west-1.key"))
	require.NoError(t, err)
	rep, err := evidence.VerifyPack(ctx, pack, map[string]ed25519.PublicKey{"eu-west-1": pub})
	require.NoError(t, err, "the demo's evidence pack verifies")
	assert.Positive(t, rep.Figures)
	raw, err := os.ReadFile(filepath.Join(pack, evidence.FileEvidence))
	require.NoError(t, err)
	var p evidence.Pack
	require.NoError(t, json.Unmarshal(raw, &p))
	var backups, drills int
	for _, b := range p.Objectives.Backups {
		backups += boolInt(b.Dataset == "customers")
	}
	for _, d := range p.Objectives.Drills {
		if d.Dataset == "customers" {
			drills++
			assert.True(t, d.Met, "the demo's drill met its objectives")
		}
	}
	assert.Positive(t, backups, "the demo's backup is in the pack")
	assert.Positive(t, drills, "the demo's drill is in the pack")
	assert.NotEmpty(t, p.Seal.Ref, "the demo signs the pack's observations")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
