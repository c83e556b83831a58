// Package azbtest provides an in-process Azure Blob service with version-level immutability
// that enforces legal holds and immutability policies as the service does and checks every
// request the azblob adapter sends, for tests of the adapter and of the code that relies on
// its holds.
package azbtest

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drflow/drflow/internal/testservers"
)

// Server implements the Blob service REST requests that the adapter sends against a
// container with version-level immutability, and nothing else. It checks every request
// (method, comp, query parameters, required and forbidden headers, shared-key authorization,
// x-ms-version) and fails the test on anything unexpected. It answers as the REST reference
// documents (https://learn.microsoft.com/rest/api/storageservices/):
//
//   - Get Container Properties: 200 with x-ms-immutable-storage-with-versioning-enabled: true.
//   - Put Blob, Put Block, Put Block List: 201. Version-level immutability needs versioning, so
//     every write makes a new current version and keeps the old one as a previous version, even
//     when the old one is protected: "Overwriting a blob with Put Blob, Put Block List, or Copy
//     Blob creates a new version" (immutable-version-level-worm-policies, Scenarios), and "For
//     blob level immutability policy, PutBlockList/PutBlob/CopyBlob operations are allowed,
//     because these operations will generate a new version" (set-blob-immutability-policy,
//     Remarks). x-ms-legal-hold and x-ms-immutability-policy-until-date/-mode on these requests
//     protect the new version.
//   - Get Blob Properties (HEAD) and Get Blob: the current version, with x-ms-legal-hold,
//     x-ms-immutability-policy-until-date and x-ms-immutability-policy-mode.
//   - Set Blob Legal Hold: PUT ?comp=legalhold with x-ms-legal-hold true|false, 200.
//   - Set Blob Immutability Policy: PUT ?comp=immutabilityPolicies with
//     x-ms-immutability-policy-until-date (RFC 1123, "Past times are not valid") and
//     x-ms-immutability-policy-mode (Unlocked|Locked), 200. "When immutability policy in locked
//     mode, user can only extend the retention until date. Immutability policy mode can be set
//     from unlocked to locked, but not the reverse."
//   - Delete Blob Immutability Policy: DELETE ?comp=immutabilityPolicies, 200; "The immutability
//     policy must be in unlocked mode to be deleted."
//   - Delete Blob: 202; of the current version (no versionid) it leaves a previous version; with
//     versionid it removes that version. A protected version cannot be deleted: 409
//     BlobImmutableDueToLegalHold or BlobImmutableDueToPolicy (blob-service-error-codes).
//   - List Blobs (GET ?restype=container&comp=list) with prefix, maxresults, marker and include
//     versions, legalhold, immutabilitypolicy.
//
// Errors carry x-ms-error-code and, except for HEAD, the documented XML body
// (<Error><Code/><Message/></Error>).
type Server struct {
	t         testing.TB
	server    *httptest.Server
	container string

	mu       sync.Mutex
	now      time.Time
	blobs    map[string]*fakeBlob
	requests []Request
	seq      int
	// afterList, if set, runs once after the next List Blobs request is answered: it lets a
	// test change the server's state between the adapter's read and its write.
	afterList func()
}

type fakeBlob struct {
	versions []*fakeVersion // oldest first; includes the current version
	current  *fakeVersion   // nil when the current version was deleted
	staged   map[string][]byte
}

type fakeVersion struct {
	id          string
	data        []byte
	etag        string
	modified    time.Time
	contentType string
	legalHold   bool
	policyUntil time.Time
	policyMode  string // "unlocked" or "locked", as the service reports it
}

// Request is what tests assert on: the operation and the blob it addressed.
type Request struct {
	Op     string // e.g. "PUT comp=legalhold"
	Blob   string
	Query  url.Values
	Header http.Header
}

const fakeAccount = testservers.AzuriteAccount

// NewServer starts a service with one container; it stops when t ends. Its clock starts at
// the current second and moves only by Advance.
func NewServer(t testing.TB, container string) *Server {
	f := &Server{
		t:         t,
		container: container,
		now:       time.Now().UTC().Truncate(time.Second),
		blobs:     map[string]*fakeBlob{},
	}
	f.server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.server.Close)
	return f
}

