package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"runtime"
	"syscall"
	"time"
)

// baselineBytes is how much each single-core baseline processes: enough to take a second or
// so on current hardware, and a fixed bound rather than a time-driven loop.
const baselineBytes = 1 << 30

// AESGCMThroughput measures one core sealing 1 MiB messages with AES-256-GCM, in MB/s.
func AESGCMThroughput() float64 {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	buf := make([]byte, 1<<20)
	out := make([]byte, 0, len(buf)+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	return oneCore(func() {
		for range baselineBytes / len(buf) {
			nonce[0]++
			out = aead.Seal(out[:0], nonce, buf, nil)
		}
	})
}

// SHA256Throughput measures one core hashing 1 MiB blocks with SHA-256, in MB/s.
func SHA256Throughput() float64 {
	buf := make([]byte, 1<<20)
	h := sha256.New()
	return oneCore(func() {
		for range baselineBytes / len(buf) {
			h.Write(buf)
		}
		h.Sum(nil)
	})
}

// oneCore runs work on one locked OS thread and converts its time into MB/s of baselineBytes.
func oneCore(work func()) float64 {
	done := make(chan time.Duration)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := time.Now()
		work()
		done <- time.Since(start)
	}()
	return mbps(baselineBytes, <-done)
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// PeakRSSMiB is the process's peak resident set size so far.
func PeakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}
