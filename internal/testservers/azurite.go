package testservers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// Azurite's built-in development account. The key is public: it is published in Azurite's
// README and in Microsoft's "Use the Azurite emulator" docs, and only works against emulators.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteServer is an Azurite blob service started for a test.
type AzuriteServer struct {
	*Process
	// BlobEndpoint is the service URL, path-style: http://127.0.0.1:port/devstoreaccount1.
	BlobEndpoint string
	// ConnectionString authenticates with the development account's shared key.
	ConnectionString string
}

// Azurite installs (if needed) and starts Azurite's blob service on a free port of 127.0.0.1,
// storing its data in a temporary directory, with telemetry off so that it makes no outbound
// connections.
func Azurite(t testing.TB) *AzuriteServer {
	t.Helper()
	bin := Tool(t, "azurite")
	port := FreePort(t)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount)
	srv := &AzuriteServer{
		BlobEndpoint: endpoint,
		ConnectionString: fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
			AzuriteAccount, AzuriteKey, endpoint),
	}
	srv.Process = Start(t, Spec{
		Name: "azurite",
		Path: bin,
		Args: []string{
			"--blobHost", "127.0.0.1",
			"--blobPort", strconv.Itoa(port),
			"--location", t.TempDir(),
			"--silent",
			// The Go SDK speaks a newer service version than Azurite 3.35.0 knows.
			"--skipApiVersionCheck",
			// Azurite sends usage telemetry to Application Insights unless told not to.
			"--disableTelemetry",
		},
		Ready: azuriteAnswers(endpoint + "?comp=list"),
	})
	return srv
}

// azuriteAnswers is a readiness check that succeeds once url answers HTTP at all: Azurite
// refuses the unauthenticated request, which proves it is serving.
func azuriteAnswers(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
}

// Client returns an SDK client for the development account.
func (s *AzuriteServer) Client(t testing.TB) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString, nil)
	if err != nil {
		t.Fatalf("azurite client: %v", err)
	}
	return c
}

// CreateContainer creates a container and deletes it, with everything in it, when t ends.
func (s *AzuriteServer) CreateContainer(t testing.TB, name string) {
	t.Helper()
	c := s.Client(t)
	if _, err := c.CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatalf("create azurite container %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, err := c.DeleteContainer(context.Background(), name, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.ContainerNotFound) {
			t.Errorf("delete azurite container %s: %v", name, err)
		}
	})
}
