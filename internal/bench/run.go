package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/sources"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
)

// Options configure a benchmark run.
type Options struct {
	// Dir is the working directory for the dataset, the store, the keyring and the restore
	// target; it must be empty or missing. A temporary directory if empty.
	Dir string
	// Size of the generated dataset in bytes.
	Size int64
	Mix  Mix
	Seed uint64
	// Keep leaves Dir in place afterwards (only meaningful with a temporary Dir).
	Keep   bool
	Logger *zap.Logger
	// Baselines measures single-core AES-GCM and SHA-256 too (about two seconds).
	Baselines bool
}

// Figure is one named measurement.
type Figure struct {
	Name  string
	Value float64
}

// Result holds the figures in the order they are printed.
type Result []Figure

// Get returns the named figure.
func (r Result) Get(name string) (float64, bool) {
	for _, f := range r {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// Write prints one name=value per line.
func (r Result) Write(w io.Writer) error {
	var b strings.Builder
	for _, f := range r {
		fmt.Fprintf(&b, "%s=%s\n", f.Name, formatValue(f.Value))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case v < 0.1:
		return fmt.Sprintf("%.4f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// Run generates a dataset and measures the data path on the local store: full backup, a
// backup after changing 1% of the data, restore and verify.
//
//nolint:gocyclo,funlen // the benchmark's steps in order, each failing with its own message
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Size <= 0 {
		return nil, fmt.Errorf("bench: size must be positive, got %d", opts.Size)
	}
	if opts.Mix == (Mix{}) {
		opts.Mix = DefaultMix
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "drflow-bench-")
		if err != nil {
			return nil, err
		}
		dir = tmp
		if !opts.Keep {
			defer os.RemoveAll(tmp)
		}
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("bench: working directory %s is not empty", dir)
	}

	var res Result
	add := func(name string, v float64) { res = append(res, Figure{name, v}) }
	if opts.Baselines {
		add("aesgcm_MBps", AESGCMThroughput())
		add("sha256_MBps", SHA256Throughput())
	}

	if opts.Baselines {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		disk, err := DiskWriteThroughput(dir)
		if err != nil {
			return nil, fmt.Errorf("bench: measure disk: %w", err)
		}
		add("disk_write_MBps", disk)
	}
	log.Info("generating dataset", zap.Int64("bytes", opts.Size), zap.String("dir", dir))
	ds, err := Generate(filepath.Join(dir, "data"), opts.Size, opts.Mix, opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("bench: generate dataset: %w", err)
	}
	// Each phase starts with the previous one's writes on disk, so it is not charged for
	// their write-back.
	syscall.Sync()
	add("dataset_MiB", float64(ds.Bytes)/(1<<20))
	add("dataset_files", float64(ds.Files))

	st, r, closeAll, err := openRepo(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	src := sources.NewDirectory(ds.Root)
	full, err := r.Backup(ctx, src, repo.BackupOptions{Actor: "drflow bench"})
	if err != nil {
		return nil, fmt.Errorf("bench: full backup: %w", err)
	}
	add("backup_MBps", mbps(full.BytesRead, full.Duration))
	log.Info("full backup", zap.Duration("took", full.Duration), zap.Int64("uploaded", full.BytesUploaded))

	if _, err := ds.Mutate(0.01, opts.Seed+1); err != nil {
		return nil, fmt.Errorf("bench: change 1%% of the dataset: %w", err)
	}
	syscall.Sync()
	inc, err := r.Backup(ctx, src, repo.BackupOptions{Actor: "drflow bench"})
	if err != nil {
		return nil, fmt.Errorf("bench: incremental backup: %w", err)
	}
	// Against the dataset's bytes, not the bytes read: the incremental backup does not read
	// the files that did not change.
	add("incremental_MBps", mbps(inc.Totals.Bytes, inc.Duration))
	add("incremental_upload_ratio", float64(inc.BytesUploaded)/float64(inc.Totals.Bytes))
	add("incremental_read_ratio", float64(inc.BytesRead)/float64(inc.Totals.Bytes))

	stored, err := packBytes(ctx, st)
	if err != nil {
		return nil, err
	}
	// Two restore points of the whole dataset against what the store holds for them.
	add("dedup_ratio", float64(full.Totals.Bytes+inc.Totals.Bytes)/float64(stored))
	add("stored_MiB", float64(stored)/(1<<20))

	syscall.Sync()
	sink, err := sources.NewDirectorySink(filepath.Join(dir, "restore"))
	if err != nil {
		return nil, err
	}
	rest, err := r.Restore(ctx, inc.Point.ID, sink, repo.RestoreOptions{Actor: "drflow bench"})
	if err != nil {
		return nil, fmt.Errorf("bench: restore: %w", err)
	}
	add("restore_MBps", mbps(rest.Bytes, rest.Duration))

	syscall.Sync()
	ver, err := r.Verify(ctx, inc.Point.ID, repo.VerifyOptions{Actor: "drflow bench"})
	if err != nil {
		return nil, fmt.Errorf("bench: verify: %w", err)
	}
	if !ver.OK() {
		return nil, fmt.Errorf("bench: verify found %d failures, first: %v", len(ver.Failures), ver.Failures[0])
	}
	add("verify_MBps", mbps(ver.BytesChecked, ver.Duration))
	add("peak_rss_MiB", PeakRSSMiB())
	return res, nil
}

// openRepo sets up what a worker would have: a local store, a keyring, a key manager and an
// audit log, all under dir.
func openRepo(ctx context.Context, dir string) (providers.Store, *repo.Repo, func(), error) {
	st, err := local.Open(local.Options{Root: filepath.Join(dir, "store"),
		Location: providers.Location{Name: "bench", Region: "bench", Jurisdiction: "BENCH"}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: open store: %w", err)
	}
	signer, err := audit.LoadOrCreateSigner(filepath.Join(dir, "keys", "audit-bench.key"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: audit key: %w", err)
	}
	alog, err := audit.Open(ctx, audit.Options{Store: st, Region: "bench", Signer: signer})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: audit log: %w", err)
	}
	kek, err := keys.OpenKeyring(ctx, keys.KeyringOptions{
		Path: filepath.Join(dir, "keys", "bench.keyring"), Name: "bench-kek", Jurisdiction: "BENCH",
		Recorder: alog, Actor: "drflow bench",
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: keyring: %w", err)
	}
	mgr, err := keys.NewManager(keys.ManagerOptions{KEK: kek, Recorder: alog, Actor: "drflow bench"})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: key manager: %w", err)
	}
	r, err := repo.Open(repo.Options{Store: st, Dataset: "bench", Keys: mgr, Audit: alog})
	if err != nil {
		return nil, nil, nil, err
	}
	return st, r, func() { _ = alog.Close(context.Background()) }, nil
}

// packBytes is what the store holds in packs: the stored size of all chunk data.
func packBytes(ctx context.Context, st providers.Store) (int64, error) {
	var n int64
	err := st.List(ctx, "datasets/bench/packs/", func(o providers.ObjectInfo) error {
		n += o.Size
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bench: list packs: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("bench: the store holds no packs")
	}
	return n, nil
}
