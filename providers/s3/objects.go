package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/drflow/drflow/providers"
)

// abortTimeout bounds the clean-up of a failed multipart upload, which runs even when the
// Put's context is already cancelled.
const abortTimeout = 30 * time.Second

// Put implements providers.Store. Objects smaller than PartSize go up in one PutObject,
// larger ones as a multipart upload that becomes visible only on completion; a failed or
// cancelled upload is aborted. IfNotExists sends If-None-Match: * on the PutObject or the
// CompleteMultipartUpload, so the server decides atomically for both sizes.
//
// On an Object Lock bucket Put first reads the current version's hold and retention (HEAD),
// so the caller needs s3:GetObject, s3:GetObjectLegalHold and s3:GetObjectRetention too.
//
//nolint:gocyclo // one case per put option (condition, hold, retention, checksum)
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (providers.ObjectInfo, error) {
	if err := s.checkPut(key, opts); err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("s3 put %q: %w", key, err)
	}
	full := s.prefix + key
	if s.caps.LegalHold || s.caps.Retention {
		// On a versioned bucket S3 accepts the PUT as a new version and leaves the held one
		// behind it, so the refusal the contract promises has to be checked here. A hold
		// placed between this check and the upload still keeps its version intact.
		cur, err := s.head(ctx, full, "")
		switch {
		case errors.Is(err, providers.ErrNotFound):
		case err != nil:
			return providers.ObjectInfo{}, fail(ctx, "put", key, err)
		case opts.IfNotExists: // what the server would answer, and the news a creator needs
			return providers.ObjectInfo{}, fmt.Errorf("s3 put %q: %w", key, providers.ErrExists)
		case cur.LegalHold || cur.Retention.Active(time.Now()):
			return providers.ObjectInfo{}, fmt.Errorf("s3 put %q: current version is under %s: %w",
				key, protection(cur), providers.ErrImmutable)
		}
	}

	body := &countingReader{r: r}
	in := &awss3.PutObjectInput{
		Bucket: &s.bucket,
		Key:    &full,
		Body:   body,
		// Object Lock buckets require an integrity checksum on every PutObject and part;
		// set it explicitly so an AWS_REQUEST_CHECKSUM_CALCULATION=when_required
		// environment cannot turn it off.
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if opts.ContentType != "" {
		in.ContentType = &opts.ContentType
	}
	if opts.IfNotExists {
		// The uploader copies it onto CompleteMultipartUpload for large objects.
		in.IfNoneMatch = aws.String("*")
	}
	if opts.LegalHold {
		in.ObjectLockLegalHoldStatus = types.ObjectLockLegalHoldStatusOn
	}
	if !opts.Retention.Until.IsZero() {
		in.ObjectLockMode = types.ObjectLockMode(toS3Mode(opts.Retention.Mode))
		in.ObjectLockRetainUntilDate = aws.Time(opts.Retention.Until)
	}
	out, err := s.uploader.Upload(ctx, in)
	if err != nil {
		var mu manager.MultiUploadFailure
		if errors.As(err, &mu) {
			// The uploader aborts with the Put's context, which fails when that context is
			// what ended the upload; without an abort the parts linger (and are billed).
			err = s.abort(ctx, full, mu.UploadID(), err)
		}
		return providers.ObjectInfo{}, fail(ctx, "put", key, err)
	}
	info := providers.ObjectInfo{
		Key:       key,
		Size:      body.n,
		ModTime:   time.Now(), // S3 returns no timestamp on upload; Stat has the server's.
		ETag:      aws.ToString(out.ETag),
		LegalHold: opts.LegalHold,
	}
	if !opts.Retention.Until.IsZero() {
		info.Retention = opts.Retention
	}
	return info, nil
}

func (s *Store) checkPut(key string, opts providers.PutOptions) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if err := opts.Retention.Validate(); err != nil {
		return err
	}
	if opts.LegalHold && !s.caps.LegalHold {
		return fmt.Errorf("legal hold: %w (%s)", providers.ErrNotSupported, s.caps.Note)
	}
	if !opts.Retention.Until.IsZero() && !s.caps.SupportsMode(opts.Retention.Mode) {
		return fmt.Errorf("%s retention: %w (%s)", opts.Retention.Mode, providers.ErrNotSupported, s.caps.Note)
	}
	if opts.IfNotExists && !s.caps.ConditionalCreate {
		return fmt.Errorf("conditional create: %w (%s)", providers.ErrNotSupported, s.caps.Note)
	}
	return nil
}

// abort aborts a failed multipart upload and returns the upload's error, noting an abort that
// failed too.
func (s *Store) abort(ctx context.Context, full, uploadID string, uploadErr error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: &full, UploadId: &uploadID,
	})
	if err != nil && !isCode(err, "NoSuchUpload") { // NoSuchUpload: the uploader's abort got there first
		return fmt.Errorf("%w (and abort of multipart upload %s failed: %v)", uploadErr, uploadID, err)
	}
	return uploadErr
}

