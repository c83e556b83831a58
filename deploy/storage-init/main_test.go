package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/internal/testservers"
)

// TestCreatesMissingBucketsOnEmulators runs the command twice against MinIO, fake-gcs-server
// and Azurite: the first run creates the bucket or container of every location (the S3 one
// with Object Lock), the second finds them, and afterwards a worker can open every location.
func TestCreatesMissingBucketsOnEmulators(t *testing.T) {
	minio := testservers.MinIO(t)
	gcs := testservers.FakeGCS(t)
	azurite := testservers.Azurite(t)
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("DRFLOW_TEST_AZURE", azurite.ConnectionString)

	path := writeConfig(t, minio.Region, fmt.Sprintf(`
  - name: worm
    provider: s3
    bucket: drflow-worm
    endpoint: %[1]s
    path_style: true
    region: %[3]s
    object_lock: true
  - name: plain-gcs
    provider: gcs
    bucket: drflow-gcs
    endpoint: %[2]s
    region: %[3]s
  - name: blobs
    provider: azblob
    container: drflow-blobs
    connection_string_env: DRFLOW_TEST_AZURE
    region: %[3]s
`, minio.Endpoint, gcs.URL, minio.Region))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run(ctx, []string{"--config", path, "--wait", "30s"}, &out, &errOut), errOut.String())
	assert.Equal(t, `worm: created s3 bucket drflow-worm with Object Lock; enforces holds and retention
plain-gcs: created gcs bucket drflow-gcs
blobs: created azure container drflow-blobs
`, out.String())

	out.Reset()
	require.Equal(t, exitOK, run(ctx, []string{"--config", path, "--wait", "30s"}, &out, &errOut), errOut.String())
	assert.Equal(t, `worm: s3 bucket drflow-worm exists; enforces holds and retention
plain-gcs: gcs bucket drflow-gcs exists
blobs: azure container drflow-blobs exists
`, out.String())

	cfg, err := config.Load(path)
	require.NoError(t, err)
	for _, loc := range cfg.Locations {
		st, err := stores.Open(ctx, loc)
		require.NoError(t, err, loc.Name)
		assert.Equal(t, loc.ObjectLock, st.Capabilities().Immutable(), loc.Name)
	}
}

// TestReportsUnreachableStorage checks that a server that never answers fails the run within
// --wait, naming the location.
func TestReportsUnreachableStorage(t *testing.T) {
	path := writeConfig(t, "eu-west-1", fmt.Sprintf(`
  - name: nowhere
    provider: gcs
    bucket: drflow-nowhere
    endpoint: http://127.0.0.1:%d
    region: eu-west-1
`, testservers.FreePort(t)))
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"--config", path, "--wait", "3s"}, &out, &errOut)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut.String(), "location nowhere:")
	assert.Contains(t, errOut.String(), "gave up after --wait")
	assert.Less(t, time.Since(start), 30*time.Second)
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, exitUsage, run(context.Background(), nil, &out, &errOut))
	assert.Contains(t, errOut.String(), "usage: drflow-storage-init --config FILE")
}

// writeConfig writes a configuration with the given locations (YAML list items) in one region,
// a dataset on the first of them, and what else a configuration needs to load.
func writeConfig(t *testing.T, region, locations string) string {
	t.Helper()
	dir := t.TempDir()
	first := strings.Fields(locations)[2] // "- name: FIRST"
	path := filepath.Join(dir, "drflow.yaml")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, `jurisdictions:
  - name: XX
    regions: [%s]
keys:
  - {name: kek, jurisdiction: XX, provider: local, path: kek.keyring}
locations:%s
policies:
  - {name: home, home: XX}
tiers:
  - {name: t1, level: 1, rpo: 1h, rto: 1h}
datasets:
  - name: files
    classification: internal
    policy: home
    tier: t1
    primary: %s
    source: {type: directory, path: source}
`, region, locations, first), 0o644))
	return path
}
