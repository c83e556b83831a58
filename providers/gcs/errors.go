package gcs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"

	"github.com/drflow/drflow/providers"
)

// translateError maps an error of the storage SDK onto the providers sentinels, keeping the
// original in the chain (errors.As still finds the *googleapi.Error). Context cancellation and
// deadlines pass through unchanged, and errors it does not recognise are returned as they are.
func translateError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return fmt.Errorf("%w: %w", providers.ErrNotFound, err)
	case errors.Is(err, storage.ErrBucketNotExist):
		return fmt.Errorf("%w: %w", providers.ErrNotFound, err)
	}

	code, reason, message, ok := apiDetails(err)
	if !ok {
		return err
	}
	var sentinel error
	switch code {
	case http.StatusBadRequest, http.StatusRequestedRangeNotSatisfiable:
		sentinel = providers.ErrInvalidArgument
	case http.StatusUnauthorized:
		sentinel = providers.ErrPermission
	case http.StatusForbidden:
		// Cloud Storage refuses a protected object with 403, the same status as a missing
		// permission; only the reason and message tell them apart.
		if isProtectedRefusal(reason, message) {
			sentinel = providers.ErrImmutable
		} else {
			sentinel = providers.ErrPermission
		}
	case http.StatusNotFound:
		sentinel = providers.ErrNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		// The only precondition this adapter sends is ifGenerationMatch=0 (create only if
		// absent), so a failed one means the object exists.
		sentinel = providers.ErrExists
	default:
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// isProtectedRefusal reports whether a 403 is Cloud Storage refusing to delete or replace an
// object under hold or retention. Measured responses:
//
//	hold:      reason "forbidden", "Object 'b/o' is under active Temporary hold and cannot be
//	           deleted, overwritten or archived until hold is removed." (or "Event-Based hold")
//	retention: reason "retentionPolicyNotMet", "Object 'b/o' is subject to bucket's retention
//	           policy or object retention and cannot be deleted or overwritten until <time>"
//
// The XML API and the documentation also name the reason "objectUnderActiveHold".
func isProtectedRefusal(reason, message string) bool {
	switch strings.ToLower(reason) {
	case "retentionpolicynotmet", "objectunderactivehold":
		return true
	}
	m := strings.ToLower(message)
	return strings.Contains(m, "under active") && strings.Contains(m, "hold") ||
		strings.Contains(m, "retention") && strings.Contains(m, "cannot be deleted")
}

// apiDetails extracts the HTTP status, the first error reason and the message of a service
// error, from the JSON API's *googleapi.Error or from gax's *apierror.APIError (which the gRPC
// transport returns).
func apiDetails(err error) (code int, reason, message string, ok bool) {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		messages := []string{gerr.Message}
		for _, item := range gerr.Errors {
			if reason == "" {
				reason = item.Reason
			}
			messages = append(messages, item.Message)
		}
		return gerr.Code, reason, strings.Join(messages, " "), true
	}
	var aerr *apierror.APIError
	if errors.As(err, &aerr) {
		code = aerr.HTTPCode()
		if code <= 0 && aerr.GRPCStatus() != nil {
			code = grpcToHTTP(aerr.GRPCStatus().Code())
		}
		return code, aerr.Reason(), aerr.Error(), code > 0
	}
	return 0, "", "", false
}

// grpcToHTTP maps the gRPC codes that carry meaning here onto the JSON API's statuses.
func grpcToHTTP(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.OutOfRange:
		return http.StatusRequestedRangeNotSatisfiable
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists:
		return http.StatusConflict
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	}
	return 0
}
