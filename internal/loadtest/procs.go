package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
)

// process is a server the load test started, in its own process group, logging to a file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done is closed
}

func startProcess(name, logPath, bin string, args ...string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so stopping it also stops what it spawned; killed if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited says whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group and SIGKILL after grace. It returns the
// process's exit error, nil for a clean exit after SIGTERM.
func (p *process) stop(grace time.Duration) error {
	if done, err := p.exited(); done {
		return fmt.Errorf("%s had already exited: %v", p.name, err)
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.name, grace)
	}
}

// tailLog returns the last n bytes of the process's log.
func (p *process) tailLog(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitReady polls ready until it succeeds, the process exits or timeout passes.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = ready(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w\n%s", p.name, timeout, last, p.tailLog(3000))
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited early (%v): %w\n%s", p.name, p.err, last, p.tailLog(3000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot returns the directory holding go.mod, from the working directory upwards.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the load test from the drflow repository, or pass --temporal-bin and --worker-bin")
		}
		dir = parent
	}
}

// installTemporal installs the pinned Temporal CLI with scripts/tools.sh (if missing) and
// returns its path.
func installTemporal(ctx context.Context, root string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "tools.sh"), "temporal")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("install the Temporal CLI with scripts/tools.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// buildWorker builds ./worker into dir and returns the binary's path.
func buildWorker(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "drflow-worker")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./worker: %v\n%s", err, out)
	}
	return bin, nil
}

// temporalServer is the dev server the load test runs against.
type temporalServer struct {
	*process
	address    string
	metricsURL string
}

// startTemporal starts a headless Temporal dev server on free ports of 127.0.0.1 with its
// history in dbFile, searchAttrs registered and the extra arguments, and waits until it
// answers health checks.
func startTemporal(ctx context.Context, bin, dbFile, logPath string, searchAttrs map[string]string, extra []string) (*temporalServer, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	args := []string{"server", "start-dev", "--headless",
		"--ip", "127.0.0.1", "--port", fmt.Sprint(ports[0]),
		"--http-port", fmt.Sprint(ports[1]), "--metrics-port", fmt.Sprint(ports[2]),
		"--db-filename", dbFile, "--namespace", namespace, "--log-level", "warn",
	}
	for _, name := range sortedKeys(searchAttrs) {
		args = append(args, "--search-attribute", name+"="+searchAttrs[name])
	}
	args = append(args, extra...)
	p, err := startProcess("temporal dev server", logPath, bin, args...)
	if err != nil {
		return nil, err
	}
	s := &temporalServer{
		process:    p,
		address:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2]),
	}
	err = p.waitReady(ctx, 90*time.Second, func(ctx context.Context) error {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.address, Namespace: namespace, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	})
	if err != nil {
		_ = p.stop(10 * time.Second)
		return nil, err
	}
	return s, nil
}

// fetchMetrics reads and parses a Prometheus endpoint.
func fetchMetrics(ctx context.Context, url string) ([]Sample, error) {
	raw, err := fetchRaw(ctx, url)
	if err != nil {
		return nil, err
	}
	return ParseText(bytes.NewReader(raw))
}

// fetchRaw reads a Prometheus endpoint.
func fetchRaw(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// quietLogger keeps the SDK's client chatter out of the report.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
