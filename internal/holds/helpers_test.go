package holds

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/azblob"
	"github.com/drflow/drflow/providers/azblob/azbtest"
	"github.com/drflow/drflow/providers/gcs"
	"github.com/drflow/drflow/providers/gcs/gcstest"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/s3"
)

const ds = "ds"

// Restore points of the tests: p1 and p2 exist when holds are placed at t0, p3 comes later.
var (
	p1 = Point{ID: "p1", DataAsOf: t0.Add(-2 * time.Hour)}
	p2 = Point{ID: "p2", DataAsOf: t0.Add(-time.Hour)}
	p3 = Point{ID: "p3", DataAsOf: t0.Add(time.Hour)}
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// storeCase is a store the lifecycle runs against: the enforcement its capabilities claim,
// and the one a placement finds after reading a hold back.
type storeCase struct {
	name      string
	open      func(t *testing.T) providers.Store
	claimed   string
	effective string
}

func storeCases() []storeCase {
	return []storeCase{
		{"local", func(t *testing.T) providers.Store { return openLocal(t, "eu-primary") }, EnforcedByAdapter, EnforcedByAdapter},
		{"minio-object-lock", openMinIO, EnforcedByServer, EnforcedByServer},
		// The gcs adapter cannot tell the emulator from Cloud Storage by its bucket: it
		// claims holds, which fake-gcs-server accepts and drops.
		{"fake-gcs-server", openFakeGCS, EnforcedByServer, EnforcedByDrflow},
		{"azurite", openAzurite, EnforcedByDrflow, EnforcedByDrflow},
		{"gcstest", func(t *testing.T) providers.Store { return gcstest.OpenStore(t, gcstest.NewServer(t, "vault"), "dr") }, EnforcedByServer, EnforcedByServer},
		{"azbtest", func(t *testing.T) providers.Store { return azbtest.OpenStore(t, azbtest.NewServer(t, "worm"), "dr") }, EnforcedByServer, EnforcedByServer},
	}
}

func openLocal(t *testing.T, name string) providers.Store {
	t.Helper()
	st, err := local.Open(local.Options{Root: t.TempDir(), Location: providers.Location{Name: name, Jurisdiction: "EU"}})
	require.NoError(t, err)
	return st
}

func openMinIO(t *testing.T) providers.Store {
	srv := testservers.MinIO(t)
	srv.CreateBucket(t, "holds", true)
	st, err := s3.Open(testCtx(t), s3.Options{Bucket: "holds", Prefix: "dr", Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		Location:    providers.Location{Name: "minio", Jurisdiction: "EU"}})
	require.NoError(t, err)
	return st
}

func openFakeGCS(t *testing.T) providers.Store {
	srv := testservers.FakeGCS(t)
	srv.CreateBucket(t, testservers.FakeGCSBucket{Name: "holds"})
	st, err := gcs.Open(testCtx(t), gcs.Options{Bucket: "holds", Prefix: "dr", Endpoint: srv.Endpoint,
		Location: providers.Location{Name: "fake-gcs", Jurisdiction: "EU"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func openAzurite(t *testing.T) providers.Store {
	srv := testservers.Azurite(t)
	srv.CreateContainer(t, "holds")
	st, err := azblob.Open(testCtx(t), azblob.Options{Container: "holds", Prefix: "dr/", ConnectionString: srv.ConnectionString,
		Location: providers.Location{Name: "azurite", Jurisdiction: "EU"}})
	require.NoError(t, err)
	return st
}

func pointKey(id string) string { return "datasets/" + ds + "/points/" + id }

// writePoint stores a fake restore point: its manifest lists its packs and the dataset's
// wrapped key, one key a line. It returns every object of the point, sorted.
func writePoint(t *testing.T, st providers.Store, id string, packs ...string) []string {
	t.Helper()
	ctx := testCtx(t)
	objects := []string{"datasets/" + ds + "/keys/1"}
	for _, p := range packs {
		objects = append(objects, "datasets/"+ds+"/packs/"+p)
	}
	for _, k := range objects {
		_, err := st.Put(ctx, k, strings.NewReader("data of "+k), providers.PutOptions{IfNotExists: true})
		if !errors.Is(err, providers.ErrExists) {
			require.NoError(t, err)
		}
	}
	_, err := st.Put(ctx, pointKey(id), strings.NewReader(strings.Join(objects, "\n")), providers.PutOptions{})
	require.NoError(t, err)
	objects = append(objects, pointKey(id))
	sort.Strings(objects)
	return objects
}

// target lists a point's objects from its manifest, as repo.PointObjects does.
func target(st providers.Store, mode string) Target {
	return Target{Store: st, Mode: mode, Objects: func(ctx context.Context, point string) ([]string, error) {
		rc, err := st.Get(ctx, pointKey(point), providers.GetOptions{})
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			return nil, err
		}
		return append(strings.Split(string(data), "\n"), pointKey(point)), nil
	}}
}

func holdOrder(name string, sel Selection) Order {
	return Order{Name: name, Dataset: ds, Reason: "case " + name, RequestedBy: "alice", PlacedAt: t0, Selection: sel, Actor: "test"}
}

func approved(reason string) Release {
	return Release{Reason: reason, RequestedBy: "alice", ApprovedBy: []string{"bob"}, Actor: "test"}
}

func fixedNow() time.Time { return t0.Add(time.Minute) }

// recorder is an in-memory audit.Recorder that refuses what the audit log would refuse.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	if err := audit.Validate(e); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// take returns the events since the last take as "operation outcome [location]".
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		s := e.Operation + " " + e.Outcome
		if e.Location != "" {
			s += " " + e.Location
		}
		out = append(out, s)
	}
	r.events = nil
	return out
}

func (r *recorder) last() audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[len(r.events)-1]
}

// assertHeld checks the provider's hold flag on every key.
func assertHeld(t *testing.T, st providers.Store, keys []string, want bool) {
	t.Helper()
	for _, k := range keys {
		info, err := st.Stat(testCtx(t), k)
		require.NoError(t, err)
		assert.Equal(t, want, info.LegalHold, "legal hold on %s at %s", k, st.Location().Name)
	}
}
