package keys

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// Reinstate undoes a revocation of the whole keyring with escrow shares: the kill switch's
// way back. Revocation erases every version's key, so nothing less than a quorum of escrow
// custodians (Threshold of the shares of one version, as Export made them) can bring a
// version back; the shares must combine to the key they were split from (its fingerprint),
// and the version must be one the keyring had. That version becomes active again; every other
// version stays revoked. Everything it wrapped unwraps again. On a keyring that is not
// revoked, Reinstate is Import. Audited as "reinstate" (or a failed "combine").
func (k *Keyring) Reinstate(ctx context.Context, shares []KEKShare) (uint32, error) {
	r, err := k.load()
	if err != nil {
		return 0, fmt.Errorf("reinstate %s: %w", k.name, err)
	}
	if r.Revoked == nil {
		return k.Import(ctx, shares)
	}
	key, s0, err := k.combineShares(ctx, shares)
	if err != nil {
		return 0, err
	}
	defer clear(key)
	id := k.versionID(s0.Version)
	err = k.update(ctx, func(r *ringFile, _ bool) (ev audit.Event, write bool, err error) {
		if r.Revoked == nil {
			return ev, false, nil // reinstated meanwhile
		}
		v := r.find(s0.Version)
		if v == nil || !v.Created.Equal(s0.Created) {
			return ev, false, fmt.Errorf("%w: keyring %s never had the %s these shares restore", ErrUnknownKEK, k.name, id)
		}
		r.Revoked, r.RevokeReason = nil, ""
		v.State, v.Key, v.Revoked, v.RevokeReason, v.Retired = StateActive, bytes.Clone(key), nil, "", nil
		return k.event("reinstate", id, fmt.Sprintf("revocation undone with %d escrow shares (%d needed); other versions stay revoked",
			len(shares), s0.Threshold)), true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("reinstate %s: %w", id, err)
	}
	return s0.Version, nil
}

// combineShares checks that shares are one split of this keyring and combines them to the key
// their fingerprint names.
func (k *Keyring) combineShares(ctx context.Context, shares []KEKShare) ([]byte, KEKShare, error) {
	if len(shares) == 0 {
		return nil, KEKShare{}, fmt.Errorf("reinstate %s: %w: no shares", k.name, providers.ErrInvalidArgument)
	}
	s0 := shares[0]
	id := k.versionID(s0.Version)
	parts := make([][]byte, len(shares))
	for i, s := range shares {
		if s.Format != shareFormat || s.Keyring != s0.Keyring || s.Version != s0.Version || s.Fingerprint != s0.Fingerprint ||
			s.Threshold != s0.Threshold || !s.Created.Equal(s0.Created) {
			return nil, s0, fmt.Errorf("reinstate %s: %w: share %d belongs to a different split", id, providers.ErrInvalidArgument, i+1)
		}
		parts[i] = s.Share
	}
	if s0.Keyring != k.name || s0.Jurisdiction != k.jur {
		return nil, s0, fmt.Errorf("reinstate: %w: shares are of KEK %q of %s, not %q of %s", ErrUnknownKEK, s0.Keyring, s0.Jurisdiction, k.name, k.jur)
	}
	if len(shares) < s0.Threshold {
		return nil, s0, fmt.Errorf("reinstate %s: %w: %d shares given, %d needed", id, providers.ErrInvalidArgument, len(shares), s0.Threshold)
	}
	key, err := Combine(parts)
	if err != nil {
		return nil, s0, fmt.Errorf("reinstate %s: %w", id, err)
	}
	if fp := fingerprint(k.name, s0.Version, key); subtle.ConstantTimeCompare([]byte(fp), []byte(s0.Fingerprint)) != 1 {
		clear(key)
		err := fmt.Errorf("reinstate %s: %w: the shares do not combine to the key they were split from (wrong or corrupted shares)", id, ErrIntegrity)
		ev := k.event("combine", id, err.Error())
		ev.Outcome = audit.OutcomeFailed
		return nil, s0, errors.Join(err, k.rec.Record(ctx, ev))
	}
	return key, s0, nil
}
