package keys

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
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

const (
	fakeRegion  = "eu-central-1"
	fakeAccount = "111122223333"
	fakeAKID    = "AKIDDRFLOWTEST"
	fakeSecret  = "drflow-test-secret-key"
)

// fakeKMS speaks the KMS JSON protocol (awsJson1_1, X-Amz-Target TrentService.*) for
// DescribeKey, Encrypt and Decrypt, verifies each request's SigV4 signature, records the
// requests, and answers, errors included, in the shapes AWS documents.
type fakeKMS struct {
	t      *testing.T
	mu     sync.Mutex
	keys   map[string]*fakeKey // by key ID
	alias  map[string]string   // alias name -> key ID
	denied bool                // every call: AccessDeniedException
	reqs   []kmsCall
	// regions are the regions of the requests' credential scopes.
	regions []string
}

type fakeKey struct {
	id       string
	state    string // Enabled, Disabled, PendingDeletion
	spec     string
	usage    string
	material []byte
}

type kmsCall struct {
	Target string
	Body   map[string]any
}

func newFakeKMS(t *testing.T) (*fakeKMS, string) {
	f := &fakeKMS{t: t, keys: map[string]*fakeKey{}, alias: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeKMS) arn(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", fakeRegion, fakeAccount, id)
}

// addKey creates an enabled symmetric key and returns its ARN.
func (f *fakeKMS) addKey(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make([]byte, 32)
	_, _ = rand.Read(m)
	f.keys[id] = &fakeKey{id: id, state: "Enabled", spec: "SYMMETRIC_DEFAULT", usage: "ENCRYPT_DECRYPT", material: m}
	return f.arn(id)
}

func (f *fakeKMS) setState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id].state = state
}

func (f *fakeKMS) calls() []kmsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeKMS) targets() []string {
	var out []string
	for _, c := range f.calls() {
		out = append(out, c.Target)
	}
	return out
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	f.reqs = append(f.reqs, kmsCall{Target: target, Body: req})
	if f.denied {
		f.fail(w, http.StatusBadRequest, "AccessDeniedException", "User: arn:aws:iam::111122223333:user/worker is not authorized to perform: kms:"+op)
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
func (f *fakeKMS) verifySignature(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return fmt.Sprintf("Authorization %q is not SigV4", auth)
	}
	// Credential=AKID/20250304/eu-central-1/kms/aws4_request
	_, cred, _ := strings.Cut(auth, "Credential=")
	cred, _, _ = strings.Cut(cred, ",")
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] != fakeAKID || scope[3] != "kms" || scope[4] != "aws4_request" {
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
	creds := aws.Credentials{AccessKeyID: fakeAKID, SecretAccessKey: fakeSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), "kms", region, when); err != nil {
		return err.Error()
	}
	if got := re.Header.Get("Authorization"); got != auth {
		return fmt.Sprintf("signature does not verify:\n got  %s\n want %s", auth, got)
	}
	return ""
}

func (f *fakeKMS) fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (f *fakeKMS) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

