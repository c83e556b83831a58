// Package gcs is the providers.Store adapter for Google Cloud Storage, on the
// cloud.google.com/go/storage client over the JSON API.
//
// Immutability maps onto Cloud Storage as follows:
//
//   - Legal hold is the object's temporary hold. Holds work on every bucket. The temporary hold
//     is used rather than the event-based hold because releasing an event-based hold restarts
//     the object's time under a bucket retention policy (and cannot be combined with an
//     object's own retention), while a legal hold must be independent of retention, as in
//     S3 and Azure. Stat reports either hold as LegalHold, since both block delete and
//     overwrite; SetLegalHold only places and releases the temporary hold.
//   - Retention is the object's own retention (Object Retention Lock), available only on
//     buckets created with it enabled: mode Unlocked is governance, Locked is compliance.
//     Shortening or removing an Unlocked retention is sent with overrideUnlockedRetention,
//     which needs the storage.objects.overrideUnlockedRetention permission.
//   - A bucket retention policy (Bucket Lock) also protects objects; Stat reports it as the
//     object's retention when it outlasts the object's own, in compliance mode if the policy
//     is locked.
//
// Cloud Storage itself answers 403 to deleting or replacing a held or retained object; Put
// also checks the existing object first, so that it fails before streaming any data.
package gcs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/drflow/drflow/providers"
)

// DefaultChunkSize is the resumable-upload chunk size when Options.ChunkSize is zero; every
// Put of a larger object buffers one chunk.
const DefaultChunkSize = 16 << 20

const (
	// smallObject bounds how much of the input Put reads ahead to recognise a small object.
	smallObject = 1 << 20
	// listPageSize is the most a listing page holds on Cloud Storage. It is asked for
	// explicitly because emulators otherwise return everything in one page.
	listPageSize = 1000

	modeUnlocked = "Unlocked"
	modeLocked   = "Locked"
)

// Options configure a Store.
type Options struct {
	// Bucket is the bucket's name. Required.
	Bucket string
	// Prefix confines the store to the keys under Prefix + "/" (leading and trailing slashes
	// are ignored). Empty for the whole bucket.
	Prefix string
	// Endpoint is a JSON API endpoint for an emulator, e.g. http://127.0.0.1:4443/storage/v1/.
	// When set, requests are sent without authentication. When empty, the SDK honours
	// STORAGE_EMULATOR_HOST (host:port, also unauthenticated) and otherwise talks to Cloud
	// Storage with Application Default Credentials or ClientOptions.
	Endpoint string
	// ClientOptions are passed to storage.NewClient after the adapter's own, e.g.
	// option.WithCredentialsFile for real credentials.
	ClientOptions []option.ClientOption
	// Location describes the store: Name and Jurisdiction are kept, Region defaults to the
	// bucket's location, and Provider, Bucket, Prefix and Endpoint are set from these options.
	Location providers.Location
	// ChunkSize is the upload chunk size (DefaultChunkSize if zero), rounded up by the SDK to
	// a multiple of 256 KiB: each Put holds one chunk in memory. When it exceeds 1 MiB, an
	// object that ends within its first MiB is sent in one request with a buffer its size.
	ChunkSize int
}

// Store is a providers.Store on a Cloud Storage bucket.
type Store struct {
	client    *storage.Client
	bucket    *storage.BucketHandle
	prefix    string // "" or ends with "/"
	chunkSize int
	caps      providers.Capabilities
	loc       providers.Location
	// policyLocked: the bucket's retention policy, if any, was locked when the store opened.
	policyLocked bool
	// versioned: the bucket kept noncurrent generations when the store opened, so Delete
	// removes every generation of a key.
	versioned bool
}

var _ providers.Store = (*Store)(nil)

