// Package kmstest is a fake AWS KMS for tests: an HTTP server that speaks the KMS JSON
// protocol for DescribeKey, Encrypt and Decrypt, checks every request's SigV4 signature
// against fixed credentials, records the requests, and answers, errors included, in the
// shapes AWS documents.
package kmstest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The fake's region and account, which its key ARNs name, and the only credentials whose
// signatures it accepts.
const (
	Region          = "eu-central-1"
	Account         = "111122223333"
	AccessKeyID     = "AKIDDRFLOWTEST"
	SecretAccessKey = "drflow-test-secret-key"
)

// Server is a fake KMS.
type Server struct {
	t      testing.TB
	url    string
	mu     sync.Mutex
	keys   map[string]*key   // by key ID
	alias  map[string]string // alias name -> key ID
	denied bool              // every call: AccessDeniedException
	reqs   []Call
	// regions are the regions of the requests' credential scopes.
	regions []string
}

type key struct {
	id       string
	state    string // Enabled, Disabled, PendingDeletion
	spec     string
	usage    string
	material []byte
}

// Call is one request the server received.
type Call struct {
	Target string
	Body   map[string]any
}

// NewServer starts a fake KMS that stops when the test ends. Protocol and signature errors
// fail t.
func NewServer(t testing.TB) *Server {
	f := &Server{t: t, keys: map[string]*key{}, alias: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// URL is the server's endpoint.
func (f *Server) URL() string { return f.url }

// ARN is the ARN of key id.
func (f *Server) ARN(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", Region, Account, id)
}

func (f *Server) arn(id string) string { return f.ARN(id) }

// AddKey creates an enabled symmetric key and returns its ARN.
func (f *Server) AddKey(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make([]byte, 32)
	_, _ = rand.Read(m)
	f.keys[id] = &key{id: id, state: "Enabled", spec: "SYMMETRIC_DEFAULT", usage: "ENCRYPT_DECRYPT", material: m}
	return f.arn(id)
}

// AddAlias makes alias/name resolve to key id.
func (f *Server) AddAlias(name, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alias[name] = id
}

// SetSpec changes a key's KeySpec and KeyUsage (e.g. ECC_NIST_P256, SIGN_VERIFY).
func (f *Server) SetSpec(id, spec, usage string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id].spec, f.keys[id].usage = spec, usage
}

// SetState sets a key's state: Enabled, Disabled or PendingDeletion.
func (f *Server) SetState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id].state = state
}

// DeleteKey removes a key, as KMS does when its deletion completes.
func (f *Server) DeleteKey(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, id)
}

// SetDenied makes every call fail with AccessDeniedException, or not.
func (f *Server) SetDenied(denied bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = denied
}

// Calls returns the requests received so far, in order.
func (f *Server) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// Targets returns the X-Amz-Target of every request received so far.
func (f *Server) Targets() []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.Target)
	}
	return out
}

// Regions returns the region of every request's credential scope.
func (f *Server) Regions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.regions)
}

func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "TrentService.")
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		f.t.Errorf("kms request %s %s, want POST /", r.Method, r.URL.Path)
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		f.t.Errorf("kms request Content-Type %q", r.Header.Get("Content-Type"))
	case !ok:
		f.t.Errorf("kms request X-Amz-Target %q", target)
	}
	if msg := f.verifySignature(r, body); msg != "" {
		f.t.Errorf("kms request %s: %s", target, msg)
		f.fail(w, http.StatusBadRequest, "InvalidSignatureException", msg)
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("kms request body: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, Call{Target: target, Body: req})
	if f.denied {
		f.fail(w, http.StatusBadRequest, "AccessDeniedException", "User: arn:aws:iam::"+Account+":user/worker is not authorized to perform: kms:"+op)
		return
	}
	switch op {
	case "DescribeKey":
		f.describe(w, req)
	case "Encrypt":
		f.encrypt(w, req)
	case "Decrypt":
		f.decrypt(w, req)
	default:
		f.fail(w, http.StatusBadRequest, "UnknownOperationException", op)
	}
}

// verifySignature re-signs the request as the SDK should have and compares.
func (f *Server) verifySignature(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return fmt.Sprintf("Authorization %q is not SigV4", auth)
	}
	// Credential=AKID/20250304/eu-central-1/kms/aws4_request
	_, cred, _ := strings.Cut(auth, "Credential=")
	cred, _, _ = strings.Cut(cred, ",")
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] != AccessKeyID || scope[3] != "kms" || scope[4] != "aws4_request" {
		return fmt.Sprintf("Authorization %q has the wrong credential scope", auth)
	}
	region := scope[2]
	f.mu.Lock()
	f.regions = append(f.regions, region)
	f.mu.Unlock()
	_, signed, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		return "no SignedHeaders"
	}
	signed, _, _ = strings.Cut(signed, ",")
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "bad X-Amz-Date"
	}
	re, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	re.ContentLength = int64(len(body))
	for _, h := range strings.Split(signed, ";") {
		if h != "host" && h != "content-length" {
			re.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), "kms", region, when); err != nil {
		return err.Error()
	}
	if got := re.Header.Get("Authorization"); got != auth {
		return fmt.Sprintf("signature does not verify:\n got  %s\n want %s", auth, got)
	}
	return ""
}

