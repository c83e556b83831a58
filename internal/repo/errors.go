package repo

import (
	"errors"
	"fmt"
	"strings"

	"github.com/drflow/drflow/internal/keys"
)

// ErrFormat reports an object of the repository that is not in a format this drflow
// understands (unknown magic or version). Retrying cannot fix it.
var ErrFormat = errors.New("unsupported repository format")

// ErrPackCollected fails a restore or verify that loaded the index before a GC deleted a pack
// holding a duplicate copy of a chunk it needs (possible only for a read that runs longer
// than the GC grace period). Nothing is damaged: a retry reads the copy GC kept.
var ErrPackCollected = errors.New("pack collected by garbage collection during the read; retry")

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
