// Package s3 is the providers.Store adapter for Amazon S3 and S3-compatible servers (MinIO),
// built on aws-sdk-go-v2.
//
// Immutability comes from S3 Object Lock, which can only be enabled when a bucket is created.
// Open reads the bucket's configuration and reports what the server enforces: with Object Lock,
// legal holds and governance and compliance retention; without it, neither (the hold and
// retention calls then fail with providers.ErrNotSupported).
//
// Object Lock buckets are versioned, and S3 protects object versions, not keys: a plain PUT
// over a held object succeeds by adding a new version. To honour the Store contract, Put
// refuses (providers.ErrImmutable) when the current version is held or retained, and Delete
// removes every version of a key, refusing if any of them is protected.
package s3

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/drflow/drflow/providers"
)

// Upload tuning. A Put holds at most (Concurrency+2) parts in memory: one being read, one per
// uploading worker and the first part while it is read. The largest object of unknown length
// that fits in S3's 10,000 parts is PartSize * 10,000 (about 78 GiB with the default).
const (
	DefaultPartSize    = 8 << 20
	DefaultConcurrency = 3
	// MinPartSize is S3's lower bound for every part but the last.
	MinPartSize = manager.MinUploadPartSize
)

// Options configure a Store.
type Options struct {
	Bucket string
	// Prefix confines the store to keys below it ("backups/eu" holds key k at
	// "backups/eu/k"). Keys passed to and returned by the Store are relative to it.
	Prefix string
	// Region defaults to the SDK's configuration (AWS_REGION, shared config), or to
	// "us-east-1" when Endpoint is set.
	Region string
	// Endpoint is a custom S3 API base URL with scheme, e.g. "http://127.0.0.1:9000" for
	// MinIO. Empty means AWS.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket instead of bucket.endpoint, as most
	// S3-compatible servers need.
	PathStyle bool
	// Credentials, when nil, come from the SDK's default chain (environment, shared files,
	// web identity, instance role).
	Credentials aws.CredentialsProvider
	// Location describes the store for logs and policy; Provider, Bucket, Prefix, Endpoint
	// and (if empty) Region are filled in from these options.
	Location providers.Location
	// PartSize is the multipart upload part size in bytes (default DefaultPartSize, at
	// least MinPartSize).
	PartSize int64
	// Concurrency is how many parts of one Put upload at once (default DefaultConcurrency).
	Concurrency int
}

// Store is a providers.Store on one S3 bucket and prefix.
type Store struct {
	client   *awss3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" or ends with "/"
	// versioned: versioning was Enabled or Suspended at Open, so deletes must remove
	// versions rather than just the current object.
	versioned bool
	caps      providers.Capabilities
	loc       providers.Location
}

var _ providers.Store = (*Store)(nil)

