package codec

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

var t0 = time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)

// drillResult stands for what drflow puts in payloads: names and figures.
type drillResult struct {
	Dataset    string  `json:"dataset"`
	RTOSeconds float64 `json:"rto_seconds"`
}

func newKeyring(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payload.keyring")
	_, err := CreateKeyring(path, t0)
	require.NoError(t, err)
	return path
}

func TestRoundTripHidesPlaintext(t *testing.T) {
	c, err := Open(newKeyring(t))
	require.NoError(t, err)
	dc := c.DataConverter()
	in := drillResult{Dataset: "customers-eu", RTOSeconds: 4.25}
	p, err := dc.ToPayload(in)
	require.NoError(t, err)
	assert.Equal(t, EncodingEncrypted, string(p.Metadata[converter.MetadataEncoding]))
	assert.Equal(t, c.ActiveKey(), string(p.Metadata[MetadataKeyID]))
	assert.NotContains(t, string(p.Data), "customers-eu", "the payload is sealed")
	assert.NotContains(t, string(p.Data), "json/plain", "the inner metadata is sealed too")

	var out drillResult
	require.NoError(t, dc.FromPayload(p, &out))
	assert.Equal(t, in, out)

	// Two encodings of one value differ (fresh nonce).
	p2, err := dc.ToPayload(in)
	require.NoError(t, err)
	assert.NotEqual(t, p.Data, p2.Data)
}

func TestRotationKeepsOldPayloadsReadable(t *testing.T) {
	path := newKeyring(t)
	old, err := Open(path)
	require.NoError(t, err)
	sealed, err := old.DataConverter().ToPayload("before rotation")
	require.NoError(t, err)

	k, err := RotateKeyring(path, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, k.Keys, 2)
	c, err := Open(path)
	require.NoError(t, err)
	assert.NotEqual(t, old.ActiveKey(), c.ActiveKey())

	var s string
	require.NoError(t, c.DataConverter().FromPayload(sealed, &s))
	assert.Equal(t, "before rotation", s)
	fresh, err := c.DataConverter().ToPayload("after")
	require.NoError(t, err)
	assert.Equal(t, c.ActiveKey(), string(fresh.Metadata[MetadataKeyID]))

	// The old keyring alone cannot read what the new key sealed.
	err = old.DataConverter().FromPayload(fresh, &s)
	require.ErrorIs(t, err, ErrUnknownKey)
	assert.Contains(t, err.Error(), c.ActiveKey())
}

func TestDecodeRefusesAlteredPayloads(t *testing.T) {
	c, err := Open(newKeyring(t))
	require.NoError(t, err)
	p, err := c.DataConverter().ToPayload("figures")
	require.NoError(t, err)

	flipped := cloneWith(p, func(q *commonpb.Payload) { q.Data[len(q.Data)-1] ^= 1 })
	_, err = c.Decode([]*commonpb.Payload{flipped})
	assert.ErrorContains(t, err, "does not authenticate")

	short := cloneWith(p, func(q *commonpb.Payload) { q.Data = q.Data[:10] })
	_, err = c.Decode([]*commonpb.Payload{short})
	assert.ErrorContains(t, err, "too short")

	// Another key ID on the same bytes: the ID is bound to the ciphertext.
	relabelled := cloneWith(p, func(q *commonpb.Payload) { q.Metadata[MetadataKeyID] = []byte("k-other") })
	_, err = c.Decode([]*commonpb.Payload{relabelled})
	assert.ErrorIs(t, err, ErrUnknownKey)
}

func TestDecodePassesUnsealedPayloadsThrough(t *testing.T) {
	c, err := Open(newKeyring(t))
	require.NoError(t, err)
	plain, err := converter.GetDefaultDataConverter().ToPayload("written before the codec")
	require.NoError(t, err)
	out, err := c.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.Same(t, plain, out[0])
}

func cloneWith(p *commonpb.Payload, change func(*commonpb.Payload)) *commonpb.Payload {
	q := &commonpb.Payload{Metadata: map[string][]byte{}, Data: bytes.Clone(p.Data)}
	for k, v := range p.Metadata {
		q.Metadata[k] = bytes.Clone(v)
	}
	change(q)
	return q
}

