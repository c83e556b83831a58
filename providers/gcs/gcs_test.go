package gcs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openFake opens a store on fake-gcs-server and, when t ends, deletes what it left behind.
func openFake(t *testing.T, srv *testservers.FakeGCSServer, bucket, prefix string) *Store {
	t.Helper()
	st, err := Open(testContext(t), Options{
		Bucket:   bucket,
		Prefix:   prefix,
		Endpoint: srv.Endpoint,
		Location: providers.Location{Name: "fake-gcs"},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var keys []string
		err := st.List(ctx, "", func(o providers.ObjectInfo) error { keys = append(keys, o.Key); return nil })
		if err != nil {
			t.Errorf("cleanup list: %v", err)
		}
		for _, k := range keys {
			if err := st.Delete(ctx, k); err != nil && !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("cleanup: %v", err)
			}
		}
		_ = st.Close()
	})
	return st
}

func TestConformance(t *testing.T) {
	srv := testservers.FakeGCS(t)
	srv.CreateBucket(t, testservers.FakeGCSBucket{Name: "conformance"})
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) providers.Store {
		return openFake(t, srv, "conformance", fmt.Sprintf("ns-%03d", n.Add(1)))
	}, storetest.Options{
		ImmutabilityUnenforced: "fake-gcs-server v1.56.1 stores no object holds and enforces no retention " +
			"(TestFakeGCSServerEnforcesNoImmutability); the adapter's hold and retention requests and its " +
			"handling of Cloud Storage's refusals are checked by TestHoldsAndRetentionAgainstGCSProtocol",
	})
}

// TestFakeGCSServerEnforcesNoImmutability records, on the raw client, what fake-gcs-server
// does with holds and retention, which is why TestConformance runs without its immutability
// cases. If a new version starts enforcing them, this fails: drop ImmutabilityUnenforced.
func TestFakeGCSServerEnforcesNoImmutability(t *testing.T) {
	srv := testservers.FakeGCS(t)
	ctx := testContext(t)
	client, err := storage.NewClient(ctx, option.WithEndpoint(srv.Endpoint), option.WithoutAuthentication(), storage.WithJSONReads())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	bucket := client.Bucket("probe").SetObjectRetention(true)
	require.NoError(t, bucket.Create(ctx, "drflow-test", nil))

	attrs, err := bucket.Attrs(ctx)
	require.NoError(t, err)
	assert.Empty(t, attrs.ObjectRetentionMode, "the fake reports no object retention even when asked to enable it")

	write := func(name string, w func(*storage.Writer)) {
		t.Helper()
		wr := bucket.Object(name).NewWriter(ctx)
		if w != nil {
			w(wr)
		}
		_, err := wr.Write([]byte("content"))
		require.NoError(t, err)
		require.NoError(t, wr.Close())
	}

	// Holds are accepted and dropped: not stored, not reported, not enforced.
	write("held", func(w *storage.Writer) { w.TemporaryHold = true; w.EventBasedHold = true })
	held := bucket.Object("held")
	_, err = held.Update(ctx, storage.ObjectAttrsToUpdate{TemporaryHold: true, EventBasedHold: true})
	require.NoError(t, err)
	got, err := held.Attrs(ctx)
	require.NoError(t, err)
	assert.False(t, got.TemporaryHold || got.EventBasedHold, "the fake does not store holds")
	write("held", nil)
	require.NoError(t, held.Delete(ctx), "the fake deletes an object it was told to hold")

	// Retention is stored and reported, and a change to a Locked one is refused (400, where
	// Cloud Storage answers 403) or, for a removal, ignored; but it blocks neither overwrite
	// nor delete.
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	write("retained", func(w *storage.Writer) { w.Retention = &storage.ObjectRetention{Mode: "Locked", RetainUntil: until} })
	retained := bucket.Object("retained")
	got, err = retained.Attrs(ctx)
	require.NoError(t, err)
	require.NotNil(t, got.Retention)
	assert.Equal(t, "Locked", got.Retention.Mode)
	assert.WithinDuration(t, until, got.Retention.RetainUntil, time.Second)
	shorter := &storage.ObjectRetention{Mode: "Locked", RetainUntil: until.Add(-time.Minute)}
	_, err = retained.OverrideUnlockedRetention(true).Update(ctx, storage.ObjectAttrsToUpdate{Retention: shorter})
	assert.ErrorIs(t, translateError(err), providers.ErrInvalidArgument, "the fake refuses to change a Locked retention with 400")
	write("retained", func(w *storage.Writer) { w.Retention = &storage.ObjectRetention{Mode: "Locked", RetainUntil: until} })
	require.NoError(t, retained.Delete(ctx), "the fake deletes an object under Locked retention")
	write("retained", func(w *storage.Writer) { w.Retention = &storage.ObjectRetention{Mode: "Locked", RetainUntil: until} })
	_, err = retained.Update(ctx, storage.ObjectAttrsToUpdate{Retention: &storage.ObjectRetention{}})
	require.NoError(t, err, "the fake answers a removal of a Locked retention with success")
	got, err = retained.Attrs(ctx)
	require.NoError(t, err)
	assert.NotNil(t, got.Retention, "... and ignores it")
}

