package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/storetest"
)

func TestRestartResumesChain(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l1 := openLog(t, Options{Store: s, Signer: key})
	recordEvents(t, l1, 1, 3)
	require.NoError(t, l1.Close(context.Background()))

	// A new worker, with its own store handle on the same location.
	l2 := openLog(t, Options{Store: openStore(t, s.Location().Bucket), Signer: key})
	assert.Equal(t, l1.Head(), l2.Head())
	recordEvents(t, l2, 4, 6)

	rep := verify(t, s, PublicKey(key))
	assert.Equal(t, uint64(6), rep.Records)
	assert.Equal(t, l2.Head(), rep.Head)
	assert.Equal(t, []string{"wf-1", "wf-2", "wf-3", "wf-4", "wf-5", "wf-6"}, actors(t, s, PublicKey(key)))
}

func TestCrashLosesOnlyUnflushedEvents(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l1, err := Open(context.Background(), Options{Store: s, Region: region, Signer: key, Buffered: true, SegmentEvents: 100})
	require.NoError(t, err)
	recordEvents(t, l1, 1, 3)
	require.NoError(t, l1.Flush(context.Background()))
	recordEvents(t, l1, 4, 5) // queued, never written: the worker "crashes" without Close

	l2 := openLog(t, Options{Store: s, Signer: key})
	assert.Equal(t, uint64(3), l2.Head().Seq)
	recordEvents(t, l2, 6, 6)
	assert.Equal(t, []string{"wf-1", "wf-2", "wf-3", "wf-6"}, actors(t, s, PublicKey(key)))
}

func TestGroupCommit(t *testing.T) {
	inner := newStore(t)
	entered, release := make(chan struct{}), make(chan struct{})
	s := storetest.NewFaulty(inner)
	holdFirstPut(s, entered, release)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key})
	const waiting = 10
	var queued sync.WaitGroup
	queued.Add(1 + waiting)
	l.enqueued = queued.Done

	errs := make(chan error, 1+waiting)
	go func() { errs <- l.Record(context.Background(), event(0)) }()
	<-entered // the first event's segment is being written...
	for i := 1; i <= waiting; i++ {
		go func() { errs <- l.Record(context.Background(), event(i)) }()
	}
	queued.Wait() // ...while ten more queue up behind it
	close(release)
	for range 1 + waiting {
		require.NoError(t, <-errs)
	}

	assert.Equal(t, []string{seg(1), seg(2)}, listKeys(t, inner, segmentPrefix(region)))
	assert.Len(t, segLines(t, inner, seg(2)), waiting, "one write for all who waited")
	assert.Equal(t, uint64(1+waiting), verify(t, inner, PublicKey(key)).Records)
}

func TestConcurrentRecordKeepsOneChain(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, SegmentEvents: 7})
	const goroutines, each = 32, 30
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, l.Record(context.Background(), event(g*each+i)))
			}
		})
	}
	wg.Wait()
	got := actors(t, s, PublicKey(key))
	assertAllOnce(t, got, goroutines*each)
	rep := verify(t, s, PublicKey(key))
	assert.Equal(t, l.Head(), rep.Head)
	t.Logf("%d events in %d segments", rep.Records, rep.Segments)
}

func assertAllOnce(t *testing.T, got []string, n int) {
	t.Helper()
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("wf-%d", i)
	}
	sort.Strings(want)
	got = append([]string(nil), got...)
	sort.Strings(got)
	assert.Equal(t, want, got)
}

func TestTwoWritersNeverFork(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	a := openLog(t, Options{Store: s, Signer: key})
	b := openLog(t, Options{Store: openStore(t, s.Location().Bucket), Signer: key})

	// b opened on the empty log; a appends first, so b's first write meets a's segment.
	recordEvents(t, a, 0, 0)
	recordEvents(t, b, 1, 1)
	assert.Equal(t, uint64(2), b.Head().Seq)
	recordEvents(t, a, 2, 2) // and now a is behind
	assert.Equal(t, uint64(3), a.Head().Seq)
	assert.Equal(t, []string{"wf-0", "wf-1", "wf-2"}, actors(t, s, PublicKey(key)))
}

func TestTwoWritersConcurrently(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	logs := []*Log{
		openLog(t, Options{Store: s, Signer: key}),
		openLog(t, Options{Store: openStore(t, s.Location().Bucket), Signer: key}),
	}
	const perLog, goroutines, each = 200, 8, 25
	var wg sync.WaitGroup
	for n, l := range logs {
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					assert.NoError(t, l.Record(context.Background(), event(n*perLog+g*each+i)))
				}
			})
		}
	}
	wg.Wait()
	assertAllOnce(t, actors(t, s, PublicKey(key)), len(logs)*perLog)
}

func TestRecordFailsClosed(t *testing.T) {
	inner := newStore(t)
	s := storetest.NewFaulty(inner)
	failPuts := s.On(storetest.MethodPut).Inject(storetest.Fail(nil))
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key})

	err := l.Record(context.Background(), event(1))
	require.ErrorIs(t, err, storetest.ErrInjected)
	assert.Empty(t, listKeys(t, inner, segmentPrefix(region)))

	failPuts.Remove()
	recordEvents(t, l, 2, 2)
	assert.Equal(t, []string{"wf-2"}, actors(t, inner, PublicKey(key)))
}

