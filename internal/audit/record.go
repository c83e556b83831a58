package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// On-store layout, per region, in the region's location:
//
//	audit/<region>/segments/<first seq, 12 digits>.jsonl   records first..last, one per line
//	audit/<region>/heads/<seq, 12 digits>.json             signed checkpoint of the head at seq
//
// Every object is written once, with a conditional create, and never rewritten. A segment
// holds consecutive records, so the next segment's name is always the previous segment's last
// sequence number plus one; the names alone show a deleted, renamed or inserted segment.
//
// A record is one line of canonical JSON (encoding/json of the record type below, field order
// fixed, no insignificant white space) followed by "\n":
//
//	{"v":1,"region":"eu","seq":17,"time":"2025-01-02T03:04:05.123456789Z","event":{...},
//	 "prev":"<hex SHA-256 of record 16's line>","sig":"<base64 ed25519 signature>"}
//
// sig signs signingContext followed by the same line without its "sig" member; prev is the
// SHA-256 of the previous record's line (without its newline), signature included. The first
// record's prev is the genesis hash of the region. Verify accepts only lines that re-encode to
// exactly the same bytes, so no edit hides in white space, escapes or extra members. (Hence
// fields added to Event later must be omitempty, and a verifier must be at least as new as
// the writers whose records it reads.)
//
// What the chain proves, and what it cannot:
//
//   - Editing, reordering, inserting or deleting a record, and deleting, renaming, swapping or
//     inserting a segment, anywhere but at the very end, breaks a signature, the sequence, the
//     prev-hash chain or the segment names. Forging needs the private key; even with it, an
//     edit in the middle means re-signing everything after it, which checkpoints and heads
//     kept elsewhere expose.
//   - Deleting the newest records (whole segments at the end) leaves a shorter log that is
//     consistent on its own. A checkpoint (heads/<seq>.json, written every CheckpointEvery
//     segments and at Close) vouches that the log reached seq; Verify reports a log that ends
//     before its newest checkpoint. The residual window is the records written after the
//     newest checkpoint that survives: up to CheckpointEvery segments in normal operation,
//     and more if the attacker can also delete checkpoints (they live in the same store).
//     Retention on the objects (Options.Retention, on a store that enforces it) stops that
//     deletion; a head kept outside the store (Log.Head, Report.Head, passed back as
//     ExpectHead) closes the window up to that head. Report.Unanchored states the window of
//     each verification.

const (
	formatVersion = 1
	// maxSeq is the largest sequence number that fits the 12-digit object names.
	maxSeq = 999_999_999_999
	// maxLineSize bounds one record or checkpoint in memory. Validate keeps events far below.
	maxLineSize = 64 << 10

	signingContext    = "drflow audit record v1\n"
	headContext       = "drflow audit head v1\n"
	genesisContext    = "drflow audit genesis v1\n"
	segmentsDir       = "segments/"
	headsDir          = "heads/"
	segmentExt        = ".jsonl"
	headExt           = ".json"
	segmentContent    = "application/x-ndjson"
	checkpointContent = "application/json"
	seqDigits         = 12
)

// Hash is a SHA-256 hash of a record's canonical line. It encodes as lower-case hex.
type Hash [sha256.Size]byte

// String returns h in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h as lower-case hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes lower-case hex.
func (h *Hash) UnmarshalText(b []byte) error {
	got, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = got
	return nil
}

// ParseHash parses the lower-case hex form of a Hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) || strings.ToLower(s) != s {
		return h, fmt.Errorf("hash %q: want %d lower-case hex characters", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// Head identifies the newest record of a log: its sequence number and hash. Seq 0 is the
// empty log. A Head kept outside the log's store (in a workflow's result, a witness, an
// evidence pack) lets Verify detect that records at the end were deleted.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash Hash   `json:"hash"`
}

// Entry is one verified record of the log.
type Entry struct {
	Seq uint64
	// Time is when the log sealed the record; it never decreases along the log.
	Time  time.Time
	Event Event
	Prev  Hash
	// Hash is the hash of this record, the Prev of the next one.
	Hash Hash
}

// GenesisHash is the prev hash of a region's first record.
func GenesisHash(region string) Hash {
	return sha256.Sum256([]byte(genesisContext + region))
}

