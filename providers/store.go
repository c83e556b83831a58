// Package providers defines the object-store contract that every storage backend of drflow
// implements (S3, Google Cloud Storage, Azure Blob, local disk), the sentinel errors that
// adapters map their SDK errors onto, and the immutability model (legal holds and retention)
// that DR copies rely on.
//
// Adapters live in sub-packages; providers/storetest holds the conformance suite that every
// adapter runs against its real server or emulator.
package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Store is one storage location: a bucket, container or directory, addressed by keys that use
// "/" as separator. Implementations are safe for concurrent use.
//
// Retries belong to Temporal's retry policy, so adapters surface errors instead of retrying
// beyond what their SDK does for a single request.
type Store interface {
	// Put streams r, of unknown length, into key. Large objects are uploaded in parts, so
	// memory stays bounded regardless of size. The object becomes visible only once complete:
	// a failed or cancelled Put leaves no object (or leaves the previous one intact).
	// Put fails with ErrExists if opts.IfNotExists is set and key exists (this wins over
	// ErrImmutable), and with ErrImmutable if an existing object at key is under legal hold
	// or retention. On versioned backends (S3 Object Lock, Azure version-level WORM, GCS) the
	// server would accept such an overwrite as a new version, so the adapter checks first; a
	// hold placed concurrently with that check still keeps the protected version intact.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error)

	// Get opens key for reading, optionally a byte range of it. The caller closes the reader.
	// A range starting at or past the end of the object is ErrInvalidArgument.
	Get(ctx context.Context, key string, opts GetOptions) (io.ReadCloser, error)

	// Stat describes key, including its legal hold and retention.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn for every object whose key starts with prefix, in lexical key order,
	// paging through the backend as needed. An error from fn stops the listing and is
	// returned as is. Listed entries carry Key, Size and ModTime; immutability fields are
	// only guaranteed by Stat.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes key permanently (on versioned backends: every version of it). It fails
	// with ErrNotFound if key does not exist and with ErrImmutable if a legal hold or an
	// unexpired retention protects it.
	Delete(ctx context.Context, key string) error

	// SetLegalHold places (on=true) or releases (on=false) a legal hold on key. A held object
	// can be neither deleted nor overwritten. ErrNotSupported if the location does not
	// enforce holds (see Capabilities). ObjectInfo.LegalHold reports any hold the backend
	// has (GCS event-based holds included), so releasing drflow's hold may leave it true.
	SetLegalHold(ctx context.Context, key string, on bool) error

	// SetRetention protects key until r.Until, rounded up to the backend's precision (whole
	// seconds). Extending is always allowed; shortening or removing (zero Until) is allowed
	// only in governance mode and fails with ErrImmutable against an active compliance
	// retention. Any other non-zero Until that is not in the future is ErrInvalidArgument.
	// ErrNotSupported if the location does not enforce retention.
	SetRetention(ctx context.Context, key string, r Retention) error

	// Capabilities reports what this location enforces, as configured on the server. Callers
	// must not treat a location as immutable unless it says so.
	Capabilities() Capabilities

	// Location describes where this store lives.
	Location() Location
}

// Provider names, as they appear in configuration.
const (
	ProviderS3     = "s3"
	ProviderGCS    = "gcs"
	ProviderAzBlob = "azblob"
	ProviderLocal  = "local"
)

// Location identifies a store for logs, audit events and policy decisions. It carries no
// credentials.
type Location struct {
	Name         string // configured name, e.g. "eu-primary"
	Provider     string // one of the Provider* constants
	Bucket       string // bucket, container or directory
	Prefix       string // key prefix inside the bucket that this store is confined to
	Endpoint     string // custom endpoint (emulators, S3-compatible services), empty for default
	Region       string
	Jurisdiction string
}

// String renders a location for humans, e.g. "eu-primary (s3://bucket/prefix, eu-west-1, EU)".
func (l Location) String() string {
	uri := fmt.Sprintf("%s://%s", l.Provider, l.Bucket)
	if l.Prefix != "" {
		uri += "/" + l.Prefix
	}
	return fmt.Sprintf("%s (%s, %s, %s)", l.Name, uri, l.Region, l.Jurisdiction)
}

// PutOptions tune a Put.
type PutOptions struct {
	// IfNotExists makes the Put a conditional create: ErrExists if key already exists.
	IfNotExists bool
	// ContentType is stored as object metadata where the backend has it.
	ContentType string
	// LegalHold places a legal hold as part of the write (only where Capabilities.LegalHold).
	LegalHold bool
	// Retention, when its Until is set, protects the object from the moment it is written
	// (only where Capabilities.Retention).
	Retention Retention
}

