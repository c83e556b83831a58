package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

func readRing(t *testing.T, path string) ringFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var r ringFile
	require.NoError(t, json.Unmarshal(raw, &r))
	return r
}

func TestKeyringCreatedOnFirstUse(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	path := filepath.Join(t.TempDir(), "a", "b", "eu.keyring")
	k := openKeyring(t, path, rec, clk)

	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), dir.Mode().Perm(), "directory mode")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "file mode")

	assert.Equal(t, "eu-kek/v1", k.ID())
	assert.Equal(t, "EU", k.Jurisdiction())
	r := readRing(t, path)
	assert.Equal(t, keyringFormat, r.Format)
	require.Len(t, r.Versions, 1)
	assert.Equal(t, StateActive, r.Versions[0].State)
	assert.Equal(t, clk.Now(), r.Versions[0].Created)
	assert.Len(t, r.Versions[0].Key, SecretSize)
	assert.Equal(t, []string{"rotate_kek ok"}, rec.ops())
	assert.Equal(t, "eu-kek/v1", rec.all()[0].KeyID)

	// Reopening, as a second process would, finds the same keyring and records nothing.
	k2 := openKeyring(t, path, rec, clk)
	w, err := k.Wrap(ctx, []byte("secret"), []byte("aad"))
	require.NoError(t, err)
	got, err := k2.Unwrap(ctx, w, []byte("aad"))
	require.NoError(t, err)
	assert.Equal(t, []byte("secret"), got)
	assert.Len(t, rec.all(), 1)

	_, err = OpenKeyring(ctx, KeyringOptions{Path: path, Name: "us-kek", Jurisdiction: "US", Recorder: rec})
	require.ErrorContains(t, err, `holds KEK "eu-kek" of EU`)
}

func TestKeyringConcurrentFirstUseCreatesOne(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	path := keyringPath(t)
	const n = 8
	rings := make([]*Keyring, n)
	var wg sync.WaitGroup
	for i := range rings {
		wg.Go(func() {
			k, err := OpenKeyring(ctx, KeyringOptions{Path: path, Name: "eu-kek", Jurisdiction: "EU", Recorder: rec, Clock: clk.Now})
			if assert.NoError(t, err) {
				rings[i] = k
			}
		})
	}
	wg.Wait()
	assert.Equal(t, []string{"rotate_kek ok"}, rec.ops(), "one keyring, created once")
	w, err := rings[0].Wrap(ctx, []byte("s"), nil)
	require.NoError(t, err)
	for _, k := range rings {
		got, err := k.Unwrap(ctx, w, nil)
		require.NoError(t, err)
		assert.Equal(t, []byte("s"), got)
	}
}

func TestKeyringRefusesInsecurePermissions(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		fileMode fs.FileMode
		dirMode  fs.FileMode
		want     string
	}{
		{"world readable file", 0o644, 0o700, "chmod 600"},
		{"group readable file", 0o640, 0o700, "chmod 600"},
		{"world writable file", 0o602, 0o700, "chmod 600"},
		{"group writable directory", 0o600, 0o770, "chmod 700"},
		{"world writable directory", 0o600, 0o707, "chmod 700"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, clk := &recorder{}, newClock()
			path := keyringPath(t)
			openKeyring(t, path, rec, clk)
			require.NoError(t, os.Chmod(path, tt.fileMode))
			require.NoError(t, os.Chmod(filepath.Dir(path), tt.dirMode))

			_, err := OpenKeyring(ctx, KeyringOptions{Path: path, Name: "eu-kek", Jurisdiction: "EU", Recorder: rec})
			require.ErrorIs(t, err, ErrInsecureKeyring)
			assert.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("loosened while open", func(t *testing.T) {
		rec, clk := &recorder{}, newClock()
		path := keyringPath(t)
		k := openKeyring(t, path, rec, clk)
		w, err := k.Wrap(ctx, []byte("s"), nil)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(path, 0o644))
		_, err = k.Unwrap(ctx, w, nil)
		require.ErrorIs(t, err, ErrInsecureKeyring)
		_, err = k.Wrap(ctx, []byte("s"), nil)
		require.ErrorIs(t, err, ErrInsecureKeyring)
		_, err = k.Rotate(ctx)
		require.ErrorIs(t, err, ErrInsecureKeyring)
	})

	t.Run("new keyring in an insecure directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shared")
		require.NoError(t, os.Mkdir(dir, 0o700))
		require.NoError(t, os.Chmod(dir, 0o777))
		_, err := OpenKeyring(ctx, KeyringOptions{Path: filepath.Join(dir, "eu.keyring"), Name: "eu-kek", Jurisdiction: "EU", Recorder: &recorder{}})
		require.ErrorIs(t, err, ErrInsecureKeyring)
		_, err = os.Stat(filepath.Join(dir, "eu.keyring"))
		assert.ErrorIs(t, err, fs.ErrNotExist, "nothing written")
	})
}

