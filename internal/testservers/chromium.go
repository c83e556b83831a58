package testservers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Chromium installs Debian's chromium and chromium-driver with scripts/chromium.sh if they
// are missing and returns the browser's path. A browser that cannot be installed fails the
// test.
func Chromium(t testing.TB) string {
	t.Helper()
	return chromiumScript(t, "chromium")
}

// ChromeDriverServer is a chromedriver (W3C WebDriver over plain HTTP and JSON) that starts
// the headless Chromium of Chromium for each session.
type ChromeDriverServer struct {
	*Process
	// URL is the WebDriver endpoint, such as http://127.0.0.1:9515.
	URL string
	// Browser is the Chromium binary that sessions should ask for.
	Browser string
}

// ChromeDriver installs Chromium and chromedriver when missing, starts chromedriver on a free
// port of 127.0.0.1, waits until it reports ready and stops it when t ends.
func ChromeDriver(t testing.TB) *ChromeDriverServer {
	t.Helper()
	browser := Chromium(t)
	driver := chromiumScript(t, "chromedriver")
	port := FreePort(t)
	s := &ChromeDriverServer{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Browser: browser}
	s.Process = Start(t, Spec{
		Name: "chromedriver",
		Path: driver,
		// chromedriver only accepts local connections unless told otherwise.
		Args:  []string{fmt.Sprintf("--port=%d", port), "--log-level=WARNING"},
		Ready: s.ready,
	})
	return s
}

func (s *ChromeDriverServer) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var status struct {
		Value struct {
			Ready   bool   `json:"ready"`
			Message string `json:"message"`
		} `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		return fmt.Errorf("decode /status: %w", err)
	}
	if !status.Value.Ready {
		return fmt.Errorf("not ready: %s", status.Value.Message)
	}
	return nil
}

// HeadlessChromiumArgs are the Chromium flags that let it run here: as root, without a
// display or GPU, and without the background connections to Google services that a closed
// network refuses. Each session also needs a fresh --user-data-dir.
func HeadlessChromiumArgs() []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions",
	}
}

func chromiumScript(t testing.TB, what string) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "chromium.sh")
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, what)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("install %s with %s: %v\n%s", what, script, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
