package repo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/restic/chunker"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/drflow/drflow/internal/sources"
)

// benchBytes is the size of the benchmark dataset: DRFLOW_BENCH_BYTES, default 256 MiB.
func benchBytes(b *testing.B) int64 {
	if s := os.Getenv("DRFLOW_BENCH_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(b, err)
		return n
	}
	return 256 << 20
}

// genSource generates a mixed dataset without holding it in memory: half incompressible
// (random: media, archives, encrypted files), half compressible text, in files from 4 KiB
// to 64 MiB. Content comes from a 16 MiB pool, with every 4 KiB block stamped with its file
// and block number so that no two chunks are equal.
type genSource struct {
	total int64
	files []genFile
	pool  []byte
	seed  int64
}

type genFile struct {
	path string
	size int64
	text bool
}

func newGenSource(total int64) *genSource {
	const poolSize = 8 << 20
	pool := make([]byte, 2*poolSize)
	rand.New(rand.NewSource(1)).Read(pool[:poolSize])
	copy(pool[poolSize:], textBytes(2, poolSize, "bench"))
	s := &genSource{total: total, pool: pool}
	r := rand.New(rand.NewSource(3))
	sizes := []int64{4 << 10, 64 << 10, 512 << 10, 3 << 20, 16 << 20, 64 << 20}
	var n int64
	for i := 0; n < total; i++ {
		size := min(sizes[r.Intn(len(sizes))], total-n)
		s.files = append(s.files, genFile{path: fmt.Sprintf("d%02d/f%06d", i%37, i), size: size, text: i%2 == 1})
		n += size
	}
	return s
}

func (s *genSource) Kind() string { return sources.KindDirectory }

func (s *genSource) Snapshot(context.Context) (sources.Snapshot, error) {
	files := append([]genFile(nil), s.files...)
	sortGen(files)
	s.seed++
	return &genSnap{src: s, files: files, seed: s.seed}, nil
}

func sortGen(files []genFile) {
	for i := 1; i < len(files); i++ {
		for j := i; j > 0 && sources.ComparePaths(files[j].path, files[j-1].path) < 0; j-- {
			files[j], files[j-1] = files[j-1], files[j]
		}
	}
}

type genSnap struct {
	src   *genSource
	files []genFile
	seed  int64
}

func (s *genSnap) DataAsOf() time.Time         { return time.Unix(1_800_000_000+s.seed, 0) }
func (s *genSnap) Facts() map[string]string    { return nil }
func (s *genSnap) Problems() []sources.Problem { return nil }
func (s *genSnap) Close() error                { return nil }
func (s *genSnap) Walk(ctx context.Context, after string, fn func(sources.Entry, io.Reader) error) error {
	for i, f := range s.files {
		if after != "" && sources.ComparePaths(f.path, after) <= 0 {
			continue
		}
		e := sources.Entry{Path: f.path, Type: sources.TypeFile, Mode: 0o644, ModTime: time.Unix(int64(i), 0), Size: f.size}
		if err := fn(e, &genReader{s: s.src, f: f, id: uint64(i)}); err != nil {
			return err
		}
	}
	return nil
}

// genReader produces a file's content from the pool.
type genReader struct {
	s   *genSource
	f   genFile
	id  uint64
	off int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.f.size {
		return 0, io.EOF
	}
	const block = 4 << 10
	half := int64(len(g.s.pool) / 2)
	base := int64(0)
	if g.f.text {
		base = half
	}
	n := 0
	for n < len(p) && g.off < g.f.size {
		inBlock := g.off % block
		start := (int64(g.id)*7919*block + g.off) % (half - block)
		m := min(int64(len(p)-n), block-inBlock, g.f.size-g.off)
		copy(p[n:n+int(m)], g.s.pool[base+start:base+start+m])
		if inBlock == 0 && m >= 16 {
			binary.LittleEndian.PutUint64(p[n:], g.id)
			binary.LittleEndian.PutUint64(p[n+8:], uint64(g.off/block))
		}
		n += int(m)
		g.off += m
	}
	return n, nil
}

// discardSink checks nothing and keeps nothing.
type discardSink struct{}

