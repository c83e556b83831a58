package keys

import (
	"crypto/rand"
	"testing"
)

func benchKey(b *testing.B) (*DataKey, []byte) {
	b.Helper()
	k := newTestKey(b, "payroll", 1, fixedSecret(1))
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	return k, data
}

func BenchmarkSeal(b *testing.B) {
	k, data := benchKey(b)
	aad := []byte("datasets/payroll/chunks/0123")
	buf := make([]byte, 0, len(data)+k.Overhead())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = k.Seal(buf[:0], data, aad)
	}
}

func BenchmarkOpen(b *testing.B) {
	k, data := benchKey(b)
	aad := []byte("datasets/payroll/chunks/0123")
	sealed := k.Seal(nil, data, aad)
	buf := make([]byte, 0, len(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = k.Open(buf[:0], sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkID(b *testing.B) {
	k, data := benchKey(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_ = k.ChunkID(data)
	}
}
