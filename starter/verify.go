package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/repo"
)

// maxFailuresShown bounds the failures verify prints; --json lists every one repo collected.
const maxFailuresShown = 20

// verifyFailure is one chunk or file that failed verification, named without its entry.
type verifyFailure struct {
	Chunk  string `json:"chunk,omitempty"` // empty when a whole file's hash failed
	Pack   string `json:"pack,omitempty"`
	Reason string `json:"reason"`
}

// verifyReport is the output of verify.
type verifyReport struct {
	Dataset  string    `json:"dataset"`
	Point    string    `json:"point"`
	DataAsOf time.Time `json:"data_as_of"`
	Location string    `json:"location"`
	OK       bool      `json:"ok"`
	// SamplePercent is the share of distinct chunks read (100: all, and every file hash).
	SamplePercent float64 `json:"sample_percent"`
	Seed          int64   `json:"seed"`
	Entries       int64   `json:"entries"`
	ChunksTotal   int64   `json:"chunks_total"`
	ChunksChecked int64   `json:"chunks_checked"`
	BytesChecked  int64   `json:"bytes_checked"`
	BytesRead     int64   `json:"bytes_read"`
	// DurationSeconds is the wall time of the verification.
	DurationSeconds float64         `json:"duration_seconds"`
	Failures        []verifyFailure `json:"failures"`
}

func verifyCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify")
	f := addDataFlags(fs)
	point := fs.String("point", pointLatest, `restore point: "latest" or a restore point ID`)
	sample := fs.Float64("sample", 100, "percentage of the point's distinct chunks to read and check, greater than 0 and at most 100; below 100 a reproducible sample chosen by --seed")
	seed := fs.Int64("seed", 0, "seed of the --sample (default: random, printed so that the same sample can be checked again)")
	fs.Usage = dataUsage(fs, "drflow verify DATASET [flags]",
		`Verifies a restore point of DATASET without writing it anywhere: the manifest is
authenticated whole, every chunk reference is looked up in the index, and every chunk (or a
--sample of them) is read, authenticated, decompressed and checked against its ID; without
--sample every file's hash is checked too. Exits 1 if anything fails, naming the chunk and
pack (never a file). The verification is audited.`)
	dataset, err := parseFlagsWithDataset(fs, args)
	if err != nil {
		return err
	}
	if err := checkPointFlag(*point); err != nil {
		return err
	}
	if math.IsNaN(*sample) || *sample <= 0 || *sample > 100 {
		return fmt.Errorf("%w: --sample %g: want a percentage greater than 0 and at most 100", errUsage, *sample)
	}
	if *sample < 100 && !flagSet(fs, "seed") {
		if *seed, err = randomSeed(); err != nil {
			return err
		}
	}
	ref, err := resolveDataset(f, dataset)
	if err != nil {
		return err
	}
	var rep *verifyReport
	err = ref.with(ctx, e, func(o *openedRepo) (err error) {
		rep, err = o.verify(ctx, *point, *sample, *seed)
		return err
	})
	if rep == nil {
		return err
	}
	if *f.asJSON {
		if jerr := printJSON(e, rep); jerr != nil {
			return jerr
		}
	} else {
		printVerify(e, rep)
	}
	return err
}

// verify runs the verification. The report is nil if it could not start; with failures the
// error summarises them.
func (o *openedRepo) verify(ctx context.Context, want string, sample float64, seed int64) (*verifyReport, error) {
	p, err := o.pick(ctx, want)
	if err != nil {
		return nil, err
	}
	res, err := o.repo.Verify(ctx, p.ID, repo.VerifyOptions{SamplePercent: sample, Seed: seed, Actor: cliActor()})
	rep := &verifyReport{
		Dataset: o.ds.Name, Point: p.ID, DataAsOf: p.DataAsOf, Location: o.loc.Name, OK: err == nil && res.OK(),
		SamplePercent: sample, Seed: seed, Entries: res.Entries, ChunksTotal: res.ChunksTotal,
		ChunksChecked: res.ChunksChecked, BytesChecked: res.BytesChecked, BytesRead: res.BytesRead,
		DurationSeconds: res.Duration.Seconds(), Failures: []verifyFailure{},
	}
	if sample >= 100 {
		rep.Seed = 0 // no sample was drawn
	}
	for _, ie := range res.Failures {
		vf := verifyFailure{Pack: ie.Pack, Reason: ie.Reason}
		if ie.Chunk != (keys.ChunkID{}) {
			vf.Chunk = ie.Chunk.String()
		}
		rep.Failures = append(rep.Failures, vf)
	}
	switch {
	case len(res.Failures) > 0:
		return rep, fmt.Errorf("restore point %s of %s failed verification: %d failures; first: %s",
			p.ID, o.ds.Name, len(res.Failures), activities.IntegrityMessage(res.Failures[0]))
	case err != nil:
		// The manifest failed authentication, a key was unavailable, or the store failed.
		return rep, dataError(fmt.Sprintf("verify %s of %s", p.ID, o.ds.Name), err)
	}
	return rep, nil
}

func printVerify(e *env, rep *verifyReport) {
	verdict := "verified"
	if !rep.OK {
		verdict = "FAILED verification:"
	}
	fmt.Fprintf(e.stdout, "restore point %s of %s in %s (data as of %s) %s\n", rep.Point, rep.Dataset, rep.Location,
		rep.DataAsOf.UTC().Format(time.RFC3339), verdict)
	if rep.SamplePercent >= 100 {
		fmt.Fprintf(e.stdout, "  %d of %d chunks passed: read, authenticated and checked against their IDs (%d bytes); %d entries and their file hashes checked\n",
			rep.ChunksChecked, rep.ChunksTotal, rep.BytesChecked, rep.Entries)
	} else {
		fmt.Fprintf(e.stdout, "  sample of %g%% (seed %d) of the %d distinct chunks: %d passed, read, authenticated and checked (%d bytes); every chunk reference looked up in the index\n",
			rep.SamplePercent, rep.Seed, rep.ChunksTotal, rep.ChunksChecked, rep.BytesChecked)
		if rep.ChunksChecked == 0 && len(rep.Failures) == 0 {
			fmt.Fprintln(e.stdout, "  no chunk fell into this sample: raise --sample or draw another --seed")
		}
		fmt.Fprintf(e.stdout, "  check the same sample again with --sample %g --seed %d\n", rep.SamplePercent, rep.Seed)
	}
	fmt.Fprintf(e.stdout, "  %d bytes read from the store in %.2fs\n", rep.BytesRead, rep.DurationSeconds)
	for i, f := range rep.Failures {
		if i == maxFailuresShown {
			fmt.Fprintf(e.stdout, "  ... and %d more (see --json)\n", len(rep.Failures)-i)
			break
		}
		switch {
		case f.Chunk == "":
			fmt.Fprintf(e.stdout, "  file content: %s\n", f.Reason)
		case f.Pack == "":
			fmt.Fprintf(e.stdout, "  chunk %s: %s\n", f.Chunk, f.Reason)
		default:
			fmt.Fprintf(e.stdout, "  chunk %s in pack %s: %s\n", f.Chunk, f.Pack, f.Reason)
		}
	}
}

// flagSet reports whether name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// randomSeed draws a non-negative seed, short enough to type again.
func randomSeed() (int64, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("random seed: %w", err)
	}
	return int64(binary.BigEndian.Uint32(b[:])), nil
}