func TestKeyringChecks(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadKeyring(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, ErrNoKeyring)
	assert.ErrorContains(t, err, "drflow codec-key create")

	path := newKeyring(t)
	_, err = CreateKeyring(path, t0)
	assert.Error(t, err, "create never overwrites a keyring")
	_, err = RotateKeyring(filepath.Join(dir, "missing"), t0)
	assert.ErrorIs(t, err, ErrNoKeyring, "rotate needs a keyring")

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = LoadKeyring(path)
	assert.ErrorContains(t, err, "lets others read it")
	require.NoError(t, os.Chmod(path, 0o600))

	for name, tc := range map[string]struct {
		edit func(*Keyring)
		want string
	}{
		"short key":      {func(k *Keyring) { k.Keys[0].Key = k.Keys[0].Key[:16] }, "16 bytes, want 32"},
		"unknown active": {func(k *Keyring) { k.Active = "nope" }, `active: "nope" is not one of the keys`},
		"duplicate id":   {func(k *Keyring) { k.Keys = append(k.Keys, k.Keys[0]) }, "appears twice"},
		"no keys":        {func(k *Keyring) { k.Keys = nil }, "keys: empty"},
		"format":         {func(k *Keyring) { k.Format = 9 }, "format 9"},
	} {
		t.Run(name, func(t *testing.T) {
			k, err := LoadKeyring(path)
			require.NoError(t, err)
			tc.edit(k)
			bad := filepath.Join(t.TempDir(), "bad")
			data, err := json.Marshal(k)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(bad, data, 0o600))
			_, err = LoadKeyring(bad)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	k, err := LoadOrCreateKeyring(filepath.Join(dir, "sub", "new"), t0)
	require.NoError(t, err)
	again, err := LoadOrCreateKeyring(filepath.Join(dir, "sub", "new"), t0.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, k.Keys, again.Keys, "an existing keyring is loaded, not replaced")
}

func TestServer(t *testing.T) {
	c, err := Open(newKeyring(t))
	require.NoError(t, err)
	const ui = "http://127.0.0.1:8233"
	srv := httptest.NewServer(Handler(c, ServerOptions{UIOrigins: []string{"http://localhost:8233", ui}, Namespaces: []string{"default"}}))
	t.Cleanup(srv.Close)
	sealed, err := c.DataConverter().ToPayload(drillResult{Dataset: "customers-eu", RTOSeconds: 1.5})
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{sealed}})
	require.NoError(t, err)

	post := func(path, origin string, hdr map[string]string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	decoded := func(resp *http.Response) string {
		var out commonpb.Payloads
		var raw bytes.Buffer
		_, err := raw.ReadFrom(resp.Body)
		require.NoError(t, err)
		require.NoError(t, protojson.Unmarshal(raw.Bytes(), &out), raw.String())
		require.Len(t, out.Payloads, 1)
		return string(out.Payloads[0].Data)
	}

	for _, path := range []string{"/default/decode", "/decode"} {
		resp := post(path, ui, map[string]string{"X-Namespace": "default"})
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, ui, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.JSONEq(t, `{"dataset":"customers-eu","rto_seconds":1.5}`, decoded(resp), path)
	}

	// The browser's preflight.
	req, err := http.NewRequest(http.MethodOptions, srv.URL+"/default/decode", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", ui)
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, ui, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace")

	// Refusals: another origin, another namespace, an unknown path.
	resp = post("/default/decode", "http://evil.example", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, http.StatusForbidden, post("/other/decode", "", nil).StatusCode)
	assert.Equal(t, http.StatusNotFound, post("/default/x/decode", "", nil).StatusCode)

	// Encode then decode through the server returns the value (the CLI's round trip).
	plain, err := converter.GetDefaultDataConverter().ToPayload("typed in the UI")
	require.NoError(t, err)
	body, err = protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{plain}})
	require.NoError(t, err)
	resp = post("/default/encode", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var raw bytes.Buffer
	_, err = raw.ReadFrom(resp.Body)
	require.NoError(t, err)
	assert.NotContains(t, raw.String(), "typed in the UI")
	var enc commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(raw.Bytes(), &enc))
	require.Len(t, enc.Payloads, 1)
	assert.Equal(t, EncodingEncrypted, string(enc.Payloads[0].Metadata[converter.MetadataEncoding]))
	var back string
	require.NoError(t, c.DataConverter().FromPayload(enc.Payloads[0], &back))
	assert.Equal(t, "typed in the UI", back)
}
