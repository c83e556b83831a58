package webui

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drflow/drflow/internal/testservers"
)

// browser is one W3C WebDriver session of a headless Chromium, spoken to as plain HTTP and
// JSON: no client library is needed for the few commands the tests use.
type browser struct {
	t       testing.TB
	session string // http://127.0.0.1:PORT/session/ID
	http    *http.Client
}

// newBrowser starts a fresh headless Chromium (own profile, fixed window size) through the
// chromedriver d and ends it when t ends.
func newBrowser(t testing.TB, d *testservers.ChromeDriverServer) *browser {
	t.Helper()
	args := append(testservers.HeadlessChromiumArgs(), "--user-data-dir="+t.TempDir(), "--window-size=1600,1000")
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"pageLoadStrategy":   "normal",
		"goog:chromeOptions": map[string]any{"binary": d.Browser, "args": args},
		"timeouts":           map[string]int{"pageLoad": 30_000, "script": 10_000},
	}}}
	b := &browser{t: t, http: &http.Client{Timeout: 60 * time.Second}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.do(http.MethodPost, d.URL+"/session", caps, &created); err != nil {
		t.Fatalf("start a headless Chromium session: %v", err)
	}
	b.session = d.URL + "/session/" + created.SessionID
	t.Cleanup(func() {
		if err := b.do(http.MethodDelete, b.session, nil, nil); err != nil {
			t.Logf("end Chromium session: %v", err)
		}
	})
	return b
}

// open navigates to url and returns once the page has loaded (the single-page app may still
// be fetching its data).
func (b *browser) open(url string) {
	b.t.Helper()
	if err := b.do(http.MethodPost, b.session+"/url", map[string]string{"url": url}, nil); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
}

// click clicks, as a person would, the first element matching the CSS selector once the page
// shows it.
func (b *browser) click(selector string) {
	b.t.Helper()
	deadline := time.Now().Add(uiWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var found map[string]string
	for {
		err := b.do(http.MethodPost, b.session+"/element", map[string]string{"using": "css selector", "value": selector}, &found)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("after %s there is still no %s to click: %v; page text:\n%s", uiWait, selector, err, b.text())
		}
		<-tick.C
	}
	// W3C WebDriver names an element by this fixed key.
	id := found["element-6066-11e4-a52e-4f735466cecf"]
	if err := b.do(http.MethodPost, b.session+"/element/"+id+"/click", map[string]any{}, nil); err != nil {
		b.t.Fatalf("click %s: %v", selector, err)
	}
}

// eval runs script (a function body; its arguments are in `arguments`) in the page and
// decodes what it returns into out.
func (b *browser) eval(out any, script string, args ...any) error {
	if args == nil {
		args = []any{}
	}
	return b.do(http.MethodPost, b.session+"/execute/sync", map[string]any{"script": script, "args": args}, out)
}

// waitFor evaluates script every 100 ms until it returns a non-empty string, and returns
// that string; it fails the test with what is wanted and the page's text after timeout.
func (b *browser) waitFor(what string, timeout time.Duration, script string, args ...any) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var got string
		err := b.eval(&got, script, args...)
		if err == nil && got != "" {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("after %s the page still does not show %s (last error: %v); page text:\n%s", timeout, what, err, b.text())
		}
		<-tick.C
	}
}

// text is what the page shows as text, for assertions and failure messages.
func (b *browser) text() string {
	var s string
	if err := b.eval(&s, `return document.body ? document.body.innerText : "";`); err != nil {
		return fmt.Sprintf("(page text unavailable: %v)", err)
	}
	return s
}

// screenshot returns a PNG of the viewport.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var encoded string
	if err := b.do(http.MethodGet, b.session+"/screenshot", nil, &encoded); err != nil {
		b.t.Fatalf("take a screenshot: %v", err)
	}
	png, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		b.t.Fatalf("decode the screenshot: %v", err)
	}
	return png
}

// do sends one WebDriver command and decodes the "value" of its answer into out.
func (b *browser) do(method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return fmt.Errorf("%s %s: HTTP %d, not WebDriver JSON: %.200s", method, url, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(answer.Value, &e)
		return fmt.Errorf("%s %s: HTTP %d %s: %s", method, url, resp.StatusCode, e.Error, firstLine(e.Message))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer.Value, out); err != nil {
		return fmt.Errorf("%s %s: decode value: %w", method, url, err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
