package gcs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2/apierror"
	"github.com/stretchr/testify/assert"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drflow/drflow/providers"
)

func apiError(code int, reason, message string) error {
	return &googleapi.Error{Code: code, Message: message, Errors: []googleapi.ErrorItem{{Reason: reason, Message: message}}}
}

func grpcError(c codes.Code) error {
	aerr, ok := apierror.FromError(status.Error(c, "rpc failed"))
	if !ok {
		panic("apierror.FromError")
	}
	return aerr
}

func TestTranslateError(t *testing.T) {
	other := errors.New("connection reset")
	tests := []struct {
		name string
		give error
		want error // nil: returned unchanged
	}{
		{"object missing", storage.ErrObjectNotExist, providers.ErrNotFound},
		{"bucket missing", storage.ErrBucketNotExist, providers.ErrNotFound},
		{"404", apiError(http.StatusNotFound, "notFound", "No such object: b/o"), providers.ErrNotFound},
		{"409", apiError(http.StatusConflict, "conflict", "You already own this bucket."), providers.ErrExists},
		{"412 on ifGenerationMatch=0", apiError(http.StatusPreconditionFailed, "conditionNotMet",
			"At least one of the pre-conditions you specified did not hold."), providers.ErrExists},
		{"403 temporary hold", apiError(http.StatusForbidden, "forbidden",
			"Object 'b/o' is under active Temporary hold and cannot be deleted, overwritten or archived until hold is removed."), providers.ErrImmutable},
		{"403 event-based hold", apiError(http.StatusForbidden, "forbidden",
			"Object 'b/o' is under active Event-Based hold and cannot be deleted, overwritten or archived until hold is removed."), providers.ErrImmutable},
		{"403 retention", apiError(http.StatusForbidden, "retentionPolicyNotMet",
			"Object 'b/o' is subject to bucket's retention policy or object retention and cannot be deleted or overwritten until 2026-09-30T15:58:01.185839-07:00"), providers.ErrImmutable},
		{"403 older retention wording", apiError(http.StatusForbidden, "",
			"Object 'b/o' is subject to bucket's retention policy and cannot be deleted, overwritten or archived until 2023-08-03T22:52:52-07:00"), providers.ErrImmutable},
		{"403 documented hold reason", apiError(http.StatusForbidden, "objectUnderActiveHold", "Object replacement or deletion is not allowed due to an active hold on the object."), providers.ErrImmutable},
		{"403 permission", apiError(http.StatusForbidden, "forbidden",
			"someone@example.com does not have storage.objects.delete access to the Google Cloud Storage object."), providers.ErrPermission},
		{"401", apiError(http.StatusUnauthorized, "required", "Anonymous caller does not have storage.objects.get access."), providers.ErrPermission},
		{"400", apiError(http.StatusBadRequest, "invalid", "Invalid argument."), providers.ErrInvalidArgument},
		{"416", apiError(http.StatusRequestedRangeNotSatisfiable, "requestedRangeNotSatisfiable", "The requested range cannot be satisfied."), providers.ErrInvalidArgument},
		{"wrapped googleapi error", fmt.Errorf("chunk upload failed after 2 attempts, final error: %w", apiError(http.StatusForbidden, "retentionPolicyNotMet", "retained")), providers.ErrImmutable},
		{"gRPC not found", grpcError(codes.NotFound), providers.ErrNotFound},
		{"gRPC failed precondition", grpcError(codes.FailedPrecondition), providers.ErrExists},
		{"gRPC permission denied", grpcError(codes.PermissionDenied), providers.ErrPermission},
		{"503 stays as is", apiError(http.StatusServiceUnavailable, "backendError", "Backend Error"), nil},
		{"unknown stays as is", other, nil},
		{"cancelled", fmt.Errorf("storage: %w", context.Canceled), nil},
		{"deadline", context.DeadlineExceeded, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translateError(tt.give)
			assert.ErrorIs(t, got, tt.give, "the original error stays in the chain")
			if tt.want == nil {
				assert.Equal(t, tt.give, got)
				return
			}
			assert.ErrorIs(t, got, tt.want)
			for _, s := range []error{providers.ErrNotFound, providers.ErrExists, providers.ErrImmutable, providers.ErrPermission, providers.ErrInvalidArgument} {
				if s != tt.want {
					assert.NotErrorIs(t, got, s, "exactly one sentinel")
				}
			}
		})
	}
	assert.NoError(t, translateError(nil))
}