// record is the stored form of one entry. Its field order is the canonical order.
type record struct {
	Version int       `json:"v"`
	Region  string    `json:"region"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Event   Event     `json:"event"`
	Prev    Hash      `json:"prev"`
	Sig     []byte    `json:"sig,omitempty"`
}

// checkpoint is the stored form of a signed head.
type checkpoint struct {
	Version int       `json:"v"`
	Region  string    `json:"region"`
	Seq     uint64    `json:"seq"`
	Hash    Hash      `json:"hash"`
	Time    time.Time `json:"time"`
	Sig     []byte    `json:"sig,omitempty"`
}

// marshalCanonical encodes v the one way Verify accepts: encoding/json's output (fixed field
// order, no white space, its escapes), without a trailing newline. Decoding and re-encoding
// it gives the same bytes, which is what lets Verify insist on them.
func marshalCanonical(v any) ([]byte, error) {
	return json.Marshal(v)
}

// sealRecord signs r and returns its canonical line (without newline) and hash.
func sealRecord(r record, signer ed25519.PrivateKey) ([]byte, Hash, error) {
	r.Sig = nil
	body, err := marshalCanonical(r)
	if err != nil {
		return nil, Hash{}, fmt.Errorf("encode record %d: %w", r.Seq, err)
	}
	r.Sig = ed25519.Sign(signer, append([]byte(signingContext), body...))
	line, err := marshalCanonical(r)
	if err != nil {
		return nil, Hash{}, fmt.Errorf("encode record %d: %w", r.Seq, err)
	}
	return line, sha256.Sum256(line), nil
}

// sealCheckpoint signs c and returns its canonical encoding with a trailing newline.
func sealCheckpoint(c checkpoint, signer ed25519.PrivateKey) ([]byte, error) {
	c.Sig = nil
	body, err := marshalCanonical(c)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint %d: %w", c.Seq, err)
	}
	c.Sig = ed25519.Sign(signer, append([]byte(headContext), body...))
	line, err := marshalCanonical(c)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint %d: %w", c.Seq, err)
	}
	return append(line, '\n'), nil
}

// decodeStrict parses one canonical line into v (a pointer) and returns the signed bytes:
// the canonical encoding without the signature. It fails unless line is exactly the
// canonical encoding of what it decodes to.
func decodeStrict(line []byte, v any) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "record is not valid JSON of the audit format: " + err.Error(), nil
	}
	if dec.More() {
		return "record has trailing data", nil
	}
	again, err := marshalCanonical(v)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(again, line) {
		return "record is not in canonical form (its bytes were edited)", nil
	}
	return "", nil
}

// parseRecord decodes and checks one line of a segment on its own: format, region and
// signature. It returns a reason if the line is bad; the chain checks come later.
func parseRecord(line []byte, region string, pub ed25519.PublicKey) (record, string) {
	var r record
	if reason, err := decodeStrict(line, &r); err != nil || reason != "" {
		if err != nil {
			reason = err.Error()
		}
		return r, reason
	}
	if r.Version != formatVersion {
		return r, fmt.Sprintf("record format version %d is not %d", r.Version, formatVersion)
	}
	if r.Region != region {
		return r, fmt.Sprintf("record belongs to region %q, not %q", r.Region, region)
	}
	sig := r.Sig
	r.Sig = nil
	body, err := marshalCanonical(r)
	r.Sig = sig
	if err != nil {
		return r, err.Error()
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, append([]byte(signingContext), body...), sig) {
		return r, "signature invalid"
	}
	return r, ""
}

// parseCheckpoint decodes and checks a checkpoint object's content.
func parseCheckpoint(data []byte, region string, pub ed25519.PublicKey) (checkpoint, string) {
	var c checkpoint
	line, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok || bytes.IndexByte(line, '\n') >= 0 {
		return c, "checkpoint is not one line"
	}
	if reason, err := decodeStrict(line, &c); err != nil || reason != "" {
		if err != nil {
			reason = err.Error()
		}
		return c, strings.Replace(reason, "record", "checkpoint", 1)
	}
	if c.Version != formatVersion {
		return c, fmt.Sprintf("checkpoint format version %d is not %d", c.Version, formatVersion)
	}
	if c.Region != region {
		return c, fmt.Sprintf("checkpoint belongs to region %q, not %q", c.Region, region)
	}
	sig := c.Sig
	c.Sig = nil
	body, err := marshalCanonical(c)
	c.Sig = sig
	if err != nil {
		return c, err.Error()
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, append([]byte(headContext), body...), sig) {
		return c, "checkpoint signature invalid"
	}
	return c, ""
}

// Object names.

func regionPrefix(region string) string  { return "audit/" + region + "/" }
func segmentPrefix(region string) string { return regionPrefix(region) + segmentsDir }
func headPrefix(region string) string    { return regionPrefix(region) + headsDir }

func seqName(seq uint64) string {
	s := strconv.FormatUint(seq, 10)
	return strings.Repeat("0", seqDigits-len(s)) + s
}

func segmentKey(region string, first uint64) string {
	return segmentPrefix(region) + seqName(first) + segmentExt
}

func headKey(region string, seq uint64) string {
	return headPrefix(region) + seqName(seq) + headExt
}

// parseSeqName parses "<12 digits><ext>" after prefix, rejecting anything else.
func parseSeqName(key, prefix, ext string) (uint64, bool) {
	name, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(name, ext)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}

// validateRegion keeps the region a single, safe key segment.
func validateRegion(region string) error {
	if region == "" || len(region) > 63 {
		return fmt.Errorf("audit: region %q must be 1 to 63 characters", region)
	}
	for i := 0; i < len(region); i++ {
		c := region[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.') {
			continue
		}
		return fmt.Errorf("audit: region %q may contain only lower-case letters, digits, '-', '_' and '.', and must start with a letter or digit", region)
	}
	return nil
}

// chain follows the log record by record and reports the first break as a *ChainError.
type chain struct {
	region string
	pub    ed25519.PublicKey
	// next is the sequence number the next record must have, prev its prev hash and
	// prevTime the earliest time it may have.
	next     uint64
	prev     Hash
	prevTime time.Time
	// trustPrev accepts the next record's prev hash as given: Open reads only the last
	// segment, whose predecessor it does not know.
	trustPrev bool
}

func newChain(region string, pub ed25519.PublicKey) *chain {
	return &chain{region: region, pub: pub, next: 1, prev: GenesisHash(region)}
}

func (c *chain) head() Head { return Head{Seq: c.next - 1, Hash: c.prev} }

// segment reads one segment object whose name says it starts at first, checks each record
// against the chain, advances the chain and calls fn (if not nil) with each entry. Errors
// from r are returned wrapped; every integrity problem is a *ChainError.
func (c *chain) segment(key string, first uint64, r io.Reader, fn func(Entry) error) error {
	br := bufio.NewReaderSize(r, 32<<10)
	n := 0
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		seq := c.next
		if errors.Is(err, errTruncated) {
			return &ChainError{Key: key, Seq: seq, Reason: "record is truncated (no newline at the end of the segment)"}
		}
		if errors.Is(err, errTooLong) {
			return &ChainError{Key: key, Seq: seq, Reason: fmt.Sprintf("record is longer than %d bytes", maxLineSize)}
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		if len(line) == 0 {
			return &ChainError{Key: key, Seq: seq, Reason: "blank line in segment"}
		}
		rec, reason := parseRecord(line, c.region, c.pub)
		if reason != "" {
			if rec.Seq != 0 {
				seq = rec.Seq
			}
			return &ChainError{Key: key, Seq: seq, Reason: reason}
		}
		if n == 0 && rec.Seq != first {
			return &ChainError{Key: key, Seq: first, Reason: fmt.Sprintf(
				"segment content does not match its name: the name says it starts at seq %d, its first record is seq %d (segments renamed or swapped)",
				first, rec.Seq)}
		}
		if err := c.link(key, rec, line, fn); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return &ChainError{Key: key, Seq: first, Reason: "segment is empty"}
	}
	return nil
}

// link checks that rec follows the chain and advances it.
func (c *chain) link(key string, rec record, line []byte, fn func(Entry) error) error {
	switch {
	case rec.Seq > c.next:
		return &ChainError{Key: key, Seq: c.next, Reason: fmt.Sprintf("sequence gap: expected %d, found %d", c.next, rec.Seq)}
	case rec.Seq < c.next:
		return &ChainError{Key: key, Seq: c.next, Reason: fmt.Sprintf("sequence out of order: expected %d, found %d (record reordered, duplicated or inserted)", c.next, rec.Seq)}
	}
	if !c.trustPrev && rec.Prev != c.prev {
		return &ChainError{Key: key, Seq: rec.Seq, Reason: fmt.Sprintf("prev hash mismatch: record %d does not follow record %d", rec.Seq, rec.Seq-1)}
	}
	if rec.Time.Before(c.prevTime) {
		return &ChainError{Key: key, Seq: rec.Seq, Reason: fmt.Sprintf(
			"time goes backwards: record %d at %s is earlier than record %d at %s",
			rec.Seq, rec.Time.Format(time.RFC3339Nano), rec.Seq-1, c.prevTime.Format(time.RFC3339Nano))}
	}
	e := Entry{Seq: rec.Seq, Time: rec.Time, Event: rec.Event, Prev: rec.Prev, Hash: sha256.Sum256(line)}
	c.trustPrev = false
	c.next = rec.Seq + 1
	c.prev = e.Hash
	c.prevTime = rec.Time
	if fn != nil {
		return fn(e)
	}
	return nil
}

var (
	errTruncated = errors.New("line without newline")
	errTooLong   = errors.New("line too long")
)

// readLine returns the next line without its newline, io.EOF at a clean end, errTruncated for
// a final line without newline and errTooLong past maxLineSize.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > maxLineSize+1 {
			return nil, errTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, errTruncated
		default:
			return nil, err
		}
	}
}
