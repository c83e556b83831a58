// Package codec keeps drflow's Temporal payloads unreadable to anyone without the deployment's
// payload key: workflow and activity inputs and results, heartbeat details, queries, updates
// and signals are encrypted by the client or worker before they reach the Temporal server,
// and decrypted only by drflow processes and by the codec server the Web UI calls.
//
// Payloads are sealed with AES-256-GCM under the keyring's active key. Each payload names the
// key that sealed it (metadata "encryption-key-id"), so rotating adds a key and makes it the
// active one while older payloads stay readable. Search attribute values are not payloads
// and are not encrypted; drflow puts only names and figures there.
//
// The keyring is a JSON file (mode 0600) that the deployment points at, never the key in
// configuration:
//
//	{"format": 1, "active": "k-20261203T150405Z", "keys": [{"id": "...", "key": "<base64 32 bytes>", "created": "..."}]}
package codec

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const keyringFormat = 1

// keySize is AES-256's.
const keySize = 32

// ErrNoKeyring is returned by LoadKeyring when the file does not exist.
var ErrNoKeyring = errors.New("no payload keyring")

// Keyring holds the payload keys of a deployment: the active one encrypts, all decrypt.
type Keyring struct {
	Format int       `json:"format"`
	Active string    `json:"active"`
	Keys   []KeyFile `json:"keys"`
}

// KeyFile is one key as stored.
type KeyFile struct {
	ID      string    `json:"id"`
	Key     []byte    `json:"key"` // base64 in JSON
	Created time.Time `json:"created"`
}

// LoadKeyring reads and checks the keyring at path. A missing file is ErrNoKeyring; a file
// readable by others than its owner is refused.
func LoadKeyring(path string) (*Keyring, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s (create one with: drflow codec-key create --file %s)", ErrNoKeyring, path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("payload keyring %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("payload keyring %s: mode %04o lets others read it; want 0600 (chmod 600 %s)", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("payload keyring %s: %w", path, err)
	}
	var k Keyring
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("payload keyring %s: not a keyring: %v", path, err)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("payload keyring %s: %w", path, err)
	}
	return &k, nil
}

func (k *Keyring) validate() error {
	if k.Format != keyringFormat {
		return fmt.Errorf("format %d, want %d", k.Format, keyringFormat)
	}
	if len(k.Keys) == 0 {
		return errors.New("keys: empty; want at least one key")
	}
	seen := map[string]bool{}
	for i, key := range k.Keys {
		switch {
		case key.ID == "":
			return fmt.Errorf("keys[%d].id: empty", i)
		case seen[key.ID]:
			return fmt.Errorf("keys[%d].id: %q appears twice", i, key.ID)
		case len(key.Key) != keySize:
			return fmt.Errorf("keys[%d].key (%s): %d bytes, want %d (AES-256)", i, key.ID, len(key.Key), keySize)
		}
		seen[key.ID] = true
	}
	if !seen[k.Active] {
		return fmt.Errorf("active: %q is not one of the keys", k.Active)
	}
	return nil
}

// CreateKeyring writes a new keyring with one fresh key at path, which must not exist.
func CreateKeyring(path string, now time.Time) (*Keyring, error) {
	k := &Keyring{Format: keyringFormat}
	if err := k.add(now); err != nil {
		return nil, err
	}
	if err := k.write(path, os.O_CREATE|os.O_EXCL); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadOrCreateKeyring loads the keyring at path, creating it with one key if it is missing
// (the demo's first run).
func LoadOrCreateKeyring(path string, now time.Time) (*Keyring, error) {
	k, err := LoadKeyring(path)
	if errors.Is(err, ErrNoKeyring) {
		return CreateKeyring(path, now)
	}
	return k, err
}

// RotateKeyring adds a fresh key to the keyring at path and makes it active. Payloads sealed
// under older keys stay readable as long as their keys stay in the file.
func RotateKeyring(path string, now time.Time) (*Keyring, error) {
	k, err := LoadKeyring(path)
	if err != nil {
		return nil, err
	}
	if err := k.add(now); err != nil {
		return nil, err
	}
	if err := k.write(path, 0); err != nil {
		return nil, err
	}
	return k, nil
}

// add appends a fresh random key, named after its creation time, and activates it.
func (k *Keyring) add(now time.Time) error {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("payload key: %w", err)
	}
	id := "k-" + now.UTC().Format("20060102T150405Z")
	for n := 2; k.has(id); n++ {
		id = fmt.Sprintf("k-%s-%d", now.UTC().Format("20060102T150405Z"), n)
	}
	k.Keys = append(k.Keys, KeyFile{ID: id, Key: key, Created: now.UTC()})
	k.Active = id
	return nil
}

func (k *Keyring) has(id string) bool {
	for _, key := range k.Keys {
		if key.ID == id {
			return true
		}
	}
	return false
}

// write stores the keyring at path with mode 0600, atomically (a temporary file renamed over
// it), so that a crash leaves the old or the new keyring, never half of one.
func (k *Keyring) write(path string, flags int) error {
	data, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("payload keyring %s: %w", path, err)
	}
	if flags&os.O_EXCL != 0 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("payload keyring %s: %w", path, err)
		}
		_, werr := f.Write(append(data, '\n'))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path)
			return fmt.Errorf("payload keyring %s: %w", path, werr)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("payload keyring %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("payload keyring %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