func (discardSink) Write(_ context.Context, _ sources.Entry, r io.Reader) error {
	if r == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

func (discardSink) Finish(context.Context, map[string]string) (sources.Validation, error) {
	return sources.Validation{Checked: "nothing"}, nil
}

// benchRepo opens a repository with production settings on a fresh local store.
func benchRepo(b *testing.B) *Repo {
	st := openStore(b, b.TempDir(), "bench", "EU")
	r, err := Open(Options{Store: st, Dataset: "bench", Keys: newTestKeys(), Audit: &recorder{}, Logger: zap.NewNop()})
	require.NoError(b, err)
	return r
}

// peakRSS reports the process's peak resident set size in MiB (Linux).
func peakRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			require.NoError(b, err)
			return kb / 1024
		}
	}
	return 0
}

func BenchmarkBackup(b *testing.B) {
	src := newGenSource(benchBytes(b))
	b.SetBytes(src.total)
	b.ReportAllocs()
	var res BackupResult
	for b.Loop() {
		b.StopTimer()
		r := benchRepo(b)
		b.StartTimer()
		var err error
		res, err = r.Backup(context.Background(), src, BackupOptions{})
		require.NoError(b, err)
	}
	b.ReportMetric(float64(res.BytesUploaded)/float64(res.BytesRead), "stored/read")
	b.ReportMetric(peakRSS(b), "peak-RSS-MiB")
}

func BenchmarkBackupUnchanged(b *testing.B) {
	src := newGenSource(benchBytes(b))
	r := benchRepo(b)
	_, err := r.Backup(context.Background(), src, BackupOptions{})
	require.NoError(b, err)
	b.SetBytes(src.total)
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.Backup(context.Background(), src, BackupOptions{})
		require.NoError(b, err)
		require.Zero(b, res.ChunksNew)
	}
	b.ReportMetric(peakRSS(b), "peak-RSS-MiB")
}

func BenchmarkRestore(b *testing.B) {
	src := newGenSource(benchBytes(b))
	r := benchRepo(b)
	res, err := r.Backup(context.Background(), src, BackupOptions{})
	require.NoError(b, err)
	b.SetBytes(src.total)
	b.ReportAllocs()
	for b.Loop() {
		_, err := r.Restore(context.Background(), res.Point.ID, discardSink{}, RestoreOptions{})
		require.NoError(b, err)
	}
	b.ReportMetric(peakRSS(b), "peak-RSS-MiB")
}

func BenchmarkVerify(b *testing.B) {
	src := newGenSource(benchBytes(b))
	r := benchRepo(b)
	res, err := r.Backup(context.Background(), src, BackupOptions{})
	require.NoError(b, err)
	b.SetBytes(src.total)
	for b.Loop() {
		_, err := r.Verify(context.Background(), res.Point.ID, VerifyOptions{})
		require.NoError(b, err)
	}
}

// BenchmarkChunker compares the chunker drflow uses (keyed FastCDC) with restic's Rabin
// chunker at the same sizes, on random data, single-threaded: the walker chunks each stream
// sequentially, so this bounds backup throughput of one large file.
func BenchmarkChunker(b *testing.B) {
	data := randomBytes(1, 256<<20)
	b.Run("fastcdc", func(b *testing.B) {
		buf := make([]byte, 2*maxChunk)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			c, err := chunkers.NewChunkerBuffer(chunkerAlgorithm, bytes.NewReader(data), &chunkers.ChunkerOpts{
				MinSize: minChunk, NormalSize: avgChunk, MaxSize: maxChunk, Key: bytes.Repeat([]byte{7}, 32)}, buf)
			require.NoError(b, err)
			for {
				ch, err := c.Next()
				if len(ch) > 0 {
					n++
				}
				if err == io.EOF {
					break
				}
				require.NoError(b, err)
			}
		}
		b.ReportMetric(float64(len(data))*float64(b.N)/float64(n)/1024, "KiB/chunk")
	})
	b.Run("restic-rabin", func(b *testing.B) {
		buf := make([]byte, maxChunk)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			c := chunker.NewWithBoundaries(bytes.NewReader(data), chunker.Pol(0x3DA3358B4DC173), minChunk, maxChunk)
			c.SetAverageBits(20)
			for {
				_, err := c.Next(buf)
				if err == io.EOF {
					break
				}
				require.NoError(b, err)
				n++
			}
		}
		b.ReportMetric(float64(len(data))*float64(b.N)/float64(n)/1024, "KiB/chunk")
	})
}
