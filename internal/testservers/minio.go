package testservers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MinIO test credentials: valid only for the throwaway server that MinIO starts.
const (
	minioAccessKey = "drflow-test"
	minioSecretKey = "drflow-test-secret"
	minioRegion    = "us-east-1"
)

// MinIOServer is a single-drive MinIO server on 127.0.0.1 with a fresh data directory.
type MinIOServer struct {
	// Endpoint is the S3 API base URL, e.g. "http://127.0.0.1:40123". Use path-style
	// addressing.
	Endpoint  string
	Region    string
	AccessKey string
	SecretKey string

	proc *Process
}

// MinIO installs MinIO if needed (see scripts/tools.sh), starts it and stops it when t ends.
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	bin := Tool(t, "minio")
	dir := t.TempDir()
	port, consolePort := FreePort(t), FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	endpoint := "http://" + addr

	srv := &MinIOServer{
		Endpoint:  endpoint,
		Region:    minioRegion,
		AccessKey: minioAccessKey,
		SecretKey: minioSecretKey,
	}
	srv.proc = Start(t, Spec{
		Name: "minio",
		Path: bin,
		Args: []string{
			"server", filepath.Join(dir, "data"),
			"--address", addr,
			"--console-address", "127.0.0.1:" + strconv.Itoa(consolePort),
			// Keeps MinIO away from ~/.minio.
			"--certs-dir", filepath.Join(dir, "certs"),
			"--quiet",
		},
		Env: []string{
			"MINIO_ROOT_USER=" + minioAccessKey,
			"MINIO_ROOT_PASSWORD=" + minioSecretKey,
			"MINIO_REGION=" + minioRegion,
			// No console, update checks, call-home or anonymous telemetry: the server talks
			// to nobody but the test.
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_CALLHOME_ENABLE=off",
		},
		Dir:   dir,
		Ready: srv.ready,
	})
	return srv
}

// ready succeeds once the server is live and serves S3 requests: the health endpoints answer
// before the object layer is initialised, so a signed ListBuckets has the last word.
func (m *MinIOServer) ready(ctx context.Context) error {
	for _, path := range []string{"/minio/health/live", "/minio/health/ready", "/"} {
		resp, err := m.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	return nil
}

// do sends a request without body, signed with the root credentials.
func (m *MinIOServer) do(ctx context.Context, method, path string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, m.Endpoint+path, http.NoBody)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	emptyHash := sha256.Sum256(nil)
	payloadHash := hex.EncodeToString(emptyHash[:])
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, payloadHash, "s3", m.Region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return http.DefaultClient.Do(req)
}

// Log returns what the server printed so far.
func (m *MinIOServer) Log() string { return m.proc.Log() }

// CreateBucket creates bucket name; objectLock enables S3 Object Lock (and with it
// versioning), which can only be chosen at creation.
func (m *MinIOServer) CreateBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	header := http.Header{}
	if objectLock {
		header.Set("X-Amz-Bucket-Object-Lock-Enabled", "true")
	}
	resp, err := m.do(ctx, http.MethodPut, "/"+name, header)
	if err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("create bucket %s: %s\n%s", name, resp.Status, body)
	}
}
