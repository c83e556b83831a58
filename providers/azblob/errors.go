package azblob

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/drflow/drflow/providers"
)

// Error codes the service documents (https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes)
// that the SDK's bloberror package does not define.
const (
	// 409: "This operation is not permitted as the blob is immutable due to one or more legal holds."
	codeBlobImmutableDueToLegalHold bloberror.Code = "BlobImmutableDueToLegalHold"
	// 409, container-level WORM: a locked container policy or a container legal hold.
	codeContainerImmutabilityPolicyLocked bloberror.Code = "ContainerImmutabilityPolicyLocked"
	codeContainerHasLegalHold             bloberror.Code = "ContainerHasLegalHold"
	// 403 when a principal may create blobs but not overwrite them.
	codeUnauthorizedBlobOverwrite bloberror.Code = "UnauthorizedBlobOverwrite"
	// 501 from Azurite for operations it does not implement (legal hold, immutability policy).
	codeAPINotImplemented bloberror.Code = "APINotImplemented"
)

// sentinels maps service error codes onto the store's sentinel errors.
var sentinels = map[bloberror.Code]error{
	bloberror.BlobNotFound:      providers.ErrNotFound,
	bloberror.ContainerNotFound: providers.ErrNotFound,
	bloberror.ResourceNotFound:  providers.ErrNotFound,

	// ConditionNotMet means "exists" only because the one condition the adapter sends is
	// If-None-Match: * (a conditional create).
	bloberror.BlobAlreadyExists: providers.ErrExists,
	bloberror.ConditionNotMet:   providers.ErrExists,

	bloberror.BlobImmutableDueToPolicy:               providers.ErrImmutable,
	codeBlobImmutableDueToLegalHold:                  providers.ErrImmutable,
	bloberror.ImmutabilityPolicyDeleteOnLockedPolicy: providers.ErrImmutable,
	codeContainerImmutabilityPolicyLocked:            providers.ErrImmutable,
	codeContainerHasLegalHold:                        providers.ErrImmutable,

	bloberror.AuthenticationFailed:              providers.ErrPermission,
	bloberror.AuthorizationFailure:              providers.ErrPermission,
	bloberror.AuthorizationPermissionMismatch:   providers.ErrPermission,
	bloberror.AuthorizationProtocolMismatch:     providers.ErrPermission,
	bloberror.AuthorizationResourceTypeMismatch: providers.ErrPermission,
	bloberror.AuthorizationServiceMismatch:      providers.ErrPermission,
	bloberror.AuthorizationSourceIPMismatch:     providers.ErrPermission,
	bloberror.InsufficientAccountPermissions:    providers.ErrPermission,
	bloberror.InvalidAuthenticationInfo:         providers.ErrPermission,
	bloberror.NoAuthenticationInformation:       providers.ErrPermission,
	codeUnauthorizedBlobOverwrite:               providers.ErrPermission,

	bloberror.InvalidRange:           providers.ErrInvalidArgument,
	codeAPINotImplemented:            providers.ErrNotSupported,
	bloberror.FeatureVersionMismatch: providers.ErrNotSupported,
}

// statusSentinels maps what a code does not (a HEAD response has no body, and unknown codes).
var statusSentinels = map[int]error{
	http.StatusNotFound:                     providers.ErrNotFound,
	http.StatusForbidden:                    providers.ErrPermission,
	http.StatusUnauthorized:                 providers.ErrPermission,
	http.StatusBadRequest:                   providers.ErrInvalidArgument,
	http.StatusRequestedRangeNotSatisfiable: providers.ErrInvalidArgument,
	http.StatusNotImplemented:               providers.ErrNotSupported,
}

// translateError maps an SDK error onto the store's sentinels, keeping the service's status,
// error code and request ID (which Azure support asks for) in the message. Context
// cancellation and deadlines pass through unchanged, so errors.Is finds them.
func translateError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	sentinel, ok := sentinels[bloberror.Code(re.ErrorCode)]
	if !ok {
		sentinel, ok = statusSentinels[re.StatusCode]
	}
	if !ok {
		return err
	}
	var requestID string
	if re.RawResponse != nil {
		requestID = re.RawResponse.Header.Get("x-ms-request-id")
	}
	return &serviceError{sentinel: sentinel, resp: re, requestID: requestID}
}

// serviceError is a service response mapped onto a sentinel. Both are in its chain, but its
// message is one line, unlike the SDK's multi-line dump of the response.
type serviceError struct {
	sentinel  error
	resp      *azcore.ResponseError
	requestID string
}

func (e *serviceError) Error() string {
	msg := fmt.Sprintf("%v (HTTP %d", e.sentinel, e.resp.StatusCode)
	if e.resp.ErrorCode != "" {
		msg += " " + e.resp.ErrorCode
	}
	if e.requestID != "" {
		msg += ", request " + e.requestID
	}
	return msg + ")"
}

func (e *serviceError) Unwrap() []error { return []error{e.sentinel, e.resp} }
