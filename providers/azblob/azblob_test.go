package azblob

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

const testPrefix = "drflow/"

// TestConformance runs the store suite against Azurite. Azurite cannot create a container
// with version-level immutability and does not report the property (see
// TestAzuriteImmutabilitySupport), so the store truthfully reports no holds and no retention,
// and the suite checks that those calls are refused with ErrNotSupported. The enforcement
// branches are covered by TestHoldsAndImmutabilityAgainstAzureProtocol.
func TestConformance(t *testing.T) {
	srv := testservers.Azurite(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) providers.Store {
		name := fmt.Sprintf("conformance-%d", n.Add(1))
		srv.CreateContainer(t, name)
		// A blob outside the store's prefix, which no listing may show.
		_, err := srv.Client(t).UploadBuffer(context.Background(), name, "outside-prefix", []byte("x"), nil)
		require.NoError(t, err)
		st, err := Open(context.Background(), Options{
			Container:        name,
			Prefix:           testPrefix,
			ConnectionString: srv.ConnectionString,
			Location:         providers.Location{Name: "azurite", Region: "local", Jurisdiction: "EU"},
			// Small blocks and pages, so that the suite's objects span many of both.
			BlockSize:    2 << 20,
			Concurrency:  4,
			ListPageSize: 100,
		})
		require.NoError(t, err)
		return st
	}, storetest.Options{})
}

// TestAzuriteImmutabilitySupport records what Azurite 3.35.0 does with the immutability
// protocol, which is why TestConformance runs without holds and retention.
func TestAzuriteImmutabilitySupport(t *testing.T) {
	srv := testservers.Azurite(t)
	srv.CreateContainer(t, "probe")
	ctx := context.Background()
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString, "probe", nil)
	require.NoError(t, err)

	props, err := cc.GetProperties(ctx, nil)
	require.NoError(t, err)
	assert.Nil(t, props.IsImmutableStorageWithVersioningEnabled, "Azurite sends no x-ms-immutable-storage-with-versioning-enabled")

	bb := cc.NewBlockBlobClient("blob")
	_, err = bb.UploadBuffer(ctx, []byte("x"), nil)
	require.NoError(t, err)
	_, err = bb.SetLegalHold(ctx, true, nil)
	assert.ErrorIs(t, translateError(err), providers.ErrNotSupported, "Set Blob Legal Hold: %v", err)
	_, err = bb.SetImmutabilityPolicy(ctx, time.Now().Add(time.Hour), nil)
	assert.ErrorIs(t, translateError(err), providers.ErrNotSupported, "Set Blob Immutability Policy: %v", err)
	_, err = bb.DeleteImmutabilityPolicy(ctx, nil)
	assert.ErrorIs(t, translateError(err), providers.ErrNotSupported, "Delete Blob Immutability Policy: %v", err)

	// Protection headers on an upload are accepted and silently dropped: an adapter that
	// claimed holds here would hand out unprotected blobs.
	_, err = bb.Upload(ctx, nopCloser("y"), &blockblob.UploadOptions{
		LegalHold:                    to.Ptr(true),
		ImmutabilityPolicyExpiryTime: to.Ptr(time.Now().Add(time.Hour)),
		ImmutabilityPolicyMode:       to.Ptr(blob.ImmutabilityPolicySettingLocked),
	})
	require.NoError(t, err)
	got, err := bb.GetProperties(ctx, nil)
	require.NoError(t, err)
	assert.Nil(t, got.LegalHold)
	assert.Nil(t, got.ImmutabilityPolicyExpiresOn)
	_, err = bb.Delete(ctx, nil)
	assert.NoError(t, err, "nothing protects the blob")

	st, err := Open(ctx, Options{Container: "probe", ConnectionString: srv.ConnectionString})
	require.NoError(t, err)
	caps := st.Capabilities()
	assert.False(t, caps.LegalHold)
	assert.False(t, caps.Retention)
	assert.False(t, caps.ServerEnforced, "Azurite enforces no immutability")
	assert.True(t, caps.ConditionalCreate)
	assert.Contains(t, caps.Note, "does not report version-level immutability")
}

func TestOpenMissingContainer(t *testing.T) {
	srv := testservers.Azurite(t)
	_, err := Open(context.Background(), Options{Container: "nope", ConnectionString: srv.ConnectionString})
	require.Error(t, err)
	assert.ErrorIs(t, err, providers.ErrNotFound)
	assert.Contains(t, err.Error(), `container "nope" does not exist at `+srv.BlobEndpoint)
	assert.Contains(t, err.Error(), "ContainerNotFound")
	assert.NotContains(t, err.Error(), testservers.AzuriteKey)
}

func TestOpenValidatesOptions(t *testing.T) {
	const cs = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/a;"
	tests := []struct {
		name string
		give Options
		want string
	}{
		{"no container", Options{ConnectionString: cs}, "no container"},
		{"no credentials", Options{Container: "c"}, "exactly one of"},
		{"both credentials", Options{Container: "c", ConnectionString: cs, ServiceURL: "https://a.blob.core.windows.net"}, "exactly one of"},
		{"service URL without credential", Options{Container: "c", ServiceURL: "https://a.blob.core.windows.net"}, "needs a Credential"},
		{"prefix without slash", Options{Container: "c", ConnectionString: cs, Prefix: "dr"}, "must end in /"},
		{"tiny blocks", Options{Container: "c", ConnectionString: cs, BlockSize: 1024}, "block size"},
		{"bad connection string", Options{Container: "c", ConnectionString: "nonsense"}, "connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.give)
			require.ErrorIs(t, err, providers.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

type readSeekNopCloser struct{ *strings.Reader }

func (readSeekNopCloser) Close() error { return nil }

func nopCloser(s string) readSeekNopCloser { return readSeekNopCloser{strings.NewReader(s)} }