// ConnectionString points the SDK at the service with a shared key, so requests are signed.
func (f *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s/%s;",
		fakeAccount, testservers.AzuriteKey, f.server.URL, fakeAccount)
}

// Container is the name of the service's only container.
func (f *Server) Container() string { return f.container }

// Now is the service's clock, by which immutability policies expire.
func (f *Server) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the service's clock forward by d.
func (f *Server) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Take returns the requests since the last call and forgets them.
func (f *Server) Take() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

// Ops lists the operations of reqs, e.g. "PUT comp=legalhold".
func Ops(reqs []Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Op)
	}
	return out
}

// VersionCount is how many versions (current and previous) of name the service holds.
func (f *Server) VersionCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.blobs[name]; b != nil {
		return len(b.versions)
	}
	return 0
}

// SetLegalHold changes the current version's hold behind the adapter's back, as another
// client would. It reports false if name has no current version.
func (f *Server) SetLegalHold(name string, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.current(name)
	if v != nil {
		v.legalHold = on
	}
	return v != nil
}

// SetPolicy changes the current version's immutability policy ("unlocked" or "locked"; zero
// until removes it) behind the adapter's back. It reports false if name has no current version.
func (f *Server) SetPolicy(name string, until time.Time, mode string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.current(name)
	if v != nil {
		v.policyUntil, v.policyMode = until, mode
	}
	return v != nil
}

// AfterList makes fn run once, after the next List Blobs request is served and before its
// answer is sent: it lets a test change state between the adapter's read and its write.
func (f *Server) AfterList(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afterList = fn
}

// Blobs returns the names of the blobs that have a current version, sorted.
func (f *Server) Blobs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for name, b := range f.blobs {
		if b.current != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// current is name's current version or nil. f.mu is held.
func (f *Server) current(name string) *fakeVersion {
	if b := f.blobs[name]; b != nil {
		return b.current
	}
	return nil
}

// Every x-ms-* request header the fake knows, by the operations that may carry it.
var (
	commonHeaders = []string{"x-ms-version", "x-ms-date", "x-ms-client-request-id"}
	protection    = []string{"x-ms-legal-hold", "x-ms-immutability-policy-until-date", "x-ms-immutability-policy-mode"}
)

type route struct {
	op      string
	query   []string // allowed query parameters besides comp and restype
	headers []string // allowed x-ms-* headers besides commonHeaders
	handle  func(f *Server, w http.ResponseWriter, r *http.Request, name string)
}

var routes = []route{
	{op: "GET restype=container", handle: (*Server).containerProperties},
	{op: "GET restype=container comp=list", query: []string{"prefix", "include", "maxresults", "marker"}, handle: (*Server).list},
	{op: "PUT blob", headers: append([]string{"x-ms-blob-type", "x-ms-blob-content-type"}, protection...), handle: (*Server).putBlob},
	{op: "PUT comp=block", query: []string{"blockid"}, handle: (*Server).putBlock},
	{op: "PUT comp=blocklist", headers: append([]string{"x-ms-blob-content-type"}, protection...), handle: (*Server).putBlockList},
	{op: "HEAD blob", handle: (*Server).properties},
	{op: "GET blob", headers: []string{"x-ms-range"}, handle: (*Server).get},
	{op: "PUT comp=legalhold", headers: []string{"x-ms-legal-hold"}, handle: (*Server).setHold},
	{op: "PUT comp=immutabilityPolicies", headers: protection[1:], handle: (*Server).setPolicyReq},
	{op: "DELETE comp=immutabilityPolicies", handle: (*Server).deletePolicy},
	{op: "DELETE blob", query: []string{"versionid"}, headers: []string{"x-ms-delete-snapshots"}, handle: (*Server).deleteBlob},
}

//nolint:gocyclo // the emulated Blob API's operations dispatched by method and query
func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/"+fakeAccount+"/"+f.container)
	if !ok || (name != "" && !strings.HasPrefix(name, "/")) {
		f.unexpected(w, r, "path outside the container")
		return
	}
	name = strings.TrimPrefix(name, "/")
	q := r.URL.Query()
	op := r.Method
	if q.Has("restype") {
		op += " restype=" + q.Get("restype")
	}
	if q.Has("comp") {
		op += " comp=" + q.Get("comp")
	} else if name != "" {
		op += " blob"
	}
	var rt *route
	for i := range routes {
		if routes[i].op == op {
			rt = &routes[i]
		}
	}
	if rt == nil || (name == "") != strings.Contains(op, "restype=container") {
		f.unexpected(w, r, "no such operation in this protocol")
		return
	}
	for k := range q {
		if k != "comp" && k != "restype" && !slices.Contains(rt.query, k) {
			f.unexpected(w, r, "query parameter "+k)
			return
		}
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-ms-") && !slices.Contains(commonHeaders, lk) && !slices.Contains(rt.headers, lk) {
			f.unexpected(w, r, "header "+k)
			return
		}
	}
	// Shared-key requests are signed; the fake does not verify signatures but requires them,
	// with the dates and version that every authorized request carries.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "SharedKey "+fakeAccount+":") {
		f.unexpected(w, r, "missing shared-key Authorization")
		return
	}
	if r.Header.Get("x-ms-version") == "" || r.Header.Get("x-ms-date") == "" {
		f.unexpected(w, r, "missing x-ms-version or x-ms-date")
		return
	}

	f.mu.Lock()
	f.requests = append(f.requests, Request{Op: op, Blob: name, Query: q, Header: r.Header.Clone()})
	f.mu.Unlock()
	w.Header().Set("x-ms-version", r.Header.Get("x-ms-version"))
	w.Header().Set("x-ms-request-id", fmt.Sprintf("fake-%d", f.nextSeq()))
	rt.handle(f, w, r, name)
}

