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

// element is a WebDriver reference to an element of the page.
type element string

// webElementKey is the fixed key under which W3C WebDriver names an element, both in answers
// and in script results.
const webElementKey = "element-6066-11e4-a52e-4f735466cecf"

// Keys of the WebDriver key table, for typeInto.
const (
	keyNull      = "\ue000" // releases held modifiers
	keyBackspace = "\ue003"
	keyTab       = "\ue004"
	keyControl   = "\ue009"
)

// click clicks, as a person would, the first element matching the CSS selector once the page
// shows it.
func (b *browser) click(selector string) {
	b.t.Helper()
	var found map[string]string
	b.poll(selector+" to click", uiWait, func() error {
		return b.do(http.MethodPost, b.session+"/element", map[string]string{"using": "css selector", "value": selector}, &found)
	})
	b.clickOn(selector, element(found[webElementKey]))
}

// waitForElement evaluates script every 100 ms until it returns an element (not null) and
// returns it. Scripts pick elements that CSS alone cannot, such as the one visible copy of a
// control that the UI renders once per layout.
func (b *browser) waitForElement(what string, script string, args ...any) element {
	b.t.Helper()
	var found map[string]string
	b.poll(what, uiWait, func() error {
		found = nil
		if err := b.eval(&found, script, args...); err != nil {
			return err
		}
		if found[webElementKey] == "" {
			return fmt.Errorf("not there yet")
		}
		return nil
	})
	return element(found[webElementKey])
}

// clickOn clicks el as a person would: WebDriver moves the pointer to its centre and fails
// if something else is on top of it.
func (b *browser) clickOn(what string, el element) {
	b.t.Helper()
	if err := b.do(http.MethodPost, b.session+"/element/"+string(el)+"/click", map[string]any{}, nil); err != nil {
		b.t.Fatalf("click %s: %v", what, err)
	}
}

// typeInto types keys into el, one key event at a time, as a keyboard would; keys may hold
// the key constants above.
func (b *browser) typeInto(what string, el element, keys string) {
	b.t.Helper()
	if err := b.do(http.MethodPost, b.session+"/element/"+string(el)+"/value", map[string]string{"text": keys}, nil); err != nil {
		b.t.Fatalf("type into %s: %v", what, err)
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
	var got string
	b.poll(what, timeout, func() error {
		got = ""
		if err := b.eval(&got, script, args...); err != nil {
			return err
		}
		if got == "" {
			return fmt.Errorf("not there yet")
		}
		return nil
	})
	return got
}

// poll calls try every 100 ms until it succeeds; it fails the test with what is wanted, the
// last error and the page's text after timeout.
func (b *browser) poll(what string, timeout time.Duration, try func() error) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try()
		if err == nil {
			return
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