// Open connects to the bucket and reads its configuration to establish the store's
// capabilities. A missing bucket is ErrNotFound.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, fmt.Errorf("gcs open: %w: bucket is required", providers.ErrInvalidArgument)
	}
	if opts.ChunkSize < 0 {
		return nil, fmt.Errorf("gcs open: %w: chunk size %d is negative", providers.ErrInvalidArgument, opts.ChunkSize)
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		if err := providers.ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("gcs open: prefix: %w", err)
		}
	}
	chunkSize := opts.ChunkSize
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}

	// JSON reads: one protocol for everything, whose errors carry reasons.
	clientOpts := []option.ClientOption{storage.WithJSONReads()}
	if opts.Endpoint != "" {
		clientOpts = append(clientOpts, option.WithEndpoint(opts.Endpoint), option.WithoutAuthentication())
	}
	clientOpts = append(clientOpts, opts.ClientOptions...)
	client, err := storage.NewClient(ctx, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("gcs open: client: %w", err)
	}
	bucket := client.Bucket(opts.Bucket)
	attrs, err := bucket.Attrs(ctx)
	if err != nil {
		_ = client.Close()
		if errors.Is(err, storage.ErrBucketNotExist) {
			return nil, fmt.Errorf("gcs open: bucket %q does not exist: %w", opts.Bucket, translateError(err))
		}
		return nil, fmt.Errorf("gcs open: bucket %q: %w", opts.Bucket, translateError(err))
	}

	endpoint := opts.Endpoint
	if endpoint == "" {
		// The SDK's own emulator switch; named here so that the location does not pass for
		// Cloud Storage.
		endpoint = os.Getenv("STORAGE_EMULATOR_HOST")
	}
	loc := opts.Location
	loc.Provider = providers.ProviderGCS
	loc.Bucket = opts.Bucket
	loc.Prefix = prefix
	loc.Endpoint = endpoint
	if loc.Region == "" {
		loc.Region = attrs.Location
	}
	if prefix != "" {
		prefix += "/"
	}
	return &Store{
		client:       client,
		bucket:       bucket,
		prefix:       prefix,
		chunkSize:    chunkSize,
		caps:         capabilities(attrs, endpoint),
		loc:          loc,
		policyLocked: attrs.RetentionPolicy != nil && attrs.RetentionPolicy.IsLocked,
		versioned:    attrs.VersioningEnabled,
	}, nil
}

// capabilities derives what the bucket enforces from its attributes.
func capabilities(attrs *storage.BucketAttrs, endpoint string) providers.Capabilities {
	caps := providers.Capabilities{
		// Object holds are part of every bucket.
		LegalHold:      true,
		ServerEnforced: true,
		// ifGenerationMatch=0 is checked atomically by the server.
		ConditionalCreate: true,
	}
	notes := []string{fmt.Sprintf("bucket %q: object holds are enforced on every bucket (legal hold = temporary hold)", attrs.Name)}
	if attrs.ObjectRetentionMode == "Enabled" {
		caps.Retention = true
		caps.RetentionModes = []providers.RetentionMode{providers.Governance, providers.Compliance}
		notes = append(notes, "object retention is enabled (governance = Unlocked, compliance = Locked)")
	} else {
		notes = append(notes, "object retention is not enabled on the bucket, so per-object retention is not supported")
	}
	if p := attrs.RetentionPolicy; p != nil {
		state := "unlocked"
		if p.IsLocked {
			state = "locked"
		}
		notes = append(notes, fmt.Sprintf("a %s bucket retention policy of %s also protects every object", state, p.RetentionPeriod))
	}
	if attrs.DefaultEventBasedHold {
		notes = append(notes, "new objects get an event-based hold by default")
	}
	if attrs.VersioningEnabled {
		notes = append(notes, "versioning is on, so Delete removes every generation")
	}
	if endpoint != "" {
		notes = append(notes, fmt.Sprintf("custom endpoint %s: enforcement is whatever that server implements (fake-gcs-server enforces no holds or retention)", endpoint))
	}
	caps.Note = strings.Join(notes, "; ")
	return caps
}

// Close releases the client's resources.
func (s *Store) Close() error { return s.client.Close() }

// Capabilities implements providers.Store.
func (s *Store) Capabilities() providers.Capabilities { return s.caps }

// Location implements providers.Store.
func (s *Store) Location() providers.Location { return s.loc }

func (s *Store) object(key string) *storage.ObjectHandle { return s.bucket.Object(s.prefix + key) }