func (f *Server) fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (f *Server) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

// resolve finds a key by ID, ARN or alias.
func (f *Server) resolve(w http.ResponseWriter, keyID any) *key {
	s, _ := keyID.(string)
	id := s
	if a, ok := strings.CutPrefix(s, "alias/"); ok {
		id = f.alias[a]
	} else if rest, ok := strings.CutPrefix(s, f.arn("")); ok {
		id = rest
	}
	k := f.keys[id]
	if k == nil {
		f.fail(w, http.StatusBadRequest, "NotFoundException", fmt.Sprintf("Key '%s' does not exist", s))
	}
	return k
}

// usable answers as KMS does for a key that cannot be used now.
func (f *Server) usable(w http.ResponseWriter, k *key) bool {
	switch k.state {
	case "Enabled":
		return true
	case "Disabled":
		f.fail(w, http.StatusBadRequest, "DisabledException", f.arn(k.id)+" is disabled.")
	default:
		f.fail(w, http.StatusBadRequest, "KMSInvalidStateException", fmt.Sprintf("%s is pending deletion.", f.arn(k.id)))
	}
	return false
}

func (f *Server) describe(w http.ResponseWriter, req map[string]any) {
	k := f.resolve(w, req["KeyId"])
	if k == nil {
		return
	}
	f.reply(w, map[string]any{"KeyMetadata": map[string]any{
		"AWSAccountId": Account, "KeyId": k.id, "Arn": f.arn(k.id), "CreationDate": 1.7e9,
		"Enabled": k.state == "Enabled", "KeyState": k.state, "KeySpec": k.spec, "CustomerMasterKeySpec": k.spec,
		"KeyUsage": k.usage, "KeyManager": "CUSTOMER", "Origin": "AWS_KMS", "MultiRegion": false,
		"EncryptionAlgorithms": []string{"SYMMETRIC_DEFAULT"},
	}})
}

// contextAAD is a canonical form of an EncryptionContext, as KMS binds it.
func contextAAD(req map[string]any) []byte {
	ec, _ := req["EncryptionContext"].(map[string]any)
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = fmt.Appendf(b, "%q=%q;", k, ec[k])
	}
	return b
}

func (f *Server) gcm(k *key) cipher.AEAD {
	block, err := aes.NewCipher(k.material)
	if err != nil {
		panic(err) // material is always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

func (f *Server) encrypt(w http.ResponseWriter, req map[string]any) {
	k := f.resolve(w, req["KeyId"])
	if k == nil || !f.usable(w, k) {
		return
	}
	s, _ := req["Plaintext"].(string)
	pt, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		f.fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	// Blob: key ID length, key ID, nonce, sealed plaintext (real blobs also name the key).
	blob := binary.BigEndian.AppendUint16(nil, uint16(len(k.id)))
	blob = append(blob, k.id...)
	aead := f.gcm(k)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	blob = append(blob, nonce...)
	blob = aead.Seal(blob, nonce, pt, contextAAD(req))
	f.reply(w, map[string]any{"CiphertextBlob": blob, "KeyId": f.arn(k.id), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
}

func (f *Server) decrypt(w http.ResponseWriter, req map[string]any) {
	s, _ := req["CiphertextBlob"].(string)
	blob, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		f.fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	invalid := func() { f.fail(w, http.StatusBadRequest, "InvalidCiphertextException", "") }
	if len(blob) < 2 || len(blob) < 2+int(binary.BigEndian.Uint16(blob)) {
		invalid()
		return
	}
	var named *key
	if req["KeyId"] != nil {
		if named = f.resolve(w, req["KeyId"]); named == nil {
			return
		}
	}
	n := int(binary.BigEndian.Uint16(blob))
	k := f.keys[string(blob[2:2+n])]
	if k == nil {
		invalid()
		return
	}
	if named != nil && named != k {
		f.fail(w, http.StatusBadRequest, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
		return
	}
	if !f.usable(w, k) {
		return
	}
	aead := f.gcm(k)
	rest := blob[2+n:]
	if len(rest) < aead.NonceSize() {
		invalid()
		return
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], contextAAD(req))
	if err != nil {
		invalid()
		return
	}
	f.reply(w, map[string]any{"KeyId": f.arn(k.id), "Plaintext": pt, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
}
