package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

func TestConformance(t *testing.T) {
	srv := testservers.MinIO(t)
	admin := adminClient(srv)
	tests := []struct {
		name   string
		bucket string
		lock   bool
	}{
		{"ObjectLock", "conformance-lock", true},
		{"Plain", "conformance-plain", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.CreateBucket(t, tt.bucket, tt.lock)
			var n atomic.Int64
			storetest.Run(t, func(t *testing.T) providers.Store {
				prefix := fmt.Sprintf("ns-%04d", n.Add(1))
				st := openStore(t, srv, tt.bucket, prefix)
				require.Equal(t, tt.lock, st.Capabilities().Immutable(), st.Capabilities().Note)
				t.Cleanup(func() { purge(t, admin, tt.bucket, prefix+"/", tt.lock) })
				return st
			}, storetest.Options{})
		})
	}
}

// TestMinIO covers what the conformance suite cannot see: how Open reads a bucket, and what
// the server itself enforces beneath the adapter.
func TestMinIO(t *testing.T) {
	srv := testservers.MinIO(t)
	admin := adminClient(srv)
	srv.CreateBucket(t, "lock", true)
	srv.CreateBucket(t, "plain", false)
	ctx := context.Background()

	t.Run("OpenMissingBucket", func(t *testing.T) {
		_, err := Open(ctx, minioOptions(srv, "no-such-bucket", ""))
		require.ErrorIs(t, err, providers.ErrNotFound)
		assert.Contains(t, err.Error(), "s3 open no-such-bucket: bucket does not exist")
	})

	t.Run("OpenWrongCredentials", func(t *testing.T) {
		opts := minioOptions(srv, "plain", "")
		opts.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKey, "not-the-secret", "")
		_, err := Open(ctx, opts)
		assert.ErrorIs(t, err, providers.ErrPermission)
	})

	t.Run("OpenInvalidOptions", func(t *testing.T) {
		tests := []struct {
			name string
			give func(*Options)
		}{
			{"no bucket", func(o *Options) { o.Bucket = "" }},
			{"endpoint without scheme", func(o *Options) { o.Endpoint = "127.0.0.1:9000" }},
			{"part size below S3 minimum", func(o *Options) { o.PartSize = 1 << 20 }},
			{"negative concurrency", func(o *Options) { o.Concurrency = -1 }},
			{"prefix with dot-dot", func(o *Options) { o.Prefix = "a/../b" }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				opts := minioOptions(srv, "plain", "")
				tt.give(&opts)
				_, err := Open(ctx, opts)
				assert.ErrorIs(t, err, providers.ErrInvalidArgument)
			})
		}
	})

	t.Run("Capabilities", func(t *testing.T) {
		srv.CreateBucket(t, "lock-default", true)
		_, err := admin.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{
			Bucket: aws.String("lock-default"),
			ObjectLockConfiguration: &types.ObjectLockConfiguration{
				ObjectLockEnabled: types.ObjectLockEnabledEnabled,
				Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{
					Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1),
				}},
			},
		})
		require.NoError(t, err)

		tests := []struct {
			bucket   string
			want     providers.Capabilities
			wantNote []string
		}{
			{"lock", providers.Capabilities{
				LegalHold: true, Retention: true, ConditionalCreate: true, ServerEnforced: true,
				RetentionModes: []providers.RetentionMode{providers.Governance, providers.Compliance},
			}, []string{"Object Lock enabled", "versioning Enabled"}},
			{"lock-default", providers.Capabilities{
				LegalHold: true, Retention: true, ConditionalCreate: true, ServerEnforced: true,
				RetentionModes: []providers.RetentionMode{providers.Governance, providers.Compliance},
			}, []string{"default retention GOVERNANCE 1 days"}},
			{"plain", providers.Capabilities{ConditionalCreate: true},
				[]string{"no S3 Object Lock configuration", "versioning never enabled"}},
		}
		for _, tt := range tests {
			t.Run(tt.bucket, func(t *testing.T) {
				st := openStore(t, srv, tt.bucket, "caps")
				got := st.Capabilities()
				for _, want := range tt.wantNote {
					assert.Contains(t, got.Note, want)
				}
				got.Note = ""
				assert.Equal(t, tt.want, got)
				assert.Equal(t, tt.want.LegalHold, got.Immutable())
			})
		}
	})

	t.Run("Location", func(t *testing.T) {
		opts := minioOptions(srv, "plain", "/dr/eu/")
		opts.Location = providers.Location{Name: "eu-primary", Jurisdiction: "EU"}
		st, err := Open(ctx, opts)
		require.NoError(t, err)
		assert.Equal(t, providers.Location{
			Name: "eu-primary", Provider: providers.ProviderS3, Bucket: "plain", Prefix: "dr/eu",
			Endpoint: srv.Endpoint, Region: srv.Region, Jurisdiction: "EU",
		}, st.Location())

		_, err = st.Put(ctx, "k", strings.NewReader("x"), providers.PutOptions{})
		require.NoError(t, err)
		_, err = admin.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("plain"), Key: aws.String("dr/eu/k")})
		assert.NoError(t, err, "keys live below the prefix")
	})

	for _, bucket := range []string{"lock", "plain"} {
		t.Run("ConditionalCreateDecidedByServer/"+bucket, func(t *testing.T) {
			conditionalCreateRace(t, srv, admin, bucket)
		})
		t.Run("CancelAbortsMultipartUpload/"+bucket, func(t *testing.T) {
			cancelAbortsUpload(t, srv, admin, bucket)
		})
	}

	t.Run("DeleteRemovesEveryVersion", func(t *testing.T) {
		deleteEveryVersion(t, srv, admin)
	})
	t.Run("ServerEnforcement", func(t *testing.T) {
		serverEnforcement(t, srv, admin)
	})
}

