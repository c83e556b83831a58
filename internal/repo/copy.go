package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/internal/holds"
	"github.com/drflow/drflow/providers"
)

// maxKeyObject bounds a wrapped-key object that Copy compares in memory.
const maxKeyObject = 1 << 20

// CopyOptions tune Copy and CopyMetadata.
type CopyOptions struct {
	// Mode is audit.CopyModeFull or audit.CopyModeEncrypted for Copy (default encrypted);
	// CopyMetadata always records audit.CopyModeMetadata. The bytes moved are the same
	// ciphertext either way: the mode records what the residency policy allowed.
	Mode string
	// LegalBasis is the transfer mechanism relied on (adequacy, SCC, consent).
	LegalBasis string
	Actor      string
	// Audit records the copy. Required.
	Audit  audit.Recorder
	Logger *zap.Logger
	// Concurrency is the number of objects copied in parallel; 0 means 4.
	Concurrency int
	// Source and destination names and jurisdictions for the audit event; empty means the
	// stores' Location().
	SourceLocation, SourceJurisdiction string
	DestLocation, DestJurisdiction     string
	// LeaseTTL is the lifetime of the copy's lease at the destination; 0 means
	// DefaultLeaseTTL. It must agree with the destination's GC (Options.LeaseTTL).
	LeaseTTL time.Duration

	now func() time.Time // tests move the lease clock
}

// CopyResult describes a copy.
type CopyResult struct {
	Point          PointInfo
	ObjectsCopied  int64
	ObjectsSkipped int64
	BytesCopied    int64
	// ManifestHash is the hex SHA-256 of the manifest object copied (or found).
	ManifestHash string
	Duration     time.Duration
}

func (o *CopyOptions) event(src, dst providers.Store, mode, point string) audit.Event {
	sl, dl := src.Location(), dst.Location()
	ev := audit.Event{
		Kind: audit.KindCopy, Outcome: audit.OutcomeOK, Actor: o.Actor, Point: point,
		Location: o.SourceLocation, Jurisdiction: o.SourceJurisdiction,
		Destination: o.DestLocation, DestJurisdiction: o.DestJurisdiction,
		CopyMode: mode, LegalBasis: o.LegalBasis,
	}
	if ev.Location == "" {
		ev.Location, ev.Jurisdiction = sl.Name, sl.Jurisdiction
	}
	if ev.Destination == "" {
		ev.Destination, ev.DestJurisdiction = dl.Name, dl.Jurisdiction
	}
	return ev
}

