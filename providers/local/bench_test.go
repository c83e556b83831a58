package local

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/drflow/drflow/providers"
)

const benchSize = 64 << 20

func benchData(b *testing.B) []byte {
	data := make([]byte, benchSize)
	_, _ = rand.NewChaCha8([32]byte{}).Read(data)
	return data
}

func BenchmarkPut(b *testing.B) {
	s := newStore(b)
	data := benchData(b)
	ctx := context.Background()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Put(ctx, "bench/object", bytes.NewReader(data), providers.PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	if _, err := s.Put(ctx, "bench/object", bytes.NewReader(benchData(b)), providers.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		rc, err := s.Get(ctx, "bench/object", providers.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		// A plain writer, so the figure is what a reader of the stream sees, not sendfile's.
		if _, err := io.Copy(struct{ io.Writer }{io.Discard}, rc); err != nil {
			b.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
