// Package activities holds drflow's Temporal activities: the data-plane work (backup, restore
// drills) that runs on the task queue of the region owning the data, and the small planning
// activity that lets workflows route work without reading configuration themselves.
//
// Activities are methods on Activities, whose fields are their dependencies. Workflows call
// them through a nil *Activities; the worker registers a real one built by New.
//
// Nothing an activity logs, heartbeats or returns in an error names a file or any other
// customer data: only dataset, location and restore point names, sizes and counts.
package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/labels"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/providers"
)

// Activities holds the dependencies of drflow's activities. A zero field means the worker
// does not serve what needs it: an activity that needs a missing store or key fails with a
// non-retryable NotServed error, because it was routed to the wrong worker.
type Activities struct {
	Config *config.Config
	// Stores are the opened stores this worker may use, by location name.
	Stores map[string]providers.Store
	// Keys are the data key managers of the jurisdictions this worker serves, by
	// jurisdiction name; each wraps with that jurisdiction's KEK.
	Keys map[string]*keys.Manager
	// Audit records restore points, restores, drills and key operations.
	Audit  audit.Recorder
	Logger *zap.Logger
	// ScratchDir is where drills restore directory datasets, each into a fresh directory
	// that is removed when the drill ends.
	ScratchDir string
	// PostgresAdminDSN is a role that may create and drop the scratch databases of
	// PostgreSQL drills; empty when this worker cannot run them.
	PostgresAdminDSN string
	// CheckpointEvery is the least time between two checkpoints of a backup (0: the
	// repository's default). A worker killed mid-backup loses at most this much work.
	CheckpointEvery time.Duration
	// GCGrace is the least time between garbage collection condemning a pack and deleting
	// it (0: the repository's default, an hour).
	GCGrace time.Duration
	// Schedules pauses and resumes schedules (runbooks); nil on workers without a Temporal
	// client.
	Schedules SchedulePauser
	// Labels names datasets where Temporal shows them in the clear (search_attributes);
	// nil labels by name.
	Labels *labels.Labeler

	// closers release what New opened.
	closers []func(context.Context) error
}

// Options configure New.
type Options struct {
	// Region is the region whose data this worker serves; "" serves every region (the
	// single-machine setup).
	Region string
	// StateDir holds the worker's local state: the audit signing key(s). Required.
	StateDir string
	// ScratchDir is Activities.ScratchDir; default StateDir/scratch.
	ScratchDir string
	// PostgresAdminDSN is Activities.PostgresAdminDSN.
	PostgresAdminDSN string
	// CheckpointEvery is Activities.CheckpointEvery.
	CheckpointEvery time.Duration
	// GCGrace is Activities.GCGrace.
	GCGrace time.Duration
	Logger  *zap.Logger
}

