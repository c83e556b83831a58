// Package azblob is the Azure Blob Storage adapter of providers.Store, built on the Azure SDK
// for Go (github.com/Azure/azure-sdk-for-go/sdk/storage/azblob).
//
// Immutability comes from the container: only a container with version-level immutability
// (the service reports x-ms-immutable-storage-with-versioning-enabled: true) lets the adapter
// place per-blob legal holds and time-based immutability policies, Unlocked for governance and
// Locked for compliance. Elsewhere Capabilities reports neither, and hold and retention calls
// fail with providers.ErrNotSupported before anything is sent.
//
// Version-level immutability requires blob versioning, and on a versioned container the service
// accepts an overwrite of a protected blob: it keeps the protected version as a previous
// version and writes a new current one. The store contract forbids that overwrite, so Put reads
// the current version's hold and policy first and refuses with providers.ErrImmutable, and
// Delete removes every version of a key, refusing if any of them is protected.
package azblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/drflow/drflow/providers"
)

const (
	defaultBlockSize   = 8 << 20
	minBlockSize       = 1 << 20 // UploadStream's minimum
	defaultConcurrency = 4
)

// Options configure Open. Exactly one of ConnectionString and ServiceURL is set.
type Options struct {
	// Container is the container that holds the store's blobs. It must exist.
	Container string
	// Prefix confines the store to blob names under it: empty, or ending in "/".
	Prefix string

	// ConnectionString authenticates with a shared key or SAS (Azurite, or accounts that
	// allow shared-key access).
	ConnectionString string
	// ServiceURL (e.g. https://account.blob.core.windows.net) and Credential (e.g. from
	// azidentity) authenticate with Microsoft Entra ID.
	ServiceURL string
	Credential azcore.TokenCredential

	// Location describes the store in logs and audit events. Provider, Bucket, Prefix and
	// Endpoint are filled in where empty.
	Location providers.Location

	// BlockSize is the size of each staged block (default 8 MiB, at least 1 MiB). A blob has
	// at most 50,000 blocks, so it also bounds the largest object (about 390 GiB by default).
	BlockSize int64
	// Concurrency is how many blocks are staged at once (default 4). Put holds at most
	// BlockSize x Concurrency bytes of the object in memory.
	Concurrency int
	// ListPageSize asks the service for at most this many blobs per list page (0: the
	// service's default of 5000).
	ListPageSize int32
}

// Store is a providers.Store backed by one Azure Blob Storage container.
type Store struct {
	container   *container.Client
	prefix      string
	location    providers.Location
	caps        providers.Capabilities
	blockSize   int64
	concurrency int
	pageSize    int32
	now         func() time.Time
}

var _ providers.Store = (*Store)(nil)

// Open connects to opts.Container and reads its properties to establish what it enforces.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("azblob open: %w", err)
	}
	cc, err := newContainerClient(opts)
	if err != nil {
		return nil, fmt.Errorf("azblob open: %w", err)
	}
	props, err := cc.GetProperties(ctx, nil)
	if err != nil {
		err = translateError(err)
		if errors.Is(err, providers.ErrNotFound) {
			return nil, fmt.Errorf("azblob open: container %q does not exist at %s: %w", opts.Container, endpointOf(cc), err)
		}
		return nil, fmt.Errorf("azblob open: read properties of container %q at %s: %w", opts.Container, endpointOf(cc), err)
	}

	s := &Store{
		container:   cc,
		prefix:      opts.Prefix,
		location:    opts.Location,
		caps:        capabilities(opts.Container, props),
		blockSize:   opts.BlockSize,
		concurrency: opts.Concurrency,
		pageSize:    opts.ListPageSize,
		now:         time.Now,
	}
	if s.blockSize == 0 {
		s.blockSize = defaultBlockSize
	}
	if s.concurrency == 0 {
		s.concurrency = defaultConcurrency
	}
	s.location.Provider = providers.ProviderAzBlob
	if s.location.Bucket == "" {
		s.location.Bucket = opts.Container
	}
	if s.location.Prefix == "" {
		s.location.Prefix = opts.Prefix
	}
	if s.location.Endpoint == "" {
		s.location.Endpoint = endpointOf(cc)
	}
	return s, nil
}

