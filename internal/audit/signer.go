package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

const (
	privatePEMType = "PRIVATE KEY"
	publicPEMType  = "PUBLIC KEY"
	maxKeyFileSize = 16 << 10
)

// LoadOrCreateSigner returns the ed25519 signing key stored at path (PKCS#8 in PEM), creating
// it with mode 0600, and its directory with 0700, on first use. Each region's log has its own
// key file. It refuses a key file that group or others may read or write: anyone who can
// read it can forge the log. Concurrent first uses agree on one key.
func LoadOrCreateSigner(path string) (ed25519.PrivateKey, error) {
	key, err := loadSigner(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createSigner(path); err != nil {
		return nil, fmt.Errorf("audit signer %s: create: %w", path, err)
	}
	return loadSigner(path)
}

func loadSigner(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit signer %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit signer %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit signer %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit signer %s: mode %04o lets group or others at the signing key; chmod 600 it (and consider the key compromised if others could read it)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("audit signer %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("audit signer %s: larger than %d bytes, not a key file", path, maxKeyFileSize)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != privatePEMType {
		return nil, fmt.Errorf("audit signer %s: no %q PEM block", path, privatePEMType)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit signer %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit signer %s: key is a %T, want ed25519", path, parsed)
	}
	return key, nil
}

// createSigner writes a new key to path unless one appears there first. The key is written
// to a temp file and linked into place, so path never holds a partial key and a concurrent
// creator's key is never replaced.
func createSigner(path string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".audit-key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pem.EncodeToMemory(&pem.Block{Type: privatePEMType, Bytes: der}))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// PublicKey returns the public half of signer: what auditors need, and all they need, to
// verify the log.
func PublicKey(signer ed25519.PrivateKey) ed25519.PublicKey {
	return signer.Public().(ed25519.PublicKey)
}

// EncodePublicKey encodes pub as a PEM "PUBLIC KEY" (PKIX) block, the form that evidence packs
// carry and that openssl reads.
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode audit public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicPEMType, Bytes: der}), nil
}

// ParsePublicKey decodes what EncodePublicKey produces.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != publicPEMType {
		return nil, fmt.Errorf("parse audit public key: no %q PEM block", publicPEMType)
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse audit public key: %w", err)
	}
	pub, ok := parsed.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse audit public key: key is a %T, want ed25519", parsed)
	}
	return pub, nil
}

// LoadPublicKey returns the public half of the signing key stored at path, without creating
// one: what `drflow audit key` hands to auditors and evidence packs are verified with.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	key, err := loadSigner(path)
	if err != nil {
		return nil, err
	}
	return PublicKey(key), nil
}
