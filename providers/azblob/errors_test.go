package azblob

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// responseError builds the error the SDK returns for a service response; HEAD responses have
// no body, so the code travels in x-ms-error-code either way.
func responseError(status int, code string) error {
	h := http.Header{}
	h.Set("x-ms-request-id", "req-1")
	if code != "" {
		h.Set("x-ms-error-code", code)
	}
	return runtime.NewResponseError(&http.Response{
		StatusCode: status,
		Status:     http.StatusText(status),
		Header:     h,
		Body:       http.NoBody,
		Request:    &http.Request{Method: http.MethodDelete, URL: &url.URL{Scheme: "https", Host: "a.blob.core.windows.net", Path: "/c/k"}},
	})
}

func TestTranslateError(t *testing.T) {
	tests := []struct {
		name string
		give error
		want error // nil: passed through unchanged
	}{
		{"blob not found", responseError(404, "BlobNotFound"), providers.ErrNotFound},
		{"container not found", responseError(404, "ContainerNotFound"), providers.ErrNotFound},
		{"HEAD 404 without code", responseError(404, ""), providers.ErrNotFound},
		{"conditional create lost", responseError(409, "BlobAlreadyExists"), providers.ErrExists},
		{"condition not met", responseError(412, "ConditionNotMet"), providers.ErrExists},
		{"policy", responseError(409, "BlobImmutableDueToPolicy"), providers.ErrImmutable},
		{"legal hold", responseError(409, "BlobImmutableDueToLegalHold"), providers.ErrImmutable},
		{"delete locked policy", responseError(409, "ImmutabilityPolicyDeleteOnLockedPolicy"), providers.ErrImmutable},
		{"container policy locked", responseError(409, "ContainerImmutabilityPolicyLocked"), providers.ErrImmutable},
		{"container legal hold", responseError(409, "ContainerHasLegalHold"), providers.ErrImmutable},
		{"authorization", responseError(403, "AuthorizationFailure"), providers.ErrPermission},
		{"authentication", responseError(403, "AuthenticationFailed"), providers.ErrPermission},
		{"RBAC", responseError(403, "AuthorizationPermissionMismatch"), providers.ErrPermission},
		{"overwrite not allowed", responseError(403, "UnauthorizedBlobOverwrite"), providers.ErrPermission},
		{"HEAD 403 without code", responseError(403, ""), providers.ErrPermission},
		{"range", responseError(416, "InvalidRange"), providers.ErrInvalidArgument},
		{"bad header", responseError(400, "InvalidHeaderValue"), providers.ErrInvalidArgument},
		{"Azurite", responseError(501, "APINotImplemented"), providers.ErrNotSupported},
		{"server error", responseError(500, "InternalError"), nil},
		{"throttled", responseError(503, "ServerBusy"), nil},
		{"not a service error", errors.New("dial tcp: connection refused"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translateError(tt.give)
			if tt.want == nil {
				assert.Same(t, tt.give, got)
				return
			}
			require.ErrorIs(t, got, tt.want)
			var re *azcore.ResponseError
			require.ErrorAs(t, got, &re, "the service response stays reachable")
			assert.Contains(t, got.Error(), fmt.Sprintf("HTTP %d", re.StatusCode))
			assert.Contains(t, got.Error(), "request req-1")
			assert.Contains(t, got.Error(), re.ErrorCode)
		})
	}

	t.Run("nil", func(t *testing.T) { assert.NoError(t, translateError(nil)) })
	t.Run("cancellation passes through", func(t *testing.T) {
		for _, err := range []error{context.Canceled, context.DeadlineExceeded, fmt.Errorf("stage block: %w", context.Canceled)} {
			assert.True(t, translateError(err) == err, "%v", err)
		}
	})
}
