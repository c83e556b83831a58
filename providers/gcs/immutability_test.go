package gcs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/gcs"
	"github.com/drflow/drflow/providers/gcs/gcstest"
	"github.com/drflow/drflow/providers/storetest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openProtocol(t *testing.T, p *gcstest.Server, chunkSize int) *gcs.Store {
	t.Helper()
	return gcstest.OpenStoreWith(t, p, gcs.Options{Prefix: "dr", ChunkSize: chunkSize})
}

// body decodes a logged JSON field.
func body(t *testing.T, req gcstest.Request, field string) any {
	t.Helper()
	raw, ok := req.Body[field]
	if !ok {
		return "<absent>"
	}
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

func only(t *testing.T, reqs []gcstest.Request) gcstest.Request {
	t.Helper()
	require.Len(t, reqs, 1)
	return reqs[0]
}

func read(t *testing.T, st providers.Store, key string) string {
	t.Helper()
	rc, err := st.Get(testContext(t), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(data)
}

// TestHoldsAndRetentionAgainstGCSProtocol proves the hold and retention flows, request by
// request, against a server that enforces them as Cloud Storage does.
func TestHoldsAndRetentionAgainstGCSProtocol(t *testing.T) {
	p := gcstest.NewServer(t, "vault")
	st := openProtocol(t, p, 0)
	ctx := testContext(t)
	put := func(key, content string, opts providers.PutOptions) error {
		_, err := st.Put(ctx, key, strings.NewReader(content), opts)
		return err
	}

	t.Run("capabilities", func(t *testing.T) {
		caps := st.Capabilities()
		assert.True(t, caps.LegalHold)
		assert.True(t, caps.Retention)
		assert.True(t, caps.ServerEnforced, "Cloud Storage itself refuses to delete held objects")
		assert.Equal(t, []providers.RetentionMode{providers.Governance, providers.Compliance}, caps.RetentionModes)
		assert.True(t, caps.ConditionalCreate)
		assert.Contains(t, caps.Note, "object retention is enabled")
		assert.Equal(t, providers.Location{Provider: "gcs", Bucket: "vault", Prefix: "dr", Endpoint: p.Endpoint(), Region: "EUROPE-WEST3"}, st.Location())
		assert.Len(t, p.Requests("bucket.get", ""), 1)
	})

	t.Run("hold blocks delete and overwrite until released", func(t *testing.T) {
		require.NoError(t, put("held", "evidence", providers.PutOptions{}))
		p.ResetLog()
		require.NoError(t, st.SetLegalHold(ctx, "held", true))
		patch := only(t, p.Requests("objects.patch", "dr/held"))
		assert.Equal(t, true, body(t, patch, "temporaryHold"))
		assert.Equal(t, "<absent>", body(t, patch, "retention"), "a hold patch leaves retention alone")
		assert.False(t, patch.Query.Has("overrideUnlockedRetention"))

		info, err := st.Stat(ctx, "held")
		require.NoError(t, err)
		assert.True(t, info.LegalHold)

		assert.ErrorIs(t, st.Delete(ctx, "held"), providers.ErrImmutable)
		assert.Len(t, p.Requests("objects.delete", "dr/held"), 1, "the server refused the delete")
		assert.ErrorIs(t, put("held", "tampered", providers.PutOptions{}), providers.ErrImmutable)
		assert.Empty(t, p.Requests("objects.insert", "dr/held"), "an overwrite of a held object sends no data")
		assert.Equal(t, "evidence", read(t, st, "held"))

		require.NoError(t, st.SetLegalHold(ctx, "held", false))
		assert.Equal(t, false, body(t, p.Requests("objects.patch", "dr/held")[1], "temporaryHold"))
		info, err = st.Stat(ctx, "held")
		require.NoError(t, err)
		assert.False(t, info.LegalHold)
		require.NoError(t, put("held", "replaced", providers.PutOptions{}))
		require.NoError(t, st.Delete(ctx, "held"))
	})

	t.Run("server refuses an overwrite that a hold placed after the check protects", func(t *testing.T) {
		require.NoError(t, put("racy", "original", providers.PutOptions{}))
		p.AfterGet(func(name string) {
			assert.True(t, p.SetTemporaryHold(name, true), "another client's hold, just in time")
		})
		p.ResetLog()
		err := put("racy", "tampered", providers.PutOptions{})
		assert.ErrorIs(t, err, providers.ErrImmutable)
		assert.Contains(t, err.Error(), "under active Temporary hold")
		assert.Len(t, p.Requests("objects.insert", "dr/racy"), 1, "the upload reached the server, which refused it")
		assert.Equal(t, "original", read(t, st, "racy"))
		require.NoError(t, st.SetLegalHold(ctx, "racy", false))
		require.NoError(t, st.Delete(ctx, "racy"))
	})

	t.Run("hold placed with the write", func(t *testing.T) {
		p.ResetLog()
		require.NoError(t, put("held-at-put", "x", providers.PutOptions{LegalHold: true, ContentType: "text/plain"}))
		insert := only(t, p.Requests("objects.insert", "dr/held-at-put"))
		assert.Equal(t, "multipart", insert.Query.Get("uploadType"))
		assert.Equal(t, true, body(t, insert, "temporaryHold"))
		assert.Equal(t, "text/plain", body(t, insert, "contentType"))
		assert.Equal(t, "<absent>", body(t, insert, "retention"))
		info, err := st.Stat(ctx, "held-at-put")
		require.NoError(t, err)
		assert.True(t, info.LegalHold)
		assert.ErrorIs(t, st.Delete(ctx, "held-at-put"), providers.ErrImmutable)
		require.NoError(t, st.SetLegalHold(ctx, "held-at-put", false))
		require.NoError(t, st.Delete(ctx, "held-at-put"))

		// A resumable upload carries the hold in its first request.
		chunked := openProtocol(t, p, 256<<10)
		data := bytes.Repeat([]byte("0123456789abcdef"), 600<<10/16)
		p.ResetLog()
		_, err = chunked.Put(ctx, "held-large", bytes.NewReader(data), providers.PutOptions{LegalHold: true})
		require.NoError(t, err)
		insert = only(t, p.Requests("objects.insert", "dr/held-large"))
		assert.Equal(t, "resumable", insert.Query.Get("uploadType"))
		assert.Equal(t, true, body(t, insert, "temporaryHold"))
		assert.Len(t, p.Requests("objects.upload", "dr/held-large"), 3, "600 KiB in 256 KiB chunks")
		assert.Equal(t, string(data), read(t, st, "held-large"))
		assert.ErrorIs(t, st.Delete(ctx, "held-large"), providers.ErrImmutable)
		require.NoError(t, st.SetLegalHold(ctx, "held-large", false))
		require.NoError(t, st.Delete(ctx, "held-large"))
	})

	t.Run("unlocked retention: blocks, extends, shortens and goes only with the override", func(t *testing.T) {
		require.NoError(t, put("gov", "restore point", providers.PutOptions{}))
		until := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
		p.ResetLog()
		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{Mode: providers.Governance, Until: until}))
		set := p.Requests("objects.patch", "dr/gov")[0]
		assert.Equal(t, map[string]any{"mode": "Unlocked", "retainUntilTime": until.UTC().Format(time.RFC3339)}, body(t, set, "retention"))
		assert.False(t, set.Query.Has("overrideUnlockedRetention"), "setting a first retention needs no override")

		info, err := st.Stat(ctx, "gov")
		require.NoError(t, err)
		assert.Equal(t, providers.Retention{Mode: providers.Governance, Until: until}, utc(info.Retention))
		assert.ErrorIs(t, st.Delete(ctx, "gov"), providers.ErrImmutable)
		assert.ErrorIs(t, put("gov", "tampered", providers.PutOptions{}), providers.ErrImmutable)
		assert.Equal(t, "restore point", read(t, st, "gov"))

		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{Mode: providers.Governance, Until: until.Add(time.Hour)}))
		extend := p.Requests("objects.patch", "dr/gov")[1]
		assert.False(t, extend.Query.Has("overrideUnlockedRetention"), "extending needs no override")

		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{Mode: providers.Governance, Until: until.Add(-30 * time.Minute)}))
		shorten := p.Requests("objects.patch", "dr/gov")[2]
		assert.Equal(t, "true", shorten.Query.Get("overrideUnlockedRetention"), "shortening needs the override")
		info, err = st.Stat(ctx, "gov")
		require.NoError(t, err)
		assert.Equal(t, until.Add(-30*time.Minute), info.Retention.Until.UTC())

		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{}))
		remove := p.Requests("objects.patch", "dr/gov")[3]
		assert.Equal(t, "true", remove.Query.Get("overrideUnlockedRetention"), "removing needs the override")
		assert.Nil(t, body(t, remove, "retention"), "removal sends retention: null")
		info, err = st.Stat(ctx, "gov")
		require.NoError(t, err)
		assert.Zero(t, info.Retention)
		require.NoError(t, st.Delete(ctx, "gov"))
	})

	t.Run("locked retention cannot be shortened, removed or unlocked", func(t *testing.T) {
		until := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
		p.ResetLog()
		require.NoError(t, put("locked", "restore point", providers.PutOptions{Retention: providers.Retention{Mode: providers.Compliance, Until: until}}))
		insert := only(t, p.Requests("objects.insert", "dr/locked"))
		assert.Equal(t, map[string]any{"mode": "Locked", "retainUntilTime": until.UTC().Format(time.RFC3339)}, body(t, insert, "retention"))
		info, err := st.Stat(ctx, "locked")
		require.NoError(t, err)
		assert.Equal(t, providers.Retention{Mode: providers.Compliance, Until: until}, utc(info.Retention))

		for _, r := range []providers.Retention{
			{Mode: providers.Compliance, Until: until.Add(-time.Minute)},
			{},
			{Mode: providers.Governance, Until: until.Add(time.Hour)},
		} {
			assert.ErrorIs(t, st.SetRetention(ctx, "locked", r), providers.ErrImmutable, "%+v", r)
		}
		patches := p.Requests("objects.patch", "dr/locked")
		require.Len(t, patches, 3, "each refusal is the server's")
		for _, patch := range patches {
			assert.False(t, patch.Query.Has("overrideUnlockedRetention"), "no override for a Locked retention")
		}
		require.NoError(t, st.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Compliance, Until: until.Add(time.Hour)}), "extend")
		assert.ErrorIs(t, st.Delete(ctx, "locked"), providers.ErrImmutable)
		assert.ErrorIs(t, put("locked", "tampered", providers.PutOptions{}), providers.ErrImmutable)
		info, err = st.Stat(ctx, "locked")
		require.NoError(t, err)
		assert.Equal(t, providers.Retention{Mode: providers.Compliance, Until: until.Add(time.Hour)}, utc(info.Retention))
	})

	t.Run("locking an unlocked retention sends the override", func(t *testing.T) {
		until := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
		require.NoError(t, put("upgrade", "x", providers.PutOptions{Retention: providers.Retention{Mode: providers.Governance, Until: until}}))
		p.ResetLog()
		require.NoError(t, st.SetRetention(ctx, "upgrade", providers.Retention{Mode: providers.Compliance, Until: until}))
		assert.Equal(t, "true", only(t, p.Requests("objects.patch", "dr/upgrade")).Query.Get("overrideUnlockedRetention"))
		info, err := st.Stat(ctx, "upgrade")
		require.NoError(t, err)
		assert.Equal(t, providers.Compliance, info.Retention.Mode)
	})

	t.Run("retain-until is rounded up to the second the API carries", func(t *testing.T) {
		require.NoError(t, put("rounded", "x", providers.PutOptions{}))
		until := time.Now().Add(time.Hour).Truncate(time.Second).Add(300 * time.Millisecond)
		p.ResetLog()
		require.NoError(t, st.SetRetention(ctx, "rounded", providers.Retention{Mode: providers.Governance, Until: until}))
		sent := body(t, only(t, p.Requests("objects.patch", "dr/rounded")), "retention").(map[string]any)["retainUntilTime"]
		assert.Equal(t, until.Truncate(time.Second).Add(time.Second).UTC().Format(time.RFC3339), sent, "never shorter than asked")
	})

	t.Run("conditional create", func(t *testing.T) {
		p.ResetLog()
		require.NoError(t, put("once", "first", providers.PutOptions{IfNotExists: true}))
		assert.ErrorIs(t, put("once", "second", providers.PutOptions{IfNotExists: true}), providers.ErrExists)
		inserts := p.Requests("objects.insert", "dr/once")
		require.Len(t, inserts, 2)
		for _, insert := range inserts {
			assert.Equal(t, "0", insert.Query.Get("ifGenerationMatch"))
		}
		assert.Empty(t, p.Requests("objects.get", "dr/once"), "a conditional create needs no check first")
		assert.Equal(t, "first", read(t, st, "once"))
	})

	t.Run("missing objects", func(t *testing.T) {
		assert.ErrorIs(t, st.SetLegalHold(ctx, "missing", true), providers.ErrNotFound)
		assert.ErrorIs(t, st.SetRetention(ctx, "missing", providers.Retention{Mode: providers.Governance, Until: time.Now().Add(time.Hour)}), providers.ErrNotFound)
		assert.ErrorIs(t, st.Delete(ctx, "missing"), providers.ErrNotFound)
		_, err := st.Stat(ctx, "missing")
		assert.ErrorIs(t, err, providers.ErrNotFound)
	})
}

func utc(r providers.Retention) providers.Retention {
	r.Until = r.Until.UTC()
	return r
}

// TestConformanceAgainstGCSProtocol runs the whole conformance suite, immutability cases
// included, against the enforcing protocol server. Uploads use 256 KiB chunks so that both
// upload kinds run; the streamed round trip is small because this server keeps objects in
// the test's own heap (fake-gcs-server covers the 96 MiB one).
func TestConformanceAgainstGCSProtocol(t *testing.T) {
	storetest.Run(t, func(t *testing.T) providers.Store {
		return gcstest.OpenStoreWith(t, gcstest.NewServer(t, "suite"), gcs.Options{ChunkSize: 256 << 10})
	}, storetest.Options{LargeObjectSize: 4 << 20})
}
