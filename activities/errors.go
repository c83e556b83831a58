package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/providers"
)

// Application error types of failures that retrying cannot fix. Workflows list them in their
// retry policies' NonRetryableErrorTypes (NonRetryableErrorTypes), and callers match on them.
const (
	ErrTypeInvalidInput       = "InvalidInput" // same as workflows.ErrTypeInvalidInput
	ErrTypeNotFound           = "NotFound"
	ErrTypeNotServed          = "NotServed" // routed to a worker without the store or key
	ErrTypeKeyRevoked         = "KeyRevoked"
	ErrTypeKeyDestroyed       = "KeyDestroyed"
	ErrTypeIntegrityFailure   = "IntegrityFailure"
	ErrTypeVerificationFailed = "VerificationFailed"
	ErrTypeUnsupportedFormat  = "UnsupportedFormat"
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

// classify turns an error of the data path into what Temporal should do with it: errors that
// retrying cannot fix become non-retryable application errors with a stable type; others
// are returned as they are, for the retry policy.
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
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, keys.ErrRevoked):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeKeyRevoked, nil)
	case errors.Is(err, keys.ErrDestroyed):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeKeyDestroyed, nil)
	case errors.Is(err, keys.ErrIntegrity):
		return temporal.NewNonRetryableApplicationError(integrityMessage(err), ErrTypeIntegrityFailure, nil)
	case errors.Is(err, repo.ErrFormat):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUnsupportedFormat, nil)
	case errors.Is(err, providers.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotFound, nil)
	case errors.Is(err, providers.ErrInvalidArgument):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	return err
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
