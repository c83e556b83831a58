package keys

import (
	"bytes"
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// ErrInsecureKeyring: the keyring file is accessible to group or others, or lies in a
// directory they can write (and so could swap the file). Fix the permissions; drflow will
// not use such a keyring.
var ErrInsecureKeyring = errors.New("insecure keyring permissions")

// KEKState is the state of one keyring version.
type KEKState string

const (
	// StateActive: Wrap uses this version; there is at most one.
	StateActive KEKState = "active"
	// StateRetired: an older version; it still unwraps what it wrapped.
	StateRetired KEKState = "retired"
	// StateRevoked: nothing it wrapped can be unwrapped; its key is erased from the file.
	StateRevoked KEKState = "revoked"
)

const (
	keyringFormat = "drflow-keyring-v1"
	// maxKeyringSize bounds what a keyring read allocates; a keyring of a thousand versions
	// is well under it.
	maxKeyringSize = 1 << 20
	kekAADMagic    = "drflow keyring wrap v1\x00"
)

// KeyringOptions configure a local keyring.
type KeyringOptions struct {
	// Path is the keyring file. Its directory is created (0700) if missing; an existing
	// directory must not be writable by group or others.
	Path string
	// Name is the KEK's configured name; version IDs are Name + "/v<n>".
	Name string
	// Jurisdiction the KEK belongs to.
	Jurisdiction string
	// Recorder audits creation, rotation, revocation, export and import. Required.
	Recorder audit.Recorder
	// Actor is recorded as the actor of those events; default "drflow keyring".
	Actor string
	// Clock stamps versions and events; nil means time.Now.
	Clock func() time.Time
	// Empty creates a missing keyring without any version, to be filled by Import from
	// escrow shares: a fresh v1 would collide with the v1 being restored.
	Empty bool
}

// Keyring is the local KEK provider: a file of AES-256 KEK versions that several processes
// may share. Every operation re-reads the file (a small read, parsed again only when it
// changed), so a rotation or revocation by another process takes effect at once; updates
// are written to a temp file, fsynced and renamed under an flock on Path + ".lock".
//
// Keyring file format (JSON):
//
//	{
//	  "format": "drflow-keyring-v1",
//	  "name": "eu-kek",
//	  "jurisdiction": "EU",
//	  "created": "2025-01-02T03:04:05Z",
//	  "revoked": "...", "revoke_reason": "...",   // only once the whole KEK is revoked
//	  "versions": [
//	    {"version": 1, "state": "retired", "created": "...", "retired": "...", "key": "<base64, 32 bytes>"},
//	    {"version": 2, "state": "active", "created": "...", "key": "..."},
//	    {"version": 3, "state": "revoked", "created": "...", "revoked": "...", "revoke_reason": "..."}
//	  ]
//	}
//
// Revocation erases the key material of what it revokes and cannot be undone through this
// API; only importing escrow shares into a fresh keyring brings a revoked version back.
type Keyring struct {
	path  string
	dir   string
	lock  string
	name  string
	jur   string
	rec   audit.Recorder
	actor string
	now   func() time.Time

	mu   sync.Mutex // guards raw and ring
	raw  []byte     // file content that ring was parsed from
	ring *ringFile
}

var _ KEK = (*Keyring)(nil)

type ringFile struct {
	Format       string        `json:"format"`
	Name         string        `json:"name"`
	Jurisdiction string        `json:"jurisdiction"`
	Created      time.Time     `json:"created"`
	Revoked      *time.Time    `json:"revoked,omitempty"`
	RevokeReason string        `json:"revoke_reason,omitempty"`
	Versions     []ringVersion `json:"versions"`
}

type ringVersion struct {
	Version      uint32     `json:"version"`
	State        KEKState   `json:"state"`
	Created      time.Time  `json:"created"`
	Retired      *time.Time `json:"retired,omitempty"`
	Revoked      *time.Time `json:"revoked,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	Key          []byte     `json:"key,omitempty"`
}

// KEKVersion describes one keyring version, without its key.
type KEKVersion struct {
	ID      string
	Version uint32
	State   KEKState
	Created time.Time
	Retired time.Time // zero unless retired
	Revoked time.Time // zero unless revoked
	// Fingerprint identifies the key material (a truncated hash, safe to show); empty once
	// revoked. Escrow shares carry it, so custodians can check what they hold.
	Fingerprint string
}

// OpenKeyring opens the keyring at opts.Path, creating it on first use (with an active v1,
// unless opts.Empty) as a 0600 file in a 0700 directory.
func OpenKeyring(ctx context.Context, opts KeyringOptions) (*Keyring, error) {
	if !lockingSupported {
		return nil, fmt.Errorf("open keyring: %w: file locking is not implemented on this platform", providers.ErrNotSupported)
	}
	if opts.Path == "" {
		return nil, fmt.Errorf("open keyring: %w: empty path", providers.ErrInvalidArgument)
	}
	if err := checkKEKName(opts.Name); err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", opts.Path, err)
	}
	if opts.Jurisdiction == "" {
		return nil, fmt.Errorf("open keyring %s: %w: empty jurisdiction", opts.Path, providers.ErrInvalidArgument)
	}
	if opts.Recorder == nil {
		return nil, fmt.Errorf("open keyring %s: %w: no audit recorder", opts.Path, providers.ErrInvalidArgument)
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", opts.Path, err)
	}
	k := &Keyring{
		path:  path,
		dir:   filepath.Dir(path),
		lock:  path + ".lock",
		name:  opts.Name,
		jur:   opts.Jurisdiction,
		rec:   opts.Recorder,
		actor: opts.Actor,
		now:   opts.Clock,
	}
	if k.actor == "" {
		k.actor = "drflow keyring"
	}
	if k.now == nil {
		k.now = time.Now
	}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", path, err)
	}
	if err := k.checkDir(); err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	if _, err := k.load(); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	if err := k.create(ctx, opts.Empty); err != nil {
		return nil, fmt.Errorf("create keyring %s: %w", path, err)
	}
	return k, nil
}

// checkKEKName accepts what configuration accepts as a name: version IDs and audit events
// embed it.
func checkKEKName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: KEK name %q must be 1 to 63 characters", providers.ErrInvalidArgument, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')
		if !ok {
			return fmt.Errorf("%w: KEK name %q may contain only lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", providers.ErrInvalidArgument, name)
		}
	}
	return nil
}

func (k *Keyring) create(ctx context.Context, empty bool) error {
	return k.update(ctx, func(r *ringFile, exists bool) (audit.Event, bool, error) {
		if exists { // another process created it first
			return audit.Event{}, false, nil
		}
		now := k.now().UTC()
		*r = ringFile{Format: keyringFormat, Name: k.name, Jurisdiction: k.jur, Created: now}
		if empty {
			return k.event("rotate_kek", k.name, "keyring created empty, for an import from escrow"), true, nil
		}
		key, err := newKEKSecret()
		if err != nil {
			return audit.Event{}, false, err
		}
		r.Versions = []ringVersion{{Version: 1, State: StateActive, Created: now, Key: key}}
		return k.event("rotate_kek", k.versionID(1), "keyring created with its first version"), true, nil
	})
}

func newKEKSecret() ([]byte, error) {
	key := make([]byte, SecretSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("random KEK: %w", err)
	}
	return key, nil
}

// checkDir refuses a directory in which others could replace the keyring file.
func (k *Keyring) checkDir() error {
	fi, err := os.Stat(k.dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("keyring directory %s is not a directory", k.dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: directory %s has mode %04o, so group or others could replace the keyring; run chmod 700 %s",
			ErrInsecureKeyring, k.dir, perm, k.dir)
	}
	return nil
}

// load reads the keyring file, checking its permissions on the open file, and parses it
// unless it is unchanged since the last read.
func (k *Keyring) load() (*ringFile, error) {
	f, err := os.Open(k.path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring %s is not a regular file", k.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: keyring %s has mode %04o: it must not be readable or writable by group or others; run chmod 600 %s",
			ErrInsecureKeyring, k.path, perm, k.path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("read keyring %s: %w", k.path, err)
	}
	if len(raw) > maxKeyringSize {
		return nil, fmt.Errorf("keyring %s is larger than %d bytes", k.path, maxKeyringSize)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ring != nil && bytes.Equal(raw, k.raw) {
		return k.ring, nil
	}
	r, err := k.parse(raw)
	if err != nil {
		return nil, err
	}
	k.raw, k.ring = raw, r
	return r, nil
}

// parse decodes and validates a keyring strictly: a keyring that is not exactly as drflow
// writes it is refused rather than guessed at.
//
//nolint:gocyclo // one check per field of the keyring file
func (k *Keyring) parse(raw []byte) (*ringFile, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r ringFile
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("keyring %s is corrupt: %w", k.path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("keyring %s is corrupt: %s", k.path, fmt.Sprintf(format, args...))
	}
	if r.Format != keyringFormat {
		return nil, bad("format %q, want %q", r.Format, keyringFormat)
	}
	if r.Name != k.name || r.Jurisdiction != k.jur {
		return nil, fmt.Errorf("keyring %s holds KEK %q of %s, but it is configured as %q of %s",
			k.path, r.Name, r.Jurisdiction, k.name, k.jur)
	}
	active := 0
	for i, v := range r.Versions {
		if v.Version == 0 || i > 0 && v.Version <= r.Versions[i-1].Version {
			return nil, bad("versions are not strictly ascending from 1")
		}
		switch v.State {
		case StateActive:
			active++
		case StateRetired:
		case StateRevoked:
			if len(v.Key) != 0 {
				return nil, bad("revoked v%d still has key material", v.Version)
			}
			continue
		default:
			return nil, bad("v%d has unknown state %q", v.Version, v.State)
		}
		if len(v.Key) != SecretSize {
			return nil, bad("v%d key is %d bytes, want %d", v.Version, len(v.Key), SecretSize)
		}
		if r.Revoked != nil {
			return nil, bad("the KEK is revoked but v%d is %s", v.Version, v.State)
		}
	}
	if active > 1 {
		return nil, bad("%d active versions", active)
	}
	return &r, nil
}

// update changes the keyring under its lock. mutate gets a private copy of the current
// keyring (the zero value, with exists false, if there is none yet) and returns the event to
// audit and whether to write. The event is recorded before the change is written, so that
// no key operation takes effect unaudited; if the write then fails, a failed event follows.
func (k *Keyring) update(ctx context.Context, mutate func(r *ringFile, exists bool) (audit.Event, bool, error)) error {
	if err := k.checkDir(); err != nil {
		return err
	}
	lf, err := os.OpenFile(k.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock keyring: %w", err)
	}
	defer lf.Close() // releases the flock
	if err := lockFile(lf); err != nil {
		return fmt.Errorf("lock keyring %s: %w", k.lock, err)
	}

	r, exists := &ringFile{}, true
	switch cur, err := k.load(); {
	case err == nil:
		r = cur.clone()
	case errors.Is(err, fs.ErrNotExist):
		exists = false
	default:
		return err
	}
	ev, write, err := mutate(r, exists)
	if err != nil || !write {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode keyring: %w", err)
	}
	raw = append(raw, '\n')
	parsed, err := k.parse(raw)
	if err != nil { // a bug in mutate; never write a keyring that could not be read back
		return fmt.Errorf("refusing to write keyring: %w", err)
	}
	if err := k.rec.Record(ctx, ev); err != nil {
		return fmt.Errorf("audit %s of %s: %w", ev.Operation, ev.KeyID, err)
	}
	if err := k.write(raw); err != nil {
		fail := ev
		fail.Outcome = audit.OutcomeFailed
		fail.Reason = auditReason(fmt.Sprintf("%s; not done: %v", ev.Reason, err))
		return errors.Join(err, k.rec.Record(ctx, fail))
	}
	k.mu.Lock()
	k.raw, k.ring = raw, parsed
	k.mu.Unlock()
	return nil
}

// write replaces the keyring file atomically: temp file in the same directory, fsync,
// rename, fsync of the directory.
func (k *Keyring) write(raw []byte) (err error) {
	f, err := os.CreateTemp(k.dir, "."+filepath.Base(k.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		_ = f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := os.Rename(tmp, k.path); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	d, err := os.Open(k.dir)
	if err != nil {
		return fmt.Errorf("write keyring: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write keyring: sync directory: %w", err)
	}
	return nil
}

func (r *ringFile) clone() *ringFile {
	c := *r
	c.Versions = slices.Clone(r.Versions)
	for i := range c.Versions {
		c.Versions[i].Key = bytes.Clone(c.Versions[i].Key)
	}
	return &c
}

// versionID names version v of this keyring.
func (k *Keyring) versionID(v uint32) string {
	return k.name + "/v" + strconv.FormatUint(uint64(v), 10)
}

// parseVersionID returns the version that id names in this keyring.
func (k *Keyring) parseVersionID(id string) (uint32, error) {
	s, ok := strings.CutPrefix(id, k.name+"/v")
	if ok {
		if v, err := strconv.ParseUint(s, 10, 32); err == nil && v > 0 && strconv.FormatUint(v, 10) == s {
			return uint32(v), nil
		}
	}
	return 0, fmt.Errorf("%w: %q is not a version of keyring %s", ErrUnknownKEK, id, k.name)
}

func (r *ringFile) find(v uint32) *ringVersion {
	for i := range r.Versions {
		if r.Versions[i].Version == v {
			return &r.Versions[i]
		}
	}
	return nil
}

func (r *ringFile) active() *ringVersion {
	for i := range r.Versions {
		if r.Versions[i].State == StateActive {
			return &r.Versions[i]
		}
	}
	return nil
}

func (r *ringFile) maxVersion() uint32 {
	if len(r.Versions) == 0 {
		return 0
	}
	return r.Versions[len(r.Versions)-1].Version
}

func (k *Keyring) event(op, keyID, reason string) audit.Event {
	return audit.Event{
		Kind:         audit.KindKey,
		Outcome:      audit.OutcomeOK,
		Actor:        k.actor,
		Jurisdiction: k.jur,
		Operation:    op,
		KeyID:        keyID,
		Reason:       auditReason(reason),
		Time:         k.now().UTC(),
	}
}

// ID is the ID of the active version, or the bare name when there is none (all revoked, or
// an empty keyring awaiting an import). If the file cannot be read it answers from the last
// successful read; Wrap then reports the error.
func (k *Keyring) ID() string {
	r, err := k.load()
	if err != nil {
		k.mu.Lock()
		r = k.ring
		k.mu.Unlock()
		if r == nil {
			return k.name
		}
	}
	if a := r.active(); a != nil && r.Revoked == nil {
		return k.versionID(a.Version)
	}
	return k.name
}

// Jurisdiction is the jurisdiction of the KEK.
func (k *Keyring) Jurisdiction() string { return k.jur }

// Path is the keyring file.
func (k *Keyring) Path() string { return k.path }

// Wrap encrypts secret with AES-256-GCM under the active version; the additional data is aad
// together with the version's ID, so a wrap cannot be passed off as another version's.
func (k *Keyring) Wrap(_ context.Context, secret, aad []byte) (Wrapped, error) {
	r, err := k.load()
	if err != nil {
		return Wrapped{}, fmt.Errorf("wrap with %s: %w", k.name, err)
	}
	if r.Revoked != nil {
		return Wrapped{}, fmt.Errorf("wrap with %s: %w (revoked %s)", k.name, ErrRevoked, r.Revoked.Format(time.RFC3339))
	}
	a := r.active()
	if a == nil {
		if n := len(r.Versions); n > 0 && r.Versions[n-1].State == StateRevoked {
			return Wrapped{}, fmt.Errorf("wrap with %s: %w: its newest version v%d is revoked; rotate to make a new active version",
				k.name, ErrRevoked, r.Versions[n-1].Version)
		}
		return Wrapped{}, fmt.Errorf("wrap with %s: keyring has no active version (rotate, or import one from escrow)", k.name)
	}
	id := k.versionID(a.Version)
	aead, err := kekAEAD(a.Key)
	if err != nil {
		return Wrapped{}, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return Wrapped{}, fmt.Errorf("wrap with %s: random nonce: %w", id, err)
	}
	return Wrapped{KEKID: id, Ciphertext: aead.Seal(nonce, nonce, secret, kekAAD(id, aad))}, nil
}

// Unwrap decrypts what Wrap produced with whichever version wrapped it.
func (k *Keyring) Unwrap(_ context.Context, w Wrapped, aad []byte) ([]byte, error) {
	v, err := k.usable(w)
	if err != nil {
		return nil, fmt.Errorf("unwrap: %w", err)
	}
	aead, err := kekAEAD(v.Key)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(w.Ciphertext) < n+aead.Overhead() {
		return nil, fmt.Errorf("unwrap with %s: %w: wrapped key is %d bytes, too short", w.KEKID, ErrIntegrity, len(w.Ciphertext))
	}
	secret, err := aead.Open(nil, w.Ciphertext[:n], w.Ciphertext[n:], kekAAD(w.KEKID, aad))
	if err != nil {
		return nil, fmt.Errorf("unwrap with %s: %w: wrapped key or its context was altered", w.KEKID, ErrIntegrity)
	}
	return secret, nil
}

// Check reports ErrRevoked if the KEK or the version that wrapped w is revoked.
func (k *Keyring) Check(_ context.Context, w Wrapped) error {
	_, err := k.usable(w)
	return err
}

// usable returns the version that wrapped w if it may unwrap.
func (k *Keyring) usable(w Wrapped) (*ringVersion, error) {
	ver, err := k.parseVersionID(w.KEKID)
	if err != nil {
		return nil, err
	}
	r, err := k.load()
	if err != nil {
		return nil, err
	}
	if r.Revoked != nil {
		return nil, fmt.Errorf("%s: %w (revoked %s)", w.KEKID, ErrRevoked, r.Revoked.Format(time.RFC3339))
	}
	v := r.find(ver)
	switch {
	case v == nil:
		return nil, fmt.Errorf("%w: keyring %s has no v%d", ErrUnknownKEK, k.name, ver)
	case v.State == StateRevoked:
		return nil, fmt.Errorf("%s: %w (revoked %s)", w.KEKID, ErrRevoked, v.Revoked.Format(time.RFC3339))
	}
	return v, nil
}

// NeedsRewrap reports whether w was wrapped by a version other than the active one.
func (k *Keyring) NeedsRewrap(w Wrapped) bool { return w.KEKID != k.ID() }

func kekAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("kek cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

func kekAAD(id string, aad []byte) []byte {
	b := make([]byte, 0, len(kekAADMagic)+4+len(id)+len(aad))
	b = append(b, kekAADMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)))
	b = append(b, id...)
	return append(b, aad...)
}

// Rotate makes a new active version and retires the previous one, which keeps unwrapping
// what it wrapped until Manager.RewrapKEK has moved those keys to the new version.
func (k *Keyring) Rotate(ctx context.Context) (uint32, error) {
	var ver uint32
	err := k.update(ctx, func(r *ringFile, _ bool) (audit.Event, bool, error) {
		if r.Revoked != nil {
			return audit.Event{}, false, fmt.Errorf("%w: keyring %s is revoked", ErrRevoked, k.name)
		}
		now := k.now().UTC()
		reason := "new active version"
		if a := r.active(); a != nil {
			a.State = StateRetired
			a.Retired = &now
			reason += fmt.Sprintf("; v%d retired", a.Version)
		}
		key, err := newKEKSecret()
		if err != nil {
			return audit.Event{}, false, err
		}
		ver = r.maxVersion() + 1
		r.Versions = append(r.Versions, ringVersion{Version: ver, State: StateActive, Created: now, Key: key})
		return k.event("rotate_kek", k.versionID(ver), reason), true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("rotate keyring %s: %w", k.name, err)
	}
	return ver, nil
}

// RevokeVersion revokes one version: from now on everything it wrapped fails to unwrap
// with ErrRevoked, in every process sharing the keyring, and its key is erased. Revoking the
// active version leaves the keyring without one until Rotate. Revoking twice is a no-op.
func (k *Keyring) RevokeVersion(ctx context.Context, version uint32, reason string) error {
	err := k.update(ctx, func(r *ringFile, _ bool) (audit.Event, bool, error) {
		v := r.find(version)
		if v == nil {
			return audit.Event{}, false, fmt.Errorf("%w: keyring %s has no v%d", ErrUnknownKEK, k.name, version)
		}
		if v.State == StateRevoked {
			return audit.Event{}, false, nil
		}
		now := k.now().UTC()
		v.State, v.Revoked, v.RevokeReason = StateRevoked, &now, reason
		clear(v.Key)
		v.Key = nil
		return k.event("revoke", k.versionID(version), reason), true, nil
	})
	if err != nil {
		return fmt.Errorf("revoke %s: %w", k.versionID(version), err)
	}
	return nil
}

// Revoke revokes the whole KEK: every version, for good. Every unwrap fails with ErrRevoked
// from the moment the file is renamed into place.
func (k *Keyring) Revoke(ctx context.Context, reason string) error {
	err := k.update(ctx, func(r *ringFile, _ bool) (audit.Event, bool, error) {
		if r.Revoked != nil {
			return audit.Event{}, false, nil
		}
		now := k.now().UTC()
		r.Revoked, r.RevokeReason = &now, reason
		for i := range r.Versions {
			v := &r.Versions[i]
			if v.State != StateRevoked {
				v.State, v.Revoked = StateRevoked, &now
				clear(v.Key)
				v.Key = nil
			}
		}
		return k.event("revoke", k.name, reason), true, nil
	})
	if err != nil {
		return fmt.Errorf("revoke keyring %s: %w", k.name, err)
	}
	return nil
}

// Versions lists the keyring's versions, oldest first.
func (k *Keyring) Versions() ([]KEKVersion, error) {
	r, err := k.load()
	if err != nil {
		return nil, err
	}
	out := make([]KEKVersion, 0, len(r.Versions))
	for _, v := range r.Versions {
		kv := KEKVersion{ID: k.versionID(v.Version), Version: v.Version, State: v.State, Created: v.Created}
		if v.Retired != nil {
			kv.Retired = *v.Retired
		}
		if v.Revoked != nil {
			kv.Revoked = *v.Revoked
		}
		if len(v.Key) != 0 {
			kv.Fingerprint = fingerprint(k.name, v.Version, v.Key)
		}
		out = append(out, kv)
	}
	return out, nil
}

// fingerprint is a check value of a KEK version: a truncated hash that binds name, version
// and key, so that shares relabelled as another version, or combined from the wrong set,
// are caught. It reveals nothing usable about a 256-bit key.
func fingerprint(name string, version uint32, key []byte) string {
	h := sha256.New()
	h.Write([]byte("drflow kek fingerprint v1\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint32(nil, version))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

const shareFormat = "drflow-kek-share-v1"

// KEKShare is one Shamir share of a keyring version, for one escrow custodian. Threshold of
// the Shares shares together restore the version; fewer reveal nothing about it.
type KEKShare struct {
	Format       string    `json:"format"`
	Keyring      string    `json:"keyring"`
	Jurisdiction string    `json:"jurisdiction"`
	Version      uint32    `json:"version"`
	Created      time.Time `json:"created"`
	Threshold    int       `json:"threshold"`
	Shares       int       `json:"shares"`
	// Fingerprint is the version's check value (KEKVersion.Fingerprint).
	Fingerprint string `json:"fingerprint"`
	// Share is the x coordinate byte followed by one y byte per key byte.
	Share []byte `json:"share"`
}

// Export splits a version (0: the active one) into n Shamir shares of which any threshold
// restore it. The shares are released only once the split is audited.
func (k *Keyring) Export(ctx context.Context, version uint32, threshold, n int) ([]KEKShare, error) {
	return k.export(ctx, version, threshold, n, nil)
}

// ExportTo is Export with one share per named custodian, in order; the audit event of the
// split names them, so that evidence packs can say who holds the escrow.
func (k *Keyring) ExportTo(ctx context.Context, version uint32, threshold int, holders []string) ([]KEKShare, error) {
	return k.export(ctx, version, threshold, len(holders), holders)
}

func (k *Keyring) export(ctx context.Context, version uint32, threshold, n int, holders []string) ([]KEKShare, error) {
	r, err := k.load()
	if err != nil {
		return nil, fmt.Errorf("export from %s: %w", k.name, err)
	}
	if r.Revoked != nil {
		return nil, fmt.Errorf("export from %s: %w", k.name, ErrRevoked)
	}
	var v *ringVersion
	if version == 0 {
		if v = r.active(); v == nil {
			return nil, fmt.Errorf("export from %s: keyring has no active version", k.name)
		}
	} else if v = r.find(version); v == nil {
		return nil, fmt.Errorf("export from %s: %w: no v%d", k.name, ErrUnknownKEK, version)
	}
	id := k.versionID(v.Version)
	if v.State == StateRevoked {
		return nil, fmt.Errorf("export %s: %w", id, ErrRevoked)
	}
	parts, err := Split(v.Key, threshold, n)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", id, err)
	}
	fp := fingerprint(k.name, v.Version, v.Key)
	out := make([]KEKShare, n)
	for i, p := range parts {
		out[i] = KEKShare{
			Format: shareFormat, Keyring: k.name, Jurisdiction: k.jur, Version: v.Version, Created: v.Created,
			Threshold: threshold, Shares: n, Fingerprint: fp, Share: p,
		}
	}
	ev := k.event("split", id, fmt.Sprintf("split into %d shares, %d needed to restore (fingerprint %s)", n, threshold, fp))
	ev.Holders, ev.Threshold = holders, threshold
	if err := k.rec.Record(ctx, ev); err != nil {
		for _, p := range parts {
			clear(p)
		}
		return nil, fmt.Errorf("export %s: audit: %w", id, err)
	}
	return out, nil
}

// Import restores a version from escrow shares. The combined key must match the shares'
// fingerprint (ErrIntegrity otherwise: too few or wrong shares). The version becomes active
// if it is newer than the active one (or there is none); otherwise it is retired. Importing
// a version the keyring already holds with the same key is a no-op; a revoked version is
// not resurrected (ErrRevoked).
//
//nolint:gocyclo // one check per field of an imported key, each refusing with its own error
func (k *Keyring) Import(ctx context.Context, shares []KEKShare) (uint32, error) {
	if len(shares) == 0 {
		return 0, fmt.Errorf("import into %s: %w: no shares", k.name, providers.ErrInvalidArgument)
	}
	s0 := shares[0]
	id := k.versionID(s0.Version)
	parts := make([][]byte, len(shares))
	for i, s := range shares {
		if s.Format != shareFormat || s.Keyring != s0.Keyring || s.Jurisdiction != s0.Jurisdiction || s.Version != s0.Version ||
			s.Threshold != s0.Threshold || s.Shares != s0.Shares || s.Fingerprint != s0.Fingerprint || !s.Created.Equal(s0.Created) {
			return 0, fmt.Errorf("import %s: %w: share %d belongs to a different split", id, providers.ErrInvalidArgument, i+1)
		}
		parts[i] = s.Share
	}
	if s0.Keyring != k.name || s0.Jurisdiction != k.jur {
		return 0, fmt.Errorf("import: %w: shares are of KEK %q of %s, not %q of %s",
			ErrUnknownKEK, s0.Keyring, s0.Jurisdiction, k.name, k.jur)
	}
	if s0.Version == 0 {
		return 0, fmt.Errorf("import %s: %w: version 0", id, providers.ErrInvalidArgument)
	}
	if len(shares) < s0.Threshold {
		return 0, fmt.Errorf("import %s: %w: %d shares given, %d needed", id, providers.ErrInvalidArgument, len(shares), s0.Threshold)
	}
	key, err := Combine(parts)
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", id, err)
	}
	defer clear(key)
	if fp := fingerprint(k.name, s0.Version, key); subtle.ConstantTimeCompare([]byte(fp), []byte(s0.Fingerprint)) != 1 {
		err := fmt.Errorf("import %s: %w: the shares do not combine to the key they were split from (wrong or corrupted shares)", id, ErrIntegrity)
		ev := k.event("combine", id, err.Error())
		ev.Outcome = audit.OutcomeFailed
		return 0, errors.Join(err, k.rec.Record(ctx, ev))
	}
	err = k.update(ctx, func(r *ringFile, _ bool) (audit.Event, bool, error) {
		if r.Revoked != nil {
			return audit.Event{}, false, fmt.Errorf("%w: keyring %s is revoked", ErrRevoked, k.name)
		}
		if v := r.find(s0.Version); v != nil {
			switch {
			case v.State == StateRevoked:
				return audit.Event{}, false, fmt.Errorf("%w: %s was revoked; a revoked version is not brought back", ErrRevoked, id)
			case subtle.ConstantTimeCompare(v.Key, key) != 1:
				return audit.Event{}, false, fmt.Errorf("%w: keyring already has a different %s", ErrIntegrity, id)
			}
			return k.event("combine", id, "combined from escrow shares; the keyring already held it"), true, nil
		}
		now := k.now().UTC()
		nv := ringVersion{Version: s0.Version, State: StateRetired, Created: s0.Created, Key: bytes.Clone(key)}
		reason := fmt.Sprintf("combined from %d escrow shares, imported as retired", len(shares))
		if a := r.active(); a == nil && s0.Version > r.maxVersion() || a != nil && s0.Version > a.Version {
			nv.State = StateActive
			reason = fmt.Sprintf("combined from %d escrow shares, imported as active", len(shares))
			if a != nil {
				a.State, a.Retired = StateRetired, &now
				reason += fmt.Sprintf("; v%d retired", a.Version)
			}
		} else {
			nv.Retired = &now
		}
		r.Versions = append(r.Versions, nv)
		slices.SortFunc(r.Versions, func(a, b ringVersion) int { return cmp.Compare(a.Version, b.Version) })
		return k.event("combine", id, reason), true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", id, err)
	}
	return s0.Version, nil
}
