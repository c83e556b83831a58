// Package gcstest provides an in-process Cloud Storage server that enforces holds and
// retention as the service does and checks every request the gcs adapter sends, for tests
// of the adapter and of the code that relies on its holds.
package gcstest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"mime/multipart"
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
)

// Server is an in-process Cloud Storage JSON API server that implements only the requests
// the gcs adapter sends, answers them as the service documents (including its 403 refusals for
// held and retained objects and its 412 for failed preconditions) and fails the test on any
// request it does not expect: an unknown path, method or query parameter, or a metadata field
// the adapter has no business sending.
//
// It exists because fake-gcs-server does not enforce holds or retention. Its bucket has object
// retention enabled and versioning off.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	bucket string

	mu       sync.Mutex
	objects  map[string]*protoObject
	sessions map[string]*protoSession
	log      []Request
	lastGen  int64
	// afterGet, if set, runs once after a metadata read of an object (outside the lock): it
	// lets a test change the object between the adapter's check and its write.
	afterGet func(name string)
}

type protoObject struct {
	data           []byte
	contentType    string
	generation     int64
	metageneration int64
	created        time.Time
	updated        time.Time
	temporaryHold  bool
	retention      *protoRetention
}

type protoRetention struct {
	Mode            string `json:"mode"`
	RetainUntilTime string `json:"retainUntilTime"`
}

func (r *protoRetention) until() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, r.RetainUntilTime)
	return t
}

type protoSession struct {
	name  string
	meta  map[string]json.RawMessage
	query url.Values
	data  bytes.Buffer
}

// Request is one request as the server understood it.
type Request struct {
	Op     string // bucket.get, objects.get, objects.media, objects.insert, objects.upload, objects.patch, objects.delete, objects.list
	Method string
	Object string // full object name, the store's prefix included
	Query  url.Values
	Body   map[string]json.RawMessage // metadata of inserts and patches
}

