package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/drflow/drflow/providers"
)

// translateError maps an SDK error onto the providers sentinels. The result wraps both, so
// callers test with errors.Is and errors.As still reaches the smithy.APIError. Errors with no
// matching sentinel, and context errors, are returned unchanged.
func translateError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	for _, s := range sentinels {
		if errors.Is(err, s) { // translated already
			return err
		}
	}
	var sentinel error
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		sentinel = sentinelForCode(apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	var respErr *smithyhttp.ResponseError
	if sentinel == nil && errors.As(err, &respErr) {
		// HEAD responses have no body, so the SDK only knows the status.
		sentinel = sentinelForStatus(respErr.HTTPStatusCode())
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

var sentinels = []error{
	providers.ErrNotFound, providers.ErrExists, providers.ErrImmutable,
	providers.ErrNotSupported, providers.ErrInvalidArgument, providers.ErrPermission,
}

func sentinelForCode(code, message string) error {
	switch code {
	case "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket", "NoSuchUpload",
		// A GET, HEAD or lock call on a key whose current version is a delete marker.
		"MethodNotAllowed":
		return providers.ErrNotFound
	case "PreconditionFailed",
		// AWS: a concurrent conditional write to the same key is in progress.
		"ConditionalRequestConflict":
		return providers.ErrExists
	case "AccessDenied", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
		"ExpiredToken", "InvalidToken", "AccountProblem":
		// AWS refuses to delete or shorten the lock of a protected version with AccessDenied.
		if isLockedMessage(message) {
			return providers.ErrImmutable
		}
		return providers.ErrPermission
	case "InvalidRequest":
		// MinIO refuses with InvalidRequest; the same code also means other things.
		switch {
		case isMissingLockMessage(message):
			return providers.ErrNotSupported
		case isLockedMessage(message):
			return providers.ErrImmutable
		}
		return providers.ErrInvalidArgument
	case "ObjectLockConfigurationNotFoundError", "NotImplemented":
		return providers.ErrNotSupported
	case "InvalidArgument", "InvalidRange", "InvalidObjectName", "KeyTooLongError", "InvalidBucketName",
		"MalformedXML", "EntityTooLarge", "InvalidRetentionPeriod":
		return providers.ErrInvalidArgument
	}
	return nil
}

func sentinelForStatus(status int) error {
	switch status {
	case http.StatusNotFound:
		return providers.ErrNotFound
	case http.StatusForbidden:
		return providers.ErrPermission
	case http.StatusPreconditionFailed:
		return providers.ErrExists
	case http.StatusRequestedRangeNotSatisfiable:
		return providers.ErrInvalidArgument
	case http.StatusNotImplemented:
		return providers.ErrNotSupported
	}
	return nil
}

// isLockedMessage recognises the refusals of S3 ("Access Denied because object protected by
// object lock.") and MinIO ("Object is WORM protected and cannot be overwritten"). It must not
// match IAM denials that merely name a lock permission, such as s3:PutObjectRetention.
func isLockedMessage(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "protected by object lock") || strings.Contains(msg, "worm protected")
}

// isMissingLockMessage recognises "Bucket is missing Object Lock Configuration" (S3) and
// "Bucket is missing ObjectLockConfiguration" (MinIO).
func isMissingLockMessage(msg string) bool {
	msg = strings.ReplaceAll(strings.ToLower(msg), " ", "")
	return strings.Contains(msg, "missingobjectlockconfiguration")
}

// isCode reports whether err carries the S3 error code.
func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// ctxErr makes a cancellation visible to errors.Is when the SDK reports it as something else
// (a closed connection, a failed retry).
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// fail translates err and says which operation on which key failed.
func fail(ctx context.Context, op, key string, err error) error {
	return fmt.Errorf("s3 %s %q: %w", op, key, ctxErr(ctx, translateError(err)))
}
