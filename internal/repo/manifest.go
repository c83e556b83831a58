package repo

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/sources"
)

// Manifest framing limits. Every length read from a manifest is checked against them before
// anything is allocated.
const (
	maxFramePlain   = 1 << 20 // records of one frame
	maxHeaderPlain  = 4 << 20 // the header frame (facts can be long)
	frameSlack      = 1 + 64  // codec byte, nonce and tag
	finalFrameBit   = 1 << 31
	maxPathLen      = 32 << 10
	maxProblemLen   = 4 << 10
	maxRefsPerRec   = 1024
	maxRecordBody   = 2*maxPathLen + 64 // the largest record a writer emits (an entry)
	headerProblems  = 100               // problems repeated in the header
	codecRaw        = 0
	codecZstd       = 1
	fileHashName    = "blake3-256"
	chunkerName     = "fastcdc-v1.0.0 keyed"
	manifestVersion = formatVersion
)

// Record types of the entry stream (frames 1..n).
const (
	recEntry   = 1 // type, mode, mtime, path, symlink target
	recChunks  = 2 // chunk references of the open file entry
	recEnd     = 3 // size and BLAKE3-256 of the entry's content; closes the entry
	recProblem = 4 // an entry the source could not read
	recFinal   = 5 // entry and problem counts; the last record of the final frame
)

// ManifestHeader is the first frame of a manifest: what a restore point is, without its
// entries. It names no file (Problems and Facts can: the header is sealed like the rest).
type ManifestHeader struct {
	Format   int       `json:"format"`
	Dataset  string    `json:"dataset"`
	PointID  string    `json:"point_id"`
	DataAsOf time.Time `json:"data_as_of"`
	// Started is when the first attempt of the backup began; Created when the manifest was
	// written.
	Started time.Time `json:"started"`
	Created time.Time `json:"created"`
	// Attempts counts the runs that contributed (more than 1 after a resume).
	Attempts          int    `json:"attempts"`
	SourceKind        string `json:"source_kind"`
	SourceDescription string `json:"source_description,omitempty"`
	KeyEpoch          uint32 `json:"key_epoch"`
	// KEKID names the key-encryption key (with version) the key provider wrapped DEKs with
	// at backup time, when the provider says (keys.Manager does).
	KEKID string `json:"kek_id,omitempty"`
	// Chunker and FileHash name the algorithms, for readers of the format.
	Chunker  string            `json:"chunker"`
	FileHash string            `json:"file_hash"`
	Facts    map[string]string `json:"facts,omitempty"`
	// Problems holds the first problems; all of them are records at the end of the manifest.
	Problems     []sources.Problem `json:"problems,omitempty"`
	ProblemCount int64             `json:"problem_count"`
	Totals       Totals            `json:"totals"`
}

// Totals describe the content of a restore point.
type Totals struct {
	Entries  int64 `json:"entries"`
	Files    int64 `json:"files"`
	Dirs     int64 `json:"dirs"`
	Symlinks int64 `json:"symlinks"`
	// Bytes is the plaintext size of all files.
	Bytes int64 `json:"bytes"`
	// ChunkRefs counts chunk references, Chunks distinct chunks, StoredBytes their sealed size.
	ChunkRefs   int64 `json:"chunk_refs"`
	Chunks      int64 `json:"chunks"`
	StoredBytes int64 `json:"stored_bytes"`
}

func (h *ManifestHeader) check(dataset, point string, epoch uint32) error {
	switch {
	case h.Format != manifestVersion:
		return fmt.Errorf("%w: manifest format %d", ErrFormat, h.Format)
	case h.Dataset != dataset || h.PointID != point:
		return fmt.Errorf("header names %s/%s", h.Dataset, h.PointID)
	case h.KeyEpoch != epoch:
		return fmt.Errorf("header key epoch %d, preamble %d", h.KeyEpoch, epoch)
	case h.Totals.Entries < 0 || h.Totals.Bytes < 0 || h.ProblemCount < 0:
		return errors.New("negative totals")
	}
	return nil
}

// chunkRef is one chunk of a file, in file order.
type chunkRef struct {
	ID  keys.ChunkID
	Len uint32
}

