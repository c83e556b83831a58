package faultproxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/chaos/faultproxy"
	"github.com/drflow/drflow/internal/testservers"
)

// start runs a proxy for the test and closes it at the end.
func start(t *testing.T, opts faultproxy.Options) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// s3Client talks to endpoint with MinIO's credentials; attempts 1 turns the SDK's retries off.
func s3Client(m *testservers.MinIOServer, endpoint string, attempts int) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint:     aws.String(endpoint),
		Region:           m.Region,
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		RetryMaxAttempts: attempts,
		HTTPClient:       awshttp.NewBuildableClient(),
		// Multipart objects have composite checksums the SDK does not validate.
		DisableLogOutputChecksumValidationSkipped: true,
	})
}

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func get(t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	require.NoError(t, err)
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	return b
}

func put(t *testing.T, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)})
	require.NoError(t, err)
}

func exists(t *testing.T, c *s3.Client, bucket, key string) bool {
	t.Helper()
	_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return false
	}
	require.NoError(t, err)
	return true
}

// TestProxyMinIO runs S3 traffic through the proxy to a real MinIO: with faults off or at rate
// 0 every byte passes unchanged and SigV4 signatures verify; each fault kind at rate 1 shows
// the failure it stands for.
func TestProxyMinIO(t *testing.T) {
	m := testservers.MinIO(t)
	direct := s3Client(m, m.Endpoint, 0)
	const bucket = "proxy"
	m.CreateBucket(t, bucket, false)
	ctx := context.Background()

	t.Run("pass-through", func(t *testing.T) {
		// Faults at rate 1 but off, then on at rate 0: nothing is injected either way.
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Rules: faultproxy.Mix(1)})
		c := s3Client(m, p.URL(), 1)
		for phase := range 2 {
			if phase == 1 {
				require.NoError(t, p.SetRules(faultproxy.Mix(0), nil))
				p.Enable()
			}
			objects := map[string][]byte{
				// Keys that need escaping: the signed canonical path must survive the proxy.
				fmt.Sprintf("p%d/plain.txt", phase):                    []byte("hello"),
				fmt.Sprintf("p%d/sp ace+plus%%25/ünï(1)=&.bin", phase): random(1, 3<<20),
				fmt.Sprintf("p%d/empty", phase):                        {},
			}
			for k, v := range objects {
				put(t, c, bucket, k, v)
			}
			// A multipart upload: three parts and a completion through the proxy.
			big := random(2, 12<<20)
			up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20 })
			bigKey := fmt.Sprintf("p%d/multipart", phase)
			_, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: &bigKey, Body: bytes.NewReader(big)})
			require.NoError(t, err)
			objects[bigKey] = big

			for k, v := range objects {
				assert.Equal(t, sha(v), sha(get(t, c, bucket, k)), "%s through the proxy", k)
				assert.Equal(t, sha(v), sha(get(t, direct, bucket, k)), "%s stored", k)
			}
			rng, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: &bigKey, Range: aws.String("bytes=1000-1999")})
			require.NoError(t, err)
			part, err := io.ReadAll(rng.Body)
			require.NoError(t, err)
			require.NoError(t, rng.Body.Close())
			assert.Equal(t, big[1000:2000], part)

			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: &bigKey})
			require.NoError(t, err)
			assert.Equal(t, int64(len(big)), aws.ToInt64(head.ContentLength))
			list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(fmt.Sprintf("p%d/", phase))})
			require.NoError(t, err)
			assert.Len(t, list.Contents, len(objects))
			for k := range objects {
				_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
				require.NoError(t, err)
				assert.False(t, exists(t, direct, bucket, k))
			}
		}
		s := p.Stats()
		assert.Positive(t, s.Exposed)
		assert.Greater(t, s.Requests, s.Exposed)
		assert.Zero(t, s.Injected(), "%s", s)
		assert.Empty(t, p.Faults())
	})

	t.Run("raw bytes and headers", func(t *testing.T) {
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Rules: faultproxy.Mix(0), Enabled: true})
		data := random(3, 1<<20+17)
		put(t, direct, bucket, "raw/object", data)
		a := signedGet(t, m, m.Endpoint, "/"+bucket+"/raw/object", "")
		b := signedGet(t, m, p.URL(), "/"+bucket+"/raw/object", "")
		assert.Equal(t, http.StatusOK, a.status)
		assert.Equal(t, a.status, b.status)
		assert.Equal(t, a.body, b.body, "the proxy passes the body byte for byte")
		for _, h := range []string{"Content-Length", "Content-Type", "Etag", "Last-Modified"} {
			assert.Equal(t, a.header.Get(h), b.header.Get(h), h)
		}
	})

	t.Run("signature covers the host", func(t *testing.T) {
		// A client signs for the endpoint it talks to. The proxy forwards that Host, so the
		// signature verifies upstream; a request signed for MinIO's own address but sent with
		// the proxy's Host fails there, so MinIO does check what the proxy preserves.
		p := start(t, faultproxy.Options{Upstream: m.Endpoint})
		put(t, direct, bucket, "sig/object", []byte("signed"))
		ok := signedGet(t, m, p.URL(), "/"+bucket+"/sig/object", "")
		assert.Equal(t, http.StatusOK, ok.status, "%s", ok.body)
		assert.Equal(t, "signed", string(ok.body))
		bad := signedGet(t, m, p.URL(), "/"+bucket+"/sig/object", hostOf(m.Endpoint))
		assert.Equal(t, http.StatusForbidden, bad.status)
		assert.Contains(t, string(bad.body), "SignatureDoesNotMatch")
	})

	t.Run("5xx", func(t *testing.T) {
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Rules: []faultproxy.Rule{{Kind: faultproxy.ServerError, Rate: 1}}, Enabled: true, Seed: 5})
		put(t, direct, bucket, "5xx/object", []byte("x"))
		c := s3Client(m, p.URL(), 1)
		statuses := map[int]bool{}
		for range 8 {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("5xx/object")})
			require.Error(t, err)
			var re *awshttp.ResponseError
			require.ErrorAs(t, err, &re)
			statuses[re.HTTPStatusCode()] = true
			var api smithy.APIError
			require.ErrorAs(t, err, &api)
			assert.Contains(t, []string{"SlowDown", "InternalError"}, api.ErrorCode())
			assert.Equal(t, aws.TrueTernary, retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err),
				"the SDK retries it: %v", err)
		}
		assert.Equal(t, map[int]bool{500: true, 503: true}, statuses, "both statuses drawn")
		assert.Equal(t, int64(8), p.Stats().Faults[faultproxy.ServerError])

		// With its retries the SDK gets through two injected errors.
		require.NoError(t, p.SetRules([]faultproxy.Rule{{Kind: faultproxy.ServerError, Rate: 1, Limit: 2}}, nil))
		assert.Equal(t, "x", string(get(t, s3Client(m, p.URL(), 0), bucket, "5xx/object")))
		assert.Equal(t, int64(10), p.Stats().Faults[faultproxy.ServerError])
	})

	t.Run("reset before upstream", func(t *testing.T) {
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Enabled: true,
			Rules: []faultproxy.Rule{{Kind: faultproxy.ResetBefore, Rate: 1, Methods: []string{http.MethodPut}}}})
		c := s3Client(m, p.URL(), 1)
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("rb/object"), Body: bytes.NewReader([]byte("lost"))})
		require.Error(t, err)
		assert.False(t, exists(t, direct, bucket, "rb/object"), "the write never reached the server")
		assert.False(t, exists(t, c, bucket, "rb/none"), "other methods pass")
		assert.Equal(t, int64(1), p.Stats().Faults[faultproxy.ResetBefore])
	})

	t.Run("reset after upstream", func(t *testing.T) {
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Enabled: true,
			Rules: []faultproxy.Rule{{Kind: faultproxy.ResetAfter, Rate: 1, Methods: []string{http.MethodPut}}}})
		c := s3Client(m, p.URL(), 1)
		data := random(4, 100<<10)
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("ra/object"), Body: bytes.NewReader(data)})
		require.Error(t, err, "the client saw a failure")
		assert.Equal(t, sha(data), sha(get(t, direct, bucket, "ra/object")), "but the write took effect")

		// The ambiguous conditional create: the SDK's retry finds its own object there.
		require.NoError(t, p.SetRules([]faultproxy.Rule{{Kind: faultproxy.ResetAfter, Rate: 1, Limit: 1, Methods: []string{http.MethodPut}}}, nil))
		_, err = s3Client(m, p.URL(), 0).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("ra/created"),
			Body: bytes.NewReader(data), IfNoneMatch: aws.String("*")})
		var api smithy.APIError
		require.ErrorAs(t, err, &api)
		assert.Equal(t, "PreconditionFailed", api.ErrorCode())
		assert.Equal(t, sha(data), sha(get(t, direct, bucket, "ra/created")))
		assert.Equal(t, int64(2), p.Stats().Faults[faultproxy.ResetAfter])
	})

	t.Run("slow", func(t *testing.T) {
		const delay = 300 * time.Millisecond
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Enabled: true, MinDelay: delay, MaxDelay: delay,
			Rules: []faultproxy.Rule{{Kind: faultproxy.Slow, Rate: 1}}})
		put(t, direct, bucket, "slow/object", []byte("late"))
		c := s3Client(m, p.URL(), 1)
		begin := time.Now()
		assert.Equal(t, "late", string(get(t, c, bucket, "slow/object")))
		assert.GreaterOrEqual(t, time.Since(begin), delay)
		f := p.Faults()
		require.Len(t, f, 1)
		assert.Equal(t, faultproxy.Slow, f[0].Kind)
		assert.Equal(t, delay, f[0].Delay)
	})

	t.Run("slow request cancelled", func(t *testing.T) {
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Enabled: true, MinDelay: time.Hour, MaxDelay: time.Hour,
			Rules: []faultproxy.Rule{{Kind: faultproxy.Slow, Rate: 1}}})
		c := s3Client(m, p.URL(), 1)
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		begin := time.Now()
		_, err := c.PutObject(cctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("slow/cancelled"), Body: strings.NewReader("never")})
		require.ErrorIs(t, err, context.DeadlineExceeded, "%v", err)
		// The proxy notices the client leave and drops the request long before the hour.
		require.Eventually(t, func() bool { return p.Stats().Abandoned == 1 }, 10*time.Second, 10*time.Millisecond)
		assert.Less(t, time.Since(begin), 10*time.Second)
		assert.False(t, exists(t, direct, bucket, "slow/cancelled"), "an abandoned request never goes upstream")
	})

	t.Run("truncate", func(t *testing.T) {
		p := start(t, faultproxy.Options{Upstream: m.Endpoint, Enabled: true, Seed: 9,
			Rules: []faultproxy.Rule{{Kind: faultproxy.Truncate, Rate: 1}}})
		data := random(5, 1<<20)
		put(t, direct, bucket, "trunc/object", data)
		c := s3Client(m, p.URL(), 1)
		for i := range 4 {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("trunc/object")})
			require.NoError(t, err, "the headers arrive whole")
			assert.Equal(t, int64(len(data)), aws.ToInt64(out.ContentLength))
			got, err := io.ReadAll(out.Body)
			_ = out.Body.Close()
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the body ends early")
			f := p.Faults()
			require.Len(t, f, i+1)
			assert.Equal(t, faultproxy.Truncate, f[i].Kind)
			assert.Equal(t, int64(len(data)), f[i].Length)
			assert.Equal(t, f[i].Sent, int64(len(got)), "the client gets every byte sent")
			assert.Equal(t, data[:len(got)], got)
		}
		// No body to cut: the connection is reset instead.
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("trunc/object")})
		require.Error(t, err)
		assert.Equal(t, int64(1), p.Stats().Faults[faultproxy.ResetAfter])
	})
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hostOf(endpoint string) string {
	u, _ := url.Parse(endpoint)
	return u.Host
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// signedGet sends a SigV4-signed GET of path to endpoint, signed for signHost if set (else
// for the endpoint's host).
func signedGet(t *testing.T, m *testservers.MinIOServer, endpoint, path, signHost string) answer {
	t.Helper()
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+path, http.NoBody)
	require.NoError(t, err)
	if signHost != "" {
		req.Host = signHost
	}
	empty := sha256.Sum256(nil)
	hash := hex.EncodeToString(empty[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}
	require.NoError(t, v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", m.Region, time.Now()))
	req.Host = "" // sent with the Host of the URL
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header, body}
}

// upstream is an HTTP server that records what reaches it and answers with a fixed body.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newUpstream(t *testing.T, body []byte) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, r)
		u.mu.Unlock()
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.seen...)
}

