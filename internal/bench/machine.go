package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"os"
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

// diskProbeBytes is what DiskWriteThroughput writes: large enough to pass the drive's cache.
const diskProbeBytes = 512 << 20

// DiskWriteThroughput measures writing to dir's file system in 1 MiB writes, ended by an
// fsync, in MB/s: the ceiling for a restore into that file system.
func DiskWriteThroughput(dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "disk-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8)
	}
	start := time.Now()
	for range diskProbeBytes / len(buf) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return mbps(diskProbeBytes, time.Since(start)), nil
}

// PeakRSSMiB is the process's peak resident set size so far.
func PeakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}