func (o Options) validate() error {
	switch {
	case o.Container == "":
		return fmt.Errorf("%w: no container", providers.ErrInvalidArgument)
	case (o.ConnectionString == "") == (o.ServiceURL == ""):
		return fmt.Errorf("%w: set exactly one of ConnectionString and ServiceURL", providers.ErrInvalidArgument)
	case o.ServiceURL != "" && o.Credential == nil:
		return fmt.Errorf("%w: ServiceURL needs a Credential", providers.ErrInvalidArgument)
	case o.Prefix != "" && (!strings.HasSuffix(o.Prefix, "/") || strings.HasPrefix(o.Prefix, "/")):
		return fmt.Errorf("%w: prefix %q must end in / and not start with /", providers.ErrInvalidArgument, o.Prefix)
	case o.BlockSize != 0 && (o.BlockSize < minBlockSize || o.BlockSize > blockblob.MaxStageBlockBytes):
		return fmt.Errorf("%w: block size %d is outside [%d, %d]", providers.ErrInvalidArgument, o.BlockSize, minBlockSize, int64(blockblob.MaxStageBlockBytes))
	case o.Concurrency < 0 || o.ListPageSize < 0:
		return fmt.Errorf("%w: negative concurrency or list page size", providers.ErrInvalidArgument)
	}
	return nil
}

func newContainerClient(opts Options) (*container.Client, error) {
	clientOpts := azcore.ClientOptions{PerCallPolicies: []policy.Policy{commitProtectionPolicy{}}}
	if opts.ConnectionString != "" {
		cc, err := container.NewClientFromConnectionString(opts.ConnectionString, opts.Container,
			&container.ClientOptions{ClientOptions: clientOpts})
		if err != nil {
			// The SDK's message does not echo the connection string, so it carries no key.
			return nil, fmt.Errorf("%w: connection string: %w", providers.ErrInvalidArgument, err)
		}
		return cc, nil
	}
	sc, err := service.NewClient(opts.ServiceURL, opts.Credential, &service.ClientOptions{ClientOptions: clientOpts})
	if err != nil {
		return nil, fmt.Errorf("%w: service URL: %w", providers.ErrInvalidArgument, err)
	}
	return sc.NewContainerClient(opts.Container), nil
}

// endpointOf is the account's service URL without query (which may hold a SAS token).
func endpointOf(cc *container.Client) string {
	u, err := url.Parse(cc.URL())
	if err != nil {
		return ""
	}
	u.RawQuery = ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.Path = u.Path[:strings.LastIndex(u.Path, "/")+1]
	return strings.TrimSuffix(u.String(), "/")
}

func capabilities(name string, props container.GetPropertiesResponse) providers.Capabilities {
	caps := providers.Capabilities{
		// Put Blob and Put Block List honour If-None-Match: * atomically.
		ConditionalCreate: true,
	}
	if props.IsImmutableStorageWithVersioningEnabled != nil && *props.IsImmutableStorageWithVersioningEnabled {
		caps.LegalHold = true
		caps.ServerEnforced = true
		caps.Retention = true
		caps.RetentionModes = []providers.RetentionMode{providers.Governance, providers.Compliance}
		caps.Note = fmt.Sprintf("container %q reports version-level immutability "+
			"(x-ms-immutable-storage-with-versioning-enabled: true): per-blob legal holds and "+
			"immutability policies, Unlocked as governance and Locked as compliance; the adapter "+
			"refuses overwrites of protected blobs, which the service would accept as new versions", name)
		return caps
	}
	caps.Note = fmt.Sprintf("container %q does not report version-level immutability "+
		"(x-ms-immutable-storage-with-versioning-enabled absent or false), so per-blob legal holds "+
		"and immutability policies are unavailable", name)
	if isTrue(props.HasLegalHold) || isTrue(props.HasImmutabilityPolicy) {
		caps.Note += "; it has a container-level legal hold or immutability policy, which the " +
			"service applies to every blob but which this adapter cannot set or release per object"
	}
	return caps
}

// Capabilities reports what the container enforces, as read by Open.
func (s *Store) Capabilities() providers.Capabilities { return s.caps }

// Location describes where this store lives.
func (s *Store) Location() providers.Location { return s.location }

func (s *Store) blobName(key string) string { return s.prefix + key }

// Put streams r into key with UploadStream: blocks of BlockSize are staged, Concurrency at a
// time, and committed by one Put Block List (or one Put Blob when r fits in a single block).
// Nothing is visible before that commit, so a failed or cancelled Put leaves no blob and keeps
// the previous one; staged blocks that are never committed are discarded by the service.
//
// A legal hold or retention requested in opts is sent on the commit request itself (the
// x-ms-legal-hold and x-ms-immutability-policy-* headers), so the blob is protected from the
// moment it exists; see commitProtectionPolicy.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (providers.ObjectInfo, error) {
	info, err := s.put(ctx, key, r, opts)
	if err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("azblob put %s: %w", key, err)
	}
	return info, nil
}

