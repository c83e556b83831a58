package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
)

// ErrTampered is what every verification finding matches with errors.Is: the pack is not
// what drflow wrote, or its audit records do not verify.
var ErrTampered = errors.New("evidence pack does not verify")

// Finding is a verification failure: what is wrong, and where.
type Finding struct {
	// File is the pack file concerned, relative to the pack, with forward slashes.
	File string
	// What is the kind of tampering or damage found: "edited", "reordered", "deleted",
	// "inserted", "truncated", "wrong key" or "unbacked figure".
	What   string
	Detail string
}

func (f *Finding) Error() string {
	return fmt.Sprintf("evidence pack does not verify: %s: %s: %s", f.File, f.What, f.Detail)
}

// Unwrap makes errors.Is(err, ErrTampered) true.
func (f *Finding) Unwrap() error { return ErrTampered }

// VerifyReport summarises a verified pack.
type VerifyReport struct {
	Schema   string
	Period   Period
	Datasets []string
	Regions  []RegionReport
	// Figures is how many figures (JSON leaves) of evidence.json were derived again from the
	// records and matched.
	Figures int
	// Warnings are true statements an auditor should weigh, not tampering: points found in
	// a store that no record in the pack wrote, records after the newest checkpoint.
	Warnings []string
}

// RegionReport is one region's verified log in the pack.
type RegionReport struct {
	Region      string
	AnchorSeq   uint64
	FirstSeq    uint64
	LastSeq     uint64
	Records     uint64
	Checkpoints int
	Unanchored  uint64
	HeadHash    string
}

// VerifyPack checks the pack in dir with nothing but the regions' signing public keys:
//
//   - evidence.json is well-formed, of a known schema, and the pack holds exactly the files
//     it lists (no file deleted, none added);
//   - each region's audit segments verify from the anchor checkpoint on (signatures, hash
//     links, sequence, segment names, every checkpoint) up to the head that evidence.json
//     names, and the first record is older than the period, so none of the period is
//     missing before it;
//   - every figure of evidence.json is derived again from those records (and from the store
//     observations it carries, each of which must name the records that back it) and
//     matches byte for byte, as does index.html.
//
// The first problem found is returned as a *Finding.
//
//nolint:gocyclo // each tamper kind is its own named check
func VerifyPack(ctx context.Context, dir string, keys map[string]ed25519.PublicKey) (VerifyReport, error) {
	var rep VerifyReport
	raw, err := os.ReadFile(filepath.Join(dir, FileEvidence))
	if errors.Is(err, fs.ErrNotExist) {
		return rep, &Finding{File: FileEvidence, What: "deleted", Detail: "the pack has no evidence.json"}
	}
	if err != nil {
		return rep, err
	}
	var p Pack
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return rep, &Finding{File: FileEvidence, What: "edited", Detail: "not valid evidence JSON: " + err.Error()}
	}
	if p.Schema != Schema {
		return rep, &Finding{File: FileEvidence, What: "edited", Detail: fmt.Sprintf("schema %q is not %q", p.Schema, Schema)}
	}
	rep.Schema, rep.Period, rep.Datasets = p.Schema, p.Period, p.Datasets
	if err := checkInventory(dir, &p); err != nil {
		return rep, err
	}

	src := dirSource(dir)
	in := Input{GeneratedAt: p.GeneratedAt, GeneratedBy: p.GeneratedBy, Period: p.Period, Datasets: p.Datasets, Config: p.Config}
	for _, claimed := range p.Audit {
		log, records, rr, err := verifyRegion(ctx, src, claimed, keys, p.Period)
		if err != nil {
			return rep, err
		}
		in.Audit = append(in.Audit, log)
		in.Records = append(in.Records, records...)
		rep.Regions = append(rep.Regions, rr)
		if rr.Unanchored > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf(
				"region %s: the last %d records (after the newest checkpoint) are vouched for by no signed checkpoint; compare head %s (seq %d) with one you keep",
				rr.Region, rr.Unanchored, rr.HeadHash, rr.LastSeq))
		}
	}
	for _, region := range slices.Sorted(maps.Keys(keys)) {
		if !slices.ContainsFunc(p.Audit, func(a AuditLog) bool { return a.Region == region }) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("a key was given for region %s, but the pack has no audit log of it", region))
		}
	}
	in.Placement, in.Holds = observed(p.Placement), observedHolds(p.Holds)

	derived := Derive(in)
	again, err := MarshalPack(derived)
	if err != nil {
		return rep, err
	}
	if !bytes.Equal(again, raw) {
		return rep, &Finding{File: FileEvidence, What: "unbacked figure", Detail: firstDifference(raw, again)}
	}
	rep.Figures = countLeaves(derived)
	page, err := RenderHTML(derived)
	if err != nil {
		return rep, err
	}
	html, err := os.ReadFile(filepath.Join(dir, FileHTML))
	if err != nil {
		return rep, &Finding{File: FileHTML, What: "deleted", Detail: err.Error()}
	}
	if !bytes.Equal(page, html) {
		return rep, &Finding{File: FileHTML, What: "edited", Detail: "index.html is not the rendering of evidence.json"}
	}
	if derived.Seal.Ref == "" {
		rep.Warnings = append(rep.Warnings, "no audit record signs the pack's observations (placement, holds, configuration): they are the generator's word only")
	}
	for _, pl := range derived.Placement {
		if len(pl.Unbacked) > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s at %s: %d points with no record in the pack (written before its first record, or not by drflow), e.g. %s",
				pl.Dataset, pl.Location, len(pl.Unbacked), pl.Unbacked[0]))
		}
	}
	return rep, nil
}