// GetOptions tune a Get.
type GetOptions struct {
	// Range restricts the read to part of the object; nil reads it whole.
	Range *ByteRange
}

// ByteRange is a part of an object: Length bytes from Offset, or to the end if Length < 0.
type ByteRange struct {
	Offset int64
	Length int64
}

// Validate reports a range that no backend can serve.
func (r ByteRange) Validate() error {
	if r.Offset < 0 {
		return fmt.Errorf("%w: range offset %d is negative", ErrInvalidArgument, r.Offset)
	}
	if r.Length == 0 {
		return fmt.Errorf("%w: range length is zero (use a negative length to read to the end)", ErrInvalidArgument)
	}
	return nil
}

// RetentionMode says who may shorten a retention period.
type RetentionMode string

const (
	// Governance: privileged callers may shorten or remove the retention (S3 GOVERNANCE,
	// Azure and GCS "Unlocked").
	Governance RetentionMode = "governance"
	// Compliance: nobody can shorten or remove it until it expires (S3 COMPLIANCE, Azure and
	// GCS "Locked").
	Compliance RetentionMode = "compliance"
)

// Retention protects an object from deletion and overwrite until Until.
type Retention struct {
	Mode  RetentionMode
	Until time.Time
}

// Active reports whether the retention still protects the object at now.
func (r Retention) Active(now time.Time) bool {
	return !r.Until.IsZero() && now.Before(r.Until)
}

// Validate reports a retention that is not well formed.
func (r Retention) Validate() error {
	switch r.Mode {
	case Governance, Compliance:
	case "":
		if !r.Until.IsZero() {
			return fmt.Errorf("%w: retention mode is empty (want %q or %q)", ErrInvalidArgument, Governance, Compliance)
		}
	default:
		return fmt.Errorf("%w: retention mode %q is unknown (want %q or %q)", ErrInvalidArgument, r.Mode, Governance, Compliance)
	}
	return nil
}

// ObjectInfo describes one object.
type ObjectInfo struct {
	Key       string
	Size      int64
	ModTime   time.Time
	ETag      string // backend's entity tag or content hash, opaque
	LegalHold bool
	Retention Retention // zero if none
}

// Capabilities is a location's truthful report of what it enforces.
type Capabilities struct {
	// LegalHold: the server refuses delete and overwrite of a held object.
	LegalHold bool
	// Retention: the server refuses delete and overwrite of an object until its retention
	// expires.
	Retention bool
	// RetentionModes lists the retention modes the server distinguishes.
	RetentionModes []RetentionMode
	// ConditionalCreate: PutOptions.IfNotExists is atomic on the server.
	ConditionalCreate bool
	// ServerEnforced: the storage service itself refuses to delete held or retained data, so
	// not even a privileged user of the machine that runs drflow can remove it. False where
	// drflow's adapter enforces holds and retention (the local store).
	ServerEnforced bool
	// Note explains, for humans, how the capabilities were established (e.g. "bucket has
	// Object Lock enabled").
	Note string
}

// Immutable reports whether the location can serve as WORM storage.
func (c Capabilities) Immutable() bool { return c.LegalHold && c.Retention }

// SupportsMode reports whether the location enforces retention mode m.
func (c Capabilities) SupportsMode(m RetentionMode) bool {
	for _, have := range c.RetentionModes {
		if have == m {
			return true
		}
	}
	return false
}

// Sentinel errors. Adapters wrap them (fmt.Errorf("...: %w", ErrNotFound)) so callers test
// with errors.Is and still read what happened.
var (
	ErrNotFound        = errors.New("object not found")
	ErrExists          = errors.New("object already exists")
	ErrImmutable       = errors.New("object is immutable (legal hold or retention)")
	ErrNotSupported    = errors.New("not supported by this location")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrPermission      = errors.New("permission denied")
)

// ValidateKey rejects keys that no backend stores faithfully.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	if len(key) > 1024 {
		return fmt.Errorf("%w: key is %d bytes long (at most 1024)", ErrInvalidArgument, len(key))
	}
	if key[0] == '/' {
		return fmt.Errorf("%w: key %q starts with /", ErrInvalidArgument, key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] == 0x7f || key[i] == '\\' {
			return fmt.Errorf("%w: key %q has a control character or backslash at byte %d", ErrInvalidArgument, key, i)
		}
	}
	for _, seg := range splitKey(key) {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: key %q has an empty, '.' or '..' segment", ErrInvalidArgument, key)
		}
	}
	return nil
}

func splitKey(key string) []string {
	var segs []string
	start := 0
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			segs = append(segs, key[start:i])
			start = i + 1
		}
	}
	return append(segs, key[start:])
}
