package repo

import "sync"

// Buffer size classes are multiples of 128 KiB up to 16 MiB, so that a buffer wastes at most
// 128 KiB: a 1.1 MiB chunk does not pin a 2 MiB buffer, nor a 4 MiB chunk plus its overhead
// an 8 MiB one.
const (
	classStep  = 128 << 10
	numClasses = (16 << 20) / classStep
	// poolRetain bounds the idle bytes a pool keeps; beyond it, returned buffers are left to
	// the garbage collector. (sync.Pool would keep every buffer of the peak until two
	// collections later, once per size class.)
	poolRetain = 32 << 20
	// classRetain bounds the idle buffers of one class.
	classRetain = 8
	// classSlack is how many classes larger than asked get may hand out (384 KiB).
	classSlack = 3
)

// bufPool recycles byte buffers by size class, keeping at most poolRetain idle bytes.
type bufPool struct {
	mu       sync.Mutex
	free     [numClasses][]*[]byte
	retained int
}

// get returns a buffer with len 0 and cap >= n.
func (p *bufPool) get(n int) *[]byte {
	c := max(0, (n+classStep-1)/classStep-1)
	if c >= numClasses {
		b := make([]byte, 0, n)
		return &b
	}
	p.mu.Lock()
	// A slightly larger idle buffer beats a fresh (zeroed) allocation.
	for k := c; k < min(c+classSlack+1, numClasses); k++ {
		if l := len(p.free[k]); l > 0 {
			b := p.free[k][l-1]
			p.free[k][l-1] = nil
			p.free[k] = p.free[k][:l-1]
			p.retained -= cap(*b)
			p.mu.Unlock()
			*b = (*b)[:0]
			return b
		}
	}
	p.mu.Unlock()
	b := make([]byte, 0, (c+1)*classStep)
	return &b
}

// put returns a buffer obtained from get; it is filed under the largest class its capacity
// fills (a buffer that append grew moves up).
func (p *bufPool) put(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)/classStep - 1
	if c < 0 || c >= numClasses {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.retained+cap(*b) > poolRetain || len(p.free[c]) >= classRetain {
		return
	}
	*b = (*b)[:0]
	p.free[c] = append(p.free[c], b)
	p.retained += cap(*b)
}
