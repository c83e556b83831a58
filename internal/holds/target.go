package holds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/drflow/drflow/providers"
)

// Modes of a Target: the dataset's primary location, or a replica holding a full,
// client-side encrypted or metadata-only copy.
const (
	ModePrimary   = "primary"
	ModeFull      = "full"
	ModeEncrypted = "encrypted"
	ModeMetadata  = "metadata"
)

// Enforcement says what keeps a held object from deletion at a location.
const (
	// EnforcedByServer: the storage service refuses to delete or overwrite it.
	EnforcedByServer = "server"
	// EnforcedByAdapter: drflow's store adapter refuses (the local store's sidecars).
	EnforcedByAdapter = "drflow-adapter"
	// EnforcedByDrflow: only drflow's hold records, which prune, GC, shred and copy consult.
	EnforcedByDrflow = "drflow"
)

// holdConcurrency bounds the provider hold requests in flight per location.
const holdConcurrency = 8

// Target is one location holding a copy of the dataset.
type Target struct {
	Store providers.Store
	Mode  string // ModePrimary, ModeFull, ModeEncrypted or ModeMetadata
	// Objects lists the store keys of every object of restore point point at this location
	// (manifest, packs, indexes, wrapped keys; or the catalog entry at a metadata location).
	// ErrNotFound if the point is not there.
	Objects func(ctx context.Context, point string) ([]string, error)
	// Cover, if set, replaces Objects followed by Book.Cover: it lists the point's objects
	// and records them in book as covered by hold name, in a way that is safe against a
	// concurrent GC (repo.CoverPoint), and returns them. ErrNotFound if the point is not there.
	Cover func(ctx context.Context, book *Book, name, point string, now time.Time) ([]string, error)
}

// Point is a restore point a hold may cover.
type Point struct {
	ID       string    `json:"id"`
	DataAsOf time.Time `json:"data_as_of"`
}

func (t Target) validate() error {
	if t.Store == nil {
		return fmt.Errorf("%w: legal hold target without a store", providers.ErrInvalidArgument)
	}
	switch t.Mode {
	case ModePrimary, ModeFull, ModeEncrypted, ModeMetadata:
	default:
		return fmt.Errorf("%w: legal hold target %s has mode %q (want primary, full, encrypted or metadata)",
			providers.ErrInvalidArgument, t.name(), t.Mode)
	}
	if t.Objects == nil && t.Cover == nil {
		return fmt.Errorf("%w: legal hold target %s lists no objects", providers.ErrInvalidArgument, t.name())
	}
	return nil
}

func validateTargets(targets []Target) error {
	if len(targets) == 0 {
		return fmt.Errorf("%w: legal hold without a location", providers.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if err := t.validate(); err != nil {
			return err
		}
		if seen[t.name()] {
			return fmt.Errorf("%w: location %s is a legal hold target twice", providers.ErrInvalidArgument, t.name())
		}
		seen[t.name()] = true
	}
	return nil
}

func (t Target) name() string { return t.Store.Location().Name }

// cover records that hold name covers point here and returns the point's objects.
func (t Target) cover(ctx context.Context, book *Book, name string, p Point, now time.Time) ([]string, error) {
	if t.Cover != nil {
		return t.Cover(ctx, book, name, p.ID, now)
	}
	objects, err := t.Objects(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	// The record comes before the provider hold: a GC or prune that reads it keeps the
	// objects even where the provider cannot.
	if _, err := book.Cover(ctx, name, p.ID, p.DataAsOf, objects, now); err != nil {
		return nil, err
	}
	return objects, nil
}

// Enforcement says what enforces holds at a location with these capabilities.
func Enforcement(c providers.Capabilities) string {
	switch {
	case c.LegalHold && c.ServerEnforced:
		return EnforcedByServer
	case c.LegalHold:
		return EnforcedByAdapter
	default:
		return EnforcedByDrflow
	}
}

// providerResult is what setting or lifting provider holds on a set of objects did.
type providerResult struct {
	set         int      // objects whose hold was set (or lifted)
	gone        []string // objects that no longer exist
	unsupported bool     // the store refused holds: only drflow's records protect them
	unreported  bool     // the store accepted a hold but does not report it
}

// setProviderHolds places (on) or lifts the store's own legal hold on keys. A key that no
// longer exists (a duplicate pack that GC collected) is reported, not an error.
func setProviderHolds(ctx context.Context, st providers.Store, keys []string, on bool) (providerResult, error) {
	var res providerResult
	if !st.Capabilities().LegalHold {
		res.unsupported = true
		return res, nil
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(holdConcurrency)
	for _, key := range uniqueSorted(keys) {
		g.Go(func() error {
			err := st.SetLegalHold(gctx, key, on)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				res.set++
			case errors.Is(err, providers.ErrNotFound):
				res.gone = append(res.gone, key)
			case errors.Is(err, providers.ErrNotSupported):
				res.unsupported = true
			default:
				return fmt.Errorf("set legal hold %t on %s at %s: %w", on, key, st.Location().Name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	sort.Strings(res.gone)
	return res, err
}

func uniqueSorted(keys []string) []string {
	out := slices.Clone(keys)
	sort.Strings(out)
	return slices.Compact(out)
}