// frameBase is the part of every frame's AAD that binds it to its manifest: preamble (format
// version, key epoch), dataset and point ID. Frame index and final flag follow.
func frameBase(pre []byte, dataset, point string) []byte {
	b := make([]byte, 0, len(aadFrame)+len(pre)+4+len(dataset)+len(point)+5)
	b = append(b, aadFrame...)
	b = append(b, pre...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(dataset)))
	b = append(b, dataset...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(point)))
	b = append(b, point...)
	return b
}

func frameAAD(base []byte, idx uint32, final bool) []byte {
	aad := make([]byte, len(base), len(base)+5)
	copy(aad, base)
	aad = binary.BigEndian.AppendUint32(aad, idx)
	if final {
		return append(aad, 1)
	}
	return append(aad, 0)
}

// sealFrame appends the wire form of one frame to dst: a length word (the top bit is the final
// flag) and Seal(codec || payload), compressing the payload when that makes it smaller.
func sealFrame(dst []byte, dk *keys.DataKey, enc *zstd.Encoder, base []byte, idx uint32, final bool, plain []byte) []byte {
	body := make([]byte, 1, 1+len(plain))
	body[0] = codecRaw
	if enc != nil && len(plain) > 64 {
		comp := enc.EncodeAll(plain, body)
		if len(comp)-1 < len(plain) {
			comp[0] = codecZstd
			body = comp
		}
	}
	if body[0] == codecRaw {
		body = append(body, plain...)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = dk.Seal(dst, body, frameAAD(base, idx, final))
	word := uint32(len(dst) - start - 4)
	if final {
		word |= finalFrameBit
	}
	binary.BigEndian.PutUint32(dst[start:], word)
	return dst
}

// frameReader reads, authenticates and decompresses the frames of one manifest in order.
type frameReader struct {
	r      io.Reader
	dk     *keys.DataKey
	dec    *zstd.Decoder
	base   []byte
	point  string
	next   uint32 // index of the next frame
	final  bool   // the final frame has been read
	sealed []byte
	plain  []byte
	out    []byte // decompressed frames
}

// readFrame returns the plaintext of the next frame (valid until the next call) and whether
// it is the final one.
func (f *frameReader) readFrame() ([]byte, bool, error) {
	idx := f.next
	if f.final {
		return nil, false, manifestError(f.point, int(idx), "frame after the final frame")
	}
	var word [4]byte
	if _, err := io.ReadFull(f.r, word[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, false, manifestError(f.point, int(idx), "truncated: the final frame is missing")
		}
		return nil, false, fmt.Errorf("read manifest %s: %w", f.point, err)
	}
	w := binary.BigEndian.Uint32(word[:])
	final := w&finalFrameBit != 0
	n := int(w &^ finalFrameBit)
	limit := maxFramePlain
	if idx == 0 {
		limit = maxHeaderPlain
	}
	if n > limit+frameSlack {
		return nil, false, manifestError(f.point, int(idx), "frame of %d bytes exceeds the limit", n)
	}
	if cap(f.sealed) < n {
		f.sealed = make([]byte, n)
	}
	f.sealed = f.sealed[:n]
	if _, err := io.ReadFull(f.r, f.sealed); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, false, manifestError(f.point, int(idx), "truncated")
		}
		return nil, false, fmt.Errorf("read manifest %s: %w", f.point, err)
	}
	body, err := f.dk.Open(f.plain[:0], f.sealed, frameAAD(f.base, idx, final))
	if err != nil {
		return nil, false, manifestError(f.point, int(idx), "authentication failed (edited, truncated, reordered, or from another restore point)")
	}
	f.plain = body[:0]
	f.next++
	f.final = final
	plain, err := decodeFrameBody(f.dec, body, &f.out, limit)
	if err != nil {
		return nil, false, manifestError(f.point, int(idx), "%v", err)
	}
	return plain, final, nil
}