// resolve finds a key by ID, ARN or alias.
func (f *fakeKMS) resolve(w http.ResponseWriter, keyID any) *fakeKey {
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
func (f *fakeKMS) usable(w http.ResponseWriter, k *fakeKey) bool {
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

func (f *fakeKMS) describe(w http.ResponseWriter, req map[string]any) {
	k := f.resolve(w, req["KeyId"])
	if k == nil {
		return
	}
	f.reply(w, map[string]any{"KeyMetadata": map[string]any{
		"AWSAccountId": fakeAccount, "KeyId": k.id, "Arn": f.arn(k.id), "CreationDate": 1.7e9,
		"Enabled": k.state == "Enabled", "KeyState": k.state, "KeySpec": k.spec, "CustomerMasterKeySpec": k.spec,
		"KeyUsage": k.usage, "KeyManager": "CUSTOMER", "Origin": "AWS_KMS", "MultiRegion": false,
		"EncryptionAlgorithms": []string{"SYMMETRIC_DEFAULT"},
	}})
}

// contextAAD is a canonical form of an EncryptionContext, as KMS binds it.
func contextAADForTest(req map[string]any) []byte {
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

func (f *fakeKMS) gcm(k *fakeKey) cipher.AEAD {
	block, err := aes.NewCipher(k.material)
	require.NoError(f.t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(f.t, err)
	return aead
}

func (f *fakeKMS) encrypt(w http.ResponseWriter, req map[string]any) {
	k := f.resolve(w, req["KeyId"])
	if k == nil || !f.usable(w, k) {
		return
	}
	pt, err := base64.StdEncoding.DecodeString(req["Plaintext"].(string))
	require.NoError(f.t, err)
	// Blob: key ID length, key ID, nonce, sealed plaintext (real blobs also name the key).
	blob := binary.BigEndian.AppendUint16(nil, uint16(len(k.id)))
	blob = append(blob, k.id...)
	aead := f.gcm(k)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	blob = append(blob, nonce...)
	blob = aead.Seal(blob, nonce, pt, contextAADForTest(req))
	f.reply(w, map[string]any{"CiphertextBlob": blob, "KeyId": f.arn(k.id), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
}

func (f *fakeKMS) decrypt(w http.ResponseWriter, req map[string]any) {
	blob, err := base64.StdEncoding.DecodeString(req["CiphertextBlob"].(string))
	require.NoError(f.t, err)
	invalid := func() { f.fail(w, http.StatusBadRequest, "InvalidCiphertextException", "") }
	if len(blob) < 2 || len(blob) < 2+int(binary.BigEndian.Uint16(blob)) {
		invalid()
		return
	}
	var named *fakeKey
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
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], contextAADForTest(req))
	if err != nil {
		invalid()
		return
	}
	f.reply(w, map[string]any{"KeyId": f.arn(k.id), "Plaintext": pt, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
}

func kmsOptions(t *testing.T, endpoint, keyID string, clk *clock) KMSOptions {
	// Keep the developer's AWS configuration out of the test.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "")
	return KMSOptions{
		KeyID:        keyID,
		Region:       fakeRegion,
		Endpoint:     endpoint,
		Jurisdiction: "EU",
		Credentials:  credentials.NewStaticCredentialsProvider(fakeAKID, fakeSecret, ""),
		Clock:        clk.Now,
	}
}

func openKMS(t *testing.T, opts KMSOptions) *KMS {
	t.Helper()
	k, err := OpenKMS(context.Background(), opts)
	require.NoError(t, err)
	return k
}

func TestKMSProtocol(t *testing.T) {
	ctx := context.Background()
	f, url := newFakeKMS(t)
	arn := f.addKey("1234abcd-12ab-34cd-56ef-1234567890ab")
	f.alias["drflow-eu"] = "1234abcd-12ab-34cd-56ef-1234567890ab"

	k := openKMS(t, kmsOptions(t, url, "alias/drflow-eu", newClock()))
	assert.Equal(t, arn, k.ID(), "the alias resolves to the key ARN")
	assert.Equal(t, "EU", k.Jurisdiction())

	secret := fixedSecret(7)
	w, err := k.Wrap(ctx, secret, dekAAD("payroll", 7))
	require.NoError(t, err)
	assert.Equal(t, arn, w.KEKID)
	assert.False(t, k.NeedsRewrap(w))
	got, err := k.Unwrap(ctx, w, dekAAD("payroll", 7))
	require.NoError(t, err)
	assert.Equal(t, secret, got)

	calls := f.calls()
	require.Len(t, calls, 3)
	assert.Equal(t, kmsCall{Target: "TrentService.DescribeKey", Body: map[string]any{"KeyId": "alias/drflow-eu"}}, calls[0])
	wantContext := map[string]any{"dataset": "payroll", "epoch": "7"}
	assert.Equal(t, kmsCall{Target: "TrentService.Encrypt", Body: map[string]any{
		"KeyId": arn, "Plaintext": base64.StdEncoding.EncodeToString(secret), "EncryptionContext": wantContext,
	}}, calls[1])
	assert.Equal(t, kmsCall{Target: "TrentService.Decrypt", Body: map[string]any{
		"KeyId": arn, "CiphertextBlob": base64.StdEncoding.EncodeToString(w.Ciphertext), "EncryptionContext": wantContext,
	}}, calls[2])

	f.mu.Lock()
	assert.Equal(t, []string{fakeRegion, fakeRegion, fakeRegion}, f.regions, "requests are signed for the key's region")
	f.mu.Unlock()

	// Additional data that is not a DEK's travels whole, base64url.
	_, err = k.Wrap(ctx, secret, []byte{0xfb, 0xff})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"aad": "-_8"}, f.calls()[3].Body["EncryptionContext"])
}

func TestKMSErrorsMapOntoSentinels(t *testing.T) {
	ctx := context.Background()
	const id = "key-1"
	aad := dekAAD("payroll", 1)
	tests := []struct {
		name   string
		break_ func(f *fakeKMS)
		w      func(w Wrapped) Wrapped
		aad    []byte
		want   error
		code   string
	}{
		{"disabled", func(f *fakeKMS) { f.setState(id, "Disabled") }, nil, aad, ErrRevoked, "DisabledException"},
		{"pending deletion", func(f *fakeKMS) { f.setState(id, "PendingDeletion") }, nil, aad, ErrRevoked, "KMSInvalidStateException"},
		{"deleted", func(f *fakeKMS) { f.mu.Lock(); delete(f.keys, id); f.mu.Unlock() }, nil, aad, ErrRevoked, "NotFoundException"},
		{"access denied", func(f *fakeKMS) { f.mu.Lock(); f.denied = true; f.mu.Unlock() }, nil, aad, providers.ErrPermission, "AccessDeniedException"},
		{"tampered ciphertext", nil, func(w Wrapped) Wrapped {
			w.Ciphertext = bytes.Clone(w.Ciphertext)
			w.Ciphertext[len(w.Ciphertext)-1] ^= 1
			return w
		}, aad, ErrIntegrity, "InvalidCiphertextException"},
		{"other dataset", nil, nil, dekAAD("billing", 1), ErrIntegrity, "InvalidCiphertextException"},
		{"other epoch", nil, nil, dekAAD("payroll", 2), ErrIntegrity, "InvalidCiphertextException"},
		{"wrapped by another key", func(f *fakeKMS) { f.addKey("key-2") }, func(w Wrapped) Wrapped {
			w.Ciphertext = bytes.Replace(w.Ciphertext, []byte("key-1"), []byte("key-2"), 1)
			return w
		}, aad, ErrIntegrity, "IncorrectKeyException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, url := newFakeKMS(t)
			f.addKey(id)
			k := openKMS(t, kmsOptions(t, url, id, newClock()))
			w, err := k.Wrap(ctx, fixedSecret(1), aad)
			require.NoError(t, err)
			if tt.break_ != nil {
				tt.break_(f)
			}
			if tt.w != nil {
				w = tt.w(w)
			}
			_, err = k.Unwrap(ctx, w, tt.aad)
			require.ErrorIs(t, err, tt.want)
			var apiErr smithy.APIError
			require.ErrorAs(t, err, &apiErr, "the SDK error stays reachable")
			assert.Equal(t, tt.code, apiErr.ErrorCode())
			if errors.Is(tt.want, ErrRevoked) {
				_, err = k.Wrap(ctx, fixedSecret(1), aad)
				require.ErrorIs(t, err, ErrRevoked)
				require.ErrorIs(t, k.Check(ctx, w), ErrRevoked, "a revocation seen by a call is seen by Check at once")
			}
		})
	}
}

func TestTranslateError(t *testing.T) {
	tests := []struct {
		code string
		want error // nil: returned unchanged (retryable)
	}{
		{"DisabledException", ErrRevoked},
		{"KMSInvalidStateException", ErrRevoked},
		{"NotFoundException", ErrRevoked},
		{"InvalidCiphertextException", ErrIntegrity},
		{"IncorrectKeyException", ErrIntegrity},
		{"AccessDeniedException", providers.ErrPermission},
		{"InvalidKeyUsageException", providers.ErrInvalidArgument},
		{"KMSInternalException", nil},
		{"KeyUnavailableException", nil},
		{"DependencyTimeoutException", nil},
		{"ThrottlingException", nil},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			in := &smithy.OperationError{ServiceID: "KMS", OperationName: "Decrypt", Err: &smithy.GenericAPIError{Code: tt.code}}
			got := translateError(in)
			if tt.want == nil {
				assert.Same(t, error(in), got)
				return
			}
			require.ErrorIs(t, got, tt.want)
			require.ErrorIs(t, got, in)
		})
	}
	plain := errors.New("connection refused")
	assert.Same(t, plain, translateError(plain))
}

func TestOpenKMSRefuses(t *testing.T) {
	ctx := context.Background()
	f, url := newFakeKMS(t)
	f.addKey("good")
	f.addKey("signing")
	f.keys["signing"].spec, f.keys["signing"].usage = "ECC_NIST_P256", "SIGN_VERIFY"

	tests := []struct {
		name   string
		change func(o *KMSOptions)
		want   string
	}{
		{"missing key", func(o *KMSOptions) { o.KeyID = "nope" }, "does not exist"},
		{"signing key", func(o *KMSOptions) { o.KeyID = "signing" }, "SIGN_VERIFY"},
		{"key in another region", func(o *KMSOptions) { o.Region = "eu-west-1" }, `is in region "eu-central-1", not eu-west-1`},
		{"bad endpoint", func(o *KMSOptions) { o.Endpoint = "localhost:4566" }, "not an http(s) URL"},
		{"no key", func(o *KMSOptions) { o.KeyID = "" }, "empty key id"},
		{"no jurisdiction", func(o *KMSOptions) { o.Jurisdiction = "" }, "empty jurisdiction"},
		{"previous key not an ARN", func(o *KMSOptions) { o.PreviousKeyARNs = []string{"old"} }, "not an ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := kmsOptions(t, url, "good", newClock())
			tt.change(&o)
			_, err := OpenKMS(ctx, o)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestKMSRefusesUntrustedKeys(t *testing.T) {
	ctx := context.Background()
	f, url := newFakeKMS(t)
	f.addKey("ours")
	theirs := f.addKey("attacker")
	k := openKMS(t, kmsOptions(t, url, "ours", newClock()))
	before := len(f.calls())

	// A DEK wrapped by a key someone else controls, planted in a store, is refused without
	// asking KMS: drflow must not adopt a data key that another party knows.
	planted := Wrapped{KEKID: theirs, Ciphertext: []byte("whatever")}
	_, err := k.Unwrap(ctx, planted, dekAAD("payroll", 1))
	require.ErrorIs(t, err, ErrUnknownKEK)
	require.ErrorIs(t, k.Check(ctx, planted), ErrUnknownKEK)
	assert.Len(t, f.calls(), before)
}

func TestKMSManager(t *testing.T) {
	ctx := context.Background()
	f, url := newFakeKMS(t)
	arn := f.addKey("eu-key")
	rec, clk := &recorder{}, newClock()
	st := newStore(t, "eu-primary")
	kek := openKMS(t, kmsOptions(t, url, "eu-key", clk))
	m := newManager(t, kek, rec, clk)

	key, err := m.Current(ctx, st, "payroll")
	require.NoError(t, err)
	var obj keyObject
	require.NoError(t, json.Unmarshal(getObject(t, st, KeyObjectKey("payroll", 1)), &obj))
	assert.Equal(t, arn, obj.KEKID)
	assert.Equal(t, []string{"wrap ok"}, rec.ops())
	assert.Equal(t, arn, rec.all()[0].KeyID)

	f.setState("eu-key", "Disabled")

	// A new process asks KMS and is refused at once.
	fresh := newManager(t, openKMS(t, kmsOptions(t, url, "eu-key", clk)), rec, clk)
	_, err = fresh.Epoch(ctx, st, "payroll", 1)
	require.ErrorIs(t, err, ErrRevoked)

	// A process holding the key in its cache keeps it until its last DescribeKey is
	// StateTTL old, then is refused too.
	cached, err := m.Current(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Same(t, key, cached)
	clk.Advance(DefaultKMSStateTTL)
	_, err = m.Current(ctx, st, "payroll")
	require.ErrorIs(t, err, ErrRevoked)
	assert.Contains(t, f.targets(), "TrentService.DescribeKey")
	assert.Equal(t, []string{"wrap ok", "unwrap denied", "unwrap denied"}, rec.ops())

	// Disabling a KMS key is reversible; enabling it again restores access.
	f.setState("eu-key", "Enabled")
	clk.Advance(DefaultKMSStateTTL)
	again, err := m.Current(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, key.ChunkID([]byte("x")), again.ChunkID([]byte("x")))
}

func TestKMSRewrapToNewKey(t *testing.T) {
	ctx := context.Background()
	f, url := newFakeKMS(t)
	oldARN := f.addKey("old-key")
	newARN := f.addKey("new-key")
	rec, clk := &recorder{}, newClock()
	st := newStore(t, "eu-primary")
	before, err := newManager(t, openKMS(t, kmsOptions(t, url, "old-key", clk)), rec, clk).Current(ctx, st, "payroll")
	require.NoError(t, err)

	opts := kmsOptions(t, url, "new-key", clk)
	_, err = newManager(t, openKMS(t, opts), rec, clk).Epoch(ctx, st, "payroll", 1)
	require.ErrorIs(t, err, ErrUnknownKEK, "the old key is not trusted unless listed")

	opts.PreviousKeyARNs = []string{oldARN}
	m := newManager(t, openKMS(t, opts), rec, clk)
	n, err := m.RewrapKEK(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var obj keyObject
	require.NoError(t, json.Unmarshal(getObject(t, st, KeyObjectKey("payroll", 1)), &obj))
	assert.Equal(t, newARN, obj.KEKID)

	f.setState("old-key", "PendingDeletion")
	after, err := newManager(t, openKMS(t, opts), rec, clk).Current(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, before.ChunkID([]byte("x")), after.ChunkID([]byte("x")), "same DEK, new wrap")
	n, err = m.RewrapKEK(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Zero(t, n)
}
