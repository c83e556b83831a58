package keys

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/drflow/drflow/providers"
)

// DefaultKMSStateTTL is how long KMS.Check trusts a DescribeKey answer, and so the longest a
// Manager keeps handing out a cached data key after its KMS key was disabled or scheduled
// for deletion. Unwraps that reach KMS see a revocation at once.
const DefaultKMSStateTTL = 30 * time.Second

// KMSOptions configure an AWS KMS KEK.
type KMSOptions struct {
	// KeyID is the key's ARN, ID or alias. It must be a symmetric ENCRYPT_DECRYPT key.
	KeyID string
	// Region is the KMS region; the key's ARN must be in it (a KEK stays in its
	// jurisdiction).
	Region string
	// Endpoint is a custom KMS API base URL with scheme; empty means AWS.
	Endpoint string
	// Jurisdiction the key belongs to.
	Jurisdiction string
	// Credentials, when nil, come from the SDK's default chain.
	Credentials aws.CredentialsProvider
	// PreviousKeyARNs are ARNs of keys that wrapped DEKs before KeyID replaced them (a
	// manual rotation to a new key). Unwrap accepts only these and KeyID's ARN: a wrapped
	// DEK naming any other key is ErrUnknownKEK, so that whoever can write to a store cannot
	// make drflow adopt a data key wrapped by a KMS key they control.
	PreviousKeyARNs []string
	// StateTTL: see DefaultKMSStateTTL (the default).
	StateTTL time.Duration
	// Clock ages DescribeKey answers; nil means time.Now.
	Clock func() time.Time
	// ClientOptions adjust the SDK client (retryer, HTTP client).
	ClientOptions []func(*kms.Options)
}

// KMS is a KEK held by AWS KMS. Wrap and Unwrap are KMS Encrypt and Decrypt with the dataset
// and epoch as EncryptionContext, so CloudTrail shows which dataset's key each call
// concerned and key policies can condition on it. Rotation happens inside KMS (the ARN stays
// and old backing keys keep decrypting), so RewrapKEK has nothing to do unless KeyID moved to
// a new key. Revoking is done in KMS by those who administer the key (DisableKey,
// ScheduleKeyDeletion, or a key policy change); workers need only kms:Encrypt, kms:Decrypt
// and kms:DescribeKey.
type KMS struct {
	client  *kms.Client
	arn     string
	region  string
	jur     string
	trusted map[string]bool
	ttl     time.Duration
	now     func() time.Time

	mu     sync.Mutex
	states map[string]kmsState // by key ARN
}

type kmsState struct {
	err error // nil or ErrRevoked
	at  time.Time
}

var _ KEK = (*KMS)(nil)