func TestKeyringOptionsValidation(t *testing.T) {
	ok := KeyringOptions{Path: keyringPath(t), Name: "eu-kek", Jurisdiction: "EU", Recorder: &recorder{}}
	tests := []struct {
		name   string
		change func(*KeyringOptions)
	}{
		{"no path", func(o *KeyringOptions) { o.Path = "" }},
		{"no name", func(o *KeyringOptions) { o.Name = "" }},
		{"name with slash", func(o *KeyringOptions) { o.Name = "eu/kek" }},
		{"upper-case name", func(o *KeyringOptions) { o.Name = "EU" }},
		{"no jurisdiction", func(o *KeyringOptions) { o.Jurisdiction = "" }},
		{"no recorder", func(o *KeyringOptions) { o.Recorder = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.change(&o)
			_, err := OpenKeyring(context.Background(), o)
			require.ErrorIs(t, err, providers.ErrInvalidArgument)
		})
	}
}

func TestKeyringRejectsCorruptFiles(t *testing.T) {
	valid := `{"format":"drflow-keyring-v1","name":"eu-kek","jurisdiction":"EU","created":"2025-01-01T00:00:00Z","versions":[%s]}`
	key := `"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"`
	tests := []struct {
		name string
		give string
	}{
		{"not json", "garbage"},
		{"unknown field", strings.Replace(valid, `"versions"`, `"extra":1,"versions"`, 1)},
		{"wrong format", strings.Replace(valid, "drflow-keyring-v1", "v0", 1)},
		{"short key", `{"version":1,"state":"active","created":"2025-01-01T00:00:00Z","key":"AAAA"}`},
		{"two active", `{"version":1,"state":"active","created":"2025-01-01T00:00:00Z","key":` + key + `},{"version":2,"state":"active","created":"2025-01-01T00:00:00Z","key":` + key + `}`},
		{"descending", `{"version":2,"state":"retired","created":"2025-01-01T00:00:00Z","key":` + key + `},{"version":1,"state":"active","created":"2025-01-01T00:00:00Z","key":` + key + `}`},
		{"revoked with key", `{"version":1,"state":"revoked","created":"2025-01-01T00:00:00Z","key":` + key + `}`},
		{"unknown state", `{"version":1,"state":"paused","created":"2025-01-01T00:00:00Z","key":` + key + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := keyringPath(t)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			content := tt.give
			if strings.HasPrefix(content, "{\"version\"") {
				content = strings.Replace(valid, "%s", content, 1)
			}
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := OpenKeyring(context.Background(), KeyringOptions{Path: path, Name: "eu-kek", Jurisdiction: "EU", Recorder: &recorder{}})
			require.ErrorContains(t, err, "corrupt")
		})
	}
}

func TestKeyringWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	k := openKeyring(t, keyringPath(t), &recorder{}, newClock())
	secret := fixedSecret(9)
	aad := dekAAD("payroll", 1)
	w, err := k.Wrap(ctx, secret, aad)
	require.NoError(t, err)
	assert.Equal(t, "eu-kek/v1", w.KEKID)
	assert.NotContains(t, string(w.Ciphertext), string(secret))

	got, err := k.Unwrap(ctx, w, aad)
	require.NoError(t, err)
	assert.Equal(t, secret, got)
	require.NoError(t, k.Check(ctx, w))
	assert.False(t, k.NeedsRewrap(w))

	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	tampered := w
	tampered.Ciphertext = append([]byte(nil), w.Ciphertext...)
	tampered.Ciphertext[20] ^= 1

	tests := []struct {
		name string
		w    Wrapped
		aad  []byte
		want error
	}{
		{"other dataset", w, dekAAD("billing", 1), ErrIntegrity},
		{"other epoch", w, dekAAD("payroll", 2), ErrIntegrity},
		{"no aad", w, nil, ErrIntegrity},
		{"tampered ciphertext", tampered, aad, ErrIntegrity},
		{"truncated", Wrapped{KEKID: w.KEKID, Ciphertext: w.Ciphertext[:20]}, aad, ErrIntegrity},
		{"relabelled as another version", Wrapped{KEKID: "eu-kek/v2", Ciphertext: w.Ciphertext}, aad, ErrIntegrity},
		{"another KEK", Wrapped{KEKID: "us-kek/v1", Ciphertext: w.Ciphertext}, aad, ErrUnknownKEK},
		{"missing version", Wrapped{KEKID: "eu-kek/v9", Ciphertext: w.Ciphertext}, aad, ErrUnknownKEK},
		{"malformed version", Wrapped{KEKID: "eu-kek/v01", Ciphertext: w.Ciphertext}, aad, ErrUnknownKEK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Unwrap(ctx, tt.w, tt.aad)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestKeyringRotate(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	path := keyringPath(t)
	k := openKeyring(t, path, rec, clk)
	other := openKeyring(t, path, rec, clk) // another process
	old, err := k.Wrap(ctx, []byte("old"), nil)
	require.NoError(t, err)

	clk.Advance(1)
	v, err := other.Rotate(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), v)
	assert.Equal(t, "eu-kek/v2", k.ID(), "a rotation by another process is seen at once")
	assert.True(t, k.NeedsRewrap(old))

	w, err := k.Wrap(ctx, []byte("new"), nil)
	require.NoError(t, err)
	assert.Equal(t, "eu-kek/v2", w.KEKID)
	got, err := k.Unwrap(ctx, old, nil)
	require.NoError(t, err, "a retired version still unwraps")
	assert.Equal(t, []byte("old"), got)

	vs, err := k.Versions()
	require.NoError(t, err)
	require.Len(t, vs, 2)
	assert.Equal(t, StateRetired, vs[0].State)
	assert.Equal(t, clk.Now(), vs[0].Retired)
	assert.Equal(t, StateActive, vs[1].State)
	assert.NotEqual(t, vs[0].Fingerprint, vs[1].Fingerprint)
	assert.Equal(t, []string{"rotate_kek ok", "rotate_kek ok"}, rec.ops())
	assert.Contains(t, rec.all()[1].Reason, "v1 retired")
}

func TestKeyringConcurrentRotationsLoseNothing(t *testing.T) {
	ctx := context.Background()
	path := keyringPath(t)
	rec, clk := &recorder{}, newClock()
	openKeyring(t, path, rec, clk)
	const n = 8
	var wg sync.WaitGroup
	got := make([]uint32, n)
	for i := range n {
		k := openKeyring(t, path, rec, clk) // one instance per "process"
		wg.Go(func() {
			v, err := k.Rotate(ctx)
			assert.NoError(t, err)
			got[i] = v
		})
	}
	wg.Wait()
	assert.ElementsMatch(t, []uint32{2, 3, 4, 5, 6, 7, 8, 9}, got)
	r := readRing(t, path)
	require.Len(t, r.Versions, n+1)
	active := 0
	for _, v := range r.Versions {
		if v.State == StateActive {
			active++
			assert.Equal(t, uint32(n+1), v.Version)
		}
	}
	assert.Equal(t, 1, active)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"eu.keyring", "eu.keyring.lock"}, names, "no temp files left")
}