// verifyRegion verifies one region's log in the pack against what evidence.json claims,
// and derives the AuditLog entry again.
//
//nolint:gocyclo // each tamper kind is its own named check
func verifyRegion(ctx context.Context, src audit.Source, claimed AuditLog, keys map[string]ed25519.PublicKey, period Period) (AuditLog, []Record, RegionReport, error) {
	region := claimed.Region
	rr := RegionReport{Region: region}
	out := AuditLog{Region: region, AnchorSeq: claimed.AnchorSeq, Segments: []string{}, Checkpoints: []string{}}
	segDir := "audit/" + region + "/"
	pub := keys[region]
	if pub == nil {
		return out, nil, rr, fmt.Errorf("no public key given for region %s, whose audit log the pack carries (give --key %s=FILE.pem)", region, region)
	}
	sum := sha256.Sum256(pub)
	out.PublicKeySHA256 = hex.EncodeToString(sum[:])
	if claimed.PublicKeySHA256 != out.PublicKeySHA256 {
		return out, nil, rr, &Finding{File: segDir, What: "wrong key", Detail: fmt.Sprintf(
			"evidence.json says region %s signs with key %s, the key given has SHA-256 %s", region, claimed.PublicKeySHA256, out.PublicKeySHA256)}
	}
	var records []Record
	vr, err := audit.Verify(ctx, src, region, pub, audit.Since(claimed.AnchorSeq), audit.WithEntries(func(e audit.Entry) error {
		records = append(records, Record{Region: region, Entry: e})
		return nil
	}))
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		what := chainWhat(ce.Reason)
		if i := slices.Index(claimed.Segments, ce.Key); i >= 0 && what != "truncated" && !strings.Contains(ce.Reason, "renamed or swapped") {
			last := claimed.LastSeq
			if i+1 < len(claimed.Segments) {
				last = segmentFirst(claimed.Segments[i+1]) - 1
			}
			if w := classifySegment(ctx, src, ce.Key, segmentFirst(ce.Key), last); w != "" {
				what = w
			}
		}
		return out, nil, rr, &Finding{File: ce.Key, What: what, Detail: ce.Error()}
	}
	if err != nil {
		return out, nil, rr, err
	}
	out.FirstSeq, out.LastSeq, out.HeadHash = vr.FirstSeq, vr.Head.Seq, vr.Head.Hash.String()
	out.Records, out.Unanchored = uint64(len(records)), vr.Unanchored
	if len(records) == 0 {
		out.FirstSeq = 0
	}
	if claimed.LastSeq != out.LastSeq || claimed.HeadHash != out.HeadHash {
		what := "edited"
		if out.LastSeq < claimed.LastSeq {
			what = "truncated"
		}
		return out, nil, rr, &Finding{File: segDir + "segments/", What: what, Detail: fmt.Sprintf(
			"evidence.json says the log of %s ends at seq %d (hash %s); the pack's records end at seq %d (hash %s)",
			region, claimed.LastSeq, claimed.HeadHash, out.LastSeq, out.HeadHash)}
	}
	if claimed.AnchorSeq > 0 && len(records) > 0 && !records[0].Time.Before(period.From) {
		return out, nil, rr, &Finding{File: segDir + "segments/", What: "deleted", Detail: fmt.Sprintf(
			"the records of %s start at seq %d, at %s, inside the period: records of the period before it could be missing",
			region, records[0].Seq, records[0].Time)}
	}
	for _, r := range records {
		if period.Contains(r.Time) {
			out.InPeriod++
		}
	}
	for _, o := range vr.Objects {
		if o.Checkpoint {
			out.Checkpoints = append(out.Checkpoints, o.Key)
		} else {
			out.Segments = append(out.Segments, o.Key)
		}
	}
	rr.AnchorSeq, rr.FirstSeq, rr.LastSeq, rr.Records = out.AnchorSeq, out.FirstSeq, out.LastSeq, out.Records
	rr.Checkpoints, rr.Unanchored, rr.HeadHash = len(out.Checkpoints), out.Unanchored, out.HeadHash
	return out, records, rr, nil
}

