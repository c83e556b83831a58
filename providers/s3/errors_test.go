package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// sdkError dresses an API error the way the SDK returns it: an operation error around a
// response error around the API error.
func sdkError(status int, apiErr error) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "Op",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      apiErr,
			},
			RequestID: "req",
		},
	}
}

func apiError(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

func TestTranslateError(t *testing.T) {
	tests := []struct {
		name string
		give error
		want error // nil: no sentinel, returned unchanged
	}{
		{"no such key", sdkError(404, &types.NoSuchKey{}), providers.ErrNotFound},
		{"head 404 without body", sdkError(404, &types.NotFound{}), providers.ErrNotFound},
		{"bare 404 with unknown code", sdkError(404, apiError("UnknownError", "")), providers.ErrNotFound},
		{"no such bucket", sdkError(404, &types.NoSuchBucket{}), providers.ErrNotFound},
		{"no such version", sdkError(404, apiError("NoSuchVersion", "")), providers.ErrNotFound},
		{"delete marker", sdkError(405, apiError("MethodNotAllowed", "The specified method is not allowed against this resource.")), providers.ErrNotFound},
		{"if-none-match", sdkError(412, apiError("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")), providers.ErrExists},
		{"concurrent conditional write", sdkError(409, apiError("ConditionalRequestConflict", "")), providers.ErrExists},
		{"aws object lock", sdkError(403, apiError("AccessDenied", "Access Denied because object protected by object lock.")), providers.ErrImmutable},
		{"minio worm", sdkError(400, apiError("InvalidRequest", "Object is WORM protected and cannot be overwritten")), providers.ErrImmutable},
		{"plain access denied", sdkError(403, apiError("AccessDenied", "Access Denied.")), providers.ErrPermission},
		{"iam denial naming a lock action", sdkError(403, apiError("AccessDenied",
			"User: arn:aws:iam::1:user/x is not authorized to perform: s3:PutObjectRetention")), providers.ErrPermission},
		{"head 403 without body", sdkError(403, apiError("Forbidden", "Forbidden")), providers.ErrPermission},
		{"bad signature", sdkError(403, apiError("SignatureDoesNotMatch", "")), providers.ErrPermission},
		{"aws bucket without lock", sdkError(400, apiError("InvalidRequest", "Bucket is missing Object Lock Configuration")), providers.ErrNotSupported},
		{"minio bucket without lock", sdkError(400, apiError("InvalidRequest", "Bucket is missing ObjectLockConfiguration")), providers.ErrNotSupported},
		{"lock configuration not found", sdkError(404, apiError("ObjectLockConfigurationNotFoundError", "")), providers.ErrNotSupported},
		{"not implemented", sdkError(501, apiError("NotImplemented", "")), providers.ErrNotSupported},
		{"other invalid request", sdkError(400, apiError("InvalidRequest", "the retain until date must be in the future")), providers.ErrInvalidArgument},
		{"invalid range", sdkError(416, apiError("InvalidRange", "")), providers.ErrInvalidArgument},
		{"invalid argument", sdkError(400, apiError("InvalidArgument", "")), providers.ErrInvalidArgument},
		{"server error", sdkError(500, apiError("InternalError", "")), nil},
		{"slow down", sdkError(503, apiError("SlowDown", "")), nil},
		{"not an API error", errors.New("connection reset"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translateError(tt.give)
			require.ErrorIs(t, got, tt.give, "the SDK error stays reachable")
			if tt.want == nil {
				assert.Equal(t, tt.give, got)
				return
			}
			assert.ErrorIs(t, got, tt.want)
			for _, other := range sentinels {
				if other != tt.want {
					assert.NotErrorIs(t, got, other)
				}
			}
			assert.Equal(t, got, translateError(got), "translating twice changes nothing")
		})
	}

	t.Run("nil", func(t *testing.T) {
		assert.NoError(t, translateError(nil))
	})
	t.Run("context errors pass through", func(t *testing.T) {
		for _, cause := range []error{context.Canceled, context.DeadlineExceeded} {
			give := &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &smithy.CanceledError{Err: cause}}
			got := translateError(give)
			assert.ErrorIs(t, got, cause)
			assert.Equal(t, error(give), got)
		}
	})
	t.Run("cancellation hidden by the transport", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := fail(ctx, "put", "k", fmt.Errorf("write: %w", errors.New("use of closed network connection")))
		assert.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), `s3 put "k"`)
	})
}