// NewServer starts a server with one bucket; it stops when t ends.
func NewServer(t testing.TB, bucket string) *Server {
	p := &Server{t: t, bucket: bucket, objects: map[string]*protoObject{}, sessions: map[string]*protoSession{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Endpoint is what gcs.Options.Endpoint takes.
func (p *Server) Endpoint() string { return p.srv.URL + "/storage/v1/" }

// Bucket is the name of the server's only bucket.
func (p *Server) Bucket() string { return p.bucket }

// Requests returns the logged requests of op on object (any object if empty).
func (p *Server) Requests(op, object string) []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Request
	for _, r := range p.log {
		if r.Op == op && (object == "" || r.Object == object) {
			out = append(out, r)
		}
	}
	return out
}

// ResetLog forgets the logged requests.
func (p *Server) ResetLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

// AfterGet makes fn run once, after the next metadata read of an object has been answered.
func (p *Server) AfterGet(fn func(name string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.afterGet = fn
}

// SetTemporaryHold changes an object's hold behind the adapter's back, as another client
// would. It reports false if the object does not exist.
func (p *Server) SetTemporaryHold(name string, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objects[name]
	if o != nil {
		o.temporaryHold = on
	}
	return o != nil
}

// Objects returns the names of the stored objects, sorted.
func (p *Server) Objects() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.objects))
	for name := range p.objects {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (p *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	bucketPath := "/storage/v1/b/" + p.bucket
	uploadPath := "/upload/storage/v1/b/" + p.bucket + "/o"
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && path == bucketPath:
		p.check(w, r, "bucket.get", "", params{"alt": "json", "prettyPrint": "false", "projection": "full"}, nil, func(Request) {
			writeJSON(w, http.StatusOK, map[string]any{
				"kind": "storage#bucket", "name": p.bucket, "id": p.bucket, "location": "EUROPE-WEST3",
				"storageClass": "STANDARD", "metageneration": "1",
				"objectRetention": map[string]string{"mode": "Enabled"},
				"versioning":      map[string]bool{"enabled": false},
			})
		})
	case r.Method == http.MethodGet && path == bucketPath+"/o":
		// The SDK sends every listing parameter, unused ones empty or false.
		p.check(w, r, "objects.list", "", params{"alt": "json", "prettyPrint": "false", "projection": "full", "maxResults": "1000",
			"prefix": anyValue, "pageToken": anyValue, "fields": anyValue, "versions": "false", "delimiter": "", "startOffset": "",
			"endOffset": "", "matchGlob": "", "includeFoldersAsPrefixes": "false", "includeTrailingDelimiter": "false"}, nil, func(Request) {
			// Name, Size, Created and Etag, in any order.
			fields := q.Get("fields")
			items := strings.Split(strings.TrimSuffix(strings.TrimPrefix(fields, "nextPageToken,prefixes,items("), ")"), ",")
			sort.Strings(items)
			if !slices.Equal(items, []string{"etag", "name", "size", "timeCreated"}) {
				p.unexpected(w, r, "fields %q", fields)
				return
			}
			p.list(w, q)
		})
	case strings.HasPrefix(path, bucketPath+"/o/"):
		name, err := url.PathUnescape(strings.TrimPrefix(path, bucketPath+"/o/"))
		if err != nil {
			p.unexpected(w, r, "object name: %v", err)
			return
		}
		p.object(w, r, name)
	case r.Method == http.MethodPost && path == uploadPath && q.Get("upload_id") != "":
		p.check(w, r, "objects.upload", q.Get("name"), params{"uploadType": "resumable", "upload_id": anyValue, "name": anyValue}, nil, func(Request) { p.chunk(w, r) })
	case r.Method == http.MethodPost && path == uploadPath:
		p.insert(w, r)
	default:
		p.unexpected(w, r, "no such endpoint")
	}
}

func (p *Server) object(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Get("alt") == "media":
		p.check(w, r, "objects.media", name, params{"alt": "media", "prettyPrint": "false", "projection": "full"}, nil, func(Request) { p.media(w, r, name) })
	case r.Method == http.MethodGet:
		p.check(w, r, "objects.get", name, params{"alt": "json", "prettyPrint": "false", "projection": "full"}, nil, func(Request) {
			p.mu.Lock()
			o := p.objects[name]
			var res map[string]any
			if o != nil {
				res = p.resource(name, o)
			}
			afterGet := p.afterGet
			p.afterGet = nil
			p.mu.Unlock()
			if o == nil {
				notFound(w, p.bucket, name)
				return
			}
			writeJSON(w, http.StatusOK, res)
			if afterGet != nil {
				afterGet(name)
			}
		})
	case r.Method == http.MethodPatch:
		p.check(w, r, "objects.patch", name, params{"alt": "json", "prettyPrint": "false", "projection": "full", "overrideUnlockedRetention": "true?"},
			[]string{"bucket", "temporaryHold", "retention"}, func(req Request) { p.patch(w, r, req) })
	case r.Method == http.MethodDelete:
		p.check(w, r, "objects.delete", name, params{"alt": "json", "prettyPrint": "false"}, nil, func(Request) { p.delete(w, name) })
	default:
		p.unexpected(w, r, "no such object method")
	}
}

// params maps a query parameter to the value it must have (anyValue for any), with a
// trailing "?" if it may be absent.
type params map[string]string

const anyValue = "*"

// check validates a request's query parameters and JSON metadata fields (bodyFields nil: no
// body expected), logs it and runs handle, or answers 400 and fails the test.
func (p *Server) check(w http.ResponseWriter, r *http.Request, op, object string, want params, bodyFields []string, handle func(Request)) {
	q := r.URL.Query()
	for key, values := range q {
		rule, ok := want[key]
		if !ok {
			p.unexpected(w, r, "query parameter %q", key)
			return
		}
		required := strings.TrimSuffix(rule, "?")
		if len(values) != 1 || required != anyValue && values[0] != required {
			p.unexpected(w, r, "query parameter %s=%v (want %q)", key, values, required)
			return
		}
	}
	for key, rule := range want {
		if !strings.HasSuffix(rule, "?") && !q.Has(key) {
			p.unexpected(w, r, "missing query parameter %q", key)
			return
		}
	}
	req := Request{Op: op, Method: r.Method, Object: object, Query: q}
	if bodyFields != nil {
		if err := json.NewDecoder(r.Body).Decode(&req.Body); err != nil {
			p.unexpected(w, r, "body: %v", err)
			return
		}
		for key := range req.Body {
			if !slices.Contains(bodyFields, key) {
				p.unexpected(w, r, "body field %q", key)
				return
			}
		}
		if raw, ok := req.Body["bucket"]; ok && string(raw) != strconv.Quote(p.bucket) {
			p.unexpected(w, r, "body names bucket %s", raw)
			return
		}
	}
	p.mu.Lock()
	p.log = append(p.log, req)
	p.mu.Unlock()
	handle(req)
}

