package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// ErrFormat reports an object of the repository that is not in a format this drflow
// understands (unknown magic or version). Retrying cannot fix it.
var ErrFormat = errors.New("unsupported repository format")

// ErrPackCollected fails a restore or verify that loaded the index before a GC deleted a pack
// holding a duplicate copy of a chunk it needs (possible only for a read that runs longer
// than the GC grace period). Nothing is damaged: a retry reads the copy GC kept.
var ErrPackCollected = errors.New("pack collected by garbage collection during the read; retry")

// Error types: the stable names under which a final failure reaches Temporal (as the type
// of a non-retryable application error), its retry policies and the callers that match on it.
const (
	TypeInvalidInput      = "InvalidInput"
	TypeNotFound          = "NotFound"
	TypeKeyRevoked        = "KeyRevoked"
	TypeKeyDestroyed      = "KeyDestroyed"
	TypeIntegrityFailure  = "IntegrityFailure"
	TypeUnsupportedFormat = "UnsupportedFormat"
)

// ErrorClass describes an error without its message, which can name files: what audit
// events and logs say of it, and what Temporal should do with it.
type ErrorClass struct {
	// Name is the class for audit events and logs, e.g. "key revoked" or "storage: not found".
	Name string
	// Type is the application error type of a failure that retrying cannot fix; empty when a
	// retry can succeed (or the error is a cancellation, which Temporal handles itself).
	Type string
}

// Final reports whether retrying cannot fix an error of this class.
func (c ErrorClass) Final() bool { return c.Type != "" }

// errorClasses is the one table that classifies the data path's errors; the first sentinel
// in err's chain that matches, in this order, decides. Audit events (repo), logs and
// Temporal failures (activities) all read it through ClassifyError.
var errorClasses = []struct {
	sentinel error
	class    ErrorClass
}{
	{context.Canceled, ErrorClass{Name: "cancelled"}},
	{context.DeadlineExceeded, ErrorClass{Name: "deadline exceeded"}},
	{keys.ErrRevoked, ErrorClass{Name: keys.ErrRevoked.Error(), Type: TypeKeyRevoked}},
	{keys.ErrDestroyed, ErrorClass{Name: keys.ErrDestroyed.Error(), Type: TypeKeyDestroyed}},
	{keys.ErrIntegrity, ErrorClass{Name: keys.ErrIntegrity.Error(), Type: TypeIntegrityFailure}},
	{ErrFormat, ErrorClass{Name: ErrFormat.Error(), Type: TypeUnsupportedFormat}},
	{providers.ErrNotFound, ErrorClass{Name: "storage: " + providers.ErrNotFound.Error(), Type: TypeNotFound}},
	{providers.ErrInvalidArgument, ErrorClass{Name: "storage: " + providers.ErrInvalidArgument.Error(), Type: TypeInvalidInput}},
	{providers.ErrExists, ErrorClass{Name: "storage: " + providers.ErrExists.Error()}},
	{providers.ErrImmutable, ErrorClass{Name: "storage: " + providers.ErrImmutable.Error()}},
	{providers.ErrNotSupported, ErrorClass{Name: "storage: " + providers.ErrNotSupported.Error()}},
	{providers.ErrPermission, ErrorClass{Name: "storage: " + providers.ErrPermission.Error()}},
}

// otherError is the class of an error no sentinel matches: retryable, its details only in
// the result the operator reads.
var otherError = ErrorClass{Name: "error (details in the operator's result)"}

// ClassifyError finds err's class in the table.
func ClassifyError(err error) ErrorClass {
	for _, c := range errorClasses {
		if errors.Is(err, c.sentinel) {
			return c.class
		}
	}
	return otherError
}

// errorClass describes an error for audit events without its message.
func errorClass(err error) string { return ClassifyError(err).Name }

// IntegrityError is a chunk that a restore or verify could not prove intact: its pack is
// missing or truncated, its ciphertext fails authentication, it decompresses badly, or its
// plaintext does not hash to its ID. It names the entry path, which is customer data: the
// error is for the operator who runs the restore, never for audit events or logs that leave
// the region.
//
// errors.Is(err, keys.ErrIntegrity) holds for every IntegrityError.
type IntegrityError struct {
	// Entry is the path of the entry the chunk belongs to (empty when a sampled verify reads
	// a chunk without its entry).
	Entry string
	// Chunk is the ID of the chunk; zero when the whole entry is affected (a file hash).
	Chunk keys.ChunkID
	// Pack is the ID of the pack holding the chunk; empty if no index lists the chunk.
	Pack string
	// Reason says what failed, e.g. "pack missing" or "authentication failed".
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *IntegrityError) Error() string {
	var b strings.Builder
	b.WriteString("integrity check failed")
	if e.Entry != "" {
		fmt.Fprintf(&b, ": entry %q", e.Entry)
	}
	if e.Chunk != (keys.ChunkID{}) {
		fmt.Fprintf(&b, ": chunk %s", e.Chunk)
	}
	if e.Pack != "" {
		fmt.Fprintf(&b, " in pack %s", e.Pack)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *IntegrityError) Unwrap() error { return e.Err }

// Is makes every IntegrityError match keys.ErrIntegrity.
func (e *IntegrityError) Is(target error) bool { return target == keys.ErrIntegrity }

// auditReason renders the failure without the entry path, for audit events.
func (e *IntegrityError) auditReason() string {
	var b strings.Builder
	if e.Chunk != (keys.ChunkID{}) {
		fmt.Fprintf(&b, "chunk %s", e.Chunk)
	} else {
		b.WriteString("file hash")
	}
	if e.Pack != "" {
		fmt.Fprintf(&b, " in pack %s", e.Pack)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	return b.String()
}

// manifestError reports a manifest that failed authentication or parsing; it wraps
// keys.ErrIntegrity so that callers treat it as final.
func manifestError(point string, frame int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if frame >= 0 {
		return fmt.Errorf("manifest %s frame %d: %s: %w", point, frame, msg, keys.ErrIntegrity)
	}
	return fmt.Errorf("manifest %s: %s: %w", point, msg, keys.ErrIntegrity)
}