// decodeFrameBody undoes the codec of an authenticated frame body, producing at most limit
// bytes; it decompresses into *out, growing it to limit if needed.
func decodeFrameBody(dec *zstd.Decoder, body []byte, out *[]byte, limit int) ([]byte, error) {
	if len(body) == 0 {
		return nil, errors.New("empty frame")
	}
	switch body[0] {
	case codecRaw:
		if len(body)-1 > limit {
			return nil, fmt.Errorf("frame of %d bytes exceeds the limit", len(body)-1)
		}
		return body[1:], nil
	case codecZstd:
		if cap(*out) < limit {
			*out = make([]byte, 0, limit)
		}
		plain, err := dec.DecodeAll(body[1:], (*out)[:0:limit])
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("unknown codec %d", body[0])
}

// newFrameDecoder returns a zstd decoder that cannot be made to allocate more than limit
// bytes of output or window.
func newFrameDecoder(concurrency int) (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(concurrency),
		zstd.WithDecoderMaxMemory(maxHeaderPlain),
		zstd.WithDecoderMaxWindow(8<<20),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderLowmem(true),
	)
}

// decodeHeader parses and checks the header frame.
func decodeHeader(plain []byte, dataset, point string, epoch uint32) (*ManifestHeader, error) {
	var h ManifestHeader
	if err := json.Unmarshal(plain, &h); err != nil {
		return nil, manifestError(point, 0, "header: %v", err)
	}
	if err := h.check(dataset, point, epoch); err != nil {
		if errors.Is(err, ErrFormat) {
			return nil, fmt.Errorf("manifest %s: %w", point, err)
		}
		return nil, manifestError(point, 0, "header: %v", err)
	}
	return &h, nil
}

// Record encoding. Every record is type (1 byte) || uvarint body length || body.

func appendRecord(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func encodeEntry(dst []byte, e sources.Entry) []byte {
	dst = append(dst, byte(e.Type))
	dst = binary.AppendUvarint(dst, uint64(e.Mode))
	// The zero time (unknown) is nanoseconds 0; any other time stores nanoseconds + 1.
	sec, nsec1 := int64(0), uint64(0)
	if !e.ModTime.IsZero() {
		sec, nsec1 = e.ModTime.Unix(), uint64(e.ModTime.Nanosecond())+1
	}
	dst = binary.AppendVarint(dst, sec)
	dst = binary.AppendUvarint(dst, nsec1)
	dst = appendString(dst, e.Path)
	return appendString(dst, e.Target)
}

func encodeRefs(dst []byte, refs []chunkRef) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(refs)))
	for _, r := range refs {
		dst = append(dst, r.ID[:]...)
		dst = binary.AppendUvarint(dst, uint64(r.Len))
	}
	return dst
}

func encodeEnd(dst []byte, size int64, hash [32]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(size))
	return append(dst, hash[:]...)
}

func encodeProblem(dst []byte, p sources.Problem) []byte {
	dst = appendString(dst, truncate(p.Path, maxPathLen))
	return appendString(dst, truncate(p.Err, maxProblemLen))
}

func encodeFinal(dst []byte, entries, problems int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(entries))
	return binary.AppendUvarint(dst, uint64(problems))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// checkEntryPath applies the sources contract to a path: slash-separated, relative, no empty,
// "." or ".." segment, no NUL. A manifest is authenticated, but a sink must never be handed a
// path that escapes its root even if a key leaked.
func checkEntryPath(p string) error {
	if len(p) > maxPathLen {
		return fmt.Errorf("path of %d bytes is longer than %d", len(p), maxPathLen)
	}
	if !fs.ValidPath(p) || p == "." || strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("invalid entry path %q", p)
	}
	return nil
}

// byteReader decodes the fields of one record body, remembering the first error.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *byteReader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("record too short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("field of %d bytes overruns its record", n)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *byteReader) string(max int) string {
	n := r.uvarint()
	if n > uint64(max) {
		r.fail("string of %d bytes is longer than %d", n, max)
		return ""
	}
	return string(r.bytes(n))
}

