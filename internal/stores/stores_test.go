package stores_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
)

// TestOpenEveryProviderFromConfig proves the wiring from a configuration file to each
// adapter against its real server: endpoints, prefixes, regions and credentials from the
// environment, and the WORM check on object_lock locations.
func TestOpenEveryProviderFromConfig(t *testing.T) {
	minio := testservers.MinIO(t)
	minio.CreateBucket(t, "drflow-locked", true)
	minio.CreateBucket(t, "drflow-plain", false)
	gcs := testservers.FakeGCS(t)
	gcs.CreateBucket(t, testservers.FakeGCSBucket{Name: "drflow-gcs"})
	azurite := testservers.Azurite(t)
	azurite.CreateContainer(t, "drflow-az")

	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("DRFLOW_TEST_AZURE", azurite.ConnectionString)
	dir := t.TempDir()

	cfg := parse(t, fmt.Sprintf(`
  - {name: disk, provider: local, path: %[1]s/disk, prefix: sub/, region: eu-west-1, object_lock: true}
  - {name: s3-locked, provider: s3, bucket: drflow-locked, prefix: dr/, endpoint: %[2]s, path_style: true, region: us-east-1, object_lock: true}
  - {name: s3-plain, provider: s3, bucket: drflow-plain, prefix: plain/, endpoint: %[2]s, path_style: true, region: us-east-1}
  - {name: gcs, provider: gcs, bucket: drflow-gcs, prefix: p/, endpoint: %[3]s, region: us-east-1}
  - {name: azure, provider: azblob, container: drflow-az, prefix: plain/, connection_string_env: DRFLOW_TEST_AZURE, region: eu-west-1}
  - {name: azure-worm, provider: azblob, container: drflow-az, prefix: worm/, connection_string_env: DRFLOW_TEST_AZURE, region: eu-west-1, object_lock: true}
  - {name: s3-worm-claim, provider: s3, bucket: drflow-plain, prefix: worm/, endpoint: %[2]s, path_style: true, region: us-east-1, object_lock: true}
`, dir, minio.Endpoint, gcs.URL))

	tests := []struct {
		location     string
		jurisdiction string
		immutable    bool
		notWORM      bool
	}{
		{"disk", "EU", true, false},
		{"s3-locked", "US", true, false},
		{"s3-plain", "US", false, false},
		{"gcs", "US", false, false},
		{"azure", "EU", false, false},
		{"azure-worm", "EU", false, true},    // Azurite enforces no immutability
		{"s3-worm-claim", "US", false, true}, // bucket without Object Lock
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			ctx := context.Background()
			loc, ok := cfg.Location(tt.location)
			require.True(t, ok)
			st, err := stores.Open(ctx, loc)
			if tt.notWORM {
				require.ErrorIs(t, err, stores.ErrNotWORM)
				assert.Contains(t, err.Error(), tt.location, "the error names the location")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.location, st.Location().Name)
			assert.Equal(t, tt.jurisdiction, st.Location().Jurisdiction)
			assert.Equal(t, tt.immutable, st.Capabilities().Immutable())

			_, err = st.Put(ctx, "probe/object", strings.NewReader(tt.location), providers.PutOptions{})
			require.NoError(t, err)
			rc, err := st.Get(ctx, "probe/object", providers.GetOptions{})
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			assert.Equal(t, tt.location, string(got))
			require.NoError(t, st.Delete(ctx, "probe/object"))
		})
	}

	// The prefix confines the store: a local prefix is a subdirectory of the path.
	raw, err := local.Open(local.Options{Root: dir + "/disk/sub"})
	require.NoError(t, err)
	_, err = raw.Stat(context.Background(), "probe/object")
	assert.ErrorIs(t, err, providers.ErrNotFound, "deleted through the configured store")
}

func TestOpenAzureWithoutConnectionString(t *testing.T) {
	t.Setenv("DRFLOW_TEST_AZURE_UNSET", "")
	cfg := parse(t, `
  - {name: azure, provider: azblob, container: c, connection_string_env: DRFLOW_TEST_AZURE_UNSET, region: eu-west-1}
`)
	loc, _ := cfg.Location("azure")
	_, err := stores.Open(context.Background(), loc)
	require.ErrorIs(t, err, providers.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "DRFLOW_TEST_AZURE_UNSET")
}

// parse completes entries of the locations section into a valid configuration.
func parse(t *testing.T, locations string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
jurisdictions:
  - {name: EU, regions: [eu-west-1]}
  - {name: US, regions: [us-east-1]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: /tmp/eu.keyring}
locations:
  - {name: home, provider: local, path: /nonexistent/drflow-home, region: eu-west-1}
` + locations + `
policies:
  - name: eu
    home: EU
    rules: [{jurisdiction: US, copy: encrypted, mechanism: scc}]
tiers:
  - {name: t1, level: 1, rpo: 15m, rto: 1h}
datasets:
  - name: d
    classification: personal
    policy: eu
    tier: t1
    primary: home
    source: {type: directory, path: /tmp/d}
`))
	require.NoError(t, err)
	return cfg
}