// Get implements providers.Store.
func (s *Store) Get(ctx context.Context, key string, opts providers.GetOptions) (io.ReadCloser, error) {
	if err := providers.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("s3 get %q: %w", key, err)
	}
	in := &awss3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}
	if r := opts.Range; r != nil {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("s3 get %q: %w", key, err)
		}
		if r.Length < 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.Offset))
		} else {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", r.Offset, r.Offset+r.Length-1))
		}
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, fail(ctx, "get", key, err)
	}
	return out.Body, nil
}

// Stat implements providers.Store.
func (s *Store) Stat(ctx context.Context, key string) (providers.ObjectInfo, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("s3 stat %q: %w", key, err)
	}
	info, err := s.head(ctx, s.prefix+key, "")
	if err != nil {
		return providers.ObjectInfo{}, fail(ctx, "stat", key, err)
	}
	return info, nil
}

// head describes one version of an object (the current one if versionID is empty). The
// error is translated but not wrapped.
func (s *Store) head(ctx context.Context, full, versionID string) (providers.ObjectInfo, error) {
	in := &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &full}
	if versionID != "" {
		in.VersionId = &versionID
	}
	out, err := s.client.HeadObject(ctx, in)
	if err != nil {
		return providers.ObjectInfo{}, translateError(err)
	}
	info := providers.ObjectInfo{
		Key:       strings.TrimPrefix(full, s.prefix),
		Size:      aws.ToInt64(out.ContentLength),
		ModTime:   aws.ToTime(out.LastModified),
		ETag:      aws.ToString(out.ETag),
		LegalHold: out.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn,
	}
	if out.ObjectLockMode != "" && out.ObjectLockRetainUntilDate != nil {
		info.Retention = providers.Retention{
			Mode:  fromS3Mode(string(out.ObjectLockMode)),
			Until: *out.ObjectLockRetainUntilDate,
		}
	}
	return info, nil
}

// List implements providers.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(providers.ObjectInfo) error) error {
	pages := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(s.prefix + prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fail(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			err := fn(providers.ObjectInfo{
				Key:     strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
				ETag:    aws.ToString(o.ETag),
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements providers.Store. On a versioned bucket it removes every version and
// delete marker of key, after checking that none is held or retained. A key counts as existing
// while any version of it is stored, even behind a delete marker; one with only delete markers
// left is cleaned of them and reported as not found.
//
//nolint:gocyclo // one case per version and lock state of an object
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := providers.ValidateKey(key); err != nil {
		return fmt.Errorf("s3 delete %q: %w", key, err)
	}
	full := s.prefix + key
	if !s.versioned {
		// DeleteObject succeeds on a missing key, so ask first.
		if _, err := s.head(ctx, full, ""); err != nil {
			return fail(ctx, "delete", key, err)
		}
		if _, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &full}); err != nil {
			return fail(ctx, "delete", key, err)
		}
		return nil
	}

	versions, err := s.versions(ctx, full)
	if err != nil {
		return fail(ctx, "delete", key, err)
	}
	var stored int
	for _, v := range versions {
		if v.deleteMarker {
			continue
		}
		stored++
		if !s.caps.LegalHold && !s.caps.Retention {
			continue
		}
		// Check every version before deleting any, so a refused Delete changes nothing.
		info, err := s.head(ctx, full, v.id)
		if err != nil {
			return fail(ctx, "delete", key, fmt.Errorf("version %s: %w", v.id, err))
		}
		if info.LegalHold || info.Retention.Active(time.Now()) {
			return fmt.Errorf("s3 delete %q: version %s is under %s: %w", key, v.id, protection(info), providers.ErrImmutable)
		}
	}
	// The current version goes last, so that if the server still refuses one (a hold
	// placed since the check), what readers see is unchanged.
	slices.SortStableFunc(versions, func(a, b version) int {
		switch {
		case a.latest == b.latest:
			return 0
		case b.latest:
			return -1
		}
		return 1
	})
	for _, v := range versions {
		_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &full, VersionId: &v.id})
		if err != nil {
			return fail(ctx, "delete", key, fmt.Errorf("version %s: %w", v.id, err))
		}
	}
	if stored == 0 {
		return fmt.Errorf("s3 delete %q: %w", key, providers.ErrNotFound)
	}
	return nil
}

type version struct {
	id           string
	deleteMarker bool
	latest       bool
}

