// Package testservers installs (when missing) and starts the real servers and emulators that
// drflow's tests run against: MinIO, fake-gcs-server and Azurite, each on a free port of
// 127.0.0.1, stopped when the test ends. A server that cannot be installed or started fails
// the test; nothing is skipped.
package testservers

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the directory holding go.mod, found from the working directory upwards.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Tool installs the named tool with scripts/tools.sh if it is missing and returns its path.
func Tool(t testing.TB, name string) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "tools.sh")
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("install %s with %s: %v\n%s", name, script, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a server started for a test.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	err  error // set before done is closed
}

// Log returns what the server printed so far.
func (p *Process) Log() string { return p.log.String() }

// Spec describes how to start a server and how to tell that it is ready.
type Spec struct {
	Name  string
	Path  string
	Args  []string
	Env   []string // added to the test's environment
	Dir   string
	Ready func(ctx context.Context) error // polled until nil or the timeout
	// ReadyTimeout defaults to 60s.
	ReadyTimeout time.Duration
}

// Start runs spec, waits until it is ready and stops it (and its children) when t ends. On
// failure the server's output is part of the test failure.
func Start(t testing.TB, spec Spec) *Process {
	t.Helper()
	p, err := tryStart(t, spec)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// tryStart is Start returning the failure instead of failing t; the process is stopped then.
func tryStart(t testing.TB, spec Spec) (*Process, error) {
	t.Helper()
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Env...)
	// Own process group, so stopping it also stops what it spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{Name: spec.Name, cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", spec.Name, tail(p.Log(), 4000))
		}
	})

	timeout := spec.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := p.waitReady(spec.Ready, timeout); err != nil {
		p.stop()
		return p, fmt.Errorf("%s not ready: %w\n%s", spec.Name, err, tail(p.Log(), 4000))
	}
	return p, nil
}

// portTaken reports whether a failed start of p lost a race for one of its ports: FreePort's
// port was free a moment before another process took it. The whole output is searched: the
// server may print much after the bind error.
func portTaken(p *Process, err error) bool {
	return err != nil && p != nil && strings.Contains(p.Log(), "address already in use")
}

func (p *Process) waitReady(ready func(context.Context) error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, last)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited early (%v); last readiness error: %w", p.err, last)
		case <-tick.C:
		}
	}
}

func (p *Process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// DialReady is a readiness check that succeeds once addr accepts TCP connections.
func DialReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
