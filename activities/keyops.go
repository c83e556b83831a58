package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

// KeyOpInput is the input of every key operation; each uses the fields it needs.
type KeyOpInput struct {
	Dataset string `json:"dataset"`
	// Key is "kek" (the default) or "dek" for RotateKey.
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Threshold and Holders split the KEK for EscrowKEK; Dir is where the share files go.
	Threshold int      `json:"threshold,omitempty"`
	Holders   []string `json:"holders,omitempty"`
	Dir       string   `json:"dir,omitempty"`
	// Shares are the paths of share files for RecoverKEK.
	Shares []string `json:"shares,omitempty"`
}

// KeyOpResult describes a key operation. It names keys and counts, never key material.
type KeyOpResult struct {
	KeyID     string `json:"key_id,omitempty"`
	Version   uint32 `json:"version,omitempty"`
	Epoch     uint32 `json:"epoch,omitempty"`
	Rewrapped int    `json:"rewrapped,omitempty"`
	// Held lists the key objects a rewrap left wrapped by the previous KEK version because a
	// legal hold or retention protects them.
	Held  []string `json:"held,omitempty"`
	Files []string `json:"files,omitempty"`
}

// keyring returns the local keyring of the dataset's home jurisdiction and the data key
// manager that wraps with it. Key operations run on the home region's queue: the KEK never
// leaves home.
func (a *Activities) keyring(dataset string) (config.Dataset, *keys.Manager, *keys.Keyring, error) {
	ds, _, err := a.lookup(dataset, "")
	if err != nil {
		return ds, nil, nil, err
	}
	pol, ok := a.Config.Policy(ds.Policy)
	if !ok {
		return ds, nil, nil, nonRetryable(ErrTypeNotFound, "dataset %s: policy %q is not configured", ds.Name, ds.Policy)
	}
	mgr := a.Keys[pol.Home]
	if mgr == nil {
		return ds, nil, nil, nonRetryable(ErrTypeNotServed, "this worker holds no key of jurisdiction %s, home of dataset %s", pol.Home, ds.Name)
	}
	ring, ok := mgr.KEK().(*keys.Keyring)
	if !ok {
		return ds, mgr, nil, nonRetryable(ErrTypeInvalidInput, "the KEK of %s is not a local keyring; rotate, revoke and escrow it in its key service", pol.Home)
	}
	return ds, mgr, ring, nil
}

// RotateKey rotates the KEK of the dataset's home jurisdiction (in.Key "kek", the default:
// a new active version; the data keys are rewrapped by RewrapKeys) or the dataset's data key
// (in.Key "dek": a new epoch at the primary; new chunks use it).
func (a *Activities) RotateKey(ctx context.Context, in KeyOpInput) (KeyOpResult, error) {
	ds, mgr, ring, err := a.keyring(in.Dataset)
	if in.Key == "dek" {
		if mgr == nil {
			return KeyOpResult{}, err
		}
		st, err := a.store(ds.Primary)
		if err != nil {
			return KeyOpResult{}, err
		}
		dk, err := mgr.RotateDEK(ctx, st, ds.Name)
		if err != nil {
			return KeyOpResult{}, classify(err)
		}
		return KeyOpResult{Epoch: dk.Epoch()}, nil
	}
	if err != nil {
		return KeyOpResult{}, err
	}
	if in.Key != "" && in.Key != "kek" {
		return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.rotate: key must be \"kek\" or \"dek\"; got %q", in.Key)
	}
	v, err := ring.Rotate(ctx)
	if err != nil {
		return KeyOpResult{}, classify(err)
	}
	a.logger().Info("KEK rotated", zap.String("dataset", ds.Name), zap.String("key_id", ring.ID()))
	return KeyOpResult{KeyID: ring.ID(), Version: v}, nil
}

// RevokeKEK revokes the whole KEK of the dataset's home jurisdiction: from this moment every
// unwrap fails closed, in every process, until a quorum of escrow custodians reinstates it
// (RecoverKEK). It is the kill switch; a key revocation drill proves it works.
func (a *Activities) RevokeKEK(ctx context.Context, in KeyOpInput) (KeyOpResult, error) {
	ds, _, ring, err := a.keyring(in.Dataset)
	if err != nil {
		return KeyOpResult{}, err
	}
	if strings.TrimSpace(in.Reason) == "" {
		return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.revoke: a reason is required")
	}
	id := ring.ID()
	if err := ring.Revoke(ctx, in.Reason); err != nil {
		return KeyOpResult{}, classify(err)
	}
	a.logger().Warn("KEK revoked", zap.String("dataset", ds.Name), zap.String("key_id", id))
	return KeyOpResult{KeyID: id}, nil
}

