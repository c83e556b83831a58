package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/drflow/drflow/providers"
)

// ErrChainBroken is what every *ChainError matches with errors.Is: the log was tampered with
// or damaged. Retrying cannot fix it.
var ErrChainBroken = errors.New("audit chain broken")

// ChainError names where the log is broken and how: the object (a segment, a missing
// segment's expected name, or a checkpoint), the sequence number and what broke, e.g.
// "prev hash mismatch: record 17 does not follow record 16".
type ChainError struct {
	Key    string
	Seq    uint64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at %s (seq %d): %s", e.Key, e.Seq, e.Reason)
}

// Unwrap makes errors.Is(err, ErrChainBroken) true.
func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Report summarises a verified log.
type Report struct {
	Region   string
	Segments int
	Records  uint64
	// FirstSeq and LastSeq are 0 for an empty log.
	FirstSeq, LastSeq   uint64
	FirstTime, LastTime time.Time
	// Head is the newest record; it is what a later Verify can be given as ExpectHead.
	Head Head
	// Checkpoints is how many signed checkpoints were checked against the log.
	Checkpoints int
	// Anchored is the highest sequence number that a checkpoint or the expected head vouches
	// for. Records after it (Unanchored of them) could have been deleted from the end of the
	// log together with their checkpoints without Verify noticing.
	Anchored   uint64
	Unanchored uint64
	// Objects lists every segment and checkpoint checked, segments first, each in order.
	Objects []Object
}

// Object is one segment or checkpoint of a log. Seq is a segment's first sequence number, or
// the sequence number a checkpoint vouches for.
type Object struct {
	Key        string
	Seq        uint64
	Checkpoint bool
}

// VerifyOption tunes Verify.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	expect  *Head
	entries func(Entry) error
	since   uint64
}

// Since makes Verify check the log from the signed checkpoint at seq on: the records up to
// seq are taken as vouched for by that checkpoint and need not be present (an evidence pack
// carries only the part of the log it reports on). The checkpoint must be in the store and
// its signature valid, and the first segment read must start at seq+1 with a record whose
// prev hash is the checkpoint's hash. Since(0) is the whole log.
func Since(seq uint64) VerifyOption {
	return func(c *verifyConfig) { c.since = seq }
}

// ExpectHead makes Verify require that the log contains h: a record at h.Seq whose hash is
// h.Hash. Keep heads outside the log's store (a workflow result, a witness, an earlier
// Report) so that deleting records from the end of the log is detected.
func ExpectHead(h Head) VerifyOption {
	return func(c *verifyConfig) { c.expect = &h }
}

// WithEntries calls fn with every record, in order, once it has been verified. An error from
// fn stops Verify and is returned as is. Evidence packs read the log this way.
func WithEntries(fn func(Entry) error) VerifyOption {
	return func(c *verifyConfig) { c.entries = fn }
}

// Source is what Verify reads a log from: a providers.Store, or the directory of an
// evidence pack that holds a copy of the log's objects under the same keys.
type Source interface {
	// List calls fn for every object whose key starts with prefix, in lexical key order.
	List(ctx context.Context, prefix string, fn func(providers.ObjectInfo) error) error
	Get(ctx context.Context, key string, opts providers.GetOptions) (io.ReadCloser, error)
}

var _ Source = providers.Store(nil)

