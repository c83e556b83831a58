// Package faultproxy is an HTTP reverse proxy for tests: it listens on 127.0.0.1 in front of
// one object-store server (MinIO, fake-gcs-server, Azurite) and, while enabled, injects faults
// into a configured share of the requests, drawn from a seeded math/rand/v2 source:
//
//   - ServerError: a 503 or 500 answer with an error body the store's SDK retries (S3's
//     SlowDown or InternalError, GCS's backendError, Azure's ServerBusy or InternalError); the
//     upstream never sees the request.
//   - ResetBefore: the client's connection is reset before the request goes upstream.
//   - ResetAfter: the upstream handles the request, then the client's connection is reset
//     before any of the answer: the ambiguous failure, where a write took effect but its
//     client saw an error.
//   - Slow: the request waits (between Options.MinDelay and MaxDelay) before it goes upstream;
//     a client that gives up meanwhile ends the wait, and the request never goes upstream. The
//     request body is read (into memory) before the wait.
//   - Truncate: the upstream's answer is sent with its full Content-Length but only part of
//     its body, then the connection is closed. An answer without a body (a HEAD, a PUT's
//     empty 200) cannot be cut short: the connection is reset instead, and the fault counts
//     as ResetAfter.
//
// Rules choose the kinds, their rates and optionally the methods and paths they apply to. One
// uniform draw per request picks at most one fault: the rates of the rules that match the
// request add up (at most 1), so Mix(0.1, ...) fails or stalls 10% of requests. Faults are
// injected only while the proxy is enabled, so a test can set up its fixtures cleanly first;
// requests are counted either way.
//
// The proxy forwards the request line and headers unchanged, Host included: S3 Signature V4
// signs the Host header (and the escaped path and query), so a client signs for the proxy's
// address and the upstream verifies the same values. Hop-by-hop headers are dropped, as by any
// proxy; SigV4 does not sign them. Only HTTP/1.1 without TLS is served, which is what the
// emulators speak on 127.0.0.1.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of fault.
type Kind int

// Kinds of faults.
const (
	ServerError Kind = iota + 1
	ResetBefore
	ResetAfter
	Slow
	Truncate
	numKinds = int(Truncate) + 1
)

// Kinds lists every kind of fault.
func Kinds() []Kind { return []Kind{ServerError, ResetBefore, ResetAfter, Slow, Truncate} }

var kindNames = [numKinds]string{"", "5xx", "reset-before", "reset-after", "slow", "truncate"}

