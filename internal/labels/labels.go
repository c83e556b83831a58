// Package labels names datasets where Temporal shows names in the clear: search attribute
// values, workflow IDs and schedule IDs. Payloads are sealed by the codec, but those three
// are not payloads: Temporal indexes and lists them, and the Web UI shows them to anyone
// with access to the namespace.
//
// With search_attributes: names (the default) a dataset's label is its name. With
// search_attributes: hashed it is "ds-" and 20 hex digits of HMAC-SHA256 under a key derived
// from the payload keyring's first key: stable across keyring rotations (the first key is
// never dropped), the same in every process that holds the keyring, and meaningless without
// it (a plain hash of a guessable name would not hide it). Operators with the keyring find a
// dataset's runs by its label: drflow prints it, and `drflow status` and `schedules list`
// translate it back.
//
// What stays visible in either mode: the kind of run (backup, drill, ...), the tier level,
// the measured RPO/RTO seconds and whether objectives were met, which the Web UI needs for
// its filters and columns; the runbook name; and the location names inside replicate and
// failover workflow IDs.
package labels

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
)

// Prefix starts every hashed label.
const Prefix = "ds-"

// hexDigits is the length of a hashed label's hash: 80 bits, far beyond any collision among
// a deployment's datasets.
const hexDigits = 20

// Labeler labels datasets. The zero value labels by name.
type Labeler struct {
	key []byte // nil: names
}

// New returns cfg's labeler. In hashed mode it reads the payload keyring (cfg.PayloadKeyFile)
// and fails if there is none.
func New(cfg *config.Config) (*Labeler, error) {
	if cfg == nil || cfg.SearchAttributes != config.SearchAttributesHashed {
		return &Labeler{}, nil
	}
	path := cfg.PayloadKeyFile()
	if path == "" {
		return nil, fmt.Errorf("search_attributes: hashed needs the payload keyring (codec.key_file, or %s) for its hash key", config.EnvCodecKeyFile)
	}
	ring, err := codec.LoadKeyring(path)
	if err != nil {
		return nil, fmt.Errorf("search_attributes: hashed: %w", err)
	}
	return FromKeyring(ring), nil
}

// FromKeyring returns a hashing labeler keyed from ring's first key.
func FromKeyring(ring *codec.Keyring) *Labeler {
	mac := hmac.New(sha256.New, ring.Keys[0].Key)
	mac.Write([]byte("drflow dataset labels v1"))
	return &Labeler{key: mac.Sum(nil)}
}

// Hashed reports whether labels are hashes.
func (l *Labeler) Hashed() bool { return l != nil && l.key != nil }

// Dataset returns dataset's label.
func (l *Labeler) Dataset(dataset string) string {
	if !l.Hashed() {
		return dataset
	}
	mac := hmac.New(sha256.New, l.key)
	mac.Write([]byte(dataset))
	return Prefix + hex.EncodeToString(mac.Sum(nil))[:hexDigits]
}

// Names maps every label of cfg's datasets back to the dataset's name.
func (l *Labeler) Names(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, ds := range cfg.Datasets {
		out[l.Dataset(ds.Name)] = ds.Name
	}
	return out
}
