package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/bench"
)

func benchCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench")
	size := fs.String("size", "2GiB", "dataset size (e.g. 512MiB, 2GiB)")
	dir := fs.String("dir", "", "working directory (empty or missing; default: a temporary directory)")
	seed := fs.Uint64("seed", 1, "seed of the generated dataset")
	baselines := fs.Bool("baselines", true, "also measure single-core AES-GCM and SHA-256")
	verbose := fs.Bool("v", false, "log progress to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("%w: --size: %v", errUsage, err)
	}
	log := zap.NewNop()
	if *verbose {
		cfg := zap.NewDevelopmentConfig()
		cfg.OutputPaths = []string{"stderr"}
		if log, err = cfg.Build(); err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
	}
	res, err := bench.Run(ctx, bench.Options{Dir: *dir, Size: n, Seed: *seed, Baselines: *baselines, Logger: log})
	if err != nil {
		return err
	}
	return res.Write(e.stdout)
}

// parseSize reads sizes such as 2GiB, 512MiB, 100MB or a plain byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a positive size such as 512MiB or 2GiB", s)
	}
	return int64(v * float64(mult)), nil
}
