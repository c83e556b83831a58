package loadtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/config"
)

// Layout names of the deployment the load test writes.
const (
	namespace   = "default"
	region      = "eu-west-1"
	tierName    = "tier1"
	datasetFmt  = "ds-%03d"
	hotDir      = "hot"
	hotFile     = "state.bin"
	journalFile = "journal.log"
	// journalLimit is where the journal starts over, so sources stay small.
	journalLimit = 256 << 10
)

// deployment is the configuration and source directories of a load test run.
type deployment struct {
	root       string
	configPath string
	cfg        *config.Config
	datasets   []string
	sources    []string // per dataset
	bytes      int64    // total source bytes written at setup
	files      int
}

// datasetName is the name of dataset i.
func datasetName(i int) string { return fmt.Sprintf(datasetFmt, i) }

// configYAML is the configuration of n directory datasets under data/, one tier-1 tier and one
// local store, every path relative to the configuration file.
func configYAML(n int, every, rpo time.Duration) string {
	var b strings.Builder
	b.WriteString(`# Written by the drflow load test (internal/loadtest).
jurisdictions:
  - {name: EU, regions: [` + region + `]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}
locations:
  - {name: eu-primary, provider: local, path: stores/eu-primary, region: ` + region + `}
policies:
  - {name: eu-only, home: EU}
`)
	fmt.Fprintf(&b, "tiers:\n  - {name: %s, level: 1, rpo: %s, rto: 1h, backup_every: %s}\ndatasets:\n",
		tierName, config.FormatDuration(rpo), config.FormatDuration(every))
	for i := range n {
		name := datasetName(i)
		fmt.Fprintf(&b, "  - {name: %s, classification: internal, policy: eu-only, tier: %s, primary: eu-primary,\n     source: {type: directory, path: data/%s}}\n",
			name, tierName, name)
	}
	return b.String()
}

// datasetFiles is the initial content of dataset i: a little text, a compressible CSV, an
// incompressible blob, a large blob for every tenth dataset, and the hot files that churn
// rewrites. Deterministic per i.
func datasetFiles(i int) map[string][]byte {
	rng := rand.New(rand.NewPCG(uint64(i), 0x6472666c6f77))
	files := map[string][]byte{
		"README.txt": []byte(strings.Repeat(fmt.Sprintf("dataset %s: load test data, generated\n", datasetName(i)), 50)),
	}
	var csv strings.Builder
	csv.WriteString("id,customer,amount_cents,country\n")
	rows := 1000 + rng.IntN(5000) // 30–180 KiB
	countries := []string{"DE", "FR", "NL", "IE", "ES", "IT", "PL", "SE"}
	for r := range rows {
		fmt.Fprintf(&csv, "%d,customer-%d,%d,%s\n", r, rng.IntN(100000), rng.IntN(1000000), countries[rng.IntN(len(countries))])
	}
	files["records/orders.csv"] = []byte(csv.String())
	files["records/blob.bin"] = randomBytes(rng, 64<<10)
	if i%10 == 0 {
		files["large/archive.bin"] = randomBytes(rng, 1<<20)
	}
	files[filepath.Join(hotDir, hotFile)] = randomBytes(rng, 16<<10)
	files[filepath.Join(hotDir, journalFile)] = []byte("journal start\n")
	return files
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// writeDeployment writes n datasets' sources and the configuration under root, and loads
// it back: the configuration the product validates is the one the worker runs.
func writeDeployment(root string, n int, every, rpo time.Duration) (*deployment, error) {
	d := &deployment{root: root, configPath: filepath.Join(root, "drflow.yaml")}
	for i := range n {
		name := datasetName(i)
		src := filepath.Join(root, "data", name)
		files := datasetFiles(i)
		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			full := filepath.Join(src, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(full, files[p], 0o644); err != nil {
				return nil, err
			}
			d.bytes += int64(len(files[p]))
			d.files++
		}
		d.datasets = append(d.datasets, name)
		d.sources = append(d.sources, src)
	}
	if err := os.WriteFile(d.configPath, []byte(configYAML(n, every, rpo)), 0o644); err != nil {
		return nil, err
	}
	cfg, err := config.Load(d.configPath)
	if err != nil {
		return nil, err
	}
	d.cfg = cfg
	return d, nil
}

// changes says whether dataset i changes at churn tick t: a share of the datasets (0 to 1),
// a different subset every tick.
func changes(i, t int, share float64) bool {
	if share <= 0 {
		return false
	}
	if share >= 1 {
		return true
	}
	return (uint64(i)*7919+uint64(t)*104729)%1000 < uint64(share*1000)
}

// churn changes the hot files of the datasets that change at tick t: a new 16 KiB state file
// and a line appended to the journal, each replaced by rename so that a backup never reads a
// half-written file. It returns the bytes written.
func (d *deployment) churn(t int, share float64, tmp string) (int64, error) {
	var written int64
	rng := rand.New(rand.NewPCG(uint64(t), 0x63687572))
	for i, src := range d.sources {
		if !changes(i, t, share) {
			continue
		}
		state := randomBytes(rng, 16<<10)
		if err := replaceFile(filepath.Join(src, hotDir, hotFile), state, tmp); err != nil {
			return written, err
		}
		journalPath := filepath.Join(src, hotDir, journalFile)
		journal, err := os.ReadFile(journalPath)
		if err != nil {
			return written, err
		}
		if len(journal) > journalLimit {
			journal = journal[:0]
		}
		line := fmt.Sprintf("%s tick %d: %s\n", time.Now().UTC().Format(time.RFC3339Nano), t, strings.Repeat("x", 1000))
		journal = append(journal, line...)
		if err := replaceFile(journalPath, journal, tmp); err != nil {
			return written, err
		}
		written += int64(len(state) + len(line))
	}
	return written, nil
}

// replaceFile writes data to a file in dir and renames it over path.
func replaceFile(path string, data []byte, dir string) error {
	f, err := os.CreateTemp(dir, "churn-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