// TestDeleteRemovesEveryGeneration: on a versioned bucket Delete leaves no noncurrent
// generation behind.
func TestDeleteRemovesEveryGeneration(t *testing.T) {
	srv := testservers.FakeGCS(t)
	srv.CreateBucket(t, testservers.FakeGCSBucket{Name: "versioned", Versioning: true})
	st := openFake(t, srv, "versioned", "p")
	assert.Contains(t, st.Capabilities().Note, "versioning is on")
	ctx := testContext(t)
	for _, v := range []string{"one", "two", "three"} {
		_, err := st.Put(ctx, "doc", strings.NewReader(v), providers.PutOptions{})
		require.NoError(t, err)
	}
	_, err := st.Put(ctx, "doc2", strings.NewReader("neighbour"), providers.PutOptions{})
	require.NoError(t, err)

	generations := func(name string) int {
		it := st.bucket.Objects(ctx, &storage.Query{Prefix: name, Versions: true})
		var n int
		for {
			attrs, err := it.Next()
			if err != nil {
				return n
			}
			if attrs.Name == name {
				n++
			}
		}
	}
	require.Equal(t, 3, generations("p/doc"))
	require.NoError(t, st.Delete(ctx, "doc"))
	assert.Zero(t, generations("p/doc"), "every generation must be gone")
	assert.Equal(t, 1, generations("p/doc2"), "a neighbour sharing the prefix stays")
	assert.ErrorIs(t, st.Delete(ctx, "doc"), providers.ErrNotFound)
}

func TestOpenMissingBucket(t *testing.T) {
	srv := testservers.FakeGCS(t)
	_, err := Open(testContext(t), Options{Bucket: "no-such-bucket", Endpoint: srv.Endpoint})
	require.ErrorIs(t, err, providers.ErrNotFound)
	assert.Contains(t, err.Error(), `bucket "no-such-bucket" does not exist`)
	t.Log(err)

	_, err = Open(testContext(t), Options{Endpoint: srv.Endpoint})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
	_, err = Open(testContext(t), Options{Bucket: "b", Prefix: "a/../b", Endpoint: srv.Endpoint})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name      string
		give      storage.BucketAttrs
		endpoint  string
		wantModes []providers.RetentionMode
		wantNote  []string
	}{
		{
			name:     "plain bucket",
			give:     storage.BucketAttrs{Name: "b"},
			wantNote: []string{"object holds are enforced on every bucket", "object retention is not enabled"},
		},
		{
			name:      "object retention",
			give:      storage.BucketAttrs{Name: "b", ObjectRetentionMode: "Enabled"},
			wantModes: []providers.RetentionMode{providers.Governance, providers.Compliance},
			wantNote:  []string{"object retention is enabled"},
		},
		{
			name: "bucket lock, default hold, versioning, emulator",
			give: storage.BucketAttrs{Name: "b", RetentionPolicy: &storage.RetentionPolicy{RetentionPeriod: time.Hour, IsLocked: true},
				DefaultEventBasedHold: true, VersioningEnabled: true},
			endpoint: "http://127.0.0.1:1/storage/v1/",
			wantNote: []string{"a locked bucket retention policy of 1h0m0s", "event-based hold by default", "versioning is on", "custom endpoint"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := capabilities(&tt.give, tt.endpoint)
			assert.True(t, caps.LegalHold)
			assert.True(t, caps.ConditionalCreate)
			assert.Equal(t, tt.wantModes != nil, caps.Retention)
			assert.Equal(t, tt.wantModes, caps.RetentionModes)
			for _, n := range tt.wantNote {
				assert.Contains(t, caps.Note, n)
			}
		})
	}
}

func TestEffectiveRetention(t *testing.T) {
	own := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	policy := own.Add(time.Hour)
	tests := []struct {
		name         string
		give         storage.ObjectAttrs
		policyLocked bool
		want         providers.Retention
	}{
		{"none", storage.ObjectAttrs{}, false, providers.Retention{}},
		{"unlocked", storage.ObjectAttrs{Retention: &storage.ObjectRetention{Mode: "Unlocked", RetainUntil: own}, RetentionExpirationTime: own},
			false, providers.Retention{Mode: providers.Governance, Until: own}},
		{"locked", storage.ObjectAttrs{Retention: &storage.ObjectRetention{Mode: "Locked", RetainUntil: own}, RetentionExpirationTime: own},
			true, providers.Retention{Mode: providers.Compliance, Until: own}},
		{"unlocked bucket policy outlasts", storage.ObjectAttrs{Retention: &storage.ObjectRetention{Mode: "Locked", RetainUntil: own}, RetentionExpirationTime: policy},
			false, providers.Retention{Mode: providers.Governance, Until: policy}},
		{"locked bucket policy only", storage.ObjectAttrs{RetentionExpirationTime: policy},
			true, providers.Retention{Mode: providers.Compliance, Until: policy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &Store{policyLocked: tt.policyLocked}
			assert.Equal(t, tt.want, st.retention(&tt.give))
		})
	}
}
