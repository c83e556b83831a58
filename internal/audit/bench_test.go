package audit

import (
	"context"
	"testing"
)

// BenchmarkRecord measures durable Records per second on the local store (each segment is
// fsynced), from one goroutine and from many, where group commit shares one write among all
// the events that queue behind it, and in buffered mode.
func BenchmarkRecord(b *testing.B) {
	for _, bm := range []struct {
		name        string
		parallelism int // goroutines per GOMAXPROCS; 0: one goroutine
		buffered    bool
	}{
		{"serial", 0, false},
		{"parallel-x1", 1, false},
		{"parallel-x16", 16, false},
		{"parallel-x64", 64, false},
		{"buffered-parallel-x16", 16, true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s := newStore(b)
			l := openLog(b, Options{Store: s, Signer: newSigner(b), Buffered: bm.buffered})
			ctx := context.Background()
			e := event(1)
			b.ReportAllocs()
			b.ResetTimer()
			if bm.parallelism == 0 {
				for range b.N {
					if err := l.Record(ctx, e); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bm.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := l.Record(ctx, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			rep, err := Verify(ctx, s, region, l.PublicKey())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(rep.Records)/float64(max(rep.Segments, 1)), "events/segment")
		})
	}
}