// EscrowKEK splits the active KEK version into one Shamir share per holder, of which
// Threshold restore it, and writes each share to Dir/<holder>.share.json (0600, in a 0700
// directory) for its custodian. The split is audited; no share enters Temporal.
func (a *Activities) EscrowKEK(ctx context.Context, in KeyOpInput) (KeyOpResult, error) {
	_, _, ring, err := a.keyring(in.Dataset)
	if err != nil {
		return KeyOpResult{}, err
	}
	if in.Dir == "" || len(in.Holders) == 0 {
		return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.escrow: dir and at least one holder are required")
	}
	for _, h := range in.Holders {
		if h == "" || strings.ContainsAny(h, `/\`) || h == "." || h == ".." {
			return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.escrow: holder %q cannot name a share file", h)
		}
	}
	shares, err := ring.ExportTo(ctx, 0, in.Threshold, in.Holders)
	if err != nil {
		return KeyOpResult{}, classify(err)
	}
	if err := os.MkdirAll(in.Dir, 0o700); err != nil {
		return KeyOpResult{}, fmt.Errorf("key.escrow: %w", err)
	}
	out := KeyOpResult{KeyID: ring.ID(), Version: shares[0].Version}
	for i, h := range in.Holders {
		path := filepath.Join(in.Dir, h+".share.json")
		if err := writeShare(path, shares[i]); err != nil {
			return KeyOpResult{}, err
		}
		out.Files = append(out.Files, path)
	}
	return out, nil
}

func writeShare(path string, s keys.KEKShare) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("key.escrow: write share: %w", err)
	}
	return nil
}

// RecoverKEK restores the KEK of the dataset's home jurisdiction from share files: it
// reinstates a revoked keyring (only a quorum can), or imports a version the keyring lacks.
func (a *Activities) RecoverKEK(ctx context.Context, in KeyOpInput) (KeyOpResult, error) {
	_, _, ring, err := a.keyring(in.Dataset)
	if err != nil {
		return KeyOpResult{}, err
	}
	shares := make([]keys.KEKShare, 0, len(in.Shares))
	for _, path := range in.Shares {
		data, err := os.ReadFile(path)
		if err != nil {
			return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.recover: share %s: %v", filepath.Base(path), err)
		}
		var s keys.KEKShare
		if err := json.Unmarshal(data, &s); err != nil {
			return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.recover: share %s is not a drflow KEK share: %v", filepath.Base(path), err)
		}
		shares = append(shares, s)
	}
	v, err := ring.Reinstate(ctx, shares)
	if err != nil {
		if errors.Is(err, providers.ErrInvalidArgument) || errors.Is(err, keys.ErrIntegrity) || errors.Is(err, keys.ErrUnknownKEK) {
			return KeyOpResult{}, nonRetryable(ErrTypeInvalidInput, "key.recover: %v", err)
		}
		return KeyOpResult{}, classify(err)
	}
	a.logger().Info("KEK recovered from escrow shares", zap.String("key_id", ring.ID()), zap.Int("shares", len(shares)))
	return KeyOpResult{KeyID: ring.ID(), Version: v}, nil
}

// RewrapKeys rewraps the dataset's data keys with the active KEK version at its primary and
// at every replica that holds wrapped keys (full and encrypted copies). A key object under a
// legal hold or retention is not overwritten: it keeps its previous (still valid) wrapping and
// is reported in Held.
func (a *Activities) RewrapKeys(ctx context.Context, in KeyOpInput) (KeyOpResult, error) {
	ds, mgr, _, err := a.keyring(in.Dataset)
	if mgr == nil {
		return KeyOpResult{}, err
	}
	out := KeyOpResult{KeyID: mgr.KEK().ID()}
	for _, name := range append([]string{ds.Primary}, ds.Replicas...) {
		if a.copyMode(ds, name) == config.CopyMetadata {
			continue // a catalog holds no key
		}
		st, err := a.store(name)
		if err != nil {
			return out, err
		}
		rep, err := mgr.RewrapKEKReport(ctx, st, ds.Name)
		if err != nil {
			return out, classify(err)
		}
		out.Rewrapped += rep.Rewrapped
		for _, h := range rep.Held {
			out.Held = append(out.Held, fmt.Sprintf("%s epoch %d stays wrapped by %s: %s", name, h.Epoch, h.KEKID, h.Reason))
		}
	}
	if len(out.Held) > 0 {
		// The previous KEK version still unwraps them: it must not be revoked while they are held.
		a.logger().Warn("data keys under legal hold keep their previous wrapping", zap.String("dataset", ds.Name),
			zap.Strings("held", out.Held))
	}
	return out, nil
}

// store returns the opened store of a location, or NotServed.
func (a *Activities) store(location string) (providers.Store, error) {
	st := a.Stores[location]
	if st == nil {
		return nil, nonRetryable(ErrTypeNotServed, "this worker has no store for location %s", location)
	}
	return st, nil
}

// copyMode is what the dataset's policy allows at a location: full at home.
func (a *Activities) copyMode(ds config.Dataset, location string) config.CopyMode {
	loc, ok := a.Config.Location(location)
	pol, okp := a.Config.Policy(ds.Policy)
	if !ok || !okp || location == ds.Primary {
		return config.CopyFull
	}
	mode, _, _, _ := pol.Decide(loc.Jurisdiction)
	return mode
}
