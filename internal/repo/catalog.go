package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/providers"
)

// CatalogPruneOptions tune PruneCatalog.
type CatalogPruneOptions struct {
	Actor string
	// Audit records every deletion and refusal. Required.
	Audit  audit.Recorder
	Logger *zap.Logger
}

// CatalogPoints lists the catalog entries of dataset in st (a metadata-only location), oldest
// first, as restore points: ID and DataAsOf, read from the entries' names.
func CatalogPoints(ctx context.Context, st providers.Store, dataset string) ([]PointInfo, error) {
	prefix := catalogPrefix(dataset)
	var out []PointInfo
	err := st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(oi.Key, prefix), ".json")
		if !ok {
			return nil
		}
		t, err := ParsePointID(id)
		if err != nil {
			return nil // not a catalog entry of ours
		}
		out = append(out, PointInfo{ID: id, DataAsOf: t, Created: oi.ModTime, Size: oi.Size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list catalog of %s: %w", dataset, err)
	}
	sortPoints(out)
	return out, nil
}

// PruneCatalog applies policy to the catalog entries (catalog/<point>.json) of dataset in a
// metadata-only location, as Prune does to manifests: the entries the policy does not keep
// are deleted, except those that an active legal hold in the location's hold records covers
// or selects, and those under a legal hold or active retention of the store, which are
// reported as held. Every deletion and refusal is audited (restore_point.pruned).
//
//nolint:gocyclo // one case per catalog entry state (kept, held, expired, unreadable)
func PruneCatalog(ctx context.Context, st providers.Store, dataset string, policy RetentionPolicy, opts CatalogPruneOptions) (PruneResult, error) {
	var res PruneResult
	if st == nil || opts.Audit == nil {
		return res, fmt.Errorf("prune catalog: %w: store and audit recorder are required", providers.ErrInvalidArgument)
	}
	if err := validateName("dataset", dataset); err != nil {
		return res, fmt.Errorf("prune catalog: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	points, err := CatalogPoints(ctx, st, dataset)
	if err != nil {
		return res, err
	}
	kept, candidates, err := SelectRetention(points, policy)
	if err != nil {
		return res, fmt.Errorf("prune catalog of %s: %w", dataset, err)
	}
	res.Kept = kept
	var guard *holds.Guard
	if len(candidates) > 0 {
		if guard, err = holds.Records(st, dataset).Guard(ctx); err != nil {
			return res, fmt.Errorf("prune catalog of %s: %w", dataset, err)
		}
	}
	loc := st.Location()
	for _, pt := range candidates {
		key := catalogKey(dataset, pt.ID)
		info, err := st.Stat(ctx, key)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("prune catalog of %s: stat entry %s: %w", dataset, pt.ID, err)
		}
		reason := protection(pointHolds(guard, pt, key), info, time.Now())
		if reason == "" {
			err = st.Delete(ctx, key)
			switch {
			case errors.Is(err, providers.ErrImmutable):
				reason = "the store refused deletion: " + providers.ErrImmutable.Error()
			case isNotFound(err):
				continue
			case err != nil:
				return res, fmt.Errorf("prune catalog of %s: delete entry %s: %w", dataset, pt.ID, err)
			}
		}
		ev := audit.Event{Kind: audit.KindPrune, Outcome: audit.OutcomeOK, Actor: opts.Actor, Dataset: dataset,
			Location: loc.Name, Jurisdiction: loc.Jurisdiction, Point: pt.ID, Bytes: info.Size,
			Reason: "catalog entry not kept by the retention policy"}
		if reason != "" {
			ev.Outcome, ev.Reason = audit.OutcomeDenied, "kept: "+reason
			res.Held = append(res.Held, HeldPoint{ID: pt.ID, DataAsOf: pt.DataAsOf, Reason: reason})
			log.Info("catalog entry held; not pruned", zap.String("point", pt.ID), zap.String("reason", reason))
		} else {
			res.Pruned = append(res.Pruned, pt)
		}
		if err := opts.Audit.Record(ctx, ev); err != nil {
			return res, fmt.Errorf("audit prune of %s: %w", dataset, err)
		}
	}
	log.Info("catalog prune done", zap.Int("kept", len(res.Kept)), zap.Int("pruned", len(res.Pruned)), zap.Int("held", len(res.Held)))
	return res, nil
}