// Verify reads region's whole log from store and checks it with the region's public key:
// segment names continue one another, sequence numbers are consecutive from 1, each record
// carries the hash of the one before (the first one the genesis hash), every signature is
// valid, record times never decrease, and every checkpoint (and the expected head, if given)
// matches the log. The first problem is returned as a *ChainError; I/O problems are returned
// wrapped as they are.
//
// What Verify cannot see: records deleted from the end of the log after the newest
// checkpoint, together with the checkpoints after them (Report.Unanchored says how many such
// records there are); pass ExpectHead with a head kept elsewhere to close that window. And
// anyone holding the private key can write a whole new consistent log; checkpoints under
// retention and heads kept elsewhere expose that too.
//
//nolint:gocyclo,funlen // each link of the chain (signature, hash, sequence, checkpoint) is a check of its own
func Verify(ctx context.Context, store Source, region string, pub ed25519.PublicKey, opts ...VerifyOption) (Report, error) {
	var cfg verifyConfig
	for _, o := range opts {
		o(&cfg)
	}
	rep := Report{Region: region}
	if err := validateRegion(region); err != nil {
		return rep, err
	}
	if len(pub) != ed25519.PublicKeySize {
		return rep, fmt.Errorf("audit verify: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	heads, err := loadCheckpoints(ctx, store, region, pub)
	if err != nil {
		return rep, err
	}
	rep.Checkpoints = len(heads)

	c := newChain(region, pub)
	if cfg.since > 0 {
		anchor, ok := heads[cfg.since]
		if !ok {
			return rep, &ChainError{Key: headKey(region, cfg.since), Seq: cfg.since,
				Reason: "anchor checkpoint missing: the records are to be checked from this signed checkpoint on"}
		}
		c.next, c.prev = cfg.since+1, anchor.hash
		rep.Anchored, rep.LastSeq = cfg.since, cfg.since
	}
	prefix := segmentPrefix(region)
	var segKey string
	check := func(e Entry) error {
		if rep.Records == 0 {
			rep.FirstSeq, rep.FirstTime = e.Seq, e.Time
		}
		rep.Records++
		rep.LastSeq, rep.LastTime = e.Seq, e.Time
		if h, ok := heads[e.Seq]; ok {
			if h.hash != e.Hash {
				return &ChainError{Key: segKey, Seq: e.Seq, Reason: fmt.Sprintf(
					"checkpoint mismatch: %s says record %d has hash %s, the log's record %d has %s (log rewritten after the checkpoint)",
					h.key, e.Seq, h.hash, e.Seq, e.Hash)}
			}
			rep.Anchored = e.Seq
		}
		if x := cfg.expect; x != nil && x.Seq == e.Seq {
			if x.Hash != e.Hash {
				return &ChainError{Key: segKey, Seq: e.Seq, Reason: fmt.Sprintf(
					"expected head mismatch: record %d should have hash %s, the log's has %s (log rewritten)",
					e.Seq, x.Hash, e.Hash)}
			}
			rep.Anchored = max(rep.Anchored, e.Seq)
		}
		if cfg.entries != nil {
			return cfg.entries(e)
		}
		return nil
	}
	err = store.List(ctx, prefix, func(info providers.ObjectInfo) error {
		first, ok := parseSeqName(info.Key, prefix, segmentExt)
		if !ok {
			return &ChainError{Key: info.Key, Reason: "unexpected object among the segments (want <12-digit first seq>" + segmentExt + ")"}
		}
		if first <= cfg.since && rep.Segments == 0 {
			return nil // vouched for by the anchor checkpoint
		}
		switch {
		case first > c.next:
			return &ChainError{Key: segmentKey(region, c.next), Seq: c.next, Reason: fmt.Sprintf(
				"segment missing: expected the segment starting at seq %d, the next one is %s", c.next, info.Key)}
		case first < c.next:
			return &ChainError{Key: info.Key, Seq: first, Reason: fmt.Sprintf(
				"segment overlaps the one before: it starts at seq %d, but the log already reached seq %d", first, c.next-1)}
		}
		segKey = info.Key
		rep.Segments++
		rep.Objects = append(rep.Objects, Object{Key: info.Key, Seq: first})
		return readObject(ctx, store, info.Key, func(r io.Reader) error {
			return c.segment(info.Key, first, r, check)
		})
	})
	if err != nil {
		return rep, wrapVerify(region, err)
	}
	rep.Head = c.head()

	// Truncation: a checkpoint or the expected head beyond the end of the log.
	next := segmentKey(region, rep.LastSeq+1)
	var newest uint64
	for seq := range heads {
		newest = max(newest, seq)
	}
	if newest > rep.LastSeq {
		return rep, &ChainError{Key: next, Seq: rep.LastSeq + 1, Reason: fmt.Sprintf(
			"segment missing: the log ends at seq %d, but checkpoint %s vouches for seq %d (log truncated)",
			rep.LastSeq, heads[newest].key, newest)}
	}
	if x := cfg.expect; x != nil && x.Seq > rep.LastSeq {
		return rep, &ChainError{Key: next, Seq: rep.LastSeq + 1, Reason: fmt.Sprintf(
			"segment missing: the log ends at seq %d, but the expected head is seq %d (log truncated)", rep.LastSeq, x.Seq)}
	}
	rep.Unanchored = rep.LastSeq - rep.Anchored
	seqs := make([]uint64, 0, len(heads))
	for seq := range heads {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		rep.Objects = append(rep.Objects, Object{Key: heads[seq].key, Seq: seq, Checkpoint: true})
	}
	return rep, nil
}

func wrapVerify(region string, err error) error {
	var ce *ChainError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("audit verify %s: %w", region, err)
}

// checkpointInfo is a verified checkpoint.
type checkpointInfo struct {
	key  string
	hash Hash
}

// loadCheckpoints reads and checks every checkpoint of region.
func loadCheckpoints(ctx context.Context, store Source, region string, pub ed25519.PublicKey) (map[uint64]checkpointInfo, error) {
	heads := map[uint64]checkpointInfo{}
	prefix := headPrefix(region)
	err := store.List(ctx, prefix, func(info providers.ObjectInfo) error {
		seq, ok := parseSeqName(info.Key, prefix, headExt)
		if !ok {
			return &ChainError{Key: info.Key, Reason: "unexpected object among the checkpoints (want <12-digit seq>" + headExt + ")"}
		}
		var data []byte
		err := readObject(ctx, store, info.Key, func(r io.Reader) error {
			var err error
			data, err = io.ReadAll(io.LimitReader(r, maxLineSize+1))
			return err
		})
		if err != nil {
			return err
		}
		cp, reason := parseCheckpoint(data, region, pub)
		if reason == "" && cp.Seq != seq {
			reason = fmt.Sprintf("checkpoint content says seq %d, its name says %d", cp.Seq, seq)
		}
		if reason != "" {
			return &ChainError{Key: info.Key, Seq: seq, Reason: reason}
		}
		heads[seq] = checkpointInfo{key: info.Key, hash: cp.Hash}
		return nil
	})
	if err != nil {
		return nil, wrapVerify(region, err)
	}
	return heads, nil
}

// readObject opens key and passes its content to fn.
func readObject(ctx context.Context, store Source, key string, fn func(io.Reader) error) error {
	rc, err := store.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	err = fn(rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", key, cerr)
	}
	return err
}