func TestKeyringRevokeVersion(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	path := keyringPath(t)
	k := openKeyring(t, path, rec, clk)
	admin := openKeyring(t, path, rec, clk) // the incident responder's process
	w1, err := k.Wrap(ctx, []byte("one"), nil)
	require.NoError(t, err)
	_, err = admin.Rotate(ctx)
	require.NoError(t, err)
	w2, err := k.Wrap(ctx, []byte("two"), nil)
	require.NoError(t, err)

	require.NoError(t, admin.RevokeVersion(ctx, 1, "laptop stolen"))
	_, err = k.Unwrap(ctx, w1, nil)
	require.ErrorIs(t, err, ErrRevoked, "the other process sees the revocation at once")
	require.ErrorIs(t, k.Check(ctx, w1), ErrRevoked)
	got, err := k.Unwrap(ctx, w2, nil)
	require.NoError(t, err)
	assert.Equal(t, []byte("two"), got)
	r := readRing(t, path)
	assert.Empty(t, r.Versions[0].Key, "revoked key material is erased")
	assert.Equal(t, "laptop stolen", r.Versions[0].RevokeReason)

	require.NoError(t, admin.RevokeVersion(ctx, 1, "again"), "revoking twice is a no-op")
	require.ErrorIs(t, admin.RevokeVersion(ctx, 7, ""), ErrUnknownKEK)

	require.NoError(t, admin.RevokeVersion(ctx, 2, "compromised"))
	_, err = k.Wrap(ctx, []byte("x"), nil)
	require.ErrorIs(t, err, ErrRevoked, "no active version after revoking it")
	assert.Equal(t, "eu-kek", k.ID())
	v, err := admin.Rotate(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), v, "version numbers are never reused")
	_, err = k.Wrap(ctx, []byte("x"), nil)
	require.NoError(t, err)

	assert.Equal(t, []string{"rotate_kek ok", "rotate_kek ok", "revoke ok", "revoke ok", "rotate_kek ok"}, rec.ops())
	assert.Equal(t, "eu-kek/v1", rec.all()[2].KeyID)
	assert.Equal(t, "laptop stolen", rec.all()[2].Reason)
}

func TestKeyringRevokeWholeKEK(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	path := keyringPath(t)
	k := openKeyring(t, path, rec, clk)
	w1, err := k.Wrap(ctx, []byte("one"), nil)
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	w2, err := k.Wrap(ctx, []byte("two"), nil)
	require.NoError(t, err)

	require.NoError(t, openKeyring(t, path, rec, clk).Revoke(ctx, "jurisdiction exit"))
	for _, w := range []Wrapped{w1, w2} {
		_, err := k.Unwrap(ctx, w, nil)
		require.ErrorIs(t, err, ErrRevoked)
		require.ErrorIs(t, k.Check(ctx, w), ErrRevoked)
	}
	_, err = k.Wrap(ctx, []byte("x"), nil)
	require.ErrorIs(t, err, ErrRevoked)
	_, err = k.Rotate(ctx)
	require.ErrorIs(t, err, ErrRevoked)
	_, err = k.Export(ctx, 0, 2, 3)
	require.ErrorIs(t, err, ErrRevoked)
	r := readRing(t, path)
	require.NotNil(t, r.Revoked)
	for _, v := range r.Versions {
		assert.Equal(t, StateRevoked, v.State)
		assert.Empty(t, v.Key)
	}
	require.NoError(t, k.Revoke(ctx, "again"))
	assert.Equal(t, []string{"rotate_kek ok", "rotate_kek ok", "revoke ok"}, rec.ops())
}

func TestKeyringAuditFailureFailsClosed(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	path := keyringPath(t)
	k := openKeyring(t, path, rec, clk)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	rec.setFail(errors.New("audit log unreachable"))

	_, err = k.Rotate(ctx)
	require.ErrorContains(t, err, "audit log unreachable")
	require.ErrorContains(t, k.RevokeVersion(ctx, 1, "x"), "audit log unreachable")
	require.ErrorContains(t, k.Revoke(ctx, "x"), "audit log unreachable")
	shares, err := k.Export(ctx, 0, 2, 3)
	require.ErrorContains(t, err, "audit log unreachable")
	assert.Nil(t, shares, "no shares leave unaudited")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing changed")

	_, err = OpenKeyring(ctx, KeyringOptions{Path: keyringPath(t), Name: "eu-kek", Jurisdiction: "EU", Recorder: rec})
	require.ErrorContains(t, err, "audit log unreachable", "no keyring is created unaudited")
}