// versions lists the versions and delete markers of exactly key.
func (s *Store) versions(ctx context.Context, full string) ([]version, error) {
	var all []version
	pages := awss3.NewListObjectVersionsPaginator(s.client, &awss3.ListObjectVersionsInput{
		Bucket: &s.bucket,
		Prefix: &full,
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		longer := false
		for _, v := range page.Versions {
			if aws.ToString(v.Key) != full {
				longer = true
				continue
			}
			all = append(all, version{id: aws.ToString(v.VersionId), latest: aws.ToBool(v.IsLatest)})
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) != full {
				longer = true
				continue
			}
			all = append(all, version{id: aws.ToString(m.VersionId), deleteMarker: true, latest: aws.ToBool(m.IsLatest)})
		}
		// Keys that merely start with key sort after it: once one shows up, key is done.
		if longer {
			break
		}
	}
	return all, nil
}

// SetLegalHold implements providers.Store.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := providers.ValidateKey(key); err != nil {
		return fmt.Errorf("s3 legal hold %q: %w", key, err)
	}
	if !s.caps.LegalHold {
		return fmt.Errorf("s3 legal hold %q: %w (%s)", key, providers.ErrNotSupported, s.caps.Note)
	}
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	_, err := s.client.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{
		Bucket:            &s.bucket,
		Key:               aws.String(s.prefix + key),
		LegalHold:         &types.ObjectLockLegalHold{Status: status},
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fail(ctx, "legal hold", key, err)
	}
	return nil
}

// SetRetention implements providers.Store. A zero Until removes the retention; a past one is
// ErrInvalidArgument unless an active compliance retention makes it ErrImmutable. Shortening, removing or changing the mode of an active governance retention is
// sent with BypassGovernanceRetention; everything else is left for the server to judge, which
// refuses to shorten or remove compliance retention.
//
//nolint:gocyclo // one case per retention mode and its service errors
func (s *Store) SetRetention(ctx context.Context, key string, r providers.Retention) error {
	if err := providers.ValidateKey(key); err != nil {
		return fmt.Errorf("s3 retention %q: %w", key, err)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("s3 retention %q: %w", key, err)
	}
	if !s.caps.Retention {
		return fmt.Errorf("s3 retention %q: %w (%s)", key, providers.ErrNotSupported, s.caps.Note)
	}
	now := time.Now()
	remove := !r.Until.After(now)
	if !remove && !s.caps.SupportsMode(r.Mode) {
		return fmt.Errorf("s3 retention %q: %s mode: %w (%s)", key, r.Mode, providers.ErrNotSupported, s.caps.Note)
	}
	full := s.prefix + key
	cur, err := s.head(ctx, full, "")
	if err != nil {
		return fail(ctx, "retention", key, err)
	}
	compliant := cur.Retention.Mode == providers.Compliance && cur.Retention.Active(now)
	if !r.Until.IsZero() && remove && !compliant {
		// As on GCS and Azure: a retention that protects nothing is a caller's mistake. Against
		// an active compliance retention the request goes on, for the server to refuse.
		return fmt.Errorf("s3 retention %q: %w: until %s is not in the future", key, providers.ErrInvalidArgument, r.Until.Format(time.RFC3339))
	}
	if remove && cur.Retention.Mode == "" {
		return nil
	}

	in := &awss3.PutObjectRetentionInput{
		Bucket:            &s.bucket,
		Key:               &full,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		// An empty retention element removes the retention.
		Retention: &types.ObjectLockRetention{},
	}
	if !remove {
		in.Retention.Mode = types.ObjectLockRetentionMode(toS3Mode(r.Mode))
		in.Retention.RetainUntilDate = aws.Time(r.Until)
	}
	if cur.Retention.Mode == providers.Governance && cur.Retention.Active(now) &&
		(remove || r.Mode != providers.Governance || r.Until.Before(cur.Retention.Until)) {
		in.BypassGovernanceRetention = aws.Bool(true)
	}
	if _, err := s.client.PutObjectRetention(ctx, in); err != nil {
		return fail(ctx, "retention", key, err)
	}
	return nil
}

func toS3Mode(m providers.RetentionMode) string {
	if m == providers.Compliance {
		return string(types.ObjectLockRetentionModeCompliance)
	}
	return string(types.ObjectLockRetentionModeGovernance)
}

func fromS3Mode(m string) providers.RetentionMode {
	if strings.EqualFold(m, string(types.ObjectLockRetentionModeCompliance)) {
		return providers.Compliance
	}
	return providers.Governance
}

// protection says, for an error message, what protects an object.
func protection(info providers.ObjectInfo) string {
	var what []string
	if info.LegalHold {
		what = append(what, "legal hold")
	}
	if info.Retention.Active(time.Now()) {
		what = append(what, fmt.Sprintf("%s retention until %s", info.Retention.Mode, info.Retention.Until.UTC().Format(time.RFC3339)))
	}
	return strings.Join(what, " and ")
}

// countingReader counts what the uploader read, which is the object's size.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
