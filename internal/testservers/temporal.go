package testservers

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	"go.temporal.io/sdk/client"
)

// TemporalServer is a Temporal dev server (the real server with SQLite persistence and,
// unless headless, its Web UI) started by the pinned Temporal CLI.
type TemporalServer struct {
	*Process
	// Address is the frontend's gRPC host:port for clients and workers.
	Address string
	// UIURL is the Web UI's base URL, empty when headless.
	UIURL     string
	Namespace string
	// DBFile is the SQLite file holding the server's state.
	DBFile string

	spec Spec
}

// TemporalOptions tune the dev server.
type TemporalOptions struct {
	// SearchAttributes are registered at start, name to type (Keyword, Int, Double, Bool,
	// Datetime, Text, KeywordList).
	SearchAttributes map[string]string
	// UI starts the Web UI too.
	UI bool
	// DBFile keeps the server's state in this SQLite file (default: a temporary file).
	DBFile string
	// UICodecEndpoint is the remote codec server the Web UI calls to decode payloads
	// (--ui-codec-endpoint); only with UI.
	UICodecEndpoint string
}

// Temporal starts a Temporal dev server on free ports of 127.0.0.1, waits until its
// frontend answers health checks, and stops it when t ends.
func Temporal(t testing.TB, opts TemporalOptions) *TemporalServer {
	t.Helper()
	bin := Tool(t, "temporal")
	// A port FreePort found may be taken by another process before the server binds it;
	// such a start is retried on other ports.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		s := newTemporalServer(t, bin, opts)
		p, err := tryStart(t, s.spec)
		if err == nil {
			s.Process = p
			return s
		}
		if !portTaken(p, err) || attempt == attempts {
			t.Fatalf("%v", err)
		}
		t.Logf("temporal dev server: a port was taken meanwhile, starting again on others (attempt %d)", attempt+1)
	}
}

// newTemporalServer picks the ports and builds the command line of a dev server.
func newTemporalServer(t testing.TB, bin string, opts TemporalOptions) *TemporalServer {
	t.Helper()
	port, httpPort, metricsPort := FreePort(t), FreePort(t), FreePort(t)
	db := opts.DBFile
	if db == "" {
		db = filepath.Join(t.TempDir(), "temporal.db")
	}
	s := &TemporalServer{Address: fmt.Sprintf("127.0.0.1:%d", port), Namespace: "default", DBFile: db}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", fmt.Sprint(port),
		"--http-port", fmt.Sprint(httpPort), "--metrics-port", fmt.Sprint(metricsPort),
		"--db-filename", db, "--namespace", s.Namespace, "--log-level", "warn",
	}
	if opts.UI {
		uiPort := FreePort(t)
		args = append(args, "--ui-ip", "127.0.0.1", "--ui-port", fmt.Sprint(uiPort))
		s.UIURL = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
		if opts.UICodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", opts.UICodecEndpoint)
		}
	} else {
		args = append(args, "--headless")
	}
	names := make([]string, 0, len(opts.SearchAttributes))
	for name := range opts.SearchAttributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, "--search-attribute", name+"="+opts.SearchAttributes[name])
	}
	s.spec = Spec{
		Name:  "temporal dev server",
		Path:  bin,
		Args:  args,
		Ready: s.healthy,
	}
	return s
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s), keeping its SQLite file.
func (s *TemporalServer) Stop() { s.stop() }

// Restart stops the server if it runs and starts it again on the same ports and SQLite
// file, so clients and workers reconnect to the state it had.
func (s *TemporalServer) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.Process = Start(t, s.spec)
}

func (s *TemporalServer) healthy(ctx context.Context) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: s.Address, Namespace: s.Namespace, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// Client dials the server; the client is closed when t ends.
func (s *TemporalServer) Client(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.Address, Namespace: s.Namespace, Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("dial temporal at %s: %v", s.Address, err)
	}
	t.Cleanup(c.Close)
	return c
}

// quietLogger keeps the SDK's connection chatter during readiness polling out of test output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