func (k Kind) String() string {
	if k <= 0 || int(k) >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

func (k Kind) valid() bool { return k > 0 && int(k) < numKinds }

// Rule injects one kind of fault into a share of the requests it matches.
type Rule struct {
	Kind Kind
	// Rate is the probability, in [0, 1], that a matching request gets this fault.
	Rate float64
	// Methods limits the rule to these HTTP methods (any case); empty matches every method.
	Methods []string
	// Path limits the rule to requests whose URL path (unescaped; "/bucket/key" for S3 in
	// path style) it matches; nil matches every path.
	Path *regexp.Regexp
	// Match, if set, must also accept the request: for what methods and paths cannot tell,
	// such as S3's CompleteMultipartUpload (a POST with an uploadId query).
	Match func(*http.Request) bool
	// Limit, if positive, is how many faults the rule injects at most; then it matches
	// nothing. Limit 1 with Rate 1 fails exactly the first matching request.
	Limit int
}

func (r *Rule) matches(req *http.Request) bool {
	if len(r.Methods) > 0 && !slices.ContainsFunc(r.Methods, func(m string) bool { return strings.EqualFold(m, req.Method) }) {
		return false
	}
	return (r.Path == nil || r.Path.MatchString(req.URL.Path)) && (r.Match == nil || r.Match(req))
}

// Mix spreads rate evenly over kinds (default: every kind), for every method and path.
func Mix(rate float64, kinds ...Kind) []Rule {
	if len(kinds) == 0 {
		kinds = Kinds()
	}
	rules := make([]Rule, len(kinds))
	for i, k := range kinds {
		rules[i] = Rule{Kind: k, Rate: rate / float64(len(kinds))}
	}
	return rules
}

// Flavor is the error dialect of ServerError answers.
type Flavor int

// Flavors of error bodies.
const (
	// S3: XML <Error> with Code SlowDown (503) or InternalError (500), as S3 and MinIO send.
	S3 Flavor = iota
	// GCS: the JSON API's {"error": {...}} with reason backendError.
	GCS
	// Azure: XML <Error> with Code ServerBusy (503) or InternalError (500), and the
	// x-ms-error-code header.
	Azure
)

// Options configure a Proxy.
type Options struct {
	// Upstream is the server's base URL, e.g. "http://127.0.0.1:9000". Required.
	Upstream string
	// Rules are the faults to inject. Their rates may add up to at most 1 for any request.
	Rules []Rule
	// Rand draws the faults; nil means a PCG source seeded with Seed.
	Rand *rand.Rand
	Seed uint64
	// MinDelay and MaxDelay bound the delay of a Slow fault (default 50ms and 500ms).
	MinDelay, MaxDelay time.Duration
	// Flavor is the dialect of ServerError bodies (default S3).
	Flavor Flavor
	// Enabled starts the proxy with faults on; otherwise it starts passing every request
	// through until Enable.
	Enabled bool
	// Logf, if set, is told about every fault injected.
	Logf func(format string, args ...any)
}

// Fault describes one injected fault.
type Fault struct {
	// Seq numbers the request among all requests the proxy received, from 1.
	Seq    int64
	Kind   Kind
	Method string
	Path   string
	// Status is the answer of a ServerError.
	Status int
	// Delay is the wait of a Slow fault.
	Delay time.Duration
	// Sent and Length are the body bytes a Truncate fault sent and the Content-Length it
	// announced.
	Sent, Length int64
}

func (f Fault) String() string {
	s := fmt.Sprintf("#%d %s %s %s", f.Seq, f.Kind, f.Method, f.Path)
	switch f.Kind {
	case ServerError:
		s += fmt.Sprintf(" (%d)", f.Status)
	case Slow:
		s += fmt.Sprintf(" (%s)", f.Delay)
	case Truncate:
		s += fmt.Sprintf(" (%d of %d bytes)", f.Sent, f.Length)
	}
	return s
}

// maxRecorded bounds the faults Faults returns.
const maxRecorded = 4096

// Stats counts requests and faults.
type Stats struct {
	// Requests counts every request received; Exposed those received while enabled.
	Requests, Exposed int64
	// Abandoned counts Slow requests whose client went away during the delay.
	Abandoned int64
	// Faults counts the faults injected, by kind (as applied: a Truncate without a body to
	// cut counts as ResetAfter).
	Faults map[Kind]int64
}

// Injected is the number of faults of every kind.
func (s Stats) Injected() int64 {
	var n int64
	for _, v := range s.Faults {
		n += v
	}
	return n
}

// Sub returns the counts since old.
func (s Stats) Sub(old Stats) Stats {
	d := Stats{Requests: s.Requests - old.Requests, Exposed: s.Exposed - old.Exposed,
		Abandoned: s.Abandoned - old.Abandoned, Faults: map[Kind]int64{}}
	for k, v := range s.Faults {
		if v -= old.Faults[k]; v != 0 {
			d.Faults[k] = v
		}
	}
	return d
}

// String renders the counts, e.g. "requests=120 faults=11 (5xx=3 reset-after=2 slow=6)".
func (s Stats) String() string {
	var parts []string
	for _, k := range Kinds() {
		if n := s.Faults[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	out := fmt.Sprintf("requests=%d faults=%d", s.Requests, s.Injected())
	if len(parts) > 0 {
		out += " (" + strings.Join(parts, " ") + ")"
	}
	return out
}

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	url      string
	upstream *url.URL
	flavor   Flavor
	logf     func(string, ...any)
	srv      *http.Server
	rp       *httputil.ReverseProxy
	tr       *http.Transport
	done     chan struct{}
	handlers sync.WaitGroup
	closed   sync.Once

	enabled   atomic.Bool
	requests  atomic.Int64
	exposed   atomic.Int64
	abandoned atomic.Int64
	counts    [numKinds]atomic.Int64

	mu       sync.Mutex // guards what follows
	rules    []Rule
	used     []int // faults injected per rule, for Limit
	rng      *rand.Rand
	minDelay time.Duration
	maxDelay time.Duration
	faults   []Fault
}

// New starts a proxy for opts.Upstream on a free port of 127.0.0.1. Close stops it.
func New(opts Options) (*Proxy, error) {
	up, err := url.Parse(opts.Upstream)
	if err != nil || up.Scheme != "http" || up.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream %q is not an http://host:port URL", opts.Upstream)
	}
	if opts.MinDelay == 0 && opts.MaxDelay == 0 {
		opts.MinDelay, opts.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	}
	if opts.MinDelay < 0 || opts.MaxDelay < opts.MinDelay {
		return nil, fmt.Errorf("faultproxy: delay bounds [%s, %s] are not an interval", opts.MinDelay, opts.MaxDelay)
	}
	if err := checkRules(opts.Rules); err != nil {
		return nil, err
	}
	rng := opts.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(opts.Seed, 0x6661756c7470))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		url:      "http://" + ln.Addr().String(),
		upstream: up,
		flavor:   opts.Flavor,
		logf:     opts.Logf,
		done:     make(chan struct{}),
		rules:    slices.Clone(opts.Rules),
		used:     make([]int, len(opts.Rules)),
		rng:      rng,
		minDelay: opts.MinDelay,
		maxDelay: opts.MaxDelay,
	}
	p.enabled.Store(opts.Enabled)
	p.tr = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
		// Bodies pass as the upstream sent them: no gzip negotiated on the client's behalf.
		DisableCompression: true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Scheme and host of the upstream; path, escaping, query and Host exactly as the
			// client sent (and signed) them.
			pr.Out.URL.Scheme = up.Scheme
			pr.Out.URL.Host = up.Host
			pr.Out.Host = pr.In.Host
		},
		Transport:      p.tr,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func checkRules(rules []Rule) error {
	var total float64
	for i, r := range rules {
		if !r.Kind.valid() {
			return fmt.Errorf("faultproxy: rule %d: unknown kind %d", i, int(r.Kind))
		}
		if r.Rate < 0 || r.Rate > 1 {
			return fmt.Errorf("faultproxy: rule %d (%s): rate %v is not in [0, 1]", i, r.Kind, r.Rate)
		}
		if r.Limit < 0 {
			return fmt.Errorf("faultproxy: rule %d (%s): negative limit", i, r.Kind)
		}
		total += r.Rate
	}
	// Rules that match disjoint requests may add up to more; this bound is for the common
	// case of rules over every request, and keeps the meaning of a rate plain.
	if total > 1+1e-9 {
		return fmt.Errorf("faultproxy: rates add up to %v, more than 1", total)
	}
	return nil
}