// oneShot sends a request on a fresh connection (so that net/http does not quietly retry a
// reset one) and reads the whole answer.
func oneShot(method, url string) (int, []byte, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequest(method, url, strings.NewReader("payload"))
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestProxyForwardsRequestUnchanged(t *testing.T) {
	up := newUpstream(t, []byte("ok"))
	p := start(t, faultproxy.Options{Upstream: up.URL})
	const uri = "/bucket/a%20b+c/%C3%BC%2Fx?x-id=GetObject&prefix=a%2Fb&versionId="
	req, err := http.NewRequest(http.MethodGet, p.URL()+uri, nil)
	require.NoError(t, err)
	req.Header.Set("X-Amz-Date", "20260101T000000Z")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	seen := up.requests()
	require.Len(t, seen, 1)
	got := seen[0]
	assert.Equal(t, hostOf(p.URL()), got.Host, "the Host the client signed")
	assert.Equal(t, uri, got.RequestURI, "path escaping and query untouched")
	assert.Equal(t, "20260101T000000Z", got.Header.Get("X-Amz-Date"))
	assert.Equal(t, "AWS4-HMAC-SHA256 Credential=x", got.Header.Get("Authorization"))
	assert.Empty(t, got.Header.Get("X-Forwarded-For"))
}

func TestProxyRulesSelectMethodsAndPaths(t *testing.T) {
	up := newUpstream(t, []byte("ok"))
	p := start(t, faultproxy.Options{Upstream: up.URL, Enabled: true, Rules: []faultproxy.Rule{
		{Kind: faultproxy.ServerError, Rate: 1, Methods: []string{"put"}, Path: regexp.MustCompile(`^/b/points/`)},
	}})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPut, "/b/points/1", http.StatusServiceUnavailable},
		{http.MethodPut, "/b/packs/1", http.StatusOK},
		{http.MethodGet, "/b/points/1", http.StatusOK},
	} {
		status, _, err := oneShot(tc.method, p.URL()+tc.path)
		require.NoError(t, err)
		if tc.status == http.StatusServiceUnavailable {
			assert.Contains(t, []int{500, 503}, status, "%s %s", tc.method, tc.path)
		} else {
			assert.Equal(t, tc.status, status, "%s %s", tc.method, tc.path)
		}
	}
	assert.Len(t, up.requests(), 2, "the failed request never went upstream")

	// Off: everything passes; on again: the rule applies again.
	p.Disable()
	status, _, err := oneShot(http.MethodPut, p.URL()+"/b/points/2")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	p.Enable()
	status, _, err = oneShot(http.MethodPut, p.URL()+"/b/points/3")
	require.NoError(t, err)
	assert.NotEqual(t, http.StatusOK, status)
	s := p.Stats()
	assert.Equal(t, int64(5), s.Requests)
	assert.Equal(t, int64(4), s.Exposed)
	assert.Equal(t, int64(2), s.Injected())
}