func (f *Server) unexpected(w http.ResponseWriter, r *http.Request, why string) {
	f.t.Errorf("fake Azure: unexpected request %s %s (%s); headers %v", r.Method, r.URL, why, r.Header)
	http.Error(w, "unexpected request", http.StatusBadRequest)
}

func (f *Server) nextSeq() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return f.seq
}

// fail answers with a service error as documented: status, x-ms-error-code, and the XML body.
func (f *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	w.Header().Set("x-ms-error-code", code)
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s\nRequestId:%s\nTime:%s</Message></Error>",
		code, message, w.Header().Get("x-ms-request-id"), time.Now().UTC().Format(time.RFC3339Nano))
}

func (f *Server) blobNotFound(w http.ResponseWriter, r *http.Request) {
	f.fail(w, r, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
}

// refuseProtected answers 409 if v is protected, with the code that names the protection.
func (f *Server) refuseProtected(w http.ResponseWriter, r *http.Request, v *fakeVersion) bool {
	switch {
	case v.legalHold:
		f.fail(w, r, http.StatusConflict, "BlobImmutableDueToLegalHold",
			"This operation is not permitted as the blob is immutable due to one or more legal holds.")
	case f.now.Before(v.policyUntil):
		f.fail(w, r, http.StatusConflict, "BlobImmutableDueToPolicy",
			"This operation is not permitted as the blob is immutable due to a policy.")
	default:
		return false
	}
	return true
}

func (f *Server) containerProperties(w http.ResponseWriter, r *http.Request, _ string) {
	h := w.Header()
	h.Set("ETag", `"0x8D0000000000001"`)
	h.Set("Last-Modified", f.Now().Format(http.TimeFormat))
	h.Set("x-ms-has-immutability-policy", "false")
	h.Set("x-ms-has-legal-hold", "false")
	h.Set("x-ms-immutable-storage-with-versioning-enabled", "true")
	w.WriteHeader(http.StatusOK)
}

// write makes data the new current version of name, keeping the old one as a previous version.
func (f *Server) write(w http.ResponseWriter, r *http.Request, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.blobs[name]
	if r.Header.Get("If-None-Match") == "*" && b != nil && b.current != nil {
		f.fail(w, r, http.StatusConflict, "BlobAlreadyExists", "The specified blob already exists.")
		return
	}
	v := &fakeVersion{
		data:        data,
		modified:    f.now,
		contentType: r.Header.Get("x-ms-blob-content-type"),
	}
	f.seq++
	v.id = f.now.Add(time.Duration(f.seq) * 100).Format("2006-01-02T15:04:05.0000000Z")
	v.etag = fmt.Sprintf(`"0x8D%013X"`, f.seq)
	if h := headerValue(r.Header, "x-ms-legal-hold"); h != "" {
		hold, err := strconv.ParseBool(h)
		if err != nil {
			f.fail(w, r, http.StatusBadRequest, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
			return
		}
		v.legalHold = hold
	}
	if until := headerValue(r.Header, "x-ms-immutability-policy-until-date"); until != "" {
		if !f.parsePolicy(w, r, until, headerValue(r.Header, "x-ms-immutability-policy-mode"), v) {
			return
		}
	}
	if b == nil {
		b = &fakeBlob{}
		f.blobs[name] = b
	}
	b.versions = append(b.versions, v)
	b.current = v
	b.staged = nil
	h := w.Header()
	h.Set("ETag", v.etag)
	h.Set("Last-Modified", v.modified.Format(http.TimeFormat))
	h.Set("x-ms-version-id", v.id)
	h.Set("x-ms-request-server-encrypted", "true")
	w.WriteHeader(http.StatusCreated)
}

// parsePolicy validates the policy headers into v; it answers the error itself.
func (f *Server) parsePolicy(w http.ResponseWriter, r *http.Request, until, mode string, v *fakeVersion) bool {
	t, err := time.Parse(time.RFC1123, until)
	if err != nil || !t.After(f.now) {
		f.fail(w, r, http.StatusBadRequest, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
		return false
	}
	switch mode {
	case "Unlocked", "":
		mode = "unlocked" // the documented default
	case "Locked":
		mode = "locked"
	default:
		f.fail(w, r, http.StatusBadRequest, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
		return false
	}
	v.policyUntil, v.policyMode = t, mode
	return true
}

func (f *Server) putBlob(w http.ResponseWriter, r *http.Request, name string) {
	if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
		f.unexpected(w, r, "Put Blob of a type other than BlockBlob")
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake Azure: read Put Blob body: %v", err)
		return
	}
	f.write(w, r, name, data)
}

func (f *Server) putBlock(w http.ResponseWriter, r *http.Request, name string) {
	id := r.URL.Query().Get("blockid")
	data, err := io.ReadAll(r.Body)
	if err != nil || id == "" {
		f.unexpected(w, r, "Put Block without blockid or body")
		return
	}
	f.mu.Lock()
	b := f.blobs[name]
	if b == nil {
		b = &fakeBlob{}
		f.blobs[name] = b
	}
	if b.staged == nil {
		b.staged = map[string][]byte{}
	}
	b.staged[id] = data
	f.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (f *Server) putBlockList(w http.ResponseWriter, r *http.Request, name string) {
	var list struct {
		Latest []string `xml:"Latest"`
		Other  []string `xml:",any"`
	}
	if err := xml.NewDecoder(r.Body).Decode(&list); err != nil || len(list.Other) > 0 {
		f.unexpected(w, r, fmt.Sprintf("block list body (%v)", err))
		return
	}
	f.mu.Lock()
	var data []byte
	b := f.blobs[name]
	for _, id := range list.Latest {
		block, ok := []byte(nil), false
		if b != nil {
			block, ok = b.staged[id]
		}
		if !ok {
			f.mu.Unlock()
			f.fail(w, r, http.StatusBadRequest, "InvalidBlockList", "The specified block list is invalid.")
			return
		}
		data = append(data, block...)
	}
	f.mu.Unlock()
	f.write(w, r, name, data)
}

// currentVersion returns name's current version, or answers BlobNotFound.
func (f *Server) currentVersion(w http.ResponseWriter, r *http.Request, name string) *fakeVersion {
	if b := f.blobs[name]; b != nil && b.current != nil {
		return b.current
	}
	f.blobNotFound(w, r)
	return nil
}

func (f *Server) describe(h http.Header, v *fakeVersion) {
	h.Set("ETag", v.etag)
	h.Set("Last-Modified", v.modified.Format(http.TimeFormat))
	h.Set("x-ms-creation-time", v.modified.Format(http.TimeFormat))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-version-id", v.id)
	h.Set("x-ms-is-current-version", "true")
	h.Set("x-ms-legal-hold", strconv.FormatBool(v.legalHold))
	if !v.policyUntil.IsZero() {
		h.Set("x-ms-immutability-policy-until-date", v.policyUntil.Format(http.TimeFormat))
		h.Set("x-ms-immutability-policy-mode", v.policyMode)
	}
	if v.contentType != "" {
		h.Set("Content-Type", v.contentType)
	}
}

func (f *Server) properties(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.currentVersion(w, r, name)
	if v == nil {
		return
	}
	f.describe(w.Header(), v)
	w.Header().Set("Content-Length", strconv.Itoa(len(v.data)))
	w.WriteHeader(http.StatusOK)
}

func (f *Server) get(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	v := f.currentVersion(w, r, name)
	if v == nil {
		f.mu.Unlock()
		return
	}
	f.describe(w.Header(), v)
	data := v.data
	f.mu.Unlock()
	status := http.StatusOK
	if rng := r.Header.Get("Range"); rng != "" {
		var from, to int
		spec, _ := strings.CutPrefix(rng, "bytes=")
		a, b, _ := strings.Cut(spec, "-")
		from, err := strconv.Atoi(a)
		to = len(data) - 1
		if err == nil && b != "" {
			to, err = strconv.Atoi(b)
		}
		if err != nil || from >= len(data) {
			f.fail(w, r, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
			return
		}
		to = min(to, len(data)-1)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, len(data)))
		data, status = data[from:to+1], http.StatusPartialContent
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func (f *Server) setHold(w http.ResponseWriter, r *http.Request, name string) {
	hold, err := strconv.ParseBool(r.Header.Get("x-ms-legal-hold"))
	if err != nil {
		f.unexpected(w, r, "x-ms-legal-hold missing or not true/false")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.currentVersion(w, r, name)
	if v == nil {
		return
	}
	v.legalHold = hold
	w.Header().Set("x-ms-legal-hold", strconv.FormatBool(hold))
	w.WriteHeader(http.StatusOK)
}

func (f *Server) setPolicyReq(w http.ResponseWriter, r *http.Request, name string) {
	until, mode := r.Header.Get("x-ms-immutability-policy-until-date"), r.Header.Get("x-ms-immutability-policy-mode")
	if until == "" {
		f.unexpected(w, r, "Set Blob Immutability Policy without x-ms-immutability-policy-until-date")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.currentVersion(w, r, name)
	if v == nil {
		return
	}
	next := *v
	if !f.parsePolicy(w, r, until, mode, &next) {
		return
	}
	if v.policyMode == "locked" && f.now.Before(v.policyUntil) &&
		(next.policyMode != "locked" || next.policyUntil.Before(v.policyUntil)) {
		// The reference forbids this without naming the error code; the adapter refuses
		// before asking, so the tests assert that no such request arrives.
		f.fail(w, r, http.StatusConflict, "BlobImmutableDueToPolicy",
			"This operation is not permitted as the blob is immutable due to a policy.")
		return
	}
	v.policyUntil, v.policyMode = next.policyUntil, next.policyMode
	w.Header().Set("x-ms-immutability-policy-until-date", v.policyUntil.Format(http.TimeFormat))
	w.Header().Set("x-ms-immutability-policy-mode", v.policyMode)
	w.WriteHeader(http.StatusOK)
}

func (f *Server) deletePolicy(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.currentVersion(w, r, name)
	if v == nil {
		return
	}
	if v.policyMode == "locked" && f.now.Before(v.policyUntil) {
		// Code as in the SDK's bloberror package, which Azure returns for this case.
		f.fail(w, r, http.StatusConflict, "ImmutabilityPolicyDeleteOnLockedPolicy",
			"The immutability policy is locked and cannot be deleted.")
		return
	}
	v.policyUntil, v.policyMode = time.Time{}, ""
	w.WriteHeader(http.StatusOK)
}

func (f *Server) deleteBlob(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.blobs[name]
	versionID := r.URL.Query().Get("versionid")
	if versionID == "" {
		if d := r.Header.Get("x-ms-delete-snapshots"); d != "" && d != "include" {
			f.unexpected(w, r, "x-ms-delete-snapshots "+d)
			return
		}
		v := f.currentVersion(w, r, name)
		if v == nil || f.refuseProtected(w, r, v) {
			return
		}
		b.current = nil // it stays as a previous version
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if b == nil {
		f.blobNotFound(w, r)
		return
	}
	i := slices.IndexFunc(b.versions, func(v *fakeVersion) bool { return v.id == versionID })
	switch {
	case i < 0:
		f.blobNotFound(w, r)
	case b.versions[i] == b.current:
		f.unexpected(w, r, "delete of the current version by version ID")
	case !f.refuseProtected(w, r, b.versions[i]):
		b.versions = slices.Delete(b.versions, i, i+1)
		if len(b.versions) == 0 && b.current == nil {
			delete(f.blobs, name)
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

type listedProperties struct {
	CreationTime string `xml:"Creation-Time"`
	LastModified string `xml:"Last-Modified"`
	Etag         string `xml:"Etag"`
	Length       int    `xml:"Content-Length"`
	ContentType  string `xml:"Content-Type,omitempty"`
	BlobType     string `xml:"BlobType"`
	LegalHold    *bool  `xml:"LegalHold,omitempty"`
	PolicyUntil  string `xml:"ImmutabilityPolicyUntilDate,omitempty"`
	PolicyMode   string `xml:"ImmutabilityPolicyMode,omitempty"`
}

type listedBlob struct {
	Name       string           `xml:"Name"`
	VersionID  string           `xml:"VersionId,omitempty"`
	IsCurrent  *bool            `xml:"IsCurrentVersion,omitempty"`
	Properties listedProperties `xml:"Properties"`
}

//nolint:gocyclo,funlen // the List Blobs query parameters of the emulated API
func (f *Server) list(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	include := map[string]bool{}
	for _, item := range strings.Split(q.Get("include"), ",") {
		switch item {
		case "":
		case "versions", "legalhold", "immutabilitypolicy":
			include[item] = true
		default:
			f.unexpected(w, r, "include="+item)
			return
		}
	}
	maxResults := 5000
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			f.unexpected(w, r, "maxresults="+s)
			return
		}
		maxResults = n
	}
	start := 0
	if m := q.Get("marker"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil {
			f.unexpected(w, r, "marker="+m)
			return
		}
		start = n
	}

	f.mu.Lock()
	var names []string
	for name := range f.blobs {
		if strings.HasPrefix(name, q.Get("prefix")) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var all []listedBlob
	for _, name := range names {
		b := f.blobs[name]
		for _, v := range b.versions {
			isCurrent := v == b.current
			if !include["versions"] && !isCurrent {
				continue
			}
			item := listedBlob{Name: name, Properties: listedProperties{
				CreationTime: v.modified.Format(http.TimeFormat),
				LastModified: v.modified.Format(http.TimeFormat),
				Etag:         v.etag,
				Length:       len(v.data),
				ContentType:  v.contentType,
				BlobType:     "BlockBlob",
			}}
			if include["versions"] {
				item.VersionID, item.IsCurrent = v.id, &isCurrent
			}
			if include["legalhold"] {
				hold := v.legalHold
				item.Properties.LegalHold = &hold
			}
			if include["immutabilitypolicy"] && !v.policyUntil.IsZero() {
				item.Properties.PolicyUntil = v.policyUntil.Format(http.TimeFormat)
				item.Properties.PolicyMode = v.policyMode
			}
			all = append(all, item)
		}
	}
	hook := f.afterList
	f.afterList = nil
	f.mu.Unlock()
	if hook != nil {
		hook() // before the answer, so the client cannot act on it first
	}

	page := struct {
		XMLName         xml.Name `xml:"EnumerationResults"`
		ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
		ContainerName   string   `xml:"ContainerName,attr"`
		Prefix          string   `xml:"Prefix"`
		Marker          string   `xml:"Marker"`
		MaxResults      int      `xml:"MaxResults"`
		Blobs           struct {
			Blob []listedBlob `xml:"Blob"`
		} `xml:"Blobs"` // present even when empty, as the service sends it
		NextMarker string `xml:"NextMarker"`
	}{
		ServiceEndpoint: f.server.URL + "/" + fakeAccount,
		ContainerName:   f.container,
		Prefix:          q.Get("prefix"),
		Marker:          q.Get("marker"),
		MaxResults:      maxResults,
	}
	start = min(start, len(all))
	end := min(start+maxResults, len(all))
	page.Blobs.Blob = all[start:end]
	if end < len(all) {
		page.NextMarker = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	if err := xml.NewEncoder(w).Encode(page); err != nil {
		f.t.Errorf("fake Azure: encode list: %v", err)
	}
}

// headerValue reads a header as the SDK sets it: canonical, or under its lower-case
// x-ms-* name.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