// Open connects to opts.Bucket and probes it: it fails if the bucket does not exist or cannot
// be reached, and reads its versioning and Object Lock configuration to establish the
// Capabilities.
//
//nolint:gocyclo // one case per connection option (endpoint, path style, credentials, lock check)
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, fmt.Errorf("s3 open: %w: bucket is empty", providers.ErrInvalidArgument)
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		if err := providers.ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 open %s: prefix: %w", opts.Bucket, err)
		}
		prefix += "/"
	}
	if opts.PartSize == 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3 open %s: %w: part size %d is below S3's minimum of %d bytes",
			opts.Bucket, providers.ErrInvalidArgument, opts.PartSize, MinPartSize)
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Concurrency < 0 {
		return nil, fmt.Errorf("s3 open %s: %w: concurrency %d is negative", opts.Bucket, providers.ErrInvalidArgument, opts.Concurrency)
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 open %s: %w: endpoint %q is not an http(s) URL", opts.Bucket, providers.ErrInvalidArgument, opts.Endpoint)
		}
	}

	var loadOpts []func(*config.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 open %s: load AWS configuration: %w", opts.Bucket, err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, fmt.Errorf("s3 open %s: %w: no region (set it in the location or AWS_REGION)", opts.Bucket, providers.ErrInvalidArgument)
		}
		cfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// Multipart objects carry composite checksums that the SDK cannot validate on
		// download; it says so on every Get unless told not to.
		o.DisableLogOutputChecksumValidationSkipped = true
	})

	s := &Store{
		client: client,
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize = opts.PartSize
			u.Concurrency = opts.Concurrency
		}),
		bucket: opts.Bucket,
		prefix: prefix,
	}
	s.loc = opts.Location
	s.loc.Provider = providers.ProviderS3
	s.loc.Bucket = opts.Bucket
	s.loc.Prefix = strings.TrimSuffix(prefix, "/")
	s.loc.Endpoint = opts.Endpoint
	if s.loc.Region == "" {
		s.loc.Region = cfg.Region
	}
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// probe checks that the bucket exists and establishes the capabilities from its versioning
// and Object Lock configuration.
func (s *Store) probe(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		err = translateError(err)
		if errors.Is(err, providers.ErrNotFound) {
			return fmt.Errorf("s3 open %s: bucket does not exist (or is in another region): %w", s.bucket, err)
		}
		return fmt.Errorf("s3 open %s: %w", s.bucket, ctxErr(ctx, err))
	}

	ver, err := s.client.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: &s.bucket})
	if err != nil {
		return fmt.Errorf("s3 open %s: read versioning: %w", s.bucket, ctxErr(ctx, translateError(err)))
	}
	versioning := string(ver.Status)
	if versioning == "" {
		versioning = "never enabled"
	}
	s.versioned = ver.Status != ""

	s.caps = providers.Capabilities{ConditionalCreate: true}
	const conditional = "conditional create by If-None-Match on PutObject and CompleteMultipartUpload"
	lock, err := s.client.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: &s.bucket})
	switch {
	case err == nil && lock.ObjectLockConfiguration != nil &&
		lock.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled:
		s.caps.LegalHold = true
		s.caps.ServerEnforced = true
		s.caps.Retention = true
		s.caps.RetentionModes = []providers.RetentionMode{providers.Governance, providers.Compliance}
		s.caps.Note = fmt.Sprintf("bucket %s has S3 Object Lock enabled (versioning %s): the server refuses to delete "+
			"held or retained object versions; governance and compliance retention; overwrite of a protected "+
			"object refused by the adapter; %s", s.bucket, versioning, conditional)
		if rule := lock.ObjectLockConfiguration.Rule; rule != nil && rule.DefaultRetention != nil {
			d := rule.DefaultRetention
			period := fmt.Sprintf("%d days", aws.ToInt32(d.Days))
			if d.Years != nil {
				period = fmt.Sprintf("%d years", aws.ToInt32(d.Years))
			}
			s.caps.Note += fmt.Sprintf("; bucket default retention %s %s applies to every new object", d.Mode, period)
		}
	case err == nil || isCode(err, "ObjectLockConfigurationNotFoundError"):
		s.caps.Note = fmt.Sprintf("bucket %s has no S3 Object Lock configuration (versioning %s): no legal holds or "+
			"retention; %s", s.bucket, versioning, conditional)
	case errors.Is(translateError(err), providers.ErrPermission):
		// Reporting less than the server may enforce is safe; reporting more is not.
		s.caps.Note = fmt.Sprintf("not permitted to read the Object Lock configuration of bucket %s (versioning %s), "+
			"so no legal holds or retention are claimed; %s", s.bucket, versioning, conditional)
	default:
		return fmt.Errorf("s3 open %s: read Object Lock configuration: %w", s.bucket, ctxErr(ctx, translateError(err)))
	}
	return nil
}

// Capabilities implements providers.Store.
func (s *Store) Capabilities() providers.Capabilities {
	c := s.caps
	c.RetentionModes = slices.Clone(c.RetentionModes)
	return c
}

// Location implements providers.Store.
func (s *Store) Location() providers.Location { return s.loc }