func TestAmbiguousWriteFailure(t *testing.T) {
	// The store committed the segment but reported an error: the caller must treat the event
	// as not recorded, and the next write must continue after it rather than fork.
	inner := newStore(t)
	s := storetest.NewFaulty(inner)
	s.On(storetest.MethodPut).Times(1).Inject(storetest.Ambiguous(nil))
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key})
	require.ErrorIs(t, l.Record(context.Background(), event(1)), storetest.ErrInjected)

	// While the store cannot be read, nothing can be appended safely.
	failGets := s.On(storetest.MethodGet).Inject(storetest.Fail(nil))
	require.ErrorIs(t, l.Record(context.Background(), event(2)), storetest.ErrInjected)

	failGets.Remove()
	recordEvents(t, l, 3, 3)
	assert.Equal(t, []string{"wf-1", "wf-3"}, actors(t, inner, PublicKey(key)), "at least once")
	assert.Equal(t, uint64(2), l.Head().Seq)
}

func TestBufferedWriteFailureFailsClosedUntilFlushSucceeds(t *testing.T) {
	inner := newStore(t)
	s := storetest.NewFaulty(inner)
	failPuts := s.On(storetest.MethodPut).Inject(storetest.Fail(nil))
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, Buffered: true})
	recordEvents(t, l, 1, 2)
	require.ErrorIs(t, l.Flush(context.Background()), storetest.ErrInjected)
	require.ErrorIs(t, l.Record(context.Background(), event(3)), storetest.ErrInjected, "refuses while queued events cannot be written")

	failPuts.Remove()
	require.NoError(t, l.Flush(context.Background()))
	recordEvents(t, l, 4, 4)
	require.NoError(t, l.Close(context.Background()))
	assert.Equal(t, []string{"wf-1", "wf-2", "wf-4"}, actors(t, inner, PublicKey(key)))
}

func TestCloseReportsLostBufferedEvents(t *testing.T) {
	s := storetest.NewFaulty(newStore(t))
	s.On(storetest.MethodPut).Inject(storetest.Fail(nil))
	l := openLog(t, Options{Store: s, Signer: newSigner(t), Buffered: true})
	recordEvents(t, l, 1, 3)
	err := l.Close(context.Background())
	require.ErrorIs(t, err, storetest.ErrInjected)
	assert.ErrorContains(t, err, "3 buffered events were not written")
}

func TestBufferedWritesFullSegments(t *testing.T) {
	inner := newStore(t)
	written := make(chan string, 10)
	s := storetest.NewFaulty(inner)
	s.On(storetest.MethodPut).Inject(storetest.After(func(_ context.Context, c storetest.Call) error {
		if c.Err == nil {
			written <- c.Key
		}
		return nil
	}))
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, Buffered: true, SegmentEvents: 3, CheckpointEvery: 1000})
	recordEvents(t, l, 1, 3)
	assert.Equal(t, seg(1), <-written, "a full segment is written without Flush")
	recordEvents(t, l, 4, 10)
	require.NoError(t, l.Flush(context.Background()))

	keys := listKeys(t, inner, segmentPrefix(region))
	assert.Equal(t, []string{seg(1), seg(4), seg(7), seg(10)}, keys)
	for i, want := range []int{3, 3, 3, 1} {
		assert.Len(t, segLines(t, inner, keys[i]), want, keys[i])
	}
	assert.Equal(t, uint64(10), verify(t, inner, PublicKey(key)).Records)
}

func TestCancelledRecordIsWithdrawn(t *testing.T) {
	inner := newStore(t)
	entered, release := make(chan struct{}), make(chan struct{})
	s := storetest.NewFaulty(inner)
	holdFirstPut(s, entered, release)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key})
	queued := make(chan struct{}, 2)
	l.enqueued = func() { queued <- struct{}{} }

	first := make(chan error, 1)
	go func() { first <- l.Record(context.Background(), event(1)) }()
	<-entered
	<-queued
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { second <- l.Record(ctx, event(2)) }()
	<-queued
	cancel()
	require.ErrorIs(t, <-second, context.Canceled)
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, l.Flush(context.Background()))
	assert.Equal(t, []string{"wf-1"}, actors(t, inner, PublicKey(key)))
}