func (p *Server) unexpected(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	p.t.Errorf("unexpected request %s %s: %s", r.Method, r.URL, fmt.Sprintf(format, args...))
	writeError(w, http.StatusBadRequest, "invalid", "unexpected request")
}

// insert starts a resumable upload or takes a multipart one.
func (p *Server) insert(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	want := params{"uploadType": anyValue, "name": anyValue, "alt": "json", "prettyPrint": "false", "projection": "full", "ifGenerationMatch": "0?"}
	metaFields := []string{"bucket", "name", "contentType", "crc32c", "temporaryHold", "retention"}
	switch q.Get("uploadType") {
	case "resumable":
		p.check(w, r, "objects.insert", q.Get("name"), want, metaFields, func(req Request) {
			if !p.validMeta(w, req) {
				return
			}
			id := strconv.FormatInt(time.Now().UnixNano(), 36)
			p.mu.Lock()
			p.sessions[id] = &protoSession{name: req.Object, meta: req.Body, query: q}
			p.mu.Unlock()
			w.Header().Set("Location", fmt.Sprintf("%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s",
				p.srv.URL, p.bucket, url.QueryEscape(req.Object), id))
			w.WriteHeader(http.StatusOK)
		})
	case "multipart":
		mediaType, mparams, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mediaType != "multipart/related" {
			p.unexpected(w, r, "multipart upload with content type %q", r.Header.Get("Content-Type"))
			return
		}
		mr := multipart.NewReader(r.Body, mparams["boundary"])
		metaPart, err := mr.NextPart()
		if err != nil {
			p.unexpected(w, r, "multipart metadata: %v", err)
			return
		}
		r.Body = metaPart // check reads the metadata from here
		p.check(w, r, "objects.insert", q.Get("name"), want, metaFields, func(req Request) {
			if !p.validMeta(w, req) {
				return
			}
			media, err := mr.NextPart()
			if err != nil {
				p.unexpected(w, r, "multipart media: %v", err)
				return
			}
			data, err := io.ReadAll(media)
			if err != nil {
				return // the client went away: nothing is committed
			}
			var crc string
			_ = json.Unmarshal(req.Body["crc32c"], &crc)
			p.commit(w, req.Object, req.Body, q, data, crc)
		})
	default:
		p.unexpected(w, r, "uploadType %q", q.Get("uploadType"))
	}
}

func (p *Server) validMeta(w http.ResponseWriter, req Request) bool {
	var bucket, name string
	_ = json.Unmarshal(req.Body["bucket"], &bucket)
	_ = json.Unmarshal(req.Body["name"], &name)
	if bucket != p.bucket || name != req.Object {
		p.t.Errorf("upload metadata names %s/%s, the request %s/%s", bucket, name, p.bucket, req.Object)
		writeError(w, http.StatusBadRequest, "invalid", "metadata does not match the request")
		return false
	}
	return true
}

// chunk takes one chunk of a resumable upload, as the SDK sends it: POST to the session URL
// with Content-Range, answered with 200 and X-Http-Status-Code-Override: 308 until the last.
func (p *Server) chunk(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("upload_id")
	p.mu.Lock()
	s := p.sessions[id]
	p.mu.Unlock()
	if s == nil {
		writeError(w, http.StatusNotFound, "notFound", "No such upload session")
		return
	}
	if r.Header.Get("X-GUploader-No-308") != "yes" {
		p.t.Errorf("chunk without X-GUploader-No-308: yes")
	}
	// "bytes first-last/total", "bytes first-last/*" or "bytes */total".
	cr := strings.TrimPrefix(r.Header.Get("Content-Range"), "bytes ")
	span, total, ok := strings.Cut(cr, "/")
	if !ok {
		p.t.Errorf("chunk Content-Range %q", r.Header.Get("Content-Range"))
		writeError(w, http.StatusBadRequest, "invalid", "bad Content-Range")
		return
	}
	if span != "*" {
		first, _, _ := strings.Cut(span, "-")
		if off, err := strconv.ParseInt(first, 10, 64); err != nil || off != int64(s.data.Len()) {
			p.t.Errorf("chunk at %q, session has %d bytes", span, s.data.Len())
			writeError(w, http.StatusBadRequest, "invalid", "bad Content-Range")
			return
		}
	}
	if _, err := io.Copy(&s.data, r.Body); err != nil {
		return // the client went away
	}
	if total == "*" {
		w.Header().Set("X-Http-Status-Code-Override", "308")
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", s.data.Len()-1))
		w.WriteHeader(http.StatusOK)
		return
	}
	if n, err := strconv.Atoi(total); err != nil || n != s.data.Len() {
		p.t.Errorf("final chunk says %s bytes, session has %d", total, s.data.Len())
	}
	p.mu.Lock()
	delete(p.sessions, id)
	p.mu.Unlock()
	crc, _ := strings.CutPrefix(r.Header.Get("X-Goog-Hash"), "crc32c=")
	p.commit(w, s.name, s.meta, s.query, s.data.Bytes(), crc)
}

