package repo

import (
	"math/bits"

	"github.com/klauspost/compress/zstd"

	"github.com/drflow/drflow/internal/keys"
)

// framePos is a position in the entry stream of a manifest being written: a frame index and
// a byte offset into that frame's records.
type framePos struct {
	Frame  uint32 `json:"frame"`
	Offset int    `json:"offset"`
}

// closedFrame is a sealed entry frame that waits until the packs its records reference are
// durable, then becomes a part object of the checkpoint.
type closedFrame struct {
	idx  uint32
	wire []byte // length word || sealed frame
	dep  uint64 // highest pack sequence number its records reference
	// lastPath is the last entry completed in this or an earlier frame; boundary is where
	// the first entry not yet completed starts. A resume keeps everything before boundary.
	lastPath string
	boundary framePos
}

// manifestWriter accumulates the entry stream of a manifest in frames of at most
// maxFramePlain bytes. Only the backup's assembler uses it.
type manifestWriter struct {
	dk   *keys.DataKey
	enc  *zstd.Encoder
	base []byte

	buf       []byte // records of the open frame
	idx       uint32 // index of the open frame
	dep       uint64
	entryOpen bool
	entryAt   framePos // start of the open entry
	lastPath  string   // last completed entry
	closed    []closedFrame
	uploaded  uint32 // frames 1..uploaded are part objects in the store
}

// add appends one record whose chunks live in packs up to dep, closing the open frame first
// if the record would not fit.
func (w *manifestWriter) add(typ byte, body []byte, dep uint64) {
	size := 1 + uvarintLen(uint64(len(body))) + len(body)
	if len(w.buf)+size > maxFramePlain {
		w.closeFrame()
	}
	if typ == recEntry {
		w.entryOpen = true
		w.entryAt = framePos{Frame: w.idx, Offset: len(w.buf)}
	}
	w.buf = appendRecord(w.buf, typ, body)
	w.dep = max(w.dep, dep)
}

// endEntry records that the entry at path is complete (its end record was added).
func (w *manifestWriter) endEntry(path string) {
	w.entryOpen = false
	w.lastPath = path
}

// boundary is where a resume would restart if the stream stopped now.
func (w *manifestWriter) boundary() framePos {
	if w.entryOpen {
		return w.entryAt
	}
	return framePos{Frame: w.idx, Offset: len(w.buf)}
}

// closeFrame seals the open frame (if it holds anything) and opens the next one.
func (w *manifestWriter) closeFrame() {
	if len(w.buf) == 0 {
		return
	}
	b := w.boundary()
	if b.Frame == w.idx && b.Offset == len(w.buf) {
		b = framePos{Frame: w.idx + 1}
	}
	w.closed = append(w.closed, closedFrame{
		idx:      w.idx,
		wire:     sealFrame(nil, w.dk, w.enc, w.base, w.idx, false, w.buf),
		dep:      w.dep,
		lastPath: w.lastPath,
		boundary: b,
	})
	w.idx++
	w.buf = w.buf[:0]
	w.dep = 0
}

// sealFinal seals the open frame as the final one.
func (w *manifestWriter) sealFinal() []byte {
	return sealFrame(nil, w.dk, w.enc, w.base, w.idx, true, w.buf)
}

func uvarintLen(x uint64) int { return max(1, (bits.Len64(x)+6)/7) }