// segmentFirst is the first sequence number a segment's name gives (0 if it gives none).
func segmentFirst(key string) uint64 {
	name := strings.TrimSuffix(key[strings.LastIndex(key, "/")+1:], ".jsonl")
	var n uint64
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// classifySegment tells, from the sequence numbers of a broken segment's lines, whether
// records were reordered, deleted or inserted there: the segment should hold first..last,
// once each, in order. It returns "" if the numbers are as expected (so a record itself was
// edited) or cannot be read.
func classifySegment(ctx context.Context, src audit.Source, key string, first, last uint64) string {
	rc, err := src.Get(ctx, key, providers.GetOptions{})
	if err != nil || first == 0 || last < first {
		return ""
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return ""
	}
	var seqs []uint64
	for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var r struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(line, &r) != nil || r.Seq == 0 {
			return ""
		}
		seqs = append(seqs, r.Seq)
	}
	want := int(last - first + 1)
	seen := map[uint64]bool{}
	for _, q := range seqs {
		if seen[q] || q < first || q > last {
			return "inserted"
		}
		seen[q] = true
	}
	switch {
	case len(seqs) > want:
		return "inserted"
	case len(seqs) < want:
		return "deleted"
	case !slices.IsSorted(seqs):
		return "reordered"
	}
	return ""
}

// chainWhat names the kind of tampering a chain error shows.
func chainWhat(reason string) string {
	switch {
	case strings.Contains(reason, "truncated"):
		return "truncated"
	case strings.Contains(reason, "missing"), strings.Contains(reason, "gap"), strings.Contains(reason, "segment is empty"):
		return "deleted"
	case strings.Contains(reason, "out of order"), strings.Contains(reason, "renamed or swapped"), strings.Contains(reason, "overlaps"):
		return "reordered"
	case strings.Contains(reason, "unexpected object"):
		return "inserted"
	default:
		return "edited"
	}
}