// commit creates a generation as the service does: preconditions first, then the existing
// object's holds and retention, then the new metadata.
func (p *Server) commit(w http.ResponseWriter, name string, meta map[string]json.RawMessage, q url.Values, data []byte, crc string) {
	if crc != "" && crc != crc32c(data) {
		p.t.Errorf("upload of %s: crc32c %s, data has %s", name, crc, crc32c(data))
		writeError(w, http.StatusBadRequest, "invalid", "Provided CRC32C does not match the object's data.")
		return
	}
	o := &protoObject{data: bytes.Clone(data), contentType: "application/octet-stream", metageneration: 1}
	_ = json.Unmarshal(meta["contentType"], &o.contentType)
	_ = json.Unmarshal(meta["temporaryHold"], &o.temporaryHold)
	if raw, ok := meta["retention"]; ok {
		if err := json.Unmarshal(raw, &o.retention); err != nil || !validRetention(o.retention) {
			writeError(w, http.StatusBadRequest, "invalid", "Invalid retention: mode must be Locked or Unlocked and retainUntilTime in the future.")
			return
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.objects[name]
	if q.Has("ifGenerationMatch") && old != nil {
		preconditionFailed(w)
		return
	}
	if old != nil && p.refuseRemoval(w, name, old) {
		return
	}
	p.lastGen = max(p.lastGen+1, time.Now().UnixMicro())
	o.generation = p.lastGen
	o.created = time.Now()
	o.updated = o.created
	p.objects[name] = o
	writeJSON(w, http.StatusOK, p.resource(name, o))
}

// refuseRemoval answers 403 and reports true if o may not be deleted or replaced. p.mu is held.
func (p *Server) refuseRemoval(w http.ResponseWriter, name string, o *protoObject) bool {
	if o.temporaryHold {
		// Measured wording (reason "forbidden", like a missing permission).
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf(
			"Object '%s/%s' is under active Temporary hold and cannot be deleted, overwritten or archived until hold is removed.", p.bucket, name))
		return true
	}
	if o.retention != nil && time.Now().Before(o.retention.until()) {
		writeError(w, http.StatusForbidden, "retentionPolicyNotMet", fmt.Sprintf(
			"Object '%s/%s' is subject to bucket's retention policy or object retention and cannot be deleted or overwritten until %s",
			p.bucket, name, o.retention.RetainUntilTime))
		return true
	}
	return false
}

func validRetention(r *protoRetention) bool {
	return r != nil && (r.Mode == "Locked" || r.Mode == "Unlocked") && time.Now().Before(r.until())
}

// patch updates holds and retention with the service's rules: retention can be extended
// freely; shortening, removing or locking an Unlocked one needs overrideUnlockedRetention;
// a Locked one can only be extended.
//
//nolint:gocyclo // one case per patchable field of the emulated API
func (p *Server) patch(w http.ResponseWriter, r *http.Request, req Request) {
	name := req.Object
	override := r.URL.Query().Get("overrideUnlockedRetention") == "true"
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objects[name]
	if o == nil {
		notFound(w, p.bucket, name)
		return
	}
	next := *o
	if raw, ok := req.Body["temporaryHold"]; ok {
		if err := json.Unmarshal(raw, &next.temporaryHold); err != nil {
			p.t.Errorf("patch temporaryHold %s", raw)
		}
	}
	if raw, ok := req.Body["retention"]; ok {
		var want *protoRetention
		if err := json.Unmarshal(raw, &want); err != nil {
			p.t.Errorf("patch retention %s", raw)
		}
		if want != nil && !validRetention(want) {
			writeError(w, http.StatusBadRequest, "invalid", "Invalid retention: mode must be Locked or Unlocked and retainUntilTime in the future.")
			return
		}
		if cur := o.retention; cur != nil {
			weakens := want == nil || want.until().Before(cur.until())
			if cur.Mode == "Locked" && (weakens || want.Mode != "Locked") ||
				cur.Mode == "Unlocked" && (weakens || want.Mode == "Locked") && !override {
				// Only the status is documented for this refusal; the wording is ours.
				writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf(
					"Object '%s/%s' has a %s retention that this request would reduce or lock.", p.bucket, name, cur.Mode))
				return
			}
		}
		next.retention = want
	}
	next.metageneration++
	next.updated = time.Now()
	p.objects[name] = &next
	writeJSON(w, http.StatusOK, p.resource(name, &next))
}

