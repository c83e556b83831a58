package azblob_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/azblob"
	"github.com/drflow/drflow/providers/azblob/azbtest"
)

// TestHoldsAndImmutabilityAgainstAzureProtocol drives the adapter against azbtest.Server, a
// container with version-level immutability that checks every request, because neither
// Azurite nor any other emulator implements holds or immutability policies.
func TestHoldsAndImmutabilityAgainstAzureProtocol(t *testing.T) {
	ctx := context.Background()
	f := azbtest.NewServer(t, "worm")
	st := azbtest.OpenStoreWith(t, f, azblob.Options{
		Prefix:       "dr/",
		BlockSize:    1 << 20,
		Concurrency:  2,
		ListPageSize: 2,
	})
	azblob.SetClock(st, f.Now)
	assert.Equal(t, []string{"GET restype=container"}, azbtest.Ops(f.Take()), "Open reads the container's properties")

	put := func(t *testing.T, key, data string, opts providers.PutOptions) {
		t.Helper()
		_, err := st.Put(ctx, key, strings.NewReader(data), opts)
		require.NoError(t, err, "put %s", key)
	}
	get := func(t *testing.T, key string) string {
		t.Helper()
		rc, err := st.Get(ctx, key, providers.GetOptions{})
		require.NoError(t, err, "get %s", key)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return string(b)
	}
	stat := func(t *testing.T, key string) providers.ObjectInfo {
		t.Helper()
		info, err := st.Stat(ctx, key)
		require.NoError(t, err, "stat %s", key)
		return info
	}
	// single returns the only request since the last take, which must be op.
	single := func(t *testing.T, op string) azbtest.Request {
		t.Helper()
		reqs := f.Take()
		require.Equal(t, []string{op}, azbtest.Ops(reqs))
		return reqs[0]
	}

	t.Run("capabilities", func(t *testing.T) {
		caps := st.Capabilities()
		assert.True(t, caps.Immutable())
		assert.Equal(t, []providers.RetentionMode{providers.Governance, providers.Compliance}, caps.RetentionModes)
		assert.True(t, caps.ConditionalCreate)
		assert.True(t, caps.ServerEnforced, "the service itself refuses deletes of protected blobs")
		assert.Contains(t, caps.Note, "x-ms-immutable-storage-with-versioning-enabled: true")
	})

	t.Run("legal hold blocks delete and overwrite until released", func(t *testing.T) {
		put(t, "held", "evidence", providers.PutOptions{})
		assert.Equal(t, []string{"HEAD blob", "PUT blob"}, azbtest.Ops(f.Take()), "an overwrite check, then Put Blob")

		require.NoError(t, st.SetLegalHold(ctx, "held", true))
		req := single(t, "PUT comp=legalhold")
		assert.Equal(t, "dr/held", req.Blob)
		assert.Equal(t, "true", req.Header.Get("x-ms-legal-hold"))
		assert.True(t, stat(t, "held").LegalHold)
		f.Take()

		err := st.Delete(ctx, "held")
		assert.ErrorIs(t, err, providers.ErrImmutable)
		assert.Contains(t, err.Error(), "legal hold")
		req = single(t, "GET restype=container comp=list")
		assert.Equal(t, "dr/held", req.Query.Get("prefix"))
		assert.ElementsMatch(t, []string{"versions", "legalhold", "immutabilitypolicy"}, strings.Split(req.Query.Get("include"), ","))

		_, err = st.Put(ctx, "held", strings.NewReader("tampered"), providers.PutOptions{})
		assert.ErrorIs(t, err, providers.ErrImmutable)
		single(t, "HEAD blob") // refused before any block was sent
		assert.Equal(t, "evidence", get(t, "held"))
		assert.Equal(t, 1, f.VersionCount("dr/held"))

		require.NoError(t, st.SetLegalHold(ctx, "held", false))
		f.Take()
		assert.False(t, stat(t, "held").LegalHold)
		f.Take()
		require.NoError(t, st.Delete(ctx, "held"))
		assert.Equal(t, []string{"GET restype=container comp=list", "DELETE blob", "DELETE blob"}, azbtest.Ops(f.Take()),
			"delete the current version, then the previous version it became")
		assert.Zero(t, f.VersionCount("dr/held"))
		_, err = st.Stat(ctx, "held")
		assert.ErrorIs(t, err, providers.ErrNotFound)
		f.Take()
	})

	t.Run("unlocked policy blocks delete, can be extended, shortened and removed", func(t *testing.T) {
		put(t, "gov", "restore point", providers.PutOptions{})
		f.Take()
		until := f.Now().Add(time.Hour)
		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{Mode: providers.Governance, Until: until}))
		reqs := f.Take()
		require.Equal(t, []string{"HEAD blob", "PUT comp=immutabilityPolicies"}, azbtest.Ops(reqs))
		assert.Equal(t, until.Format(http.TimeFormat), reqs[1].Header.Get("x-ms-immutability-policy-until-date"))
		assert.Equal(t, "Unlocked", reqs[1].Header.Get("x-ms-immutability-policy-mode"))

		info := stat(t, "gov")
		assert.Equal(t, providers.Retention{Mode: providers.Governance, Until: until}, info.Retention)
		assert.False(t, info.LegalHold)
		assert.ErrorIs(t, st.Delete(ctx, "gov"), providers.ErrImmutable)
		_, err := st.Put(ctx, "gov", strings.NewReader("tampered"), providers.PutOptions{})
		assert.ErrorIs(t, err, providers.ErrImmutable)
		f.Take()

		longer := until.Add(time.Hour)
		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{Mode: providers.Governance, Until: longer}), "extend")
		assert.True(t, longer.Equal(stat(t, "gov").Retention.Until))
		shorter := until.Add(-30 * time.Minute)
		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{Mode: providers.Governance, Until: shorter}), "an Unlocked policy may be shortened")
		assert.True(t, shorter.Equal(stat(t, "gov").Retention.Until))
		f.Take()

		require.NoError(t, st.SetRetention(ctx, "gov", providers.Retention{}), "remove")
		assert.Equal(t, []string{"HEAD blob", "DELETE comp=immutabilityPolicies"}, azbtest.Ops(f.Take()))
		assert.Zero(t, stat(t, "gov").Retention)
		require.NoError(t, st.Delete(ctx, "gov"))
		assert.Zero(t, f.VersionCount("dr/gov"))
		f.Take()
	})

	t.Run("locked policy can be extended but not shortened, unlocked or removed", func(t *testing.T) {
		put(t, "locked", "restore point", providers.PutOptions{})
		f.Take()
		until := f.Now().Add(time.Hour)
		require.NoError(t, st.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Compliance, Until: until}))
		reqs := f.Take()
		require.Equal(t, []string{"HEAD blob", "PUT comp=immutabilityPolicies"}, azbtest.Ops(reqs))
		assert.Equal(t, "Locked", reqs[1].Header.Get("x-ms-immutability-policy-mode"))
		assert.Equal(t, providers.Retention{Mode: providers.Compliance, Until: until}, stat(t, "locked").Retention)
		f.Take()

		for name, r := range map[string]providers.Retention{
			"shorten": {Mode: providers.Compliance, Until: until.Add(-time.Minute)},
			"remove":  {},
			"unlock":  {Mode: providers.Governance, Until: until.Add(time.Hour)},
		} {
			err := st.SetRetention(ctx, "locked", r)
			assert.ErrorIs(t, err, providers.ErrImmutable, name)
			assert.Equal(t, []string{"HEAD blob"}, azbtest.Ops(f.Take()), "%s is refused without asking the service to change the policy", name)
		}
		assert.Equal(t, until, stat(t, "locked").Retention.Until, "policy unchanged")
		f.Take()

		longer := until.Add(time.Hour)
		require.NoError(t, st.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Compliance, Until: longer}), "extend")
		reqs = f.Take()
		require.Equal(t, []string{"HEAD blob", "PUT comp=immutabilityPolicies"}, azbtest.Ops(reqs))
		assert.Equal(t, longer.Format(http.TimeFormat), reqs[1].Header.Get("x-ms-immutability-policy-until-date"))
		assert.ErrorIs(t, st.Delete(ctx, "locked"), providers.ErrImmutable)
		f.Take()

		f.Advance(2*time.Hour + time.Second)
		require.NoError(t, st.Delete(ctx, "locked"), "deletable once the policy expired")
		assert.Zero(t, f.VersionCount("dr/locked"))
		f.Take()
	})

	t.Run("hold and retention placed with the write", func(t *testing.T) {
		until := f.Now().Add(time.Hour)
		put(t, "small", "x", providers.PutOptions{LegalHold: true, Retention: providers.Retention{Mode: providers.Governance, Until: until}})
		reqs := f.Take()
		require.Equal(t, []string{"HEAD blob", "PUT blob"}, azbtest.Ops(reqs), "one block: Put Blob")
		commit := reqs[1].Header
		assert.Equal(t, "true", commit.Get("x-ms-legal-hold"))
		assert.Equal(t, until.Format(http.TimeFormat), commit.Get("x-ms-immutability-policy-until-date"))
		assert.Equal(t, "Unlocked", commit.Get("x-ms-immutability-policy-mode"))
		info := stat(t, "small")
		assert.True(t, info.LegalHold, "stat reports the hold")
		assert.Equal(t, providers.Retention{Mode: providers.Governance, Until: until}, info.Retention, "and the policy")
		assert.ErrorIs(t, st.Delete(ctx, "small"), providers.ErrImmutable)
		f.Take()

		big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/2/16) // 2.5 blocks
		_, err := st.Put(ctx, "big", bytes.NewReader(big), providers.PutOptions{Retention: providers.Retention{Mode: providers.Compliance, Until: until}})
		require.NoError(t, err)
		reqs = f.Take()
		require.Equal(t, []string{"HEAD blob", "PUT comp=block", "PUT comp=block", "PUT comp=block", "PUT comp=blocklist"}, azbtest.Ops(reqs))
		for _, r := range reqs[1:4] {
			for _, h := range []string{"x-ms-legal-hold", "x-ms-immutability-policy-until-date", "x-ms-immutability-policy-mode"} {
				assert.Empty(t, r.Header.Get(h), "Put Block must not carry %s", h)
			}
		}
		commit = reqs[4].Header
		assert.Empty(t, commit.Get("x-ms-legal-hold"))
		assert.Equal(t, until.Format(http.TimeFormat), commit.Get("x-ms-immutability-policy-until-date"))
		assert.Equal(t, "Locked", commit.Get("x-ms-immutability-policy-mode"))
		assert.Equal(t, providers.Retention{Mode: providers.Compliance, Until: until}, stat(t, "big").Retention)
		assert.True(t, get(t, "big") == string(big), "content of the multi-block blob")
		f.Take()

		_, err = st.Put(ctx, "past", strings.NewReader("x"), providers.PutOptions{Retention: providers.Retention{Mode: providers.Governance, Until: f.Now().Add(-time.Second)}})
		assert.ErrorIs(t, err, providers.ErrInvalidArgument)
		assert.Empty(t, f.Take(), "refused before sending")
	})

	t.Run("refusals by the service map to ErrImmutable", func(t *testing.T) {
		// Another client protects the blob after the adapter checked its versions.
		for code, protect := range map[string]func(string) bool{
			"BlobImmutableDueToLegalHold": func(name string) bool { return f.SetLegalHold(name, true) },
			"BlobImmutableDueToPolicy":    func(name string) bool { return f.SetPolicy(name, f.Now().Add(time.Hour), "unlocked") },
		} {
			put(t, "raced", "x", providers.PutOptions{})
			f.Take()
			f.AfterList(func() { assert.True(t, protect("dr/raced")) })
			err := st.Delete(ctx, "raced")
			assert.ErrorIs(t, err, providers.ErrImmutable, code)
			assert.Contains(t, err.Error(), "HTTP 409 "+code)
			assert.Equal(t, []string{"GET restype=container comp=list", "DELETE blob"}, azbtest.Ops(f.Take()))
			require.True(t, f.SetLegalHold("dr/raced", false))
			require.True(t, f.SetPolicy("dr/raced", time.Time{}, ""))
			require.NoError(t, st.Delete(ctx, "raced"))
			f.Take()
		}
	})

	t.Run("delete removes every version", func(t *testing.T) {
		put(t, "multi", "v1", providers.PutOptions{})
		put(t, "multi", "v2", providers.PutOptions{})
		assert.Equal(t, 2, f.VersionCount("dr/multi"), "an overwrite keeps the old version")
		assert.Equal(t, "v2", get(t, "multi"))
		f.Take()
		require.NoError(t, st.Delete(ctx, "multi"))
		assert.Equal(t, []string{"GET restype=container comp=list", "DELETE blob", "DELETE blob", "DELETE blob"}, azbtest.Ops(f.Take()))
		assert.Zero(t, f.VersionCount("dr/multi"))
	})

	t.Run("missing blobs", func(t *testing.T) {
		assert.ErrorIs(t, st.SetLegalHold(ctx, "missing", true), providers.ErrNotFound)
		assert.ErrorIs(t, st.SetRetention(ctx, "missing", providers.Retention{Mode: providers.Governance, Until: f.Now().Add(time.Hour)}), providers.ErrNotFound)
		assert.ErrorIs(t, st.Delete(ctx, "missing"), providers.ErrNotFound)
		_, err := st.Stat(ctx, "missing")
		assert.ErrorIs(t, err, providers.ErrNotFound)
		_, err = st.Get(ctx, "missing", providers.GetOptions{})
		assert.ErrorIs(t, err, providers.ErrNotFound)
		f.Take()
	})

	t.Run("conditional create", func(t *testing.T) {
		put(t, "once", "first", providers.PutOptions{IfNotExists: true})
		reqs := f.Take()
		require.Equal(t, []string{"HEAD blob", "PUT blob"}, azbtest.Ops(reqs))
		assert.Equal(t, "*", reqs[1].Header.Get("If-None-Match"))
		_, err := st.Put(ctx, "once", strings.NewReader("second"), providers.PutOptions{IfNotExists: true})
		assert.ErrorIs(t, err, providers.ErrExists)
		single(t, "HEAD blob")
	})

	t.Run("list pages and strips the prefix", func(t *testing.T) {
		for _, k := range []string{"page/1", "page/2", "page/3", "page/4", "page/5", "pagex"} {
			put(t, k, k, providers.PutOptions{})
		}
		f.Take()
		var keys []string
		require.NoError(t, st.List(ctx, "page/", func(o providers.ObjectInfo) error {
			assert.Equal(t, int64(len(o.Key)), o.Size)
			keys = append(keys, o.Key)
			return nil
		}))
		assert.Equal(t, []string{"page/1", "page/2", "page/3", "page/4", "page/5"}, keys)
		reqs := f.Take()
		require.Len(t, reqs, 3, "five blobs at two per page")
		for _, r := range reqs {
			assert.Equal(t, "2", r.Query.Get("maxresults"))
			assert.Equal(t, "dr/page/", r.Query.Get("prefix"))
			assert.Empty(t, r.Query.Get("include"))
		}
	})
}
