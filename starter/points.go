package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/stores"
)

// The data commands (points, verify, restore) read restore points on this machine rather than
// through a worker: they open the dataset's repository with the data keys of its home
// jurisdiction, exactly as the worker of its home region does, and audit to that region's log
// with the worker's signing key.

// homeNote is the part of the data commands' help that says where they can run.
const homeNote = `It opens the restore points with the dataset's data keys, which only the key-encryption key
(KEK) of the dataset's home jurisdiction unwraps, and records what it does in the audit log of
the dataset's home region, signed with that region's worker key. So it must run in the home
jurisdiction, on a machine that holds the KEK's keyring and the worker's state directory
(--state-dir): normally beside the worker of the dataset's home region. Elsewhere it refuses
rather than create a new key.`

// dataFlags are the flags shared by the data commands.
type dataFlags struct {
	config   *string
	location *string
	stateDir *string
	asJSON   *bool
}

func addDataFlags(fs *flag.FlagSet) dataFlags {
	return dataFlags{
		config:   fs.String("config", defaultConf, "configuration file"),
		location: fs.String("location", "", "location to read the restore points from (default: the dataset's primary)"),
		stateDir: fs.String("state-dir", "", "the worker's state directory, holding the audit signing keys (default: var/state next to the config file, as for drflow-worker)"),
		asJSON:   fs.Bool("json", false, "print the result as JSON"),
	}
}

// dataUsage prints a data command's help: its synopsis, what it does, and its flags.
func dataUsage(fs *flag.FlagSet, synopsis, about string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n\n%s\n\n", synopsis, about, homeNote)
		fs.PrintDefaults()
	}
}

// datasetRef is a dataset and the location a data command reads it from, resolved from
// configuration without touching any store or key.
type datasetRef struct {
	cfg    *config.Config
	ds     config.Dataset
	loc    config.Location
	policy config.Policy
	// stateDir is the worker's state directory.
	stateDir string
}

// resolveDataset loads the configuration and resolves dataset and the location to read.
func resolveDataset(f dataFlags, dataset string) (datasetRef, error) {
	if err := loadDataset(*f.config, dataset); err != nil {
		return datasetRef{}, err
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		return datasetRef{}, err
	}
	ds, _ := cfg.Dataset(dataset)
	ref := datasetRef{cfg: cfg, ds: ds, stateDir: *f.stateDir}
	if ref.stateDir == "" {
		ref.stateDir = filepath.Join(filepath.Dir(*f.config), "var", "state")
	}
	ref.policy, _ = cfg.Policy(ds.Policy)

	name := *f.location
	if name == "" {
		name = ds.Primary
	}
	holders := append([]string{ds.Primary}, ds.Replicas...)
	if !slices.Contains(holders, name) {
		return datasetRef{}, fmt.Errorf("%w: --location %q holds no copy of dataset %s (its locations: %s)",
			errUsage, name, ds.Name, strings.Join(holders, ", "))
	}
	ref.loc, _ = cfg.Location(name)
	if mode, _, rule, _ := ref.policy.Decide(ref.loc.Jurisdiction); mode == config.CopyMetadata {
		return datasetRef{}, fmt.Errorf("location %s holds only the catalog of dataset %s (%s), no restore point to read; use %s",
			ref.loc.Name, ds.Name, rule, ds.Primary)
	}
	return ref, nil
}

// openedRepo is a dataset's repository opened for a data command.
type openedRepo struct {
	datasetRef
	acts *activities.Activities
	repo *repo.Repo
}

