// Package chaos holds drflow's fault-injection trials: the worker killed at random moments
// (crash), object stores that fail or stall (storage), repository objects damaged on purpose
// (corruption) and the Temporal server restarted mid-run (temporal). Each family runs a
// seeded loop of trials and prints one summary line:
//
//	chaos crash: seed=7 trials=20 completed=20 lost=0 corrupt=0 verified=1.2GiB
//
// `make test` runs a few trials of each family with a fixed seed; `make chaos` runs the full
// counts with a new seed and prints every summary. A failure names its seed and trial, and
// DRFLOW_CHAOS_SEED=N with DRFLOW_CHAOS_TRIALS=N replays it.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Environment variables that steer the trials.
const (
	// EnvFull selects the full trial counts of `make chaos` ("1").
	EnvFull = "DRFLOW_CHAOS_FULL"
	// EnvSeed fixes the seed (default 1, so `make test` is reproducible).
	EnvSeed = "DRFLOW_CHAOS_SEED"
	// EnvTrials overrides every family's trial count.
	EnvTrials = "DRFLOW_CHAOS_TRIALS"
	// EnvReport names a file that every summary line is appended to.
	EnvReport = "DRFLOW_CHAOS_REPORT"
)

// Plan is how one trial family runs: its seed and how many trials.
type Plan struct {
	Family string
	Seed   uint64
	Trials int
}

// PlanFor reads the environment: quick trials by default, full ones under EnvFull, or the
// count EnvTrials gives. A malformed variable fails the test.
func PlanFor(t testing.TB, family string, quick, full int) Plan {
	t.Helper()
	p := Plan{Family: family, Seed: 1, Trials: quick}
	if os.Getenv(EnvFull) == "1" {
		p.Trials = full
	}
	if v := os.Getenv(EnvSeed); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", EnvSeed, v)
		}
		p.Seed = seed
	}
	if v := os.Getenv(EnvTrials); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", EnvTrials, v)
		}
		p.Trials = n
	}
	return p
}

// Rand returns the random source of trial i: the same seed and trial always draw the same
// faults.
func (p Plan) Rand(i int) *rand.Rand {
	return rand.New(rand.NewPCG(p.Seed, uint64(i)))
}

// Summary is the outcome of one family's trials.
type Summary struct {
	Plan
	// Completed counts the runs (workflows, restores) that finished as they should.
	Completed int
	// Runs counts the runs started, when a trial starts several; zero means one per trial.
	Runs int
	// Lost counts restore points that a completed run reported but that cannot be found.
	Lost int
	// Corrupt counts restore points (or restored files) that fail verification.
	Corrupt int
	// Injected and Detected count damage done on purpose and damage reported.
	Injected, Detected int
	// BytesVerified is how much restored data was checked against its source.
	BytesVerified int64
	// Notes adds family-specific figures, e.g. "kills=23 duplicates=0".
	Notes []string
}

// String renders the summary line.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos %s: seed=%d trials=%d", s.Family, s.Seed, s.Trials)
	if s.Runs > 0 {
		fmt.Fprintf(&b, " runs=%d", s.Runs)
	}
	fmt.Fprintf(&b, " completed=%d lost=%d corrupt=%d", s.Completed, s.Lost, s.Corrupt)
	if s.Injected > 0 {
		fmt.Fprintf(&b, " injected=%d detected=%d (%.0f%%)", s.Injected, s.Detected, 100*float64(s.Detected)/float64(s.Injected))
	}
	fmt.Fprintf(&b, " verified=%s", humanBytes(s.BytesVerified))
	for _, n := range s.Notes {
		b.WriteString(" " + n)
	}
	return b.String()
}

var reportMu sync.Mutex

// Report logs the summary line, prints it to stdout (so `make chaos` shows it without -v)
// and appends it to the EnvReport file if set.
func Report(t testing.TB, s Summary) {
	t.Helper()
	line := s.String()
	t.Log(line)
	fmt.Println(line)
	path := os.Getenv(EnvReport)
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("chaos report %s: %v", path, err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Errorf("chaos report %s: %v", path, err)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