// Put implements providers.Store. The upload is abandoned, leaving no object, if ctx ends or
// r fails.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (providers.ObjectInfo, error) {
	info, err := s.put(ctx, key, r, opts)
	if err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("gcs put %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (providers.ObjectInfo, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.ObjectInfo{}, err
	}
	if err := opts.Retention.Validate(); err != nil {
		return providers.ObjectInfo{}, err
	}
	retain := !opts.Retention.Until.IsZero()
	if retain && !s.caps.Retention {
		return providers.ObjectInfo{}, fmt.Errorf("%w: retention (object retention is not enabled on bucket %q)", providers.ErrNotSupported, s.loc.Bucket)
	}

	obj := s.object(key)
	if opts.IfNotExists {
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	} else if err := s.checkReplaceable(ctx, obj); err != nil {
		return providers.ObjectInfo{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(ctx)
	w.ContentType = opts.ContentType
	if w.ContentType == "" {
		// Set, so that the SDK does not sniff the content.
		w.ContentType = "application/octet-stream"
	}
	w.TemporaryHold = opts.LegalHold
	if retain {
		w.Retention = &storage.ObjectRetention{Mode: gcsMode(opts.Retention.Mode), RetainUntil: wholeSecond(opts.Retention.Until)}
	}
	src, chunkSize, err := s.chunking(r)
	if err != nil {
		return providers.ObjectInfo{}, err
	}
	w.ChunkSize = chunkSize
	if _, err := io.Copy(w, src); err != nil {
		// Cancelling the writer's context abandons the upload: nothing is committed.
		cancel()
		_ = w.Close()
		return providers.ObjectInfo{}, translateError(err)
	}
	if err := w.Close(); err != nil {
		return providers.ObjectInfo{}, translateError(err)
	}
	return s.info(key, w.Attrs()), nil
}

// chunking picks the writer's chunk size. The SDK allocates a buffer of the full chunk size
// for every upload, which for the many small objects (manifests, chunks) would cost 16 MiB
// each; so it reads ahead up to 1 MiB and, when the object ends within that, sizes the
// buffer to the object, which is then sent in a single request.
func (s *Store) chunking(r io.Reader) (io.Reader, int, error) {
	if s.chunkSize <= smallObject {
		return r, s.chunkSize, nil
	}
	br := bufio.NewReaderSize(r, smallObject)
	head, err := br.Peek(smallObject)
	switch {
	case errors.Is(err, io.EOF):
		// One byte more than the object, so that it fits in a single request.
		return br, len(head) + 1, nil
	case err != nil:
		return nil, 0, err
	}
	return br, s.chunkSize, nil
}

// checkReplaceable fails with ErrImmutable if the object exists under a hold or an unexpired
// retention. Cloud Storage refuses such an overwrite itself (403, mapped to ErrImmutable
// too); asking first fails before any data is sent, and also covers a versioned bucket,
// where a retained object could otherwise be made noncurrent by an overwrite.
func (s *Store) checkReplaceable(ctx context.Context, obj *storage.ObjectHandle) error {
	attrs, err := obj.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	if err != nil {
		return translateError(err)
	}
	if attrs.TemporaryHold || attrs.EventBasedHold {
		return fmt.Errorf("%w: the existing object is under hold", providers.ErrImmutable)
	}
	if ret := s.retention(attrs); ret.Active(time.Now()) {
		return fmt.Errorf("%w: the existing object is retained until %s", providers.ErrImmutable, ret.Until.Format(time.RFC3339))
	}
	return nil
}

// Get implements providers.Store.
func (s *Store) Get(ctx context.Context, key string, opts providers.GetOptions) (io.ReadCloser, error) {
	if err := providers.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("gcs get %s: %w", key, err)
	}
	offset, length := int64(0), int64(-1)
	if r := opts.Range; r != nil {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("gcs get %s: %w", key, err)
		}
		offset = r.Offset
		if r.Length > 0 {
			length = r.Length
		}
	}
	rc, err := s.object(key).NewRangeReader(ctx, offset, length)
	if err != nil {
		return nil, fmt.Errorf("gcs get %s: %w", key, translateError(err))
	}
	return rc, nil
}

// Stat implements providers.Store.
func (s *Store) Stat(ctx context.Context, key string) (providers.ObjectInfo, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("gcs stat %s: %w", key, err)
	}
	attrs, err := s.object(key).Attrs(ctx)
	if err != nil {
		return providers.ObjectInfo{}, fmt.Errorf("gcs stat %s: %w", key, translateError(err))
	}
	return s.info(key, attrs), nil
}

func (s *Store) info(key string, attrs *storage.ObjectAttrs) providers.ObjectInfo {
	return providers.ObjectInfo{
		Key:       key,
		Size:      attrs.Size,
		ModTime:   attrs.Created, // when this generation's content was written
		ETag:      attrs.Etag,
		LegalHold: attrs.TemporaryHold || attrs.EventBasedHold,
		Retention: s.retention(attrs),
	}
}

// retention is the object's effective retention: its own, or the bucket policy's when that
// lasts longer (retentionExpirationTime is the later of the two).
func (s *Store) retention(attrs *storage.ObjectAttrs) providers.Retention {
	var r providers.Retention
	if own := attrs.Retention; own != nil && !own.RetainUntil.IsZero() {
		r = providers.Retention{Mode: retentionMode(own.Mode), Until: own.RetainUntil}
	}
	if attrs.RetentionExpirationTime.After(r.Until) {
		r = providers.Retention{Mode: providers.Governance, Until: attrs.RetentionExpirationTime}
		if s.policyLocked {
			r.Mode = providers.Compliance
		}
	}
	return r
}