// open opens the repository with the keys, stores and audit log of the dataset's home region.
func (ref datasetRef) open(ctx context.Context, e *env) (*openedRepo, error) {
	region, err := activities.HomeRegion(ref.cfg, ref.ds.Name)
	if err != nil {
		return nil, err
	}
	acts, err := activities.OpenExisting(ctx, ref.cfg, activities.Options{
		Region: region, StateDir: ref.stateDir, Logger: cliLogger(e.stderr),
	})
	if errors.Is(err, activities.ErrNotHome) {
		return nil, fmt.Errorf("must run in %s, home of dataset %s, beside the worker of region %s and with its --state-dir: %w",
			ref.policy.Home, ref.ds.Name, region, err)
	}
	if err != nil {
		return nil, err
	}
	o := &openedRepo{datasetRef: ref, acts: acts}
	ok := false
	defer func() {
		if !ok {
			_ = o.close(ctx)
		}
	}()
	st := acts.Stores[ref.loc.Name]
	if st == nil {
		// A replica in another region: the home KEK still unwraps its copied data keys.
		if st, err = stores.Open(ctx, ref.loc); err != nil {
			return nil, err
		}
		acts.Stores[ref.loc.Name] = st
	}
	mgr := acts.Keys[ref.policy.Home]
	if mgr == nil {
		return nil, fmt.Errorf("no key of %s, home of dataset %s, is configured for this machine", ref.policy.Home, ref.ds.Name)
	}
	o.repo, err = repo.Open(repo.Options{Store: st, Dataset: ref.ds.Name, Keys: mgr, Audit: acts.Audit, Logger: acts.Logger})
	if err != nil {
		return nil, err
	}
	ok = true
	return o, nil
}

// with opens the repository, runs fn and closes the repository again, flushing the
// audit log; fn's error comes first.
func (ref datasetRef) with(ctx context.Context, e *env, fn func(*openedRepo) error) error {
	o, err := ref.open(ctx, e)
	if err != nil {
		return err
	}
	err = fn(o)
	if cerr := o.close(ctx); err == nil {
		err = cerr
	}
	return err
}

// close flushes the audit log and releases what open opened.
func (o *openedRepo) close(ctx context.Context) error {
	return o.acts.Close(context.WithoutCancel(ctx))
}

// pick resolves "latest" or a restore point ID to one of the repository's points.
func (o *openedRepo) pick(ctx context.Context, want string) (repo.PointInfo, error) {
	points, err := o.repo.Points(ctx)
	if err != nil {
		return repo.PointInfo{}, err
	}
	if len(points) == 0 {
		return repo.PointInfo{}, fmt.Errorf("dataset %s has no restore point in %s yet", o.ds.Name, o.loc.Name)
	}
	if want == pointLatest {
		return points[len(points)-1], nil
	}
	for _, p := range points {
		if p.ID == want {
			return p, nil
		}
	}
	return repo.PointInfo{}, fmt.Errorf("dataset %s has no restore point %s in %s (newest: %s; see drflow points %s)",
		o.ds.Name, want, o.loc.Name, points[len(points)-1].ID, o.ds.Name)
}

const pointLatest = "latest"

// checkPointFlag accepts "latest" or a well-formed restore point ID.
func checkPointFlag(p string) error {
	if p == pointLatest {
		return nil
	}
	if _, err := repo.ParsePointID(p); err != nil {
		return fmt.Errorf("%w: --point %q: want %q or a restore point ID such as 20250102T030405.000Z-0a1b2c3d (see drflow points DATASET)",
			errUsage, p, pointLatest)
	}
	return nil
}

// dataError renders an error of the data path for the terminal. An integrity failure is
// named by chunk, pack and reason: its entry is a file name, which stays out of output that
// may be pasted into tickets.
func dataError(what string, err error) error {
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: %s", what, activities.IntegrityMessage(ie))
	}
	return err
}

// cliActor names the person running the command in audit events.
func cliActor() string {
	name := "unknown user"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return "drflow command line (" + name + ")"
}

// cliLogger passes the data path's warnings (never file names) to stderr.
func cliLogger(w io.Writer) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zapcore.WarnLevel)
	return zap.New(core)
}