// checkInventory requires the pack to hold exactly the files evidence.json implies.
func checkInventory(dir string, p *Pack) error {
	want := map[string]bool{FileEvidence: true, FileHTML: true}
	for _, a := range p.Audit {
		want[DirKeys+"/"+a.Region+".pem"] = true
		for _, k := range append(slices.Clone(a.Segments), a.Checkpoints...) {
			want[k] = true
		}
	}
	found := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		found[rel] = true
		if !want[rel] {
			return &Finding{File: rel, What: "inserted", Detail: "the pack holds a file that evidence.json does not list"}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var missing []string
	for k := range want {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return &Finding{File: missing[0], What: "deleted", Detail: fmt.Sprintf("evidence.json lists %d files that the pack lacks: %s", len(missing), strings.Join(missing, ", "))}
	}
	return nil
}

// observed strips what Derive fills in from the pack's placement rows, leaving the store
// observations, which Derive then backs with records again.
func observed(in []Placement) []Placement {
	out := make([]Placement, len(in))
	for i, pl := range in {
		pl.Refs, pl.Unbacked = nil, nil
		out[i] = pl
	}
	return out
}

func observedHolds(in []Hold) []Hold {
	out := make([]Hold, len(in))
	for i, h := range in {
		h.Steps = nil
		out[i] = h
	}
	return out
}

// firstDifference describes the first JSON value where the pack's evidence.json and the one
// derived again from its records differ, by path.
func firstDifference(have, want []byte) string {
	var a, b any
	if json.Unmarshal(have, &a) != nil || json.Unmarshal(want, &b) != nil {
		return "evidence.json differs from what its records give"
	}
	if path, x, y, ok := diff("", a, b); ok {
		return fmt.Sprintf("%s is %s in evidence.json, but the pack's audit records give %s", path, short(x), short(y))
	}
	return "evidence.json is not in the form drflow writes (white space, order or escapes edited)"
}

func diff(path string, a, b any) (string, any, any, bool) {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return path, a, b, true
		}
		keys := slices.Sorted(maps.Keys(x))
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if q, u, v, ok := diff(p, x[k], y[k]); ok {
				return q, u, v, true
			}
		}
		return "", nil, nil, false
	case []any:
		y, ok := b.([]any)
		if !ok {
			return path, a, b, true
		}
		for i := 0; i < min(len(x), len(y)); i++ {
			if q, u, v, ok := diff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i]); ok {
				return q, u, v, true
			}
		}
		if len(x) != len(y) {
			return path + ".length", len(x), len(y), true
		}
		return "", nil, nil, false
	default:
		if !reflect.DeepEqual(a, b) {
			return path, a, b, true
		}
		return "", nil, nil, false
	}
}

func short(v any) string {
	if v == nil {
		return "absent"
	}
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// countLeaves counts the scalar values of p's JSON form: the figures the verifier checked.
func countLeaves(p *Pack) int {
	data, err := json.Marshal(p)
	if err != nil {
		return 0
	}
	var v any
	if json.Unmarshal(data, &v) != nil {
		return 0
	}
	var count func(any) int
	count = func(v any) int {
		switch x := v.(type) {
		case map[string]any:
			n := 0
			for _, e := range x {
				n += count(e)
			}
			return n
		case []any:
			n := 0
			for _, e := range x {
				n += count(e)
			}
			return n
		default:
			return 1
		}
	}
	return count(v)
}

// dirSource reads a pack's directory as an audit.Source: object keys are paths relative to
// the pack, with forward slashes.
type dirSource string

func (d dirSource) List(_ context.Context, prefix string, fn func(providers.ObjectInfo) error) error {
	base := filepath.Join(string(d), filepath.FromSlash(prefix))
	root := filepath.Dir(base)
	if strings.HasSuffix(prefix, "/") {
		root = base
	}
	var keys []providers.ObjectInfo
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(string(d), path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		keys = append(keys, providers.ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(keys, func(a, b providers.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, k := range keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

func (d dirSource) Get(_ context.Context, key string, _ providers.GetOptions) (io.ReadCloser, error) {
	if strings.Contains(key, "..") {
		return nil, fmt.Errorf("%w: key %q", providers.ErrInvalidArgument, key)
	}
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, providers.ErrNotFound)
	}
	return f, err
}
