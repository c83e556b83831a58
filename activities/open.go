package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/providers"
)

// ErrNotHome reports that the local state a dataset's home region works with (the home KEK's
// keyring, the region's audit signing key) is not on this machine or not in the state
// directory given.
var ErrNotHome = errors.New("key not on this machine")

// HomeRegion returns the region whose worker holds a dataset's data keys: the region of its
// primary location, which configuration places in the home jurisdiction of its policy.
func HomeRegion(cfg *config.Config, dataset string) (string, error) {
	ds, ok := cfg.Dataset(dataset)
	if !ok {
		return "", fmt.Errorf("%w: dataset %q is not configured", providers.ErrInvalidArgument, dataset)
	}
	loc, ok := cfg.Location(ds.Primary)
	if !ok {
		return "", fmt.Errorf("%w: dataset %s: primary location %q is not configured", providers.ErrInvalidArgument, ds.Name, ds.Primary)
	}
	return loc.Region, nil
}

// OpenExisting is New for a process that works beside a region's worker rather than as one,
// such as the drflow command line. opts.Region is required. Unlike New it creates no key: it
// fails with ErrNotHome if a local keyring of the region's jurisdiction or the region's audit
// signing key under opts.StateDir does not exist yet. A KEK created here would unwrap
// nothing, and a second signing key would be refused by the region's audit log, or would lock
// the worker out of a log it starts; both usually mean the process runs outside the
// jurisdiction that holds the key, or with another state directory than the worker's. An AWS
// KMS key has nothing on this machine to check: New describes it, and fails if it does not
// exist or cannot be used.
func OpenExisting(ctx context.Context, cfg *config.Config, opts Options) (*Activities, error) {
	if cfg == nil {
		return nil, fmt.Errorf("activities: %w: no configuration", providers.ErrInvalidArgument)
	}
	if opts.Region == "" {
		return nil, fmt.Errorf("activities: %w: no region", providers.ErrInvalidArgument)
	}
	jur, ok := cfg.JurisdictionOf(opts.Region)
	if !ok {
		return nil, fmt.Errorf("activities: %w: region %q is not configured", providers.ErrInvalidArgument, opts.Region)
	}
	for _, k := range cfg.KEKs {
		if k.Jurisdiction != jur || k.Provider != config.KEKProviderLocal {
			continue // a KMS key is described by New
		}
		if err := mustExist(k.Path); err != nil {
			return nil, fmt.Errorf("%w: key %s of %s: keyring %s: %w", ErrNotHome, k.Name, jur, k.Path, err)
		}
	}
	if opts.StateDir != "" {
		path := auditKeyPath(opts.StateDir, opts.Region)
		if err := mustExist(path); err != nil {
			return nil, fmt.Errorf("%w: audit signing key of region %s: %s: %w", ErrNotHome, opts.Region, path, err)
		}
	}
	return New(ctx, cfg, opts)
}

// auditKeyPath is where New keeps the signing key of a region's audit log.
func auditKeyPath(stateDir, region string) string {
	return filepath.Join(stateDir, "audit", region+".key")
}

func mustExist(path string) error {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("does not exist")
	}
	return err
}

// IntegrityMessage describes an integrity failure by chunk, pack and reason only, as
// activities report it to Temporal: an *repo.IntegrityError also names the entry, a file path
// that is customer data.
func IntegrityMessage(err error) string { return integrityMessage(err) }
