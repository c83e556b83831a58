package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnknownKEK: a wrapped key names a KEK, or a version of it, that this provider does not
// have: it was wrapped in another jurisdiction, by a KMS key this worker is not configured to
// trust, or by a keyring version that was never imported here. Not retryable.
var ErrUnknownKEK = errors.New("unknown key-encryption key")

// KEK is a key-encryption key of one jurisdiction: the local keyring (Keyring) or an AWS KMS
// key (KMS). It wraps DEK secrets, which then may leave home; the KEK never does.
//
// Providers do not audit: the Manager records every wrap and unwrap with the dataset and
// epoch it concerns, so the engine should reach a KEK only through a Manager.
type KEK interface {
	// ID is the stable identifier of what Wrap uses now, including its version: "eu-kek/v3"
	// for a keyring, the key ARN for KMS (KMS rotates backing keys inside one ARN).
	ID() string
	// Jurisdiction is the jurisdiction the KEK belongs to.
	Jurisdiction() string
	// Wrap encrypts secret under the active version, bound to aad. ErrRevoked if the KEK
	// (or, for a keyring, its active version) is revoked.
	Wrap(ctx context.Context, secret, aad []byte) (Wrapped, error)
	// Unwrap recovers a wrapped secret. ErrRevoked if the KEK or the version that wrapped it
	// is revoked, ErrIntegrity if w or aad was changed, ErrUnknownKEK if w was wrapped by a
	// key this provider does not hold or trust.
	Unwrap(ctx context.Context, w Wrapped, aad []byte) ([]byte, error)
	// Check reports whether w could still be unwrapped as far as revocation goes: ErrRevoked
	// if not. The Manager calls it every time it hands out a cached data key, so it is cheap:
	// the keyring stats its file and re-reads it only when it changed; KMS answers from a
	// DescribeKey that is at most KMSOptions.StateTTL old.
	Check(ctx context.Context, w Wrapped) error
	// NeedsRewrap reports whether w was wrapped by something other than what Wrap uses now
	// (an older keyring version, a previous KMS key), so that a re-wrap after rotation
	// should wrap it again.
	NeedsRewrap(w Wrapped) bool
}

// Wrapped is a secret wrapped by a KEK.
type Wrapped struct {
	// KEKID names the KEK version that wrapped it: "eu-kek/v3", or the KMS key ARN.
	KEKID string `json:"kek_id"`
	// Ciphertext is the provider's wrapping: nonce || AES-256-GCM ciphertext || tag for a
	// keyring, the CiphertextBlob for KMS.
	Ciphertext []byte `json:"ciphertext"`
}

// dekAADMagic starts the additional data that binds a wrapped DEK to its dataset and epoch.
const dekAADMagic = "drflow dek v1\x00"

// dekAAD is the additional data of the wrapped DEK of dataset's epoch: it makes a wrapped
// DEK moved to another dataset or epoch fail authentication. The KMS provider turns it back
// into an EncryptionContext, which CloudTrail then shows.
func dekAAD(dataset string, epoch uint32) []byte {
	b := make([]byte, 0, len(dekAADMagic)+8+len(dataset))
	b = append(b, dekAADMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(dataset)))
	b = append(b, dataset...)
	return binary.BigEndian.AppendUint32(b, epoch)
}

// parseDEKAAD inverts dekAAD; ok is false for any other additional data.
func parseDEKAAD(aad []byte) (dataset string, epoch uint32, ok bool) {
	rest, found := cutPrefix(aad, dekAADMagic)
	if !found || len(rest) < 8 {
		return "", 0, false
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(len(rest)) != uint64(n)+4 {
		return "", 0, false
	}
	return string(rest[:n]), binary.BigEndian.Uint32(rest[n:]), true
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return b, false
	}
	return b[len(prefix):], true
}

// Encryption context keys under which KMS binds a wrapped DEK (visible in CloudTrail and
// usable in key policies as kms:EncryptionContext:dataset).
const (
	contextDataset = "dataset"
	contextEpoch   = "epoch"
	contextAAD     = "aad" // additional data that is not a DEK's, base64url
)

func epochString(epoch uint32) string { return strconv.FormatUint(uint64(epoch), 10) }

// maxReasonLen keeps audit reasons well inside what the audit trail accepts.
const maxReasonLen = 1024

// auditReason makes free text (an operator's reason, an error message from an SDK) fit for
// an audit event: one line, valid UTF-8, bounded.
func auditReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