// List implements providers.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(providers.ObjectInfo) error) error {
	q := &storage.Query{Prefix: s.prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Created", "Etag"}); err != nil {
		return fmt.Errorf("gcs list %s: %w", prefix, err)
	}
	it := s.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = listPageSize
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gcs list %s: %w", prefix, translateError(err))
		}
		if err := fn(providers.ObjectInfo{
			Key:     strings.TrimPrefix(attrs.Name, s.prefix),
			Size:    attrs.Size,
			ModTime: attrs.Created,
			ETag:    attrs.Etag,
		}); err != nil {
			return err
		}
	}
}

// Delete implements providers.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil {
		return fmt.Errorf("gcs delete %s: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	obj := s.object(key)
	if !s.versioned {
		return translateError(obj.Delete(ctx))
	}

	// On a versioned bucket a plain delete only makes the live object noncurrent. Remove the
	// live generation outright first, so that a hold on it refuses the delete before
	// anything is gone, then every noncurrent one.
	live, err := obj.Attrs(ctx)
	if err != nil {
		return translateError(err)
	}
	if err := obj.Generation(live.Generation).Delete(ctx); err != nil {
		return translateError(err)
	}
	name := s.prefix + key
	// Versions of one name are listed together, starting at the name itself.
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: name, StartOffset: name, Versions: true})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list noncurrent generations: %w", translateError(err))
		}
		if attrs.Name != name {
			return nil
		}
		err = obj.Generation(attrs.Generation).Delete(ctx)
		if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return fmt.Errorf("generation %d: %w", attrs.Generation, translateError(err))
		}
	}
}

// SetLegalHold implements providers.Store with the object's temporary hold.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := providers.ValidateKey(key); err != nil {
		return fmt.Errorf("gcs set legal hold %s: %w", key, err)
	}
	if _, err := s.object(key).Update(ctx, storage.ObjectAttrsToUpdate{TemporaryHold: on}); err != nil {
		return fmt.Errorf("gcs set legal hold %s: %w", key, translateError(err))
	}
	return nil
}

// SetRetention implements providers.Store with the object's own retention.
func (s *Store) SetRetention(ctx context.Context, key string, r providers.Retention) error {
	if err := s.setRetention(ctx, key, r); err != nil {
		return fmt.Errorf("gcs set retention %s: %w", key, err)
	}
	return nil
}

//nolint:gocyclo // one case per retention mode and bucket lock state
func (s *Store) setRetention(ctx context.Context, key string, r providers.Retention) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if !s.caps.Retention {
		return fmt.Errorf("%w: retention (object retention is not enabled on bucket %q)", providers.ErrNotSupported, s.loc.Bucket)
	}
	obj := s.object(key)
	attrs, err := obj.Attrs(ctx)
	if err != nil {
		return translateError(err)
	}
	current := attrs.Retention
	if current != nil && current.RetainUntil.IsZero() {
		current = nil
	}

	var want storage.ObjectRetention // zero removes the retention
	if !r.Until.IsZero() {
		want = storage.ObjectRetention{Mode: gcsMode(r.Mode), RetainUntil: wholeSecond(r.Until)}
	}
	if current == nil && want.RetainUntil.IsZero() {
		return nil // nothing to remove
	}
	// Weakening means removing, shortening or unlocking; Cloud Storage asks for the override
	// to weaken an Unlocked retention (and to lock it), and refuses to weaken a Locked one.
	weakens := current != nil && (want.RetainUntil.IsZero() || want.RetainUntil.Before(current.RetainUntil) ||
		current.Mode == modeLocked && want.Mode != modeLocked)
	if current != nil && current.Mode == modeUnlocked && (weakens || want.Mode == modeLocked) {
		obj = obj.OverrideUnlockedRetention(true)
	}
	if _, err := obj.Update(ctx, storage.ObjectAttrsToUpdate{Retention: &want}); err != nil {
		if code, _, _, _ := apiDetails(err); code == http.StatusForbidden && weakens && current.Mode == modeLocked {
			// The server refuses to weaken a Locked retention with a 403 that names no reason.
			return fmt.Errorf("%w: compliance retention until %s cannot be shortened or removed: %w",
				providers.ErrImmutable, current.RetainUntil.Format(time.RFC3339), err)
		}
		return translateError(err)
	}
	return nil
}

// wholeSecond rounds t up to a whole second. The SDK sends retainUntilTime as RFC 3339
// without fractions, which would otherwise protect an object for up to a second less than
// asked.
func wholeSecond(t time.Time) time.Time {
	if down := t.Truncate(time.Second); !down.Equal(t) {
		return down.Add(time.Second)
	}
	return t
}

func gcsMode(m providers.RetentionMode) string {
	if m == providers.Compliance {
		return modeLocked
	}
	return modeUnlocked
}

func retentionMode(gcs string) providers.RetentionMode {
	if strings.EqualFold(gcs, modeLocked) {
		return providers.Compliance
	}
	return providers.Governance
}