// conditionalCreateRace lets another writer create the key after the adapter's checks but
// before the upload completes, for a single PutObject and for a multipart upload: only the
// server's If-None-Match evaluation can then refuse.
func conditionalCreateRace(t *testing.T, srv *testservers.MinIOServer, admin *awss3.Client, bucket string) {
	ctx := context.Background()
	st := openStore(t, srv, bucket, "race-"+bucket, func(o *Options) { o.PartSize = MinPartSize })
	t.Cleanup(func() { purge(t, admin, bucket, "race-"+bucket+"/", bucket == "lock") })
	tests := []struct {
		name string
		size int64
		at   int64 // the racer writes once this much has been read
	}{
		{"single part", 1 << 10, 1 << 10},
		{"multipart", 2*MinPartSize + 1<<20, MinPartSize + 1<<20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := strings.ReplaceAll(tt.name, " ", "-")
			full := "race-" + bucket + "/" + key
			r := &hookReader{r: bytes.NewReader(randomBytes(t, int(tt.size))), at: tt.at, hook: func() {
				_, err := admin.PutObject(ctx, &awss3.PutObjectInput{
					Bucket: &bucket, Key: &full, Body: strings.NewReader("racer"),
				})
				require.NoError(t, err, "racer")
			}}
			_, err := st.Put(ctx, key, r, providers.PutOptions{IfNotExists: true})
			require.True(t, r.fired, "the racer must have written during the upload")
			require.ErrorIs(t, err, providers.ErrExists)
			assert.Equal(t, "racer", string(readAll(t, st, key)))
			assertNoUploads(t, admin, bucket, full)
		})
	}
}