//nolint:gocyclo // one case per put option (condition, hold, immutability) and service error
func (s *Store) put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (providers.ObjectInfo, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.ObjectInfo{}, err
	}
	if err := opts.Retention.Validate(); err != nil {
		return providers.ObjectInfo{}, err
	}
	protect := commitProtection{legalHold: opts.LegalHold}
	if !opts.Retention.Until.IsZero() {
		protect.retention = opts.Retention
	}
	if protect.legalHold && !s.caps.LegalHold {
		return providers.ObjectInfo{}, fmt.Errorf("legal hold: %w: %s", providers.ErrNotSupported, s.caps.Note)
	}
	if !protect.retention.Until.IsZero() {
		if !s.caps.Retention {
			return providers.ObjectInfo{}, fmt.Errorf("retention: %w: %s", providers.ErrNotSupported, s.caps.Note)
		}
		if !protect.retention.Until.After(s.now()) {
			return providers.ObjectInfo{}, fmt.Errorf("%w: retention until %s is not in the future", providers.ErrInvalidArgument, protect.retention.Until)
		}
	}

	bb := s.container.NewBlockBlobClient(s.blobName(key))
	if s.caps.Immutable() {
		// The service would keep a protected blob as a previous version and accept the
		// overwrite; the contract refuses it. Refusing here also saves the upload.
		props, err := bb.GetProperties(ctx, nil)
		switch err = translateError(err); {
		case errors.Is(err, providers.ErrNotFound):
		case err != nil:
			return providers.ObjectInfo{}, fmt.Errorf("read current version: %w", err)
		case opts.IfNotExists:
			return providers.ObjectInfo{}, providers.ErrExists
		default:
			if why := protectedBy(props.LegalHold, props.ImmutabilityPolicyMode, props.ImmutabilityPolicyExpiresOn, s.now()); why != "" {
				return providers.ObjectInfo{}, fmt.Errorf("%w: the current version is under %s", providers.ErrImmutable, why)
			}
		}
	}

	uploadOpts := &blockblob.UploadStreamOptions{
		BlockSize:   s.blockSize,
		Concurrency: s.concurrency,
	}
	if opts.ContentType != "" {
		uploadOpts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &opts.ContentType}
	}
	if opts.IfNotExists {
		etagAny := azcore.ETagAny
		uploadOpts.AccessConditions = &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &etagAny},
		}
	}
	if protect.legalHold || !protect.retention.Until.IsZero() {
		ctx = context.WithValue(ctx, commitProtectionKey{}, protect)
	}
	cr := &countingReader{r: r}
	resp, err := bb.UploadStream(ctx, cr, uploadOpts)
	if err != nil {
		return providers.ObjectInfo{}, translateError(err)
	}
	info := providers.ObjectInfo{
		Key:       key,
		Size:      cr.n,
		LegalHold: protect.legalHold,
		Retention: protect.retention,
	}
	if resp.LastModified != nil {
		info.ModTime = resp.LastModified.UTC()
	}
	if resp.ETag != nil {
		info.ETag = string(*resp.ETag)
	}
	return info, nil
}

// Get opens key, or a byte range of it, for reading.
func (s *Store) Get(ctx context.Context, key string, opts providers.GetOptions) (io.ReadCloser, error) {
	if err := providers.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("azblob get %s: %w", key, err)
	}
	var dl blob.DownloadStreamOptions
	if opts.Range != nil {
		if err := opts.Range.Validate(); err != nil {
			return nil, fmt.Errorf("azblob get %s: %w", key, err)
		}
		dl.Range = blob.HTTPRange{Offset: opts.Range.Offset}
		if opts.Range.Length > 0 {
			dl.Range.Count = opts.Range.Length
		}
	}
	resp, err := s.container.NewBlobClient(s.blobName(key)).DownloadStream(ctx, &dl)
	if err != nil {
		return nil, fmt.Errorf("azblob get %s: %w", key, translateError(err))
	}
	return resp.Body, nil
}