// OpenKMS connects to KMS and describes the key: it must exist, be a symmetric encryption
// key and live in opts.Region. A disabled key opens (Wrap and Unwrap then fail with
// ErrRevoked), so that a revocation does not stop the worker.
//
//nolint:gocyclo // one case per KMS option and credential source
func OpenKMS(ctx context.Context, opts KMSOptions) (*KMS, error) {
	if opts.KeyID == "" {
		return nil, fmt.Errorf("open kms key: %w: empty key id", providers.ErrInvalidArgument)
	}
	if opts.Region == "" {
		return nil, fmt.Errorf("open kms key %s: %w: empty region", opts.KeyID, providers.ErrInvalidArgument)
	}
	if opts.Jurisdiction == "" {
		return nil, fmt.Errorf("open kms key %s: %w: empty jurisdiction", opts.KeyID, providers.ErrInvalidArgument)
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("open kms key %s: %w: endpoint %q is not an http(s) URL", opts.KeyID, providers.ErrInvalidArgument, opts.Endpoint)
		}
	}
	loadOpts := []func(*config.LoadOptions) error{config.WithRegion(opts.Region)}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("open kms key %s: load AWS configuration: %w", opts.KeyID, err)
	}
	clientOpts := append([]func(*kms.Options){func(o *kms.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	}}, opts.ClientOptions...)
	k := &KMS{
		client:  kms.NewFromConfig(cfg, clientOpts...),
		region:  opts.Region,
		jur:     opts.Jurisdiction,
		trusted: map[string]bool{},
		ttl:     opts.StateTTL,
		now:     opts.Clock,
		states:  map[string]kmsState{},
	}
	if k.ttl <= 0 {
		k.ttl = DefaultKMSStateTTL
	}
	if k.now == nil {
		k.now = time.Now
	}

	out, err := k.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(opts.KeyID)})
	if err != nil {
		return nil, fmt.Errorf("open kms key %s: describe: %w", opts.KeyID, translateError(err))
	}
	md := out.KeyMetadata
	if md == nil || aws.ToString(md.Arn) == "" {
		return nil, fmt.Errorf("open kms key %s: DescribeKey returned no key ARN", opts.KeyID)
	}
	if md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt {
		return nil, fmt.Errorf("open kms key %s: %w: key is %s for %s, want %s for %s", opts.KeyID, providers.ErrInvalidArgument,
			md.KeySpec, md.KeyUsage, types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
	}
	k.arn = aws.ToString(md.Arn)
	if r := arnRegion(k.arn); r != opts.Region {
		return nil, fmt.Errorf("open kms key %s: %w: key %s is in region %q, not %s", opts.KeyID, providers.ErrInvalidArgument, k.arn, r, opts.Region)
	}
	k.trusted[k.arn] = true
	for _, p := range opts.PreviousKeyARNs {
		if !strings.HasPrefix(p, "arn:") {
			return nil, fmt.Errorf("open kms key %s: %w: previous key %q is not an ARN", opts.KeyID, providers.ErrInvalidArgument, p)
		}
		k.trusted[p] = true
	}
	k.setState(k.arn, stateErr(md))
	return k, nil
}

// arnRegion is the region field of arn:partition:kms:region:account:key/id.
func arnRegion(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" || parts[2] != "kms" {
		return ""
	}
	return parts[3]
}

// ID is the key's ARN.
func (k *KMS) ID() string { return k.arn }

// Jurisdiction is the jurisdiction of the key.
func (k *KMS) Jurisdiction() string { return k.jur }

// Wrap encrypts secret with KMS Encrypt under the configured key.
func (k *KMS) Wrap(ctx context.Context, secret, aad []byte) (Wrapped, error) {
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(k.arn),
		Plaintext:         secret,
		EncryptionContext: encryptionContext(aad),
	})
	if err != nil {
		err = translateError(err)
		k.noteRevoked(k.arn, err)
		return Wrapped{}, fmt.Errorf("kms encrypt with %s: %w", k.arn, err)
	}
	if id := aws.ToString(out.KeyId); id != "" && id != k.arn {
		return Wrapped{}, fmt.Errorf("kms encrypt with %s: KMS answered for key %s", k.arn, id)
	}
	return Wrapped{KEKID: k.arn, Ciphertext: out.CiphertextBlob}, nil
}

// Unwrap decrypts with KMS Decrypt, naming the key that wrapped w, which must be trusted.
func (k *KMS) Unwrap(ctx context.Context, w Wrapped, aad []byte) ([]byte, error) {
	if !k.trusted[w.KEKID] {
		return nil, fmt.Errorf("kms decrypt: %w: %q is not this KEK's key or one of its previous keys", ErrUnknownKEK, w.KEKID)
	}
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(w.KEKID),
		CiphertextBlob:    w.Ciphertext,
		EncryptionContext: encryptionContext(aad),
	})
	if err != nil {
		err = translateError(err)
		k.noteRevoked(w.KEKID, err)
		return nil, fmt.Errorf("kms decrypt with %s: %w", w.KEKID, err)
	}
	if id := aws.ToString(out.KeyId); id != w.KEKID {
		clear(out.Plaintext)
		return nil, fmt.Errorf("kms decrypt with %s: %w: KMS decrypted with key %s", w.KEKID, ErrIntegrity, id)
	}
	k.setState(w.KEKID, nil)
	return out.Plaintext, nil
}

