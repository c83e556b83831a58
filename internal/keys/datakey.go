// Package keys holds drflow's key hierarchy: per-dataset data keys (DEKs) that encrypt chunks
// on the client, one per key epoch, wrapped by the key-encryption key (KEK) of the dataset's
// home jurisdiction so that only wrapped DEKs ever leave home.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// SecretSize is the size of a DEK's secret and of every derived subkey.
const SecretSize = 32

// Errors that callers must treat as final (non-retryable): retrying cannot change them.
var (
	// ErrIntegrity: ciphertext or a wrapped key failed authentication (tampered, truncated,
	// swapped, or sealed under another key).
	ErrIntegrity = errors.New("integrity check failed")
	// ErrRevoked: the KEK that wraps the key has been revoked; nothing it wraps can be
	// unwrapped any more (fail closed).
	ErrRevoked = errors.New("key-encryption key revoked")
	// ErrDestroyed: the dataset's data keys were destroyed (crypto-shredded).
	ErrDestroyed = errors.New("data key destroyed")
)

// ChunkID names a chunk by a keyed hash of its plaintext, so the same content dedups within
// a dataset's epoch while the ID reveals nothing about the content to anyone without the key.
type ChunkID [32]byte

// String returns the ID in lower-case hex.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// ParseChunkID parses the hex form of a ChunkID.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("chunk id %q: want %d hex characters", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("chunk id %q: %w", s, err)
	}
	return id, nil
}

// DataKey is the data key of one dataset for one key epoch, ready to use: an AES-256-GCM
// cipher for chunks and manifests and a keyed BLAKE3 hasher for chunk IDs, both derived from
// the epoch's secret with HKDF so that no two purposes share a key. Safe for concurrent use.
type DataKey struct {
	dataset string
	epoch   uint32
	aead    cipher.AEAD
	idKey   [SecretSize]byte
}

// NewDataKey derives a usable key from a DEK secret. The secret is not retained.
func NewDataKey(dataset string, epoch uint32, secret []byte) (*DataKey, error) {
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("data key for %s epoch %d: secret is %d bytes, want %d", dataset, epoch, len(secret), SecretSize)
	}
	salt := keySalt(dataset, epoch)
	encKey, err := hkdf.Key(sha256.New, secret, salt, "drflow chunk encryption v1", SecretSize)
	if err != nil {
		return nil, fmt.Errorf("derive encryption key: %w", err)
	}
	idKey, err := hkdf.Key(sha256.New, secret, salt, "drflow chunk id v1", SecretSize)
	if err != nil {
		return nil, fmt.Errorf("derive id key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	k := &DataKey{dataset: dataset, epoch: epoch, aead: aead}
	copy(k.idKey[:], idKey)
	clear(encKey)
	clear(idKey)
	return k, nil
}

// NewSecret returns a fresh random DEK secret.
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("random data key: %w", err)
	}
	return s, nil
}

func keySalt(dataset string, epoch uint32) []byte {
	salt := make([]byte, 0, len(dataset)+5)
	salt = append(salt, dataset...)
	salt = append(salt, 0)
	return binary.BigEndian.AppendUint32(salt, epoch)
}

// Dataset is the dataset this key belongs to.
func (k *DataKey) Dataset() string { return k.dataset }

// Epoch is the key epoch; rotating the DEK starts a new one.
func (k *DataKey) Epoch() uint32 { return k.epoch }

// ChunkID returns the keyed BLAKE3-256 hash of plaintext.
func (k *DataKey) ChunkID(plaintext []byte) ChunkID {
	h, err := blake3.NewKeyed(k.idKey[:])
	if err != nil {
		panic(err) // the key length is fixed at SecretSize, which blake3 accepts
	}
	_, _ = h.Write(plaintext)
	var id ChunkID
	h.Sum(id[:0])
	return id
}

// Overhead is how many bytes Seal adds to a plaintext.
func (k *DataKey) Overhead() int { return k.aead.NonceSize() + k.aead.Overhead() }

// Seal encrypts and authenticates plaintext, binding it to aad (which is not stored), and
// appends nonce || ciphertext || tag to dst. Nonces are random: a DEK epoch must seal fewer
// than 2^32 messages, which is why long-lived datasets rotate epochs.
func (k *DataKey) Seal(dst, plaintext, aad []byte) []byte {
	n := k.aead.NonceSize()
	dst = growSlice(dst, n+len(plaintext)+k.aead.Overhead())
	nonce := dst[len(dst) : len(dst)+n]
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Errorf("random nonce: %w", err)) // crypto/rand never fails on supported platforms
	}
	return k.aead.Seal(dst[:len(dst)+n], nonce, plaintext, aad)
}

// Open authenticates and decrypts what Seal produced, appending the plaintext to dst. Any
// change to sealed or aad yields ErrIntegrity.
func (k *DataKey) Open(dst, sealed, aad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return dst, fmt.Errorf("%w: sealed data is %d bytes, shorter than nonce and tag", ErrIntegrity, len(sealed))
	}
	out, err := k.aead.Open(dst, sealed[:n], sealed[n:], aad)
	if err != nil {
		return dst, fmt.Errorf("%w: %s epoch %d", ErrIntegrity, k.dataset, k.epoch)
	}
	return out, nil
}

// growSlice makes room for n more bytes after len(b) without changing len(b).
func growSlice(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
