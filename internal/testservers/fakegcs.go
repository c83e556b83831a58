package testservers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// FakeGCSServer is a running fake-gcs-server (github.com/fsouza/fake-gcs-server), a Google
// Cloud Storage emulator speaking the JSON API over plain HTTP.
//
// It stores objects, generations, preconditions and per-object retention metadata, but does
// not enforce object holds or retention: see providers/gcs for what was verified.
type FakeGCSServer struct {
	*Process
	// URL is the server's root, e.g. http://127.0.0.1:4443.
	URL string
	// Endpoint is the JSON API base that storage clients take as their endpoint, e.g.
	// http://127.0.0.1:4443/storage/v1/.
	Endpoint string
}

// FakeGCSBucket describes a bucket to create on the fake server.
type FakeGCSBucket struct {
	Name       string
	Versioning bool
}

// FakeGCS starts fake-gcs-server on a free port with the in-memory backend (objects live in
// the server process, so a large test object costs no disk) and stops it when t ends.
func FakeGCS(t testing.TB) *FakeGCSServer {
	t.Helper()
	bin := Tool(t, "fake-gcs-server")
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	root := "http://" + addr
	p := Start(t, Spec{
		Name: "fake-gcs-server",
		Path: bin,
		Args: []string{
			"-scheme", "http",
			"-host", "127.0.0.1",
			"-port", fmt.Sprint(port),
			"-public-host", addr,
			"-external-url", root,
			"-backend", "memory",
			"-log-level", "warn",
		},
		Dir:   t.TempDir(),
		Ready: fakeGCSHealthy(root + "/_internal/healthcheck"),
	})
	return &FakeGCSServer{Process: p, URL: root, Endpoint: root + "/storage/v1/"}
}

// CreateBucket creates a bucket through the JSON API, failing t if that does not succeed.
func (s *FakeGCSServer) CreateBucket(t testing.TB, b FakeGCSBucket) {
	t.Helper()
	body := map[string]any{"name": b.Name}
	if b.Versioning {
		body["versioning"] = map[string]bool{"enabled": true}
	}
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("encode bucket %s: %v", b.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"b?project=drflow-test", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("create bucket %s: %v", b.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create bucket %s: %v", b.Name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create bucket %s: %s: %s", b.Name, resp.Status, msg)
	}
}

func fakeGCSHealthy(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