// URL is the proxy's base URL, "http://127.0.0.1:<port>": the endpoint clients use instead of
// the upstream's.
func (p *Proxy) URL() string { return p.url }

// Enable turns fault injection on.
func (p *Proxy) Enable() { p.enabled.Store(true) }

// Disable turns fault injection off: every request passes through. Requests already being
// faulted (a Slow wait, say) finish their fault.
func (p *Proxy) Disable() { p.enabled.Store(false) }

// Enabled reports whether faults are injected.
func (p *Proxy) Enabled() bool { return p.enabled.Load() }

// SetRules replaces the rules and, if rng is not nil, the random source. The limits of the new
// rules start afresh.
func (p *Proxy) SetRules(rules []Rule, rng *rand.Rand) error {
	if err := checkRules(rules); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = slices.Clone(rules)
	p.used = make([]int, len(rules))
	if rng != nil {
		p.rng = rng
	}
	return nil
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	s := Stats{Requests: p.requests.Load(), Exposed: p.exposed.Load(), Abandoned: p.abandoned.Load(), Faults: map[Kind]int64{}}
	for _, k := range Kinds() {
		if n := p.counts[k].Load(); n > 0 {
			s.Faults[k] = n
		}
	}
	return s
}

// Faults returns the faults injected so far, oldest first (the most recent few thousand).
func (p *Proxy) Faults() []Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.faults)
}

// Close stops the proxy: it closes the listener and every connection, ends the delays of Slow
// faults, and returns once every request handler has returned.
func (p *Proxy) Close() error {
	var err error
	p.closed.Do(func() {
		close(p.done)
		err = p.srv.Close()
		p.handlers.Wait()
		p.tr.CloseIdleConnections()
	})
	return err
}

// decision is what happens to one request.
type decision struct {
	kind   Kind
	status int
	delay  time.Duration
	keep   float64 // Truncate: share of the body sent
	fault  Fault
	w      http.ResponseWriter // ResetAfter, Truncate: the client's, to flush
}

type decisionKey struct{}

// decide draws the fate of a request.
func (p *Proxy) decide(r *http.Request, seq int64) decision {
	if !p.enabled.Load() {
		return decision{}
	}
	p.exposed.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.rng.Float64()
	var acc float64
	for i := range p.rules {
		rule := &p.rules[i]
		if !rule.matches(r) || (rule.Limit > 0 && p.used[i] >= rule.Limit) {
			continue
		}
		acc += rule.Rate
		if u >= acc {
			continue
		}
		p.used[i]++
		d := decision{kind: rule.Kind, fault: Fault{Seq: seq, Kind: rule.Kind, Method: r.Method, Path: r.URL.Path}}
		switch rule.Kind {
		case ServerError:
			d.status = http.StatusServiceUnavailable
			if p.rng.IntN(2) == 0 {
				d.status = http.StatusInternalServerError
			}
		case Slow:
			d.delay = p.minDelay + time.Duration(p.rng.Int64N(int64(p.maxDelay-p.minDelay)+1))
		case Truncate:
			d.keep = p.rng.Float64()
		}
		return d
	}
	return decision{}
}