// Copy replicates a restore point of dataset from src to dst without decrypting anything:
// the packs and indexes dst lacks (all of the dataset's, since which packs a point uses is
// sealed in its manifest, and replication wants them anyway), then the wrapped data keys
// (datasets/<ds>/keys/, needed to restore there and useless without the home KEK), then the
// manifest, last, so that dst never shows a restore point whose chunks are not all there.
// Objects dst already has are skipped: packs, indexes and manifests are immutable.
//
// Copy holds a lease at the destination (datasets/<ds>/leases/copy-...) from before it lists
// anything until it ends, that has seen no condemned list: a GC of the destination that reads
// it deletes no condemned pack, so the packs the copy finds there stay until its manifest is
// written and marks them. Condemned packs it relies on are checked again before the manifest
// (see doc.go, "Copy"); if a GC that started before the lease is still running then, Copy
// fails with the retryable ErrGCRunning.
//
//nolint:gocyclo // the copy's preconditions, each refusing with its own error
func Copy(ctx context.Context, src, dst providers.Store, dataset, pointID string, opts CopyOptions) (CopyResult, error) {
	start := time.Now()
	var res CopyResult
	if opts.Mode == "" {
		opts.Mode = audit.CopyModeEncrypted
	}
	if src == nil || dst == nil || opts.Audit == nil {
		return res, fmt.Errorf("copy: %w: stores and audit recorder are required", providers.ErrInvalidArgument)
	}
	if opts.Mode != audit.CopyModeFull && opts.Mode != audit.CopyModeEncrypted {
		return res, fmt.Errorf("copy: %w: mode %q (want %q or %q)", providers.ErrInvalidArgument, opts.Mode, audit.CopyModeFull, audit.CopyModeEncrypted)
	}
	if err := validateName("dataset", dataset); err != nil {
		return res, fmt.Errorf("copy: %w", err)
	}
	t, err := ParsePointID(pointID)
	if err != nil {
		return res, fmt.Errorf("copy: %w", err)
	}
	res.Point = PointInfo{ID: pointID, DataAsOf: t}
	c := &copier{src: src, dst: dst, dataset: dataset, log: opts.Logger, workers: opts.Concurrency}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.workers <= 0 {
		c.workers = 4
	}
	c.dstRepo = &Repo{store: dst, dataset: dataset, log: c.log, leaseTTL: opts.LeaseTTL, now: opts.now}
	if c.dstRepo.leaseTTL <= 0 {
		c.dstRepo.leaseTTL = DefaultLeaseTTL
	}
	if c.dstRepo.now == nil {
		c.dstRepo.now = time.Now
	}
	err = c.leased(ctx, pointID, &res)
	res.ObjectsCopied, res.ObjectsSkipped, res.BytesCopied = c.copied.Load(), c.skipped.Load(), c.bytes.Load()
	res.Duration = time.Since(start)
	ev := opts.event(src, dst, opts.Mode, pointID)
	// Chunks counts the objects copied (packs, indexes, keys, the manifest), as legal hold
	// events count objects.
	ev.Dataset, ev.Bytes, ev.Chunks, ev.ManifestHash = dataset, res.BytesCopied, res.ObjectsCopied, res.ManifestHash
	ev.Reason = fmt.Sprintf("%d objects copied, %d already present", res.ObjectsCopied, res.ObjectsSkipped)
	switch {
	case errors.Is(err, providers.ErrImmutable):
		// A held object at the destination: the refusal names the holds, no customer data.
		err = fmt.Errorf("copy %s/%s to %s: %w", dataset, pointID, dst.Location().Name, err)
		ev.Outcome, ev.Reason = audit.OutcomeDenied, "copy refused: "+refusal(err)+"; "+ev.Reason
	case err != nil:
		err = fmt.Errorf("copy %s/%s to %s: %w", dataset, pointID, dst.Location().Name, err)
		ev.Outcome, ev.Reason = audit.OutcomeFailed, "copy failed: "+errorClass(err)+"; "+ev.Reason
	}
	actx, cancel := auditContext(ctx)
	defer cancel()
	if aerr := opts.Audit.Record(actx, ev); aerr != nil {
		return res, errors.Join(err, fmt.Errorf("audit copy of %s: %w", dataset, aerr))
	}
	return res, err
}

type copier struct {
	src, dst providers.Store
	dstRepo  *Repo // the destination, for its lease and condemned lists (no keys)
	dataset  string
	log      *zap.Logger
	workers  int
	// gcRuns are the leases of GC runs live when the copy's lease was written; condemned
	// the destination's condemned packs read after it.
	gcRuns    []string
	condemned map[packID]condemnedPack
	// holds are the destination's active legal holds, read before the first wrapped key is
	// replaced.
	holds   *holdCheck
	copied  atomic.Int64
	skipped atomic.Int64
	bytes   atomic.Int64
}

// leased runs the copy under a lease at the destination.
func (c *copier) leased(ctx context.Context, pointID string, res *CopyResult) error {
	run, err := newPointID(c.dstRepo.now())
	if err != nil {
		return err
	}
	h, err := c.dstRepo.acquireLease(ctx, copyLeasePrefix+run)
	if err != nil {
		return err
	}
	defer h.release(ctx)
	// GC runs that were under way before the lease was written may not have seen it.
	leases, err := c.dstRepo.readLeases(ctx)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if strings.HasPrefix(l.Run, gcLeasePrefix) && l.live(c.dstRepo.now(), c.dstRepo.leaseTTL) {
			c.gcRuns = append(c.gcRuns, l.Run)
		}
	}
	_, _, condemned, err := c.dstRepo.readCondemned(ctx)
	if err != nil {
		return err
	}
	c.condemned = condemned
	return c.run(ctx, pointID, res, h)
}