// cancelAbortsUpload checks what the suite cannot see: a cancelled multipart upload leaves
// no parts behind on the server.
func cancelAbortsUpload(t *testing.T, srv *testservers.MinIOServer, admin *awss3.Client, bucket string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t, srv, bucket, "cancel-"+bucket, func(o *Options) { o.PartSize = MinPartSize })
	t.Cleanup(func() { purge(t, admin, bucket, "cancel-"+bucket+"/", bucket == "lock") })
	r := &hookReader{r: &zeroReader{}, at: 3 * MinPartSize, hook: cancel, err: context.Canceled}
	_, err := st.Put(ctx, "big", r, providers.PutOptions{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = st.Stat(context.Background(), "big")
	assert.ErrorIs(t, err, providers.ErrNotFound)
	assertNoUploads(t, admin, bucket, "cancel-"+bucket+"/big")
}

// deleteEveryVersion covers versions and delete markers that other clients left behind, and
// a protected non-current version.
func deleteEveryVersion(t *testing.T, srv *testservers.MinIOServer, admin *awss3.Client) {
	ctx := context.Background()
	const bucket, prefix = "lock", "versions"
	st := openStore(t, srv, bucket, prefix)
	t.Cleanup(func() { purge(t, admin, bucket, prefix+"/", true) })
	rawPut := func(key, body string) string {
		out, err := admin.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + key), Body: strings.NewReader(body),
		})
		require.NoError(t, err)
		return aws.ToString(out.VersionId)
	}
	rawDelete := func(key string) { // adds a delete marker
		_, err := admin.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + key)})
		require.NoError(t, err)
	}

	for i := range 3 {
		rawPut("doc", fmt.Sprintf("v%d", i))
	}
	rawDelete("doc")
	rawPut("doc", "after marker")
	rawPut("doc/child", "neighbour")
	rawPut("doc-sibling", "neighbour")
	require.Len(t, versionsOf(t, admin, bucket, prefix+"/doc"), 5)
	require.NoError(t, st.Delete(ctx, "doc"))
	assert.Empty(t, versionsOf(t, admin, bucket, prefix+"/doc"), "every version and marker of doc is gone")
	assert.Len(t, versionsOf(t, admin, bucket, prefix+"/doc/child"), 1, "keys that start with doc are kept")
	assert.Len(t, versionsOf(t, admin, bucket, prefix+"/doc-sibling"), 1)

	// Only delete markers left: nothing to delete, and the markers go too.
	ghost := rawPut("ghost", "x")
	rawDelete("ghost")
	_, err := admin.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/ghost"), VersionId: &ghost})
	require.NoError(t, err)
	require.Len(t, versionsOf(t, admin, bucket, prefix+"/ghost"), 1)
	assert.ErrorIs(t, st.Delete(ctx, "ghost"), providers.ErrNotFound)
	assert.Empty(t, versionsOf(t, admin, bucket, prefix+"/ghost"))

	// A held non-current version protects the key: the Delete changes nothing.
	held := rawPut("evidence", "original")
	_, err = admin.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{
		Bucket: aws.String(bucket), Key: aws.String(prefix + "/evidence"), VersionId: &held,
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn},
	})
	require.NoError(t, err)
	rawPut("evidence", "newer")
	err = st.Delete(ctx, "evidence")
	assert.ErrorIs(t, err, providers.ErrImmutable)
	assert.Contains(t, err.Error(), held)
	assert.Len(t, versionsOf(t, admin, bucket, prefix+"/evidence"), 2)
	assert.Equal(t, "newer", string(readAll(t, st, "evidence")))
}

// serverEnforcement records what MinIO itself refuses, through a client that skips the
// adapter's own checks.
func serverEnforcement(t *testing.T, srv *testservers.MinIOServer, admin *awss3.Client) {
	ctx := context.Background()
	const bucket, prefix = "lock", "enforcement/"
	t.Cleanup(func() { purge(t, admin, bucket, prefix, true) })
	put := func(key string, in *awss3.PutObjectInput) string {
		if in == nil {
			in = &awss3.PutObjectInput{}
		}
		in.Bucket, in.Key, in.Body = aws.String(bucket), aws.String(prefix+key), strings.NewReader(key)
		out, err := admin.PutObject(ctx, in)
		require.NoError(t, err)
		return aws.ToString(out.VersionId)
	}
	deleteVersion := func(key, id string, bypass bool) error {
		_, err := admin.DeleteObject(ctx, &awss3.DeleteObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + key), VersionId: &id, BypassGovernanceRetention: aws.Bool(bypass),
		})
		return translateError(err)
	}

	t.Run("LegalHoldBlocksVersionDelete", func(t *testing.T) {
		id := put("held", &awss3.PutObjectInput{ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
		assert.ErrorIs(t, deleteVersion("held", id, true), providers.ErrImmutable, "even with governance bypass")
	})
	t.Run("OverwriteOfHeldKeyIsANewVersion", func(t *testing.T) {
		// Why Put checks first: S3 semantics let a PUT stack a new version on a held one.
		put("held-overwrite", &awss3.PutObjectInput{ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
		put("held-overwrite", nil)
		assert.Len(t, versionsOf(t, admin, bucket, prefix+"held-overwrite"), 2)
	})
	t.Run("GovernanceBlocksDeleteWithoutBypass", func(t *testing.T) {
		id := put("governed", &awss3.PutObjectInput{
			ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(time.Now().Add(time.Hour)),
		})
		assert.ErrorIs(t, deleteVersion("governed", id, false), providers.ErrImmutable)
		assert.NoError(t, deleteVersion("governed", id, true))
	})
	t.Run("ComplianceBlocksEverything", func(t *testing.T) {
		until := time.Now().Add(3 * time.Second)
		id := put("compliant", &awss3.PutObjectInput{
			ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(until),
		})
		assert.ErrorIs(t, deleteVersion("compliant", id, true), providers.ErrImmutable, "bypass does not apply")
		_, err := admin.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + "compliant"), BypassGovernanceRetention: aws.Bool(true),
			Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(until.Add(time.Minute))},
		})
		assert.ErrorIs(t, translateError(err), providers.ErrImmutable, "mode change refused")
		_, err = admin.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + "compliant"), BypassGovernanceRetention: aws.Bool(true),
			Retention: &types.ObjectLockRetention{},
		})
		assert.ErrorIs(t, translateError(err), providers.ErrImmutable, "removal refused")
	})
	t.Run("IfNoneMatch", func(t *testing.T) {
		put("exists", nil)
		_, err := admin.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + "exists"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*"),
		})
		assert.ErrorIs(t, translateError(err), providers.ErrExists)
	})
	t.Run("LockHeadersOnPlainBucket", func(t *testing.T) {
		_, err := admin.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: aws.String("plain"), Key: aws.String(prefix + "held"), Body: strings.NewReader("x"),
			ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn,
		})
		assert.ErrorIs(t, translateError(err), providers.ErrNotSupported)
	})
}

