package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/keys/kmstest"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/providers"
)

// newKMSFixture is newFixture with the EU KEK held by a fake KMS, reached with credentials
// from the environment as a worker's would be.
func newKMSFixture(t *testing.T) (fixture, *kmstest.Server, string) {
	t.Helper()
	kms := kmstest.NewServer(t)
	arn := kms.AddKey("eu-key")
	// Keep the developer's AWS configuration out of the test.
	dir := t.TempDir()
	for name, value := range map[string]string{
		"AWS_ACCESS_KEY_ID":           kmstest.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       kmstest.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_KMS":        "",
	} {
		t.Setenv(name, value)
	}
	files := map[string]string{}
	for i, name := range []string{"a.txt", "sub/b.txt", secretName} {
		files[name] = strings.Repeat(fmt.Sprintf("line %d of file %s\n", i, name), 2000)
	}
	d := testdeploy.New(t, testdeploy.Options{Files: files,
		KMS: testdeploy.KMSKey{KeyID: arn, Region: kmstest.Region, Endpoint: kms.URL()}})
	return fixture{
		cfg:       d.Config,
		stateDir:  filepath.Join(d.Root, "state"),
		storeRoot: d.StoreRoot,
		source:    d.Source,
		scratch:   filepath.Join(d.Root, "scratch"),
	}, kms, arn
}

func TestBackupThenDrillWithKMSKey(t *testing.T) {
	ctx := context.Background()
	f, kms, arn := newKMSFixture(t)
	a := f.activities(t)
	assert.Equal(t, arn, a.Keys["EU"].KEK().ID())
	env := activityEnv(a)
	backup(t, env, a, "run-1")
	assert.Contains(t, kms.Targets(), "TrentService.Encrypt", "the data key is wrapped by KMS")

	rc, err := a.Stores["eu-primary"].Get(ctx, keys.KeyObjectKey("files", 1), providers.GetOptions{})
	require.NoError(t, err)
	raw, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	var obj struct {
		KEKID string `json:"kek_id"`
	}
	require.NoError(t, json.Unmarshal(raw, &obj))
	assert.Equal(t, arn, obj.KEKID)

	// A fresh worker has no cached data key: KMS unwraps it.
	b := f.activities(t)
	res, err := drill(activityEnv(b), b, DrillActivityInput{Dataset: "files"})
	require.NoError(t, err)
	assert.True(t, res.Verified)
	assert.Contains(t, kms.Targets(), "TrentService.Decrypt")
	assertEmptyDir(t, f.scratch)

	// Disabling the key in KMS revokes it: a new drill fails closed, retrying cannot help.
	kms.SetState("eu-key", "Disabled")
	c := f.activities(t)
	_, err = drill(activityEnv(c), c, DrillActivityInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeKeyRevoked)
	assertEmptyDir(t, f.scratch)

	// Key operations that need a keyring point at the key service instead.
	_, err = activityEnv(c).ExecuteActivity(c.RotateKey, KeyOpInput{Dataset: "files"})
	assertNonRetryable(t, err, ErrTypeInvalidInput)
	assert.Contains(t, err.Error(), "rotate, revoke and escrow it in its key service")
}

func TestOpenExistingWithKMSKey(t *testing.T) {
	ctx := context.Background()
	f, kms, _ := newKMSFixture(t)
	opts := Options{Region: "eu-west-1", StateDir: f.stateDir, ScratchDir: f.scratch}
	a, err := New(ctx, f.cfg, opts)
	require.NoError(t, err)
	require.NoError(t, a.Close(ctx))

	// No keyring to look for: the key is described in KMS.
	a, err = OpenExisting(ctx, f.cfg, opts)
	require.NoError(t, err)
	assert.NotNil(t, a.Keys["EU"])
	require.NoError(t, a.Close(ctx))

	kms.DeleteKey("eu-key")
	_, err = OpenExisting(ctx, f.cfg, opts)
	require.ErrorIs(t, err, keys.ErrRevoked)
}