// pointRow is one restore point, as points prints it.
type pointRow struct {
	ID       string    `json:"id"`
	DataAsOf time.Time `json:"data_as_of"`
	Created  time.Time `json:"created"`
	Location string    `json:"location"`
	Files    int64     `json:"files"`
	Entries  int64     `json:"entries"`
	// Bytes is the plaintext size of the files; StoredBytes the sealed size of its chunks.
	Bytes       int64  `json:"bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	Problems    int64  `json:"problems"`
	KeyEpoch    uint32 `json:"key_epoch"`
	LegalHold   bool   `json:"legal_hold"`
	// RetainedUntil is set while a retention protects the manifest.
	RetainedUntil *time.Time `json:"retained_until,omitempty"`
	RetentionMode string     `json:"retention_mode,omitempty"`
}

// pointsReport is the output of points.
type pointsReport struct {
	Dataset      string     `json:"dataset"`
	Location     string     `json:"location"`
	Jurisdiction string     `json:"jurisdiction"`
	Points       []pointRow `json:"points"`
}

func pointsCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "points")
	f := addDataFlags(fs)
	fs.Usage = dataUsage(fs, "drflow points DATASET [flags]",
		`Lists the restore points of DATASET in a location (its primary unless --location), oldest
first: ID, data_as_of (when the source was read), files and bytes, and whether a legal hold or
a retention protects the point there.`)
	dataset, err := parseFlagsWithDataset(fs, args)
	if err != nil {
		return err
	}
	ref, err := resolveDataset(f, dataset)
	if err != nil {
		return err
	}
	var rep pointsReport
	err = ref.with(ctx, e, func(o *openedRepo) (err error) {
		rep, err = o.list(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if *f.asJSON {
		return printJSON(e, rep)
	}
	printPoints(e, rep, ref.loc)
	return nil
}

// list describes every restore point: its manifest header and its protection.
func (o *openedRepo) list(ctx context.Context) (pointsReport, error) {
	rep := pointsReport{Dataset: o.ds.Name, Location: o.loc.Name, Jurisdiction: o.loc.Jurisdiction, Points: []pointRow{}}
	points, err := o.repo.Points(ctx)
	if err != nil {
		return rep, err
	}
	st := o.repo.Store()
	now := time.Now()
	for _, p := range points {
		h, err := o.repo.Manifest(ctx, p.ID)
		if err != nil {
			return rep, dataError("read restore point "+p.ID, err)
		}
		info, err := st.Stat(ctx, repo.PointObjectKey(o.ds.Name, p.ID))
		if err != nil {
			return rep, fmt.Errorf("restore point %s: %w", p.ID, err)
		}
		row := pointRow{
			ID: p.ID, DataAsOf: h.DataAsOf, Created: h.Created, Location: o.loc.Name,
			Files: h.Totals.Files, Entries: h.Totals.Entries, Bytes: h.Totals.Bytes, StoredBytes: h.Totals.StoredBytes,
			Problems: h.ProblemCount, KeyEpoch: h.KeyEpoch, LegalHold: info.LegalHold,
		}
		if info.Retention.Active(now) {
			until := info.Retention.Until.UTC()
			row.RetainedUntil, row.RetentionMode = &until, string(info.Retention.Mode)
		}
		rep.Points = append(rep.Points, row)
	}
	return rep, nil
}

func printPoints(e *env, rep pointsReport, loc config.Location) {
	if len(rep.Points) == 0 {
		fmt.Fprintf(e.stdout, "dataset %s has no restore point in %s yet\n", rep.Dataset, loc.Ref())
		return
	}
	fmt.Fprintf(e.stdout, "dataset %s: %d restore points in %s\n", rep.Dataset, len(rep.Points), loc.Ref())
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDATA AS OF\tFILES\tBYTES\tWHERE\tPROTECTION")
	for _, p := range rep.Points {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", p.ID, p.DataAsOf.UTC().Format(time.RFC3339), p.Files, p.Bytes, p.Location, protection(p))
	}
	_ = tw.Flush()
}

// protection says what keeps a point from being deleted.
func protection(p pointRow) string {
	var parts []string
	if p.LegalHold {
		parts = append(parts, "held")
	}
	if p.RetainedUntil != nil {
		parts = append(parts, fmt.Sprintf("retained until %s (%s)", p.RetainedUntil.Format(time.RFC3339), p.RetentionMode))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