func minioOptions(srv *testservers.MinIOServer, bucket, prefix string) Options {
	return Options{
		Bucket:      bucket,
		Prefix:      prefix,
		Region:      srv.Region,
		Endpoint:    srv.Endpoint,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	}
}

func openStore(t *testing.T, srv *testservers.MinIOServer, bucket, prefix string, tweak ...func(*Options)) *Store {
	t.Helper()
	opts := minioOptions(srv, bucket, prefix)
	for _, fn := range tweak {
		fn(&opts)
	}
	st, err := Open(context.Background(), opts)
	require.NoError(t, err)
	return st
}

// adminClient talks to MinIO directly, for setting up and inspecting what the adapter cannot.
func adminClient(srv *testservers.MinIOServer) *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       srv.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
}

// purge removes every version under prefix, releasing holds and bypassing governance, and
// waits out short compliance retention that a failed test may have left.
func purge(t *testing.T, admin *awss3.Client, bucket, prefix string, lock bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ids []types.ObjectIdentifier
		pages := awss3.NewListObjectVersionsPaginator(admin, &awss3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefix})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				t.Errorf("purge %s/%s: list versions: %v", bucket, prefix, err)
				return
			}
			for _, v := range page.Versions {
				ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
			}
			for _, m := range page.DeleteMarkers {
				ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
			}
		}
		if len(ids) == 0 {
			return
		}
		var refused []types.Error
		for start := 0; start < len(ids); start += 1000 {
			out, err := admin.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
				Bucket:                    &bucket,
				Delete:                    &types.Delete{Objects: ids[start:min(start+1000, len(ids))], Quiet: aws.Bool(true)},
				BypassGovernanceRetention: aws.Bool(lock),
			})
			if err != nil {
				t.Errorf("purge %s/%s: delete: %v", bucket, prefix, err)
				return
			}
			refused = append(refused, out.Errors...)
		}
		if time.Now().After(deadline) {
			t.Errorf("purge %s/%s: %d versions left, e.g. %s: %s", bucket, prefix, len(refused),
				aws.ToString(refused[0].Key), aws.ToString(refused[0].Message))
			return
		}
		for _, e := range refused {
			_, _ = admin.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{
				Bucket: &bucket, Key: e.Key, VersionId: e.VersionId,
				LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff},
			})
		}
		if len(refused) > 0 {
			time.Sleep(500 * time.Millisecond) // compliance retention in the tests lasts seconds
		}
	}
}

// versionsOf lists the version IDs (delete markers included) of exactly key.
func versionsOf(t *testing.T, admin *awss3.Client, bucket, key string) []string {
	t.Helper()
	out, err := admin.ListObjectVersions(context.Background(), &awss3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &key})
	require.NoError(t, err)
	var ids []string
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == key {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	for _, m := range out.DeleteMarkers {
		if aws.ToString(m.Key) == key {
			ids = append(ids, aws.ToString(m.VersionId))
		}
	}
	return ids
}

func assertNoUploads(t *testing.T, admin *awss3.Client, bucket, key string) {
	t.Helper()
	out, err := admin.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
	require.NoError(t, err)
	assert.Empty(t, out.Uploads, "multipart uploads left behind for %s", key)
}

func readAll(t *testing.T, st *Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// hookReader calls hook once at byte at of r, then reads on, or fails with err if set.
type hookReader struct {
	r     io.Reader
	at    int64
	n     int64
	hook  func()
	err   error
	fired bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n >= h.at && !h.fired {
		h.fired = true
		h.hook()
	}
	if h.fired && h.err != nil {
		return 0, h.err
	}
	if !h.fired {
		p = p[:min(int64(len(p)), h.at-h.n)]
	}
	n, err := h.r.Read(p)
	h.n += int64(n)
	if errors.Is(err, io.EOF) && !h.fired {
		h.fired = true
		h.hook()
	}
	return n, err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