// New opens what the activities of opts.Region (or of every region) need:
//   - the store of every location in the region(s), and of every replica location of a
//     dataset whose primary is in the region(s) (the copies are written from home);
//   - one audit log. With a Region, it is that region's log ("audit/<region>/") on the
//     region's first configured location, signed with StateDir/audit/<region>.key. Serving
//     every region, it is one log for the whole machine, named after the first region that
//     has a location and kept on that region's first location: the single-machine setup has
//     one audit trail, not one per region;
//   - the KEK of every jurisdiction served (a local keyring or an AWS KMS key), with a data
//     key manager that audits to that log.
//
// Close releases them.
//
//nolint:gocyclo,funlen // one check per field of Options, each with its own error
func New(ctx context.Context, cfg *config.Config, opts Options) (*Activities, error) {
	if cfg == nil {
		return nil, fmt.Errorf("activities: %w: no configuration", providers.ErrInvalidArgument)
	}
	if opts.StateDir == "" {
		return nil, fmt.Errorf("activities: %w: no state directory", providers.ErrInvalidArgument)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	a := &Activities{
		Config:           cfg,
		Stores:           map[string]providers.Store{},
		Keys:             map[string]*keys.Manager{},
		Logger:           log,
		ScratchDir:       opts.ScratchDir,
		PostgresAdminDSN: opts.PostgresAdminDSN,
		CheckpointEvery:  opts.CheckpointEvery,
		GCGrace:          opts.GCGrace,
	}
	if a.ScratchDir == "" {
		a.ScratchDir = filepath.Join(opts.StateDir, "scratch")
	}
	var err error
	if a.Labels, err = labels.New(cfg); err != nil {
		return nil, fmt.Errorf("activities: %w", err)
	}
	if err := os.MkdirAll(a.ScratchDir, 0o700); err != nil {
		return nil, fmt.Errorf("activities: scratch directory: %w", err)
	}

	served := map[string]bool{} // regions
	if opts.Region != "" {
		if _, ok := cfg.JurisdictionOf(opts.Region); !ok {
			return nil, fmt.Errorf("activities: %w: region %q is not configured", providers.ErrInvalidArgument, opts.Region)
		}
		served[opts.Region] = true
	} else {
		for _, r := range cfg.Regions() {
			served[r] = true
		}
	}

	ok := false
	defer func() {
		if !ok {
			_ = a.Close(context.WithoutCancel(ctx))
		}
	}()

	// A region's worker also writes the replicas of the datasets homed there: Replicate runs
	// on the home region's queue, because only the home worker holds the data key and the
	// policy check must happen before the bytes leave. It needs write credentials for those
	// replica locations and nothing else outside its region.
	replicaTargets := map[string]bool{}
	for _, ds := range cfg.Datasets {
		if home, ok := cfg.Location(ds.Primary); ok && served[home.Region] {
			for _, r := range ds.Replicas {
				replicaTargets[r] = true
			}
		}
	}

	var auditLoc config.Location
	for _, loc := range cfg.Locations {
		if !served[loc.Region] && !replicaTargets[loc.Name] {
			continue
		}
		st, err := stores.Open(ctx, loc)
		if err != nil {
			return nil, fmt.Errorf("activities: %w", err)
		}
		a.Stores[loc.Name] = st
		if auditLoc.Name == "" && served[loc.Region] {
			auditLoc = loc
		}
	}
	if auditLoc.Name == "" {
		return nil, fmt.Errorf("activities: %w: no location in the region(s) served to hold the audit log", providers.ErrInvalidArgument)
	}
	signer, err := audit.LoadOrCreateSigner(filepath.Join(opts.StateDir, "audit", auditLoc.Region+".key"))
	if err != nil {
		return nil, fmt.Errorf("activities: %w", err)
	}
	alog, err := audit.Open(ctx, audit.Options{Store: a.Stores[auditLoc.Name], Region: auditLoc.Region, Signer: signer, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("activities: open audit log of %s: %w", auditLoc.Region, err)
	}
	a.Audit = alog
	a.closers = append(a.closers, alog.Close)

	jurs := map[string]bool{}
	for r := range served {
		j, _ := cfg.JurisdictionOf(r)
		jurs[j] = true
	}
	for _, k := range cfg.KEKs {
		if !jurs[k.Jurisdiction] {
			continue
		}
		kek, err := openKEK(ctx, k, alog)
		if err != nil {
			return nil, fmt.Errorf("activities: %w", err)
		}
		mgr, err := keys.NewManager(keys.ManagerOptions{KEK: kek, Recorder: alog, Actor: "drflow worker"})
		if err != nil {
			return nil, fmt.Errorf("activities: %w", err)
		}
		a.Keys[k.Jurisdiction] = mgr
	}
	ok = true
	return a, nil
}

// openKEK opens a jurisdiction's KEK: a local keyring, or an AWS KMS key whose credentials
// come from the SDK's default chain (environment, shared files, instance role).
func openKEK(ctx context.Context, k config.KEK, rec audit.Recorder) (keys.KEK, error) {
	switch k.Provider {
	case config.KEKProviderLocal:
		return keys.OpenKeyring(ctx, keys.KeyringOptions{Path: k.Path, Name: k.Name, Jurisdiction: k.Jurisdiction,
			Recorder: rec, Actor: "drflow worker"})
	case config.KEKProviderAWSKMS:
		kek, err := keys.OpenKMS(ctx, keys.KMSOptions{KeyID: k.KeyID, Region: k.Region, Endpoint: k.Endpoint, Jurisdiction: k.Jurisdiction})
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.Name, err)
		}
		return kek, nil
	default:
		return nil, fmt.Errorf("key %s: %w: unknown provider %q", k.Name, providers.ErrInvalidArgument, k.Provider)
	}
}

// Close releases what New opened (it flushes and closes the audit log).
func (a *Activities) Close(ctx context.Context) error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i](ctx))
	}
	a.closers = nil
	return errors.Join(errs...)
}

func (a *Activities) logger() *zap.Logger {
	if a.Logger == nil {
		return zap.NewNop()
	}
	return a.Logger
}

// now is the worker's clock, for informational timestamps only: workflows measure RPO and
// RTO with workflow.Now.
func now() time.Time { return time.Now() }
