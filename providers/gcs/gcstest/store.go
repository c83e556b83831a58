package gcstest

import (
	"context"
	"testing"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/gcs"
)

// OpenStore opens a gcs store named "gcstest" on srv's bucket, confined to prefix, with chunked uploads of
// 256 KiB so that both upload kinds reach the server. It closes when t ends.
func OpenStore(t testing.TB, srv *Server, prefix string) *gcs.Store {
	t.Helper()
	return OpenStoreWith(t, srv, gcs.Options{Prefix: prefix, ChunkSize: 256 << 10, Location: providers.Location{Name: "gcstest"}})
}

// OpenStoreWith opens a gcs store on srv with opts; Bucket and Endpoint are set from srv.
func OpenStoreWith(t testing.TB, srv *Server, opts gcs.Options) *gcs.Store {
	t.Helper()
	opts.Bucket, opts.Endpoint = srv.Bucket(), srv.Endpoint()
	st, err := gcs.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open gcs store on the test server: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

var _ providers.Store = (*gcs.Store)(nil)