// Stat describes key from its properties, including its legal hold and immutability policy.
func (s *Store) Stat(ctx context.Context, key string) (providers.ObjectInfo, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("azblob stat %s: %w", key, err)
	}
	props, err := s.container.NewBlobClient(s.blobName(key)).GetProperties(ctx, nil)
	if err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("azblob stat %s: %w", key, translateError(err))
	}
	info := providers.ObjectInfo{
		Key:       key,
		LegalHold: isTrue(props.LegalHold),
		Retention: retentionOf(props.ImmutabilityPolicyMode, props.ImmutabilityPolicyExpiresOn),
	}
	if props.ContentLength != nil {
		info.Size = *props.ContentLength
	}
	if props.LastModified != nil {
		info.ModTime = props.LastModified.UTC()
	}
	if props.ETag != nil {
		info.ETag = string(*props.ETag)
	}
	return info, nil
}

// List pages through the blobs under prefix with the container's flat listing, which the
// service returns in lexical order.
func (s *Store) List(ctx context.Context, prefix string, fn func(providers.ObjectInfo) error) error {
	full := s.blobName(prefix)
	listOpts := &container.ListBlobsFlatOptions{
		Prefix: &full,
		// Azurite and the parsing below speak XML; pinned so that a change of the SDK's
		// default format cannot change what is sent.
		ResponseFormat: container.StorageResponseFormatXML,
	}
	if s.pageSize > 0 {
		listOpts.MaxResults = &s.pageSize
	}
	pager := s.container.NewListBlobsFlatPager(listOpts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("azblob list %s: %w", prefix, translateError(err))
		}
		if page.Segment == nil {
			continue
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || !strings.HasPrefix(*item.Name, s.prefix) {
				continue
			}
			info := providers.ObjectInfo{Key: strings.TrimPrefix(*item.Name, s.prefix)}
			if p := item.Properties; p != nil {
				if p.ContentLength != nil {
					info.Size = *p.ContentLength
				}
				if p.LastModified != nil {
					info.ModTime = p.LastModified.UTC()
				}
				if p.ETag != nil {
					info.ETag = string(*p.ETag)
				}
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes key with its snapshots and, on a container with version-level immutability
// (where versioning is on), every previous version of it. If any version is under a legal hold
// or an unexpired policy it refuses with ErrImmutable before deleting anything; a protection
// placed meanwhile by another client makes the service refuse, which maps to ErrImmutable too.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil {
		return fmt.Errorf("azblob delete %s: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	name := s.blobName(key)
	var versions []string
	if s.caps.Immutable() {
		var err error
		if versions, err = s.deletableVersions(ctx, name); err != nil {
			return err
		}
	}
	include := blob.DeleteSnapshotsOptionTypeInclude
	bc := s.container.NewBlobClient(name)
	if _, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: &include}); err != nil {
		return translateError(err)
	}
	// Deleting the current version made it a previous version; remove all of them.
	for _, v := range versions {
		vc, err := bc.WithVersionID(v)
		if err != nil {
			return fmt.Errorf("version %s: %w", v, err)
		}
		_, err = vc.Delete(ctx, nil)
		if err = translateError(err); err != nil && !errors.Is(err, providers.ErrNotFound) {
			return fmt.Errorf("version %s: %w", v, err)
		}
	}
	return nil
}

// deletableVersions lists every version of name. It fails with ErrNotFound if name has no
// current version and with ErrImmutable if any version is protected.
func (s *Store) deletableVersions(ctx context.Context, name string) ([]string, error) {
	pager := s.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:         &name,
		Include:        container.ListBlobsInclude{Versions: true, LegalHold: true, ImmutabilityPolicy: true},
		ResponseFormat: container.StorageResponseFormatXML,
	})
	var versions []string
	var current bool
	now := s.now()
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list versions: %w", translateError(err))
		}
		if page.Segment == nil {
			continue
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || *item.Name != name {
				continue // a longer name that shares the prefix
			}
			current = current || isTrue(item.IsCurrentVersion)
			if item.VersionID != nil {
				versions = append(versions, *item.VersionID)
			}
			if p := item.Properties; p != nil {
				if why := protectedBy(p.LegalHold, p.ImmutabilityPolicyMode, p.ImmutabilityPolicyExpiresOn, now); why != "" {
					return nil, fmt.Errorf("%w: version %s is under %s", providers.ErrImmutable, deref(item.VersionID), why)
				}
			}
		}
	}
	if !current {
		return nil, providers.ErrNotFound
	}
	return versions, nil
}

