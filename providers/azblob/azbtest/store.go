package azbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/azblob"
)

// OpenStore opens an azblob store named "azbtest" on srv's container, confined to prefix (a
// trailing "/" is added if missing), with 1 MiB blocks. The store reads the real clock, so
// tests that Advance the service's clock past a policy see the two disagree.
func OpenStore(t testing.TB, srv *Server, prefix string) *azblob.Store {
	t.Helper()
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return OpenStoreWith(t, srv, azblob.Options{Prefix: prefix, BlockSize: 1 << 20, Location: providers.Location{Name: "azbtest"}})
}

// OpenStoreWith opens an azblob store on srv with opts; Container and ConnectionString are
// set from srv.
func OpenStoreWith(t testing.TB, srv *Server, opts azblob.Options) *azblob.Store {
	t.Helper()
	opts.Container, opts.ConnectionString = srv.Container(), srv.ConnectionString()
	st, err := azblob.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open azblob store on the test service: %v", err)
	}
	return st
}

var _ providers.Store = (*azblob.Store)(nil)