func (r *byteReader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// event is one decoded record of the entry stream.
type event struct {
	typ      byte
	entry    sources.Entry
	refs     []chunkRef // valid until the next event
	size     int64
	hash     [32]byte
	problem  sources.Problem
	entries  int64
	problems int64
}

// recordDecoder turns the plaintext of entry frames into events and enforces the grammar
// (entry, chunks*, end)*, problem*, final — so that later code sees only well-formed entries
// whose sizes add up.
type recordDecoder struct {
	buf      []byte
	final    bool // buf is the final frame
	refs     []chunkRef
	inEntry  bool
	typ      sources.EntryType
	sum      int64 // plaintext bytes referenced by the open entry
	entries  int64
	problems int64
	ended    bool // the final record was read
}

// setFrame hands the decoder the plaintext of the next frame.
func (d *recordDecoder) setFrame(plain []byte, final bool) {
	d.buf, d.final = plain, final
}

// next returns the next event of the current frame, or io.EOF when the frame is exhausted.
func (d *recordDecoder) next(ev *event) error {
	if len(d.buf) == 0 {
		if d.final && !d.ended {
			return errors.New("final frame lacks the final record")
		}
		return io.EOF
	}
	if d.ended {
		return errors.New("records after the final record")
	}
	typ := d.buf[0]
	n, w := binary.Uvarint(d.buf[1:])
	if w <= 0 || n > uint64(len(d.buf)-1-w) {
		return errors.New("record length overruns its frame")
	}
	body := d.buf[1+w : 1+w+int(n)]
	d.buf = d.buf[1+w+int(n):]
	r := byteReader{b: body}
	*ev = event{typ: typ}
	switch typ {
	case recEntry:
		return d.entryRecord(&r, ev)
	case recChunks:
		return d.chunkRecord(&r, ev)
	case recEnd:
		return d.endRecord(&r, ev)
	case recProblem:
		return d.problemRecord(&r, ev)
	case recFinal:
		return d.finalRecord(&r, ev)
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
}

// entryRecord decodes an entry record: it opens an entry.
func (d *recordDecoder) entryRecord(r *byteReader, ev *event) error {
	if d.inEntry {
		return errors.New("entry record inside an entry")
	}
	e := sources.Entry{Type: sources.EntryType(r.byte())}
	mode := r.uvarint()
	sec := r.varint()
	nsec1 := r.uvarint()
	e.Path = r.string(maxPathLen)
	e.Target = r.string(maxPathLen)
	if err := r.done(); err != nil {
		return fmt.Errorf("entry record: %w", err)
	}
	if mode > uint64(^uint32(0)) || nsec1 > 1e9 || (nsec1 == 0 && sec != 0) {
		return errors.New("entry record: mode or mtime out of range")
	}
	switch e.Type {
	case sources.TypeFile, sources.TypeDir:
		if e.Target != "" {
			return fmt.Errorf("%s entry with a link target", e.Type)
		}
	case sources.TypeSymlink:
	default:
		return fmt.Errorf("entry record: unknown type %d", e.Type)
	}
	if err := checkEntryPath(e.Path); err != nil {
		return fmt.Errorf("entry record: %w", err)
	}
	e.Mode = fs.FileMode(mode)
	if nsec1 != 0 {
		e.ModTime = time.Unix(sec, int64(nsec1-1)).UTC()
	}
	if e.Type == sources.TypeFile {
		e.Size = -1 // known, and verified, only after the content
	}
	d.inEntry, d.typ, d.sum = true, e.Type, 0
	ev.entry = e
	return nil
}

// chunkRecord decodes a record of chunk references of the open file entry.
func (d *recordDecoder) chunkRecord(r *byteReader, ev *event) error {
	if !d.inEntry || d.typ != sources.TypeFile {
		return errors.New("chunk record outside a file entry")
	}
	n := r.uvarint()
	if n == 0 || n > maxRefsPerRec || n*33 > uint64(len(r.b)) {
		return fmt.Errorf("chunk record: %d references", n)
	}
	d.refs = d.refs[:0]
	for i := uint64(0); i < n && r.err == nil; i++ {
		var ref chunkRef
		copy(ref.ID[:], r.bytes(32))
		l := r.uvarint()
		if l == 0 || l > maxChunk {
			return fmt.Errorf("chunk record: chunk of %d bytes", l)
		}
		ref.Len = uint32(l)
		d.sum += int64(l)
		d.refs = append(d.refs, ref)
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("chunk record: %w", err)
	}
	ev.refs = d.refs
	return nil
}

// endRecord decodes the end of the open entry: its size, checked against its chunks, and
// its content hash.
func (d *recordDecoder) endRecord(r *byteReader, ev *event) error {
	if !d.inEntry {
		return errors.New("end record outside an entry")
	}
	size := r.uvarint()
	copy(ev.hash[:], r.bytes(32))
	if err := r.done(); err != nil {
		return fmt.Errorf("end record: %w", err)
	}
	if size != uint64(d.sum) {
		return fmt.Errorf("end record: size %d, chunks hold %d bytes", size, d.sum)
	}
	if d.typ != sources.TypeFile && ev.hash != ([32]byte{}) {
		return fmt.Errorf("end record: %s entry with a content hash", d.typ)
	}
	ev.size = d.sum
	d.inEntry = false
	d.entries++
	return nil
}

// problemRecord decodes a problem the backup met (a path it could not read).
func (d *recordDecoder) problemRecord(r *byteReader, ev *event) error {
	if d.inEntry {
		return errors.New("problem record inside an entry")
	}
	ev.problem.Path = r.string(maxPathLen)
	ev.problem.Err = r.string(maxProblemLen)
	if err := r.done(); err != nil {
		return fmt.Errorf("problem record: %w", err)
	}
	d.problems++
	return nil
}

// finalRecord decodes the final record: the manifest's counts, checked against what the
// decoder saw.
func (d *recordDecoder) finalRecord(r *byteReader, ev *event) error {
	if d.inEntry || !d.final {
		return errors.New("final record before the end")
	}
	ev.entries = int64(r.uvarint())
	ev.problems = int64(r.uvarint())
	if err := r.done(); err != nil {
		return fmt.Errorf("final record: %w", err)
	}
	if ev.entries != d.entries || ev.problems != d.problems {
		return fmt.Errorf("final record counts %d entries and %d problems, the manifest holds %d and %d",
			ev.entries, ev.problems, d.entries, d.problems)
	}
	d.ended = true
	return nil
}

// manifestStream reads a whole manifest: preamble, header, then events across frames.
type manifestStream struct {
	frames frameReader
	dec    recordDecoder
	header *ManifestHeader
	epoch  uint32
}

// openManifestStream reads the preamble and header of a manifest from r. key returns the data
// key of an epoch.
func openManifestStream(r io.Reader, dataset, point string, dec *zstd.Decoder, key func(uint32) (*keys.DataKey, error)) (*manifestStream, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	pre := make([]byte, preambleSize)
	if _, err := io.ReadFull(br, pre); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, manifestError(point, -1, "truncated preamble")
		}
		return nil, fmt.Errorf("read manifest %s: %w", point, err)
	}
	epoch, err := parsePreamble(pre, magicManifest)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", point, err)
	}
	dk, err := key(epoch)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: key epoch %d: %w", point, epoch, err)
	}
	s := &manifestStream{
		frames: frameReader{r: br, dk: dk, dec: dec, base: frameBase(pre, dataset, point), point: point},
		epoch:  epoch,
	}
	plain, final, err := s.frames.readFrame()
	if err != nil {
		return nil, err
	}
	if final {
		return nil, manifestError(point, 0, "header frame marked final")
	}
	if s.header, err = decodeHeader(plain, dataset, point, epoch); err != nil {
		return nil, err
	}
	return s, nil
}

// next returns the next event, io.EOF after the final record (having checked that nothing
// follows the final frame).
func (s *manifestStream) next(ev *event) error {
	for {
		err := s.dec.next(ev)
		if err == nil {
			return nil
		}
		if err != io.EOF {
			return manifestError(s.header.PointID, int(s.frames.next)-1, "%v", err)
		}
		if s.frames.final {
			var one [1]byte
			if n, _ := io.ReadFull(s.frames.r, one[:]); n != 0 {
				return manifestError(s.header.PointID, -1, "bytes after the final frame")
			}
			return io.EOF
		}
		plain, final, err := s.frames.readFrame()
		if err != nil {
			return err
		}
		s.dec.setFrame(plain, final)
	}
}