// Check reports ErrRevoked if the key that wrapped w is disabled, pending deletion or gone,
// from a DescribeKey at most StateTTL old.
func (k *KMS) Check(ctx context.Context, w Wrapped) error {
	if !k.trusted[w.KEKID] {
		return fmt.Errorf("kms: %w: %q is not this KEK's key or one of its previous keys", ErrUnknownKEK, w.KEKID)
	}
	k.mu.Lock()
	st, ok := k.states[w.KEKID]
	k.mu.Unlock()
	if ok && k.now().Sub(st.at) < k.ttl {
		return st.err
	}
	out, err := k.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(w.KEKID)})
	if err != nil {
		err = translateError(err)
		k.noteRevoked(w.KEKID, err)
		return fmt.Errorf("kms describe %s: %w", w.KEKID, err)
	}
	if out.KeyMetadata == nil {
		return fmt.Errorf("kms describe %s: no key metadata", w.KEKID)
	}
	err = stateErr(out.KeyMetadata)
	k.setState(w.KEKID, err)
	return err
}

// NeedsRewrap reports whether w was wrapped by a previous key.
func (k *KMS) NeedsRewrap(w Wrapped) bool { return w.KEKID != k.arn }

func stateErr(md *types.KeyMetadata) error {
	if md.KeyState == types.KeyStateEnabled && md.Enabled {
		return nil
	}
	return fmt.Errorf("%w: KMS key %s is %s", ErrRevoked, aws.ToString(md.Arn), md.KeyState)
}

func (k *KMS) setState(arn string, err error) {
	k.mu.Lock()
	k.states[arn] = kmsState{err: err, at: k.now()}
	k.mu.Unlock()
}

// noteRevoked remembers a revocation that a call revealed, so that Check reports it without
// waiting for StateTTL.
func (k *KMS) noteRevoked(arn string, err error) {
	if errors.Is(err, ErrRevoked) {
		k.setState(arn, err)
	}
}

// encryptionContext turns a wrap's additional data into a KMS EncryptionContext: a DEK's
// dataset and epoch in clear (CloudTrail shows them, key policies can test them), anything
// else as base64url under "aad".
func encryptionContext(aad []byte) map[string]string {
	if len(aad) == 0 {
		return nil
	}
	if dataset, epoch, ok := parseDEKAAD(aad); ok {
		return map[string]string{contextDataset: dataset, contextEpoch: epochString(epoch)}
	}
	return map[string]string{contextAAD: base64.RawURLEncoding.EncodeToString(aad)}
}

// translateError maps a KMS error onto drflow's sentinels; the result wraps both, so
// errors.As still reaches the smithy.APIError. Errors that a retry may cure (throttling,
// KMSInternalException, KeyUnavailableException, DependencyTimeoutException, network and
// context errors) are returned unchanged.
func translateError(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	var sentinel error
	switch apiErr.ErrorCode() {
	case "DisabledException", // DisableKey
		"KMSInvalidStateException", // pending deletion (or import, or a disconnected key store)
		"NotFoundException":        // deleted: nothing it wrapped can ever be decrypted
		sentinel = ErrRevoked
	case "InvalidCiphertextException", // ciphertext or EncryptionContext altered
		"IncorrectKeyException": // wrapped by another key than the one named
		sentinel = ErrIntegrity
	case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
		"IncompleteSignature", "ExpiredTokenException", "InvalidGrantTokenException":
		sentinel = providers.ErrPermission
	case "InvalidKeyUsageException", "ValidationException", "InvalidArnException", "UnsupportedOperationException":
		sentinel = providers.ErrInvalidArgument
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
