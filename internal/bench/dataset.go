// Package bench measures drflow's data path against the machine's own limits: it generates a
// mixed dataset, backs it up, changes 1% of it, backs it up again, restores and verifies, and
// reports throughput, upload ratio, dedup ratio and peak memory beside single-core AES-GCM
// and SHA-256 figures measured in the same run.
package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Mix says how a generated dataset is made up; the fractions add up to 1.
type Mix struct {
	// Text is compressible, log-like content in large files.
	Text float64
	// Random is incompressible content in large files (already compressed media, archives).
	Random float64
	// Small is many small files (4–64 KiB of text), the case that packing exists for.
	Small float64
}

// DefaultMix resembles a typical service's data: half compressible, a third incompressible,
// the rest small files.
var DefaultMix = Mix{Text: 0.5, Random: 0.35, Small: 0.15}

const largeFileSize = 64 << 20

// Dataset is a generated tree.
type Dataset struct {
	Root       string
	Bytes      int64
	Files      int
	largeFiles []string // relative paths of the large files, for Mutate
}

// Generate writes a deterministic dataset of about size bytes under root, streaming so that
// memory stays small whatever the size.
func Generate(root string, size int64, mix Mix, seed uint64) (*Dataset, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ds := &Dataset{Root: root}
	write := func(rel string, n int64, content io.Reader) error {
		path := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.CopyN(f, content, n); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", rel, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		ds.Bytes += n
		ds.Files++
		return nil
	}

	large := func(kind string, total int64, content func() io.Reader) error {
		for i := 0; total > 0; i++ {
			n := min(total, largeFileSize)
			rel := fmt.Sprintf("%s/part-%04d.dat", kind, i)
			if err := write(rel, n, content()); err != nil {
				return err
			}
			ds.largeFiles = append(ds.largeFiles, rel)
			total -= n
		}
		return nil
	}
	if err := large("text", int64(float64(size)*mix.Text), func() io.Reader { return newTextReader(rng.Uint64()) }); err != nil {
		return nil, err
	}
	if err := large("random", int64(float64(size)*mix.Random), func() io.Reader { return newRandomReader(rng.Uint64()) }); err != nil {
		return nil, err
	}
	small := int64(float64(size) * mix.Small)
	for i := 0; small > 0; i++ {
		n := min(small, int64(4<<10+rng.IntN(60<<10)))
		rel := fmt.Sprintf("small/%03d/file-%06d.txt", i/1000, i)
		if err := write(rel, n, newTextReader(rng.Uint64())); err != nil {
			return nil, err
		}
		small -= n
	}
	return ds, nil
}

// Mutate changes about fraction of the dataset's bytes the way services change data between
// two backups: half of it appended to log files (new lines), half rewritten in place as
// 1 MiB regions of the large files (records updated). It returns how many bytes changed.
func (ds *Dataset) Mutate(fraction float64, seed uint64) (int64, error) {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	budget := int64(float64(ds.Bytes) * fraction)
	appended, err := ds.appendLogs(budget/2, rng)
	if err != nil {
		return appended, err
	}
	rewritten, err := ds.rewriteRegions(budget-appended, 1<<20, rng)
	return appended + rewritten, err
}

// appendLogs appends n bytes of new log lines, spread over the text files.
func (ds *Dataset) appendLogs(n int64, rng *rand.Rand) (int64, error) {
	var logs []string
	for _, rel := range ds.largeFiles {
		if strings.HasPrefix(rel, "text/") {
			logs = append(logs, rel)
		}
	}
	if len(logs) == 0 || n <= 0 {
		return 0, nil
	}
	per := n / int64(len(logs))
	var done int64
	for i, rel := range logs {
		size := per
		if i == len(logs)-1 {
			size = n - done
		}
		f, err := os.OpenFile(filepath.Join(ds.Root, filepath.FromSlash(rel)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return done, err
		}
		_, err = io.CopyN(f, newTextReader(rng.Uint64()), size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return done, err
		}
		done += size
	}
	ds.Bytes += done
	return done, nil
}

// rewriteRegions overwrites n bytes in place, as random regions of the given size.
func (ds *Dataset) rewriteRegions(n int64, region int, rng *rand.Rand) (int64, error) {
	buf := make([]byte, region)
	var changed int64
	for changed < n && len(ds.largeFiles) > 0 {
		rel := ds.largeFiles[rng.IntN(len(ds.largeFiles))]
		f, err := os.OpenFile(filepath.Join(ds.Root, filepath.FromSlash(rel)), os.O_WRONLY, 0)
		if err != nil {
			return changed, err
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() < int64(region) {
			f.Close()
			if err != nil {
				return changed, err
			}
			continue
		}
		size := min(int64(region), n-changed)
		for i := range buf[:size] {
			buf[i] = byte(rng.Uint32())
		}
		off := rng.Int64N(fi.Size() - size + 1)
		_, err = f.WriteAt(buf[:size], off)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return changed, err
		}
		changed += size
	}
	return changed, nil
}

// randomReader is an endless incompressible stream.
func newRandomReader(seed uint64) io.Reader {
	var key [32]byte
	for i := range 4 {
		for j := range 8 {
			key[i*8+j] = byte(seed >> (8 * j))
		}
		seed = seed*6364136223846793005 + 1442695040888963407
	}
	return rand.NewChaCha8(key)
}

// textReader is an endless stream of log-like lines, compressible like real logs (about 3–5x
// with zstd's fastest level), never repeating whole chunks so dedup does not flatter it.
type textReader struct {
	rng  *rand.Rand
	line []byte
	buf  strings.Builder
}

var words = strings.Fields(`request served user account order payment invoice shipment region
	cluster replica primary latency ms status ok error retry timeout queue worker backup restore
	checkpoint tenant session token refresh cache miss hit write read commit rollback lock`)

func newTextReader(seed uint64) io.Reader {
	return &textReader{rng: rand.New(rand.NewPCG(seed, seed+1))}
}

func (t *textReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(t.line) == 0 {
			t.buf.Reset()
			fmt.Fprintf(&t.buf, "2026-11-%02dT%02d:%02d:%02d.%06dZ id=%016x", 1+t.rng.IntN(28), t.rng.IntN(24),
				t.rng.IntN(60), t.rng.IntN(60), t.rng.IntN(1e6), t.rng.Uint64())
			for range 6 + t.rng.IntN(10) {
				t.buf.WriteByte(' ')
				t.buf.WriteString(words[t.rng.IntN(len(words))])
			}
			fmt.Fprintf(&t.buf, " n=%d\n", t.rng.IntN(100000))
			t.line = []byte(t.buf.String())
		}
		c := copy(p[n:], t.line)
		t.line = t.line[c:]
		n += c
	}
	return n, nil
}