func TestKeyringEscrowExportImport(t *testing.T) {
	ctx := context.Background()
	rec, clk := &recorder{}, newClock()
	k := openKeyring(t, keyringPath(t), rec, clk)
	w1, err := k.Wrap(ctx, []byte("under v1"), nil)
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	w2, err := k.Wrap(ctx, []byte("under v2"), nil)
	require.NoError(t, err)

	shares2, err := k.Export(ctx, 0, 3, 5)
	require.NoError(t, err)
	require.Len(t, shares2, 5)
	shares1, err := k.Export(ctx, 1, 2, 2)
	require.NoError(t, err)
	vs, err := k.Versions()
	require.NoError(t, err)
	for i, s := range shares2 {
		assert.Equal(t, uint32(2), s.Version)
		assert.Equal(t, 3, s.Threshold)
		assert.Equal(t, vs[1].Fingerprint, s.Fingerprint)
		assert.Equal(t, byte(i+1), s.Share[0])
	}
	// A share survives the trip to a custodian and back as JSON.
	raw, err := json.Marshal(shares2[4])
	require.NoError(t, err)
	var back KEKShare
	require.NoError(t, json.Unmarshal(raw, &back))
	shares2[4] = back

	// Disaster: the worker's disk is gone. A new, empty keyring is restored from escrow.
	restoredPath := keyringPath(t)
	restored, err := OpenKeyring(ctx, KeyringOptions{Path: restoredPath, Name: "eu-kek", Jurisdiction: "EU", Recorder: rec, Clock: clk.Now, Empty: true})
	require.NoError(t, err)
	_, err = restored.Wrap(ctx, []byte("x"), nil)
	require.ErrorContains(t, err, "no active version")

	_, err = restored.Import(ctx, shares2[:2])
	require.ErrorIs(t, err, providers.ErrInvalidArgument, "fewer shares than the threshold")
	forged := append([]KEKShare(nil), shares2[:3]...)
	forged[2].Share = append([]byte(nil), forged[2].Share...)
	forged[2].Share[5] ^= 1
	_, err = restored.Import(ctx, forged)
	require.ErrorIs(t, err, ErrIntegrity, "a corrupted share is caught by the fingerprint")
	relabelled := append([]KEKShare(nil), shares2[:3]...)
	for i := range relabelled {
		relabelled[i].Version = 7
	}
	_, err = restored.Import(ctx, relabelled)
	require.ErrorIs(t, err, ErrIntegrity, "shares relabelled as another version")
	mixed := []KEKShare{shares2[0], shares2[1], shares1[0]}
	_, err = restored.Import(ctx, mixed)
	require.ErrorIs(t, err, providers.ErrInvalidArgument, "shares of different splits")

	v, err := restored.Import(ctx, []KEKShare{shares2[4], shares2[0], shares2[2]})
	require.NoError(t, err)
	assert.Equal(t, uint32(2), v)
	assert.Equal(t, "eu-kek/v2", restored.ID(), "the newest imported version becomes active")
	v, err = restored.Import(ctx, shares1)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), v)
	assert.Equal(t, "eu-kek/v2", restored.ID(), "an older version is imported as retired")
	_, err = restored.Import(ctx, shares1)
	require.NoError(t, err, "importing again is a no-op")

	for _, tt := range []struct {
		w    Wrapped
		want string
	}{{w1, "under v1"}, {w2, "under v2"}} {
		got, err := restored.Unwrap(ctx, tt.w, nil)
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(got))
	}
	rvs, err := restored.Versions()
	require.NoError(t, err)
	assert.Equal(t, vs[0].Fingerprint, rvs[0].Fingerprint)
	assert.Equal(t, vs[0].Created, rvs[0].Created)
	assert.Equal(t, StateRetired, rvs[0].State)
	assert.Equal(t, StateActive, rvs[1].State)

	// Other keyrings refuse the shares; a revoked version is not brought back.
	us, err := OpenKeyring(ctx, KeyringOptions{Path: keyringPath(t), Name: "us-kek", Jurisdiction: "US", Recorder: rec, Empty: true})
	require.NoError(t, err)
	_, err = us.Import(ctx, shares1)
	require.ErrorIs(t, err, ErrUnknownKEK)
	require.NoError(t, k.RevokeVersion(ctx, 1, "x"))
	_, err = k.Import(ctx, shares1)
	require.ErrorIs(t, err, ErrRevoked)
	_, err = k.Export(ctx, 1, 2, 2)
	require.ErrorIs(t, err, ErrRevoked)

	var splits, combines int
	for _, e := range rec.all() {
		switch e.Operation {
		case "split":
			splits++
		case "combine":
			combines++
		}
	}
	assert.Equal(t, 2, splits)
	assert.Equal(t, 5, combines, "2 failed fingerprint checks, 3 imports")
}