// SetLegalHold places or releases the blob's legal hold (Set Blob Legal Hold).
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := s.setLegalHold(ctx, key, on); err != nil {
		return fmt.Errorf("azblob legal hold %s: %w", key, err)
	}
	return nil
}

func (s *Store) setLegalHold(ctx context.Context, key string, on bool) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if !s.caps.LegalHold {
		return fmt.Errorf("%w: %s", providers.ErrNotSupported, s.caps.Note)
	}
	_, err := s.container.NewBlobClient(s.blobName(key)).SetLegalHold(ctx, on, nil)
	return translateError(err)
}

// SetRetention sets (Set Blob Immutability Policy) or, with a zero Until, removes (Delete Blob
// Immutability Policy) the blob's time-based policy: Governance is an Unlocked policy,
// Compliance a Locked one.
//
// The service lets a Locked policy only be extended. The adapter reads the current policy first
// and refuses to shorten, unlock or remove a Locked one with ErrImmutable, so that the refusal
// does not depend on which error code the service uses for each case.
func (s *Store) SetRetention(ctx context.Context, key string, r providers.Retention) error {
	if err := s.setRetention(ctx, key, r); err != nil {
		return fmt.Errorf("azblob retention %s: %w", key, err)
	}
	return nil
}

func (s *Store) setRetention(ctx context.Context, key string, r providers.Retention) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if !s.caps.Retention {
		return fmt.Errorf("%w: %s", providers.ErrNotSupported, s.caps.Note)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	bc := s.container.NewBlobClient(s.blobName(key))
	props, err := bc.GetProperties(ctx, nil)
	if err != nil {
		return translateError(err)
	}
	now := s.now()
	cur := retentionOf(props.ImmutabilityPolicyMode, props.ImmutabilityPolicyExpiresOn)
	if cur.Mode == providers.Compliance && cur.Active(now) {
		switch {
		case r.Until.IsZero():
			return fmt.Errorf("%w: a compliance (Locked) policy until %s cannot be removed", providers.ErrImmutable, cur.Until)
		case r.Mode != providers.Compliance:
			return fmt.Errorf("%w: a compliance (Locked) policy until %s cannot become governance", providers.ErrImmutable, cur.Until)
		case r.Until.Before(cur.Until):
			return fmt.Errorf("%w: a compliance (Locked) policy until %s cannot be shortened to %s", providers.ErrImmutable, cur.Until, r.Until)
		}
	}
	if r.Until.IsZero() {
		if !cur.Active(now) {
			return nil // nothing protects the blob; an expired policy is left as it is
		}
		_, err = bc.DeleteImmutabilityPolicy(ctx, nil)
		return translateError(err)
	}
	if !r.Until.After(now) {
		return fmt.Errorf("%w: retention until %s is not in the future (use a zero Until to remove it)", providers.ErrInvalidArgument, r.Until)
	}
	mode := policySetting(r.Mode)
	_, err = bc.SetImmutabilityPolicy(ctx, r.Until, &blob.SetImmutabilityPolicyOptions{Mode: &mode})
	return translateError(err)
}

func policySetting(m providers.RetentionMode) blob.ImmutabilityPolicySetting {
	if m == providers.Compliance {
		return blob.ImmutabilityPolicySettingLocked
	}
	return blob.ImmutabilityPolicySettingUnlocked
}

// retentionOf maps a blob's immutability policy; "Mutable" or no policy is no retention.
func retentionOf(mode *blob.ImmutabilityPolicyMode, until *time.Time) providers.Retention {
	if mode == nil || until == nil {
		return providers.Retention{}
	}
	switch strings.ToLower(string(*mode)) {
	case strings.ToLower(string(blob.ImmutabilityPolicyModeLocked)):
		return providers.Retention{Mode: providers.Compliance, Until: until.UTC()}
	case strings.ToLower(string(blob.ImmutabilityPolicyModeUnlocked)):
		return providers.Retention{Mode: providers.Governance, Until: until.UTC()}
	}
	return providers.Retention{}
}

// protectedBy says what protects a blob version at now, or "" if nothing does.
func protectedBy(hold *bool, mode *blob.ImmutabilityPolicyMode, until *time.Time, now time.Time) string {
	if isTrue(hold) {
		return "legal hold"
	}
	if r := retentionOf(mode, until); r.Active(now) {
		return fmt.Sprintf("%s retention until %s", r.Mode, r.Until.Format(time.RFC3339))
	}
	return ""
}

func isTrue(b *bool) bool { return b != nil && *b }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
