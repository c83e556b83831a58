package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/keys/kmstest"
	"github.com/drflow/drflow/providers"
)

func kmsOptions(t *testing.T, endpoint, keyID string, clk *clock) KMSOptions {
	// Keep the developer's AWS configuration out of the test.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "")
	return KMSOptions{
		KeyID:        keyID,
		Region:       kmstest.Region,
		Endpoint:     endpoint,
		Jurisdiction: "EU",
		Credentials:  credentials.NewStaticCredentialsProvider(kmstest.AccessKeyID, kmstest.SecretAccessKey, ""),
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
	f := kmstest.NewServer(t)
	url := f.URL()
	arn := f.AddKey("1234abcd-12ab-34cd-56ef-1234567890ab")
	f.AddAlias("drflow-eu", "1234abcd-12ab-34cd-56ef-1234567890ab")

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

	calls := f.Calls()
	require.Len(t, calls, 3)
	assert.Equal(t, kmstest.Call{Target: "TrentService.DescribeKey", Body: map[string]any{"KeyId": "alias/drflow-eu"}}, calls[0])
	wantContext := map[string]any{"dataset": "payroll", "epoch": "7"}
	assert.Equal(t, kmstest.Call{Target: "TrentService.Encrypt", Body: map[string]any{
		"KeyId": arn, "Plaintext": base64.StdEncoding.EncodeToString(secret), "EncryptionContext": wantContext,
	}}, calls[1])
	assert.Equal(t, kmstest.Call{Target: "TrentService.Decrypt", Body: map[string]any{
		"KeyId": arn, "CiphertextBlob": base64.StdEncoding.EncodeToString(w.Ciphertext), "EncryptionContext": wantContext,
	}}, calls[2])

	assert.Equal(t, []string{kmstest.Region, kmstest.Region, kmstest.Region}, f.Regions(), "requests are signed for the key's region")

	// Additional data that is not a DEK's travels whole, base64url.
	_, err = k.Wrap(ctx, secret, []byte{0xfb, 0xff})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"aad": "-_8"}, f.Calls()[3].Body["EncryptionContext"])
}

func TestKMSErrorsMapOntoSentinels(t *testing.T) {
	ctx := context.Background()
	const id = "key-1"
	aad := dekAAD("payroll", 1)
	tests := []struct {
		name   string
		break_ func(f *kmstest.Server)
		w      func(w Wrapped) Wrapped
		aad    []byte
		want   error
		code   string
	}{
		{"disabled", func(f *kmstest.Server) { f.SetState(id, "Disabled") }, nil, aad, ErrRevoked, "DisabledException"},
		{"pending deletion", func(f *kmstest.Server) { f.SetState(id, "PendingDeletion") }, nil, aad, ErrRevoked, "KMSInvalidStateException"},
		{"deleted", func(f *kmstest.Server) { f.DeleteKey(id) }, nil, aad, ErrRevoked, "NotFoundException"},
		{"access denied", func(f *kmstest.Server) { f.SetDenied(true) }, nil, aad, providers.ErrPermission, "AccessDeniedException"},
		{"tampered ciphertext", nil, func(w Wrapped) Wrapped {
			w.Ciphertext = bytes.Clone(w.Ciphertext)
			w.Ciphertext[len(w.Ciphertext)-1] ^= 1
			return w
		}, aad, ErrIntegrity, "InvalidCiphertextException"},
		{"other dataset", nil, nil, dekAAD("billing", 1), ErrIntegrity, "InvalidCiphertextException"},
		{"other epoch", nil, nil, dekAAD("payroll", 2), ErrIntegrity, "InvalidCiphertextException"},
		{"wrapped by another key", func(f *kmstest.Server) { f.AddKey("key-2") }, func(w Wrapped) Wrapped {
			w.Ciphertext = bytes.Replace(w.Ciphertext, []byte("key-1"), []byte("key-2"), 1)
			return w
		}, aad, ErrIntegrity, "IncorrectKeyException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := kmstest.NewServer(t)
			url := f.URL()
			f.AddKey(id)
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
	f := kmstest.NewServer(t)
	url := f.URL()
	f.AddKey("good")
	f.AddKey("signing")
	f.SetSpec("signing", "ECC_NIST_P256", "SIGN_VERIFY")

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
	f := kmstest.NewServer(t)
	url := f.URL()
	f.AddKey("ours")
	theirs := f.AddKey("attacker")
	k := openKMS(t, kmsOptions(t, url, "ours", newClock()))
	before := len(f.Calls())

	// A DEK wrapped by a key someone else controls, planted in a store, is refused without
	// asking KMS: drflow must not adopt a data key that another party knows.
	planted := Wrapped{KEKID: theirs, Ciphertext: []byte("whatever")}
	_, err := k.Unwrap(ctx, planted, dekAAD("payroll", 1))
	require.ErrorIs(t, err, ErrUnknownKEK)
	require.ErrorIs(t, k.Check(ctx, planted), ErrUnknownKEK)
	assert.Len(t, f.Calls(), before)
}

func TestKMSManager(t *testing.T) {
	ctx := context.Background()
	f := kmstest.NewServer(t)
	url := f.URL()
	arn := f.AddKey("eu-key")
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

	f.SetState("eu-key", "Disabled")

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
	assert.Contains(t, f.Targets(), "TrentService.DescribeKey")
	assert.Equal(t, []string{"wrap ok", "unwrap denied", "unwrap denied"}, rec.ops())

	// Disabling a KMS key is reversible; enabling it again restores access.
	f.SetState("eu-key", "Enabled")
	clk.Advance(DefaultKMSStateTTL)
	again, err := m.Current(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, key.ChunkID([]byte("x")), again.ChunkID([]byte("x")))
}

func TestKMSRewrapToNewKey(t *testing.T) {
	ctx := context.Background()
	f := kmstest.NewServer(t)
	url := f.URL()
	oldARN := f.AddKey("old-key")
	newARN := f.AddKey("new-key")
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

	f.SetState("old-key", "PendingDeletion")
	after, err := newManager(t, openKMS(t, opts), rec, clk).Current(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Equal(t, before.ChunkID([]byte("x")), after.ChunkID([]byte("x")), "same DEK, new wrap")
	n, err = m.RewrapKEK(ctx, st, "payroll")
	require.NoError(t, err)
	assert.Zero(t, n)
}