// record counts and remembers an injected fault.
func (p *Proxy) record(f Fault) {
	p.counts[f.Kind].Add(1)
	p.mu.Lock()
	if len(p.faults) == maxRecorded {
		p.faults = slices.Delete(p.faults, 0, maxRecorded/4)
	}
	p.faults = append(p.faults, f)
	p.mu.Unlock()
	if p.logf != nil {
		p.logf("faultproxy: %s", f)
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handlers.Add(1)
	defer p.handlers.Done()
	seq := p.requests.Add(1)
	d := p.decide(r, seq)
	switch d.kind {
	case 0:
		p.rp.ServeHTTP(w, r)
	case ServerError:
		d.fault.Status = d.status
		p.record(d.fault)
		p.serverError(w, r, d.status, seq)
	case ResetBefore:
		p.record(d.fault)
		reset(w)
	case Slow:
		d.fault.Delay = d.delay
		p.record(d.fault)
		// The server notices a client that leaves only once the request body is read, so
		// the body waits here, in memory, with the request.
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				p.abandoned.Add(1)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		t := time.NewTimer(d.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			p.abandoned.Add(1)
			return
		case <-p.done:
			p.abandoned.Add(1)
			return
		}
		p.rp.ServeHTTP(w, r)
	case ResetAfter, Truncate:
		// Recorded once the answer shows which one applies.
		d.w = w
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), decisionKey{}, &d)))
	}
}

// errCut ends an answer on purpose.
var errCut = errors.New("faultproxy: answer cut on purpose")

// modifyResponse applies ResetAfter and Truncate to the upstream's answer.
func (p *Proxy) modifyResponse(res *http.Response) error {
	d, _ := res.Request.Context().Value(decisionKey{}).(*decision)
	if d == nil {
		return nil
	}
	length := res.ContentLength
	if d.kind == ResetAfter || length <= 0 || res.Request.Method == http.MethodHead {
		d.fault.Kind = ResetAfter
		p.record(d.fault)
		return errCut // errorHandler resets the connection
	}
	keep := min(int64(d.keep*float64(length)), length-1)
	d.fault.Sent, d.fault.Length = keep, length
	p.record(d.fault)
	res.Body = &cutBody{rc: res.Body, left: keep, w: d.w}
	return nil
}

// errorHandler resets the connection of a ResetAfter (or bodiless Truncate) and answers 502
// when the upstream cannot be reached.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errCut) {
		reset(w)
		return
	}
	if r.Context().Err() != nil {
		return // the client went away
	}
	http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
}

// reset hijacks the client's connection and closes it with a TCP RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// cutBody passes the first bytes of an answer's body, makes sure the client has them (headers
// included), then fails: the reverse proxy aborts the handler, and the server closes the
// connection short of the announced Content-Length.
type cutBody struct {
	rc   io.ReadCloser
	left int64
	w    http.ResponseWriter
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		_ = http.NewResponseController(c.w).Flush()
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	if errors.Is(err, io.EOF) {
		err = nil // the upstream's end comes later than the cut
	}
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

// serverError answers a ServerError in the proxy's flavor, for the client to retry.
func (p *Proxy) serverError(w http.ResponseWriter, r *http.Request, status int, seq int64) {
	var contentType, body string
	id := fmt.Sprintf("faultproxy-%d", seq)
	h := w.Header()
	switch p.flavor {
	case GCS:
		contentType = "application/json; charset=UTF-8"
		body = fmt.Sprintf(`{"error":{"code":%d,"message":"Backend Error (injected by faultproxy)","errors":[{"domain":"global","reason":"backendError","message":"Backend Error (injected by faultproxy)"}]}}`, status)
	case Azure:
		code := "ServerBusy"
		if status == http.StatusInternalServerError {
			code = "InternalError"
		}
		contentType = "application/xml"
		h.Set("x-ms-error-code", code)
		h.Set("x-ms-request-id", id)
		body = fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>Injected by faultproxy.
RequestId:%s</Message></Error>`, code, id)
	default:
		code, msg := "SlowDown", "Please reduce your request rate."
		if status == http.StatusInternalServerError {
			code, msg = "InternalError", "We encountered an internal error. Please try again."
		}
		contentType = "application/xml"
		h.Set("x-amz-request-id", id)
		body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>%s</Code><Message>%s (injected by faultproxy)</Message><Resource>%s</Resource><RequestId>%s</RequestId></Error>`,
			code, msg, xmlEscape(r.URL.Path), id)
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", fmt.Sprint(len(body)))
	// The request body is not read: the server closes the connection after the answer if
	// much of it is left, as a real server may.
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