func TestRecordWithDoneContextWritesNothing(t *testing.T) {
	s := newStore(t)
	l := openLog(t, Options{Store: s, Signer: newSigner(t)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, l.Record(ctx, event(1)), context.Canceled)
	require.NoError(t, l.Flush(context.Background()))
	assert.Empty(t, listKeys(t, s, segmentPrefix(region)))
}

func TestClosedLogRefuses(t *testing.T) {
	l := openLog(t, Options{Store: newStore(t), Signer: newSigner(t)})
	require.NoError(t, l.Close(context.Background()))
	require.NoError(t, l.Close(context.Background()), "Close is idempotent")
	assert.ErrorIs(t, l.Record(context.Background(), event(1)), ErrClosed)
	assert.ErrorIs(t, l.Flush(context.Background()), ErrClosed)
}

func TestRecordRejectsInvalidEvent(t *testing.T) {
	s := newStore(t)
	l := openLog(t, Options{Store: s, Signer: newSigner(t)})
	err := l.Record(context.Background(), Event{Kind: KindCopy})
	require.ErrorIs(t, err, ErrInvalidEvent)
	assert.Empty(t, listKeys(t, s, segmentPrefix(region)))
}

func TestRecordTimesNeverGoBackwards(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	clock := newClock()
	clock.step = -time.Minute
	l := openLog(t, Options{Store: s, Signer: key, Clock: clock.Now})
	recordEvents(t, l, 1, 5)
	var times []time.Time
	verify(t, s, PublicKey(key), WithEntries(func(e Entry) error {
		times = append(times, e.Time)
		return nil
	}))
	require.Len(t, times, 5)
	for _, tm := range times[1:] {
		assert.Equal(t, times[0], tm)
	}
}

func TestOpenRefusesDamagedTail(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key})
	recordEvents(t, l, 1, 2)
	require.NoError(t, l.Close(context.Background()))

	t.Run("other key", func(t *testing.T) {
		_, err := Open(context.Background(), Options{Store: s, Region: region, Signer: newSigner(t)})
		requireChainError(t, err, seg(2), 2, "signature invalid")
	})
	t.Run("edited", func(t *testing.T) {
		data := getObject(t, s, seg(2))
		putObject(t, s, seg(2), bytes.Replace(data, []byte(`"bytes":200`), []byte(`"bytes":201`), 1))
		_, err := Open(context.Background(), Options{Store: s, Region: region, Signer: key})
		requireChainError(t, err, seg(2), 2, "signature invalid")
	})
	t.Run("stray object", func(t *testing.T) {
		putObject(t, s, segmentPrefix(region)+"zz", []byte("x"))
		_, err := Open(context.Background(), Options{Store: s, Region: region, Signer: key})
		requireChainError(t, err, segmentPrefix(region)+"zz", 0, "unexpected object")
	})
}

func TestOpenFailsWhenStoreFails(t *testing.T) {
	s := storetest.NewFaulty(newStore(t))
	s.On(storetest.MethodList).Inject(storetest.Fail(nil))
	_, err := Open(context.Background(), Options{Store: s, Region: region, Signer: newSigner(t)})
	assert.ErrorIs(t, err, storetest.ErrInjected)
}

func TestOpenRejectsBadOptions(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	tests := []struct {
		name string
		give Options
		want string
	}{
		{"no store", Options{Region: region, Signer: key}, "no store"},
		{"bad region", Options{Store: s, Region: "eu/west", Signer: key}, "region"},
		{"empty region", Options{Store: s, Signer: key}, "region"},
		{"no signer", Options{Store: s, Region: region}, "signer"},
		{"huge segments", Options{Store: s, Region: region, Signer: key, SegmentEvents: 1 << 30}, "SegmentEvents"},
		{"no conditional create", Options{Store: withCapabilities(s, providers.Capabilities{}), Region: region, Signer: key}, "no atomic conditional create"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.give)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestRetentionIgnoredWhereUnsupported(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s := withCapabilities(newStore(t), providers.Capabilities{ConditionalCreate: true})
	var mu sync.Mutex
	var puts []providers.PutOptions
	s.On(storetest.MethodPut).Inject(storetest.Before(func(_ context.Context, c storetest.Call) error {
		mu.Lock()
		defer mu.Unlock()
		puts = append(puts, c.PutOptions)
		return nil
	}))
	l := openLog(t, Options{Store: s, Signer: newSigner(t), Logger: zap.New(core), Retention: func(now time.Time) providers.Retention {
		return providers.Retention{Mode: providers.Governance, Until: now.Add(time.Hour)}
	}})
	recordEvents(t, l, 1, 1)
	assert.Equal(t, 1, logs.FilterMessageSnippet("does not enforce retention").Len())
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, puts)
	for _, p := range puts {
		assert.True(t, p.IfNotExists)
		assert.True(t, p.Retention.Until.IsZero())
	}
}

func TestCheckpointFailureDoesNotFailRecord(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	inner := newStore(t)
	s := storetest.NewFaulty(inner)
	s.On(storetest.MethodPut).Where(func(c storetest.Call) bool {
		_, ok := parseSeqName(c.Key, headPrefix(region), headExt)
		return ok
	}).Inject(storetest.Fail(nil))
	l := openLog(t, Options{Store: s, Signer: newSigner(t), CheckpointEvery: 1, Logger: zap.New(core)})
	recordEvents(t, l, 1, 2)
	assert.Equal(t, 2, logs.FilterMessageSnippet("checkpoint failed").Len())
	assert.Empty(t, listKeys(t, inner, headPrefix(region)))
	assert.True(t, errors.Is(l.Close(context.Background()), storetest.ErrInjected), "Close reports its own checkpoint")
}