//nolint:gocyclo // each object kind of a point (manifest, packs, index, keys) is copied in its order
func (c *copier) run(ctx context.Context, pointID string, res *CopyResult, lease *leaseHolder) error {
	mkey := pointKey(c.dataset, pointID)
	info, err := c.src.Stat(ctx, mkey)
	if err != nil {
		return fmt.Errorf("restore point: %w", err)
	}
	res.Point.Created = info.ModTime
	res.Point.Size = info.Size

	ids, err := listIndexes(ctx, c.src, c.dataset, c.log)
	if err != nil {
		return err
	}
	haveIdx, err := listKeys(ctx, c.dst, indexPrefix(c.dataset))
	if err != nil {
		return err
	}
	havePack, err := listKeys(ctx, c.dst, packsPrefix(c.dataset))
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.workers)
	var suspect []packID // condemned at the destination, relied on as present
	for _, id := range ids {
		pk, ik := packKey(c.dataset, id), indexKey(c.dataset, id)
		if _, ok := c.condemned[id]; ok && (havePack[pk] || haveIdx[ik]) {
			suspect = append(suspect, id)
		}
		if havePack[pk] && haveIdx[ik] {
			c.skipped.Add(2)
			continue
		}
		g.Go(func() error {
			// The pack first: an index is only ever visible next to its pack.
			if havePack[pk] {
				c.skipped.Add(1)
			} else if _, err := c.copyObject(gctx, pk, nil); err != nil {
				if isNotFound(err) && c.collected(gctx, ik) {
					return nil
				}
				return err
			}
			if haveIdx[ik] {
				c.skipped.Add(1)
				return nil
			}
			_, err := c.copyObject(gctx, ik, nil)
			if isNotFound(err) {
				// Collected by GC after the listing: no point references it. The pack copied
				// without it is garbage for the destination's GC.
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := c.copyKeys(ctx); err != nil {
		return err
	}
	if err := c.recheck(ctx, suspect); err != nil {
		return err
	}
	// A lease that went unrefreshed for half its TTL may have been taken for dead.
	if err := lease.confirm(ctx); err != nil {
		return err
	}

	// The manifest last.
	sum, err := c.copyManifest(ctx, mkey)
	if err != nil {
		return err
	}
	res.ManifestHash = sum
	return nil
}

// recheck makes sure that the packs the copy found condemned at the destination, and relied
// on, are still there. Only a GC that read the leases before the copy's lease was written
// can delete them, and such a GC was running when the copy read the leases; once it has
// ended, every later GC sees the lease and deletes no condemned pack. So: if one of those GC
// runs is still live, fail retryably; otherwise copy again whatever it deleted.
func (c *copier) recheck(ctx context.Context, suspect []packID) error {
	if len(suspect) == 0 {
		return nil
	}
	for _, run := range c.gcRuns {
		l, err := c.dstRepo.readLease(ctx, run)
		if err != nil {
			return err
		}
		if l != nil && l.live(c.dstRepo.now(), c.dstRepo.leaseTTL) {
			return fmt.Errorf("%w (run %s, %d condemned packs relied on)", ErrGCRunning, strings.TrimPrefix(run, gcLeasePrefix), len(suspect))
		}
	}
	for _, id := range suspect {
		for _, key := range []string{packKey(c.dataset, id), indexKey(c.dataset, id)} {
			_, err := c.dst.Stat(ctx, key)
			if err == nil {
				continue
			}
			if !isNotFound(err) {
				return fmt.Errorf("stat destination pack: %w", err)
			}
			if _, err := c.copyObject(ctx, key, nil); err != nil {
				if isNotFound(err) && c.collected(ctx, indexKey(c.dataset, id)) {
					break // collected at the source too: no point references it
				}
				return err
			}
		}
	}
	return nil
}

// collected reports whether GC deleted a pack since its index was listed: GC deletes the
// index first, so a pack missing without its index was collected, not lost.
func (c *copier) collected(ctx context.Context, indexKey string) bool {
	_, err := c.src.Stat(ctx, indexKey)
	return isNotFound(err)
}

// copyManifest copies a manifest unless the destination has it; a different object under
// its key is an error (restore points are immutable).
func (c *copier) copyManifest(ctx context.Context, key string) (string, error) {
	_, err := c.dst.Stat(ctx, key)
	if isNotFound(err) {
		h := sha256.New()
		_, err = c.copyObject(ctx, key, h)
		if err == nil {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if !errors.Is(err, providers.ErrExists) {
			return "", err
		}
		// Another copy won the race: compare below.
	} else if err != nil {
		return "", fmt.Errorf("stat destination manifest: %w", err)
	}
	sum, _, err := hashObject(ctx, c.src, key)
	if err != nil {
		return "", err
	}
	have, _, err := hashObject(ctx, c.dst, key)
	if err != nil {
		return "", err
	}
	if have != sum {
		return "", fmt.Errorf("%w: destination holds a different manifest at %s", providers.ErrExists, key)
	}
	c.skipped.Add(1)
	return sum, nil
}

// copyKeys copies the wrapped data keys, replacing any that differ at the destination (a KEK
// rotation re-wraps them at home), unless an active legal hold covers the one there: then it
// fails with providers.ErrImmutable and replaces nothing more. The destination's hold records
// are read once, before the first replacement; the store itself refuses to overwrite an
// object under its own hold or retention.
func (c *copier) copyKeys(ctx context.Context) error {
	var keys []string
	err := c.src.List(ctx, keysPrefix(c.dataset), func(oi providers.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list wrapped keys: %w", err)
	}
	for _, k := range keys {
		want, err := readSmall(ctx, c.src, k, maxKeyObject)
		if err != nil {
			return fmt.Errorf("read wrapped key: %w", err)
		}
		have, err := readSmall(ctx, c.dst, k, maxKeyObject)
		switch {
		case err == nil && bytes.Equal(have, want):
			c.skipped.Add(1)
			continue
		case err != nil && !isNotFound(err):
			return fmt.Errorf("read destination key: %w", err)
		case err == nil:
			if err := c.checkReplace(ctx, k); err != nil {
				return err
			}
		}
		if _, err := c.dst.Put(ctx, k, bytes.NewReader(want), providers.PutOptions{}); err != nil {
			if errors.Is(err, providers.ErrImmutable) {
				return heldError("wrapped key object", k, c.dst.Location(), "a legal hold or retention of the store")
			}
			return fmt.Errorf("copy wrapped key: %w", err)
		}
		c.copied.Add(1)
		c.bytes.Add(int64(len(want)))
	}
	return nil
}

// checkReplace refuses to replace the object at key in the destination if an active legal
// hold in the destination's records covers it.
func (c *copier) checkReplace(ctx context.Context, key string) error {
	if c.holds == nil {
		h, err := readHoldCheck(ctx, c.dst, c.dataset)
		if err != nil {
			return err
		}
		c.holds = h
	}
	if names := c.holds.objects(key); len(names) > 0 {
		return heldError("wrapped key object", key, c.dst.Location(), holds.Reason(names))
	}
	return nil
}

// copyObject streams one object from src to dst (conditional create). An object that
// appeared at dst meanwhile counts as skipped.
func (c *copier) copyObject(ctx context.Context, key string, h hash.Hash) (int64, error) {
	rc, err := c.src.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", key, err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if h != nil {
		r = io.TeeReader(rc, h)
	}
	info, err := c.dst.Put(ctx, key, r, providers.PutOptions{IfNotExists: true, ContentType: "application/octet-stream"})
	if errors.Is(err, providers.ErrExists) {
		if h != nil {
			return 0, fmt.Errorf("copy %s: %w", key, err) // the caller compares content
		}
		c.skipped.Add(1)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", key, err)
	}
	c.copied.Add(1)
	c.bytes.Add(info.Size)
	return info.Size, nil
}

func listKeys(ctx context.Context, st providers.Store, prefix string) (map[string]bool, error) {
	have := map[string]bool{}
	err := st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		have[oi.Key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	return have, nil
}

// CatalogEntry is what a metadata-only location learns about a restore point: no file
// names, no keys, no chunk data.
type CatalogEntry struct {
	Dataset    string    `json:"dataset"`
	PointID    string    `json:"point_id"`
	DataAsOf   time.Time `json:"data_as_of"`
	Created    time.Time `json:"created"`
	SourceKind string    `json:"source_kind"`
	Entries    int64     `json:"entries"`
	// Bytes is the plaintext size; StoredBytes the sealed size of its distinct chunks.
	Bytes          int64  `json:"bytes"`
	StoredBytes    int64  `json:"stored_bytes"`
	Chunks         int64  `json:"chunks"`
	ManifestSHA256 string `json:"manifest_sha256"`
}

// CopyMetadata writes the catalog entry of a restore point of r (its home repository, which
// can read the manifest header) to dst at datasets/<ds>/catalog/<point>.json.
func CopyMetadata(ctx context.Context, r *Repo, dst providers.Store, pointID string, opts CopyOptions) (CatalogEntry, error) {
	var ce CatalogEntry
	if r == nil || dst == nil {
		return ce, fmt.Errorf("copy metadata: %w: repository and destination are required", providers.ErrInvalidArgument)
	}
	rec := opts.Audit
	if rec == nil {
		rec = r.audit
	}
	err := func() error {
		h, err := r.Manifest(ctx, pointID)
		if err != nil {
			return err
		}
		sum, _, err := hashObject(ctx, r.store, pointKey(r.dataset, pointID))
		if err != nil {
			return err
		}
		ce = CatalogEntry{
			Dataset: h.Dataset, PointID: h.PointID, DataAsOf: h.DataAsOf, Created: h.Created, SourceKind: h.SourceKind,
			Entries: h.Totals.Entries, Bytes: h.Totals.Bytes, StoredBytes: h.Totals.StoredBytes, Chunks: h.Totals.Chunks,
			ManifestSHA256: sum,
		}
		body, err := json.MarshalIndent(ce, "", "  ")
		if err != nil {
			return fmt.Errorf("encode catalog entry: %w", err)
		}
		key := catalogKey(r.dataset, pointID)
		_, err = dst.Put(ctx, key, bytes.NewReader(body), providers.PutOptions{IfNotExists: true, ContentType: "application/json"})
		if errors.Is(err, providers.ErrExists) {
			have, rerr := readSmall(ctx, dst, key, maxKeyObject)
			if rerr == nil && bytes.Equal(have, body) {
				return nil
			}
			_, err = dst.Put(ctx, key, bytes.NewReader(body), providers.PutOptions{ContentType: "application/json"})
		}
		if err != nil {
			return fmt.Errorf("write catalog entry: %w", err)
		}
		return nil
	}()
	ev := opts.event(r.store, dst, audit.CopyModeMetadata, pointID)
	ev.Dataset, ev.ManifestHash, ev.Bytes, ev.Chunks = r.dataset, ce.ManifestSHA256, ce.Bytes, ce.Chunks
	ev.Reason = "catalog entry"
	if err != nil {
		err = fmt.Errorf("copy metadata of %s/%s to %s: %w", r.dataset, pointID, dst.Location().Name, err)
		ev.Outcome, ev.Reason = audit.OutcomeFailed, "copy metadata failed: "+errorClass(err)
	}
	actx, cancel := auditContext(ctx)
	defer cancel()
	if aerr := rec.Record(actx, ev); aerr != nil {
		return ce, errors.Join(err, fmt.Errorf("audit metadata copy of %s: %w", r.dataset, aerr))
	}
	return ce, err
}