func (p *Server) delete(w http.ResponseWriter, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objects[name]
	if o == nil {
		notFound(w, p.bucket, name)
		return
	}
	if p.refuseRemoval(w, name, o) {
		return
	}
	delete(p.objects, name)
	w.WriteHeader(http.StatusNoContent)
}

func (p *Server) media(w http.ResponseWriter, r *http.Request, name string) {
	p.mu.Lock()
	o := p.objects[name]
	p.mu.Unlock()
	if o == nil {
		notFound(w, p.bucket, name)
		return
	}
	size := int64(len(o.data))
	w.Header().Set("Content-Type", o.contentType)
	w.Header().Set("X-Goog-Generation", strconv.FormatInt(o.generation, 10))
	w.Header().Set("X-Goog-Metageneration", strconv.FormatInt(o.metageneration, 10))
	rng := r.Header.Get("Range")
	if rng == "" {
		w.Header().Set("X-Goog-Hash", "crc32c="+crc32c(o.data))
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(o.data)
		return
	}
	// The SDK asks for "bytes=first-last" or "bytes=first-".
	first, last, ok := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
	start, err := strconv.ParseInt(first, 10, 64)
	if !ok || err != nil {
		p.t.Errorf("media Range %q", rng)
		writeError(w, http.StatusBadRequest, "invalid", "bad Range")
		return
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil {
			p.t.Errorf("media Range %q", rng)
		}
		end = min(end, size-1)
	}
	if start >= size {
		writeError(w, http.StatusRequestedRangeNotSatisfiable, "requestedRangeNotSatisfiable", "The requested range cannot be satisfied.")
		return
	}
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	w.Header().Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	w.WriteHeader(http.StatusPartialContent)
	_, _ = w.Write(o.data[start : end+1])
}

func (p *Server) list(w http.ResponseWriter, q url.Values) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix, token := q.Get("prefix"), q.Get("pageToken")
	var names []string
	for name := range p.objects {
		if strings.HasPrefix(name, prefix) && name > token {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	res := map[string]any{"kind": "storage#objects"}
	if page, _ := strconv.Atoi(q.Get("maxResults")); len(names) > page {
		names = names[:page]
		res["nextPageToken"] = names[page-1]
	}
	items := []map[string]any{}
	for _, name := range names {
		items = append(items, p.resource(name, p.objects[name]))
	}
	res["items"] = items
	writeJSON(w, http.StatusOK, res)
}

// resource renders the object's JSON API resource. p.mu is held.
func (p *Server) resource(name string, o *protoObject) map[string]any {
	res := map[string]any{
		"kind":           "storage#object",
		"id":             fmt.Sprintf("%s/%s/%d", p.bucket, name, o.generation),
		"bucket":         p.bucket,
		"name":           name,
		"generation":     strconv.FormatInt(o.generation, 10),
		"metageneration": strconv.FormatInt(o.metageneration, 10),
		"contentType":    o.contentType,
		"size":           strconv.Itoa(len(o.data)),
		"crc32c":         crc32c(o.data),
		"etag":           base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, uint64(o.generation))),
		"storageClass":   "STANDARD",
		"timeCreated":    o.created.UTC().Format(time.RFC3339Nano),
		"updated":        o.updated.UTC().Format(time.RFC3339Nano),
		"temporaryHold":  o.temporaryHold,
	}
	if o.retention != nil {
		res["retention"] = o.retention
		res["retentionExpirationTime"] = o.retention.RetainUntilTime
	}
	return res
}

func crc32c(data []byte) string {
	sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
}

func notFound(w http.ResponseWriter, bucket, name string) {
	writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("No such object: %s/%s", bucket, name))
}

func preconditionFailed(w http.ResponseWriter) {
	writeError(w, http.StatusPreconditionFailed, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
}

// writeError answers in the JSON API's error format.
func writeError(w http.ResponseWriter, code int, reason, message string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code":    code,
		"message": message,
		"errors":  []map[string]string{{"message": message, "domain": "global", "reason": reason}},
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
