package activities

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/repo"
)

// Application error types of failures that retrying cannot fix. Workflows list them in their
// retry policies' NonRetryableErrorTypes (NonRetryableErrorTypes), and callers match on them.
// The data path's own types come from repo's table of error classes.
const (
	ErrTypeInvalidInput       = repo.TypeInvalidInput // same as workflows.ErrTypeInvalidInput
	ErrTypeNotFound           = repo.TypeNotFound
	ErrTypeNotServed          = "NotServed" // routed to a worker without the store or key
	ErrTypeKeyRevoked         = repo.TypeKeyRevoked
	ErrTypeKeyDestroyed       = repo.TypeKeyDestroyed
	ErrTypeIntegrityFailure   = repo.TypeIntegrityFailure
	ErrTypeVerificationFailed = "VerificationFailed"
	ErrTypeUnsupportedFormat  = repo.TypeUnsupportedFormat
	// ErrTypePolicyDenied: the residency policy does not allow the transfer (or no longer
	// allows it in the mode planned). Retrying cannot change the policy.
	ErrTypePolicyDenied = "PolicyDenied"
)

// NonRetryableErrorTypes lists every error type above, for activity retry policies.
func NonRetryableErrorTypes() []string {
	return []string{ErrTypeInvalidInput, ErrTypeNotFound, ErrTypeNotServed, ErrTypeKeyRevoked, ErrTypeKeyDestroyed,
		ErrTypeIntegrityFailure, ErrTypeVerificationFailed, ErrTypeUnsupportedFormat, ErrTypePolicyDenied}
}

func nonRetryable(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}

// classify turns an error of the data path into what Temporal should do with it, by repo's
// table of error classes: errors that retrying cannot fix become non-retryable application
// errors with a stable type; others are returned as they are, for the retry policy.
//
// An integrity error names the entry it hit, a file path that is customer data; its message
// in the failure (which Temporal stores in history) is rebuilt without it, and the original
// error is not attached as the cause.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err
	}
	class := repo.ClassifyError(err)
	switch {
	case !class.Final():
		return err
	case class.Type == ErrTypeIntegrityFailure:
		return temporal.NewNonRetryableApplicationError(integrityMessage(err), class.Type, nil)
	default:
		return temporal.NewNonRetryableApplicationError(err.Error(), class.Type, nil)
	}
}

// integrityMessage describes an integrity failure by chunk, pack and reason only.
func integrityMessage(err error) string {
	var ie *repo.IntegrityError
	if !errors.As(err, &ie) {
		return "integrity check failed: " + keys.ErrIntegrity.Error()
	}
	var b strings.Builder
	b.WriteString("integrity check failed")
	if ie.Chunk != (keys.ChunkID{}) {
		fmt.Fprintf(&b, ": chunk %s", ie.Chunk)
	}
	if ie.Pack != "" {
		fmt.Fprintf(&b, " in pack %s", ie.Pack)
	}
	if ie.Reason != "" {
		fmt.Fprintf(&b, ": %s", ie.Reason)
	}
	return b.String()
}

// appType is the type of the application error in err's chain, or "".
func appType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// appMessage is the message of the application error in err's chain, without wrappers.
func appMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
