package azblob

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/drflow/drflow/providers"
)

// Headers that Put Blob and Put Block List accept to protect the blob they create, and that Set
// Blob Immutability Policy takes as well (https://learn.microsoft.com/rest/api/storageservices/put-block-list,
// .../put-blob, .../set-blob-immutability-policy, .../set-blob-legal-hold).
const (
	headerLegalHold    = "x-ms-legal-hold"
	headerPolicyUntil  = "x-ms-immutability-policy-until-date" // RFC 1123
	headerPolicyMode   = "x-ms-immutability-policy-mode"       // Unlocked or Locked
	headerBlobType     = "x-ms-blob-type"
	policyModeUnlocked = "Unlocked"
	policyModeLocked   = "Locked"
	blobTypeBlockBlob  = "BlockBlob"
)

// commitProtection is the legal hold and retention that a Put asks for.
type commitProtection struct {
	legalHold bool
	retention providers.Retention // zero Until: none
}

type commitProtectionKey struct{}

// commitProtectionPolicy adds a Put's legal hold and retention headers to the one request that
// makes the blob exist: Put Block List (comp=blocklist) or, for an object that fits in one
// block, Put Blob. Put Block requests, which only stage data, never carry them.
//
// It exists because blockblob.UploadStreamOptions, unlike UploadOptions and
// CommitBlockListOptions, has no LegalHold or ImmutabilityPolicy fields. Setting them after
// the commit instead would leave a window, and after a failure a blob, without the protection
// the caller asked for. It runs per call, before the SDK's authentication policy, so shared-key
// signatures cover the added headers.
type commitProtectionPolicy struct{}

func (commitProtectionPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	p, ok := raw.Context().Value(commitProtectionKey{}).(commitProtection)
	if ok && commitsBlob(raw) {
		// Lower-case keys, as the SDK writes its own x-ms-* headers.
		if p.legalHold {
			raw.Header[headerLegalHold] = []string{"true"}
		}
		if !p.retention.Until.IsZero() {
			mode := policyModeUnlocked
			if p.retention.Mode == providers.Compliance {
				mode = policyModeLocked
			}
			raw.Header[headerPolicyUntil] = []string{p.retention.Until.UTC().Format(http.TimeFormat)}
			raw.Header[headerPolicyMode] = []string{mode}
		}
	}
	return req.Next()
}

func commitsBlob(r *http.Request) bool {
	if r.Method != http.MethodPut {
		return false
	}
	switch r.URL.Query().Get("comp") {
	case "blocklist":
		return true
	case "":
		return headerValue(r.Header, headerBlobType) == blobTypeBlockBlob
	}
	return false
}

// headerValue reads a header whether it was set canonically or, as the SDK does, lower-case.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