func TestProxyLimit(t *testing.T) {
	up := newUpstream(t, []byte("ok"))
	p := start(t, faultproxy.Options{Upstream: up.URL, Enabled: true,
		Rules: []faultproxy.Rule{{Kind: faultproxy.ServerError, Rate: 1, Limit: 3}}})
	var statuses []int
	for range 6 {
		status, _, err := oneShot(http.MethodGet, p.URL()+"/x")
		require.NoError(t, err)
		statuses = append(statuses, status/100)
	}
	assert.Equal(t, []int{5, 5, 5, 2, 2, 2}, statuses)
}

// TestProxySeededRates: the same seed draws the same faults for the same sequence of
// requests, another seed others, and the share of faults is near the rate.
func TestProxySeededRates(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	up := newUpstream(t, body)
	const n = 400
	run := func(seed uint64) ([]faultproxy.Fault, faultproxy.Stats) {
		p := start(t, faultproxy.Options{Upstream: up.URL, Enabled: true, Seed: seed, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond,
			Rules: faultproxy.Mix(0.1)})
		for range n {
			status, got, err := oneShot(http.MethodGet, p.URL()+"/obj")
			if err == nil && status == http.StatusOK {
				assert.Equal(t, body, got)
			}
		}
		return p.Faults(), p.Stats()
	}
	a, sa := run(1)
	b, sb := run(1)
	c, _ := run(2)
	assert.Equal(t, a, b)
	assert.Equal(t, sa, sb)
	assert.NotEqual(t, a, c)
	assert.Equal(t, int64(n), sa.Requests)
	assert.InDelta(t, n/10, sa.Injected(), n/20, "%s", sa)
	for _, k := range faultproxy.Kinds() {
		assert.Positive(t, sa.Faults[k], "%s drawn: %s", k, sa)
	}
	assert.Equal(t, sa.Injected(), int64(len(a)))
}

func TestProxyRejectsBadOptions(t *testing.T) {
	for _, opts := range []faultproxy.Options{
		{Upstream: "127.0.0.1:9000"},
		{Upstream: "http://127.0.0.1:1", Rules: faultproxy.Mix(1.5)},
		{Upstream: "http://127.0.0.1:1", Rules: []faultproxy.Rule{{Kind: faultproxy.Slow, Rate: -1}}},
		{Upstream: "http://127.0.0.1:1", Rules: []faultproxy.Rule{{Rate: 0.1}}},
		{Upstream: "http://127.0.0.1:1", MinDelay: time.Second, MaxDelay: time.Millisecond},
	} {
		_, err := faultproxy.New(opts)
		assert.Error(t, err, "%+v", opts)
	}
}
