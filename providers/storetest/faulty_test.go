package storetest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/storetest"
)

func newLocal(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.Open(local.Options{Root: t.TempDir(), Location: providers.Location{Name: "faulty"}})
	require.NoError(t, err)
	return s
}

func put(t *testing.T, st providers.Store, key, data string) {
	t.Helper()
	_, err := st.Put(context.Background(), key, strings.NewReader(data), providers.PutOptions{})
	require.NoError(t, err)
}

// read returns what a Get of key delivers before its body ends, and the error it ends with.
func read(st providers.Store, key string, opts providers.GetOptions) (string, error) {
	rc, err := st.Get(context.Background(), key, opts)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}

func content(t *testing.T, st providers.Store, key string) string {
	t.Helper()
	data, err := read(st, key, providers.GetOptions{})
	require.NoError(t, err)
	return data
}

func requireMissing(t *testing.T, st providers.Store, key string) {
	t.Helper()
	_, err := st.Stat(context.Background(), key)
	require.ErrorIs(t, err, providers.ErrNotFound, key)
}

// call makes one call of m on key and returns its error (for Get, the body's too).
func call(ctx context.Context, st providers.Store, m storetest.Method, key string) error {
	switch m {
	case storetest.MethodPut:
		_, err := st.Put(ctx, key, strings.NewReader("new"), providers.PutOptions{})
		return err
	case storetest.MethodGet:
		_, err := read(st, key, providers.GetOptions{})
		return err
	case storetest.MethodStat:
		_, err := st.Stat(ctx, key)
		return err
	case storetest.MethodList:
		return st.List(ctx, key, func(providers.ObjectInfo) error { return nil })
	case storetest.MethodDelete:
		return st.Delete(ctx, key)
	case storetest.MethodSetLegalHold:
		return st.SetLegalHold(ctx, key, true)
	case storetest.MethodSetRetention:
		return st.SetRetention(ctx, key, providers.Retention{Mode: providers.Governance, Until: time.Now().Add(time.Hour)})
	}
	panic("unknown method " + m)
}

var methods = []storetest.Method{
	storetest.MethodPut, storetest.MethodGet, storetest.MethodStat, storetest.MethodList,
	storetest.MethodDelete, storetest.MethodSetLegalHold, storetest.MethodSetRetention,
}

// Without rules a Faulty is the store it wraps: the conformance suite passes through it.
func TestFaultyWithoutRulesConforms(t *testing.T) {
	var mu sync.Mutex
	var wrappers []*storetest.Faulty
	storetest.Run(t, func(t *testing.T) providers.Store {
		f := storetest.NewFaulty(newLocal(t))
		mu.Lock()
		defer mu.Unlock()
		wrappers = append(wrappers, f)
		return f
	}, storetest.Options{LargeObjectSize: 8 << 20})
	calls := 0
	for _, f := range wrappers {
		calls += f.Calls()
		assert.Zero(t, f.Injected())
	}
	assert.Positive(t, calls)
}

func TestFaultyFailsEveryMethodWithoutReachingTheStore(t *testing.T) {
	ctx := context.Background()
	for _, m := range methods {
		t.Run(string(m), func(t *testing.T) {
			inner := newLocal(t)
			put(t, inner, "k", "old")
			before, err := inner.Stat(ctx, "k")
			require.NoError(t, err)
			f := storetest.NewFaulty(inner)
			f.On(m).Inject(storetest.Fail(nil))

			err = call(ctx, f, m, "k")
			require.ErrorIs(t, err, storetest.ErrInjected)
			var injected *storetest.InjectedError
			require.ErrorAs(t, err, &injected)
			assert.Equal(t, storetest.InjectedError{Method: m, Key: "k", Fault: "fail"}, *injected)
			assert.Equal(t, "storetest: injected fault on k ("+string(m)+", fail)", err.Error())

			after, err := inner.Stat(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, before, after, "the store is untouched")
			assert.Equal(t, "old", content(t, inner, "k"))
			assert.Equal(t, 1, f.Calls(m))
			assert.Equal(t, 1, f.Calls())
			assert.Equal(t, 1, f.Injected(m))
		})
	}
}

func TestFaultySelectsByKey(t *testing.T) {
	keys := []string{"a/1", "a/2", "a/b/3", "b/1"}
	tests := []struct {
		name string
		rule func(f *storetest.Faulty) *storetest.Rule
		want []string
	}{
		{"key", func(f *storetest.Faulty) *storetest.Rule { return f.On(storetest.MethodPut).Key("a/1") }, []string{"a/1"}},
		{"prefix", func(f *storetest.Faulty) *storetest.Rule { return f.On(storetest.MethodPut).Prefix("a/") }, []string{"a/1", "a/2", "a/b/3"}},
		{"glob", func(f *storetest.Faulty) *storetest.Rule { return f.On(storetest.MethodPut).Glob("a/*") }, []string{"a/1", "a/2"}},
		{"where", func(f *storetest.Faulty) *storetest.Rule {
			return f.On(storetest.MethodPut).Where(func(c storetest.Call) bool { return strings.HasSuffix(c.Key, "1") })
		}, []string{"a/1", "b/1"}},
		{"conditions add up", func(f *storetest.Faulty) *storetest.Rule { return f.On(storetest.MethodPut).Prefix("a/").Glob("*/?") }, []string{"a/1", "a/2"}},
		{"any method", func(f *storetest.Faulty) *storetest.Rule { return f.On().Prefix("b/") }, []string{"b/1"}},
		{"other method", func(f *storetest.Faulty) *storetest.Rule { return f.On(storetest.MethodGet, storetest.MethodDelete) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := newLocal(t)
			f := storetest.NewFaulty(inner)
			tt.rule(f).Inject(storetest.Fail(providers.ErrPermission))
			var failed []string
			for _, k := range keys {
				_, err := f.Put(context.Background(), k, strings.NewReader(k), providers.PutOptions{})
				if err != nil {
					require.ErrorIs(t, err, providers.ErrPermission)
					require.ErrorIs(t, err, storetest.ErrInjected)
					failed = append(failed, k)
					requireMissing(t, inner, k)
				} else {
					assert.Equal(t, k, content(t, inner, k))
				}
			}
			assert.Equal(t, tt.want, failed)
			assert.Equal(t, len(tt.want), f.Injected(storetest.MethodPut))
		})
	}
}

func TestFaultySkipAndTimes(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	put(t, inner, "k", "v")
	put(t, inner, "other", "v")
	f := storetest.NewFaulty(inner)
	r := f.On(storetest.MethodStat).Key("k").Skip(1).Times(2).Inject(storetest.Fail(providers.ErrNotFound))

	var got []bool
	for range 5 {
		_, err := f.Stat(ctx, "other") // not selected: counts neither towards Skip nor Times
		require.NoError(t, err)
		_, err = f.Stat(ctx, "k")
		if err != nil {
			require.ErrorIs(t, err, providers.ErrNotFound)
			require.ErrorIs(t, err, storetest.ErrInjected)
		}
		got = append(got, err != nil)
	}
	assert.Equal(t, []bool{false, true, true, false, false}, got)
	assert.Equal(t, 2, r.Fired())
	assert.Equal(t, 10, f.Calls(storetest.MethodStat))
	assert.Equal(t, 2, f.Injected(storetest.MethodStat))
	assert.Zero(t, f.Injected(storetest.MethodGet, storetest.MethodPut))
}

func TestFaultyFirstSelectingRuleWins(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	put(t, inner, "k", "v")
	f := storetest.NewFaulty(inner)
	first := f.On(storetest.MethodDelete).Times(1).Inject(storetest.Fail(providers.ErrPermission))
	second := f.On(storetest.MethodDelete).Inject(storetest.ConnReset())

	err := f.Delete(ctx, "k")
	require.ErrorIs(t, err, providers.ErrPermission)
	assert.NotErrorIs(t, err, syscall.ECONNRESET)

	err = f.Delete(ctx, "k")
	require.ErrorIs(t, err, syscall.ECONNRESET, "the first rule is spent")
	require.ErrorIs(t, err, storetest.ErrInjected)
	assert.Contains(t, err.Error(), "injected fault on k (Delete, connection reset): read tcp: read: connection reset by peer")
	content(t, inner, "k")

	second.Remove()
	require.NoError(t, f.Delete(ctx, "k"))
	requireMissing(t, inner, "k")
	assert.Equal(t, 1, first.Fired())
	assert.Equal(t, 1, second.Fired())
	assert.Equal(t, 3, f.Calls(storetest.MethodDelete))
	assert.Equal(t, 2, f.Injected(storetest.MethodDelete))
}

func TestFaultyDelay(t *testing.T) {
	t.Run("passes the call on", func(t *testing.T) {
		inner := newLocal(t)
		f := storetest.NewFaulty(inner)
		f.On(storetest.MethodPut).Inject(storetest.Delay(time.Millisecond))
		put(t, f, "k", "v")
		assert.Equal(t, "v", content(t, inner, "k"))
		assert.Equal(t, 1, f.Injected())
	})
	t.Run("cancelled context", func(t *testing.T) {
		inner := newLocal(t)
		put(t, inner, "k", "v")
		f := storetest.NewFaulty(inner)
		f.On(storetest.MethodDelete).Inject(storetest.Delay(time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := f.Delete(ctx, "k")
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, storetest.ErrInjected)
		assert.Equal(t, "v", content(t, inner, "k"), "the call did not reach the store")
	})
	t.Run("deadline during the delay", func(t *testing.T) {
		inner := newLocal(t)
		f := storetest.NewFaulty(inner)
		f.On(storetest.MethodPut).Inject(storetest.Delay(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := f.Put(ctx, "k", strings.NewReader("v"), providers.PutOptions{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		requireMissing(t, inner, "k")
	})
}

func TestFaultyShortRead(t *testing.T) {
	const data = "0123456789abcdefghijklmnopqrstuvwxyz"
	tests := []struct {
		name    string
		fault   storetest.Fault
		opts    providers.GetOptions
		want    string
		wantErr error
	}{
		{"truncated", storetest.ShortRead(10, nil), providers.GetOptions{}, data[:10], io.ErrUnexpectedEOF},
		{"empty", storetest.ShortRead(0, nil), providers.GetOptions{}, "", io.ErrUnexpectedEOF},
		{"never EOF", storetest.ShortRead(1000, nil), providers.GetOptions{}, data, io.ErrUnexpectedEOF},
		{"reset mid-body", storetest.ShortRead(5, storetest.ErrConnReset), providers.GetOptions{}, data[:5], syscall.ECONNRESET},
		{"range", storetest.ShortRead(5, nil), providers.GetOptions{Range: &providers.ByteRange{Offset: 20, Length: -1}}, data[20:25], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := newLocal(t)
			put(t, inner, "k", data)
			f := storetest.NewFaulty(inner)
			f.On(storetest.MethodGet).Inject(tt.fault)
			got, err := read(f, "k", tt.opts)
			assert.Equal(t, tt.want, got)
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorIs(t, err, storetest.ErrInjected)
			assert.Contains(t, err.Error(), "(Get, short read)")
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestFaultyPartialWrite(t *testing.T) {
	ctx := context.Background()
	t.Run("no object", func(t *testing.T) {
		inner := newLocal(t)
		f := storetest.NewFaulty(inner)
		f.On(storetest.MethodPut).Inject(storetest.PartialWrite(1000, nil))
		body := &countingReader{r: bytes.NewReader(make([]byte, 1<<20))}
		_, err := f.Put(ctx, "k", body, providers.PutOptions{})
		require.ErrorIs(t, err, storetest.ErrInjected)
		assert.Contains(t, err.Error(), "(Put, partial write)")
		assert.Equal(t, int64(1000), body.n.Load(), "the store consumed the body up to the cut")
		requireMissing(t, inner, "k")
	})
	t.Run("previous object intact", func(t *testing.T) {
		inner := newLocal(t)
		put(t, inner, "k", "old")
		f := storetest.NewFaulty(inner)
		f.On(storetest.MethodPut).Inject(storetest.PartialWrite(3, storetest.ErrConnReset))
		_, err := f.Put(ctx, "k", strings.NewReader("brand new"), providers.PutOptions{})
		require.ErrorIs(t, err, syscall.ECONNRESET)
		assert.Equal(t, "old", content(t, inner, "k"))
	})
	t.Run("store fails first", func(t *testing.T) {
		inner := newLocal(t)
		put(t, inner, "k", "old")
		f := storetest.NewFaulty(inner)
		f.On(storetest.MethodPut).Inject(storetest.PartialWrite(3, nil))
		_, err := f.Put(ctx, "k", strings.NewReader("brand new"), providers.PutOptions{IfNotExists: true})
		require.ErrorIs(t, err, providers.ErrExists)
		assert.NotErrorIs(t, err, storetest.ErrInjected)
	})
}

func TestFaultyAmbiguousCommits(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	put(t, inner, "held", "v")
	put(t, inner, "gone", "v")
	put(t, inner, "kept", "v")
	f := storetest.NewFaulty(inner)
	f.On().Inject(storetest.Ambiguous(nil))

	_, err := f.Put(ctx, "new", strings.NewReader("committed"), providers.PutOptions{})
	require.ErrorIs(t, err, storetest.ErrInjected)
	assert.Equal(t, "committed", content(t, inner, "new"))

	require.ErrorIs(t, f.Delete(ctx, "gone"), storetest.ErrInjected)
	requireMissing(t, inner, "gone")

	require.ErrorIs(t, f.SetLegalHold(ctx, "held", true), storetest.ErrInjected)
	info, err := inner.Stat(ctx, "held")
	require.NoError(t, err)
	assert.True(t, info.LegalHold)

	// A call that the store refuses is not ambiguous.
	_, err = f.Put(ctx, "kept", strings.NewReader("x"), providers.PutOptions{IfNotExists: true})
	require.ErrorIs(t, err, providers.ErrExists)
	assert.NotErrorIs(t, err, storetest.ErrInjected)

	// Reads are not mutations: an Ambiguous rule on any method leaves them alone.
	assert.Equal(t, "v", content(t, f, "kept"))
	assert.Equal(t, 4, f.Injected())
}

func TestFaultyBeforeHookHoldsTheCall(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	f := storetest.NewFaulty(inner)
	entered, release := make(chan struct{}), make(chan struct{})
	f.On(storetest.MethodPut).Key("k").Times(1).Inject(storetest.Before(func(context.Context, storetest.Call) error {
		close(entered)
		<-release
		return nil
	}))
	done := make(chan error, 1)
	go func() {
		_, err := f.Put(ctx, "k", strings.NewReader("v"), providers.PutOptions{})
		done <- err
	}()
	<-entered
	requireMissing(t, inner, "k")
	put(t, f, "other", "w") // the held call blocks no other
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, "v", content(t, inner, "k"))
	assert.Equal(t, 2, f.Calls(storetest.MethodPut))
	assert.Equal(t, 1, f.Injected(storetest.MethodPut))
}

func TestFaultyHooksRaceTheCall(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	put(t, inner, "k", "listed")
	f := storetest.NewFaulty(inner)

	// Another writer replaces the object just before it is read.
	f.On(storetest.MethodGet).Key("k").Inject(storetest.Before(func(ctx context.Context, c storetest.Call) error {
		_, err := inner.Put(ctx, c.Key, strings.NewReader("replaced"), providers.PutOptions{})
		return err
	}))
	assert.Equal(t, "replaced", content(t, f, "k"))

	// Someone places a hold right after Stat reported none.
	var seen []string
	f.On(storetest.MethodStat).Inject(storetest.After(func(ctx context.Context, c storetest.Call) error {
		seen = append(seen, fmt.Sprint(c.Key, " ", c.Err))
		if c.Err != nil {
			return nil
		}
		return inner.SetLegalHold(ctx, c.Key, true)
	}))
	info, err := f.Stat(ctx, "k")
	require.NoError(t, err)
	assert.False(t, info.LegalHold, "Stat answered before the hold")
	_, err = f.Stat(ctx, "missing")
	require.ErrorIs(t, err, providers.ErrNotFound, "the store's own error")
	assert.NotErrorIs(t, err, storetest.ErrInjected)
	info, err = inner.Stat(ctx, "k")
	require.NoError(t, err)
	assert.True(t, info.LegalHold)
	require.Len(t, seen, 2)
	assert.Equal(t, "k <nil>", seen[0])
	assert.Contains(t, seen[1], "missing")
	assert.Contains(t, seen[1], providers.ErrNotFound.Error())
}

func TestFaultyHookErrors(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	put(t, inner, "k", "v")
	f := storetest.NewFaulty(inner)
	f.On(storetest.MethodDelete).Inject(storetest.Before(func(context.Context, storetest.Call) error {
		return providers.ErrPermission
	}))
	var call storetest.Call
	f.On(storetest.MethodGet).Inject(storetest.After(func(_ context.Context, c storetest.Call) error {
		call = c
		return errors.New("lost the body")
	}))

	err := f.Delete(ctx, "k")
	require.ErrorIs(t, err, providers.ErrPermission)
	require.ErrorIs(t, err, storetest.ErrInjected)
	assert.Equal(t, "v", content(t, inner, "k"), "a failing Before hook stops the call")

	rng := &providers.ByteRange{Offset: 0, Length: 1}
	rc, err := f.Get(ctx, "k", providers.GetOptions{Range: rng})
	require.ErrorIs(t, err, storetest.ErrInjected)
	assert.EqualError(t, err, "storetest: injected fault on k (Get, after hook): lost the body")
	assert.Nil(t, rc)
	assert.Equal(t, storetest.Call{Method: storetest.MethodGet, Key: "k", GetOptions: providers.GetOptions{Range: rng}}, call)
}

func TestFaultyCallDescribesArguments(t *testing.T) {
	ctx := context.Background()
	inner := newLocal(t)
	put(t, inner, "k", "v")
	f := storetest.NewFaulty(inner)
	var mu sync.Mutex
	var calls []storetest.Call
	f.On().Inject(storetest.Before(func(_ context.Context, c storetest.Call) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
		return nil
	}))
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	_, err := f.Put(ctx, "p", strings.NewReader("x"), providers.PutOptions{IfNotExists: true, ContentType: "text/plain"})
	require.NoError(t, err)
	require.NoError(t, f.SetLegalHold(ctx, "k", false))
	require.NoError(t, f.SetRetention(ctx, "p", providers.Retention{Mode: providers.Governance, Until: until}))
	require.NoError(t, f.List(ctx, "p", func(providers.ObjectInfo) error { return nil }))
	assert.Equal(t, []storetest.Call{
		{Method: storetest.MethodPut, Key: "p", PutOptions: providers.PutOptions{IfNotExists: true, ContentType: "text/plain"}},
		{Method: storetest.MethodSetLegalHold, Key: "k", LegalHold: false},
		{Method: storetest.MethodSetRetention, Key: "p", Retention: providers.Retention{Mode: providers.Governance, Until: until}},
		{Method: storetest.MethodList, Key: "p"},
	}, calls)
}

// randomTrial makes the same 200 calls through a Faulty in random mode and describes each
// outcome: "" for success, the fault's kind for an injected fault, or the store's error.
func randomTrial(t *testing.T, seed uint64) (outcomes []string, injected int) {
	inner := newLocal(t)
	for i := range 10 {
		put(t, inner, fmt.Sprintf("k%d", i), "v")
	}
	f := storetest.NewFaulty(inner)
	f.On().Random(seed, 0.3, storetest.Fail(nil), storetest.ConnReset(), storetest.ShortRead(2, nil), storetest.Ambiguous(nil))
	for i := range 200 {
		key := fmt.Sprintf("k%d", i%10)
		var err error
		if i%2 == 0 {
			_, err = f.Put(context.Background(), key, strings.NewReader(key), providers.PutOptions{})
		} else {
			_, err = read(f, key, providers.GetOptions{})
		}
		var ie *storetest.InjectedError
		switch {
		case err == nil:
			outcomes = append(outcomes, "")
		case errors.As(err, &ie):
			outcomes = append(outcomes, ie.Fault)
		default:
			outcomes = append(outcomes, "store: "+err.Error())
		}
	}
	return outcomes, f.Injected()
}

func TestFaultyRandomIsReproducible(t *testing.T) {
	a, injected := randomTrial(t, 42)
	again, _ := randomTrial(t, 42)
	other, _ := randomTrial(t, 43)
	assert.Equal(t, a, again, "same seed, same faults")
	assert.NotEqual(t, a, other, "another seed, other faults")

	faults := 0
	for i, o := range a {
		switch o {
		case "":
		case "ambiguous commit":
			assert.Zero(t, i%2, "only Puts commit ambiguously (call %d)", i)
			faults++
		case "short read":
			assert.Equal(t, 1, i%2, "only Gets read short (call %d)", i)
			faults++
		case "fail", "connection reset":
			faults++
		default:
			t.Errorf("call %d: unexpected outcome %q", i, o)
		}
	}
	assert.Equal(t, injected, faults)
	assert.InDelta(t, 60, faults, 30, "about p of 200 calls")
}

func TestFaultyRandomInjectsOnlyFaultsThatApply(t *testing.T) {
	f := storetest.NewFaulty(newLocal(t))
	f.On().Random(7, 1, storetest.ShortRead(1, nil))
	for i := range 20 {
		put(t, f, fmt.Sprint("k", i), "v")
	}
	assert.Zero(t, f.Injected())
	_, err := read(f, "k1", providers.GetOptions{})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, 1, f.Injected(storetest.MethodGet))
}

func TestFaultyConcurrentCallsShareTimes(t *testing.T) {
	f := storetest.NewFaulty(newLocal(t))
	r := f.On(storetest.MethodPut).Times(10).Inject(storetest.Fail(nil))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				_, err := f.Put(context.Background(), fmt.Sprintf("g%d/%d", g, i), strings.NewReader("v"), providers.PutOptions{})
				if errors.Is(err, storetest.ErrInjected) {
					failed.Add(1)
				} else {
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(10), failed.Load())
	assert.Equal(t, 10, r.Fired())
	assert.Equal(t, 200, f.Calls(storetest.MethodPut))
	assert.Equal(t, 10, f.Injected())
}

func TestFaultyOnAnyMethodNarrowsToTheFault(t *testing.T) {
	inner := newLocal(t)
	f := storetest.NewFaulty(inner)
	f.On().Inject(storetest.ShortRead(1, nil))
	put(t, f, "k", "abc")
	got, err := read(f, "k", providers.GetOptions{})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, "a", got)
	assert.Equal(t, 0, f.Injected(storetest.MethodPut))
	assert.Equal(t, 1, f.Injected(storetest.MethodGet))
}

func TestFaultyRefusesMisuse(t *testing.T) {
	f := storetest.NewFaulty(newLocal(t))
	assert.Panics(t, func() { f.On(storetest.MethodPut).Inject(storetest.ShortRead(1, nil)) })
	assert.Panics(t, func() { f.On(storetest.MethodGet).Inject(storetest.PartialWrite(1, nil)) })
	assert.Panics(t, func() { f.On(storetest.MethodStat).Inject(storetest.Ambiguous(nil)) })
	assert.Panics(t, func() { f.On().Inject(storetest.Fault{}) })
	assert.Panics(t, func() { f.On("Close") })
	assert.Panics(t, func() { f.On().Glob("[") })
	assert.Panics(t, func() { f.On().Times(0) })
	assert.Panics(t, func() { f.On().Random(1, 1.5, storetest.Fail(nil)) })
	assert.Panics(t, func() { f.On().Random(1, 0.5) })
	r := f.On(storetest.MethodGet).Key("x").Inject(storetest.Fail(nil))
	assert.Panics(t, func() { r.Prefix("y") }, "an active rule does not change")
	assert.Panics(t, func() { r.Inject(storetest.Fail(nil)) }, "nor is it injected twice")
	put(t, f, "y", "v")
	assert.Equal(t, "v", content(t, f, "y"), "the rule still selects x only")
}

func TestFaultyCapabilities(t *testing.T) {
	inner := newLocal(t)
	f := storetest.NewFaulty(inner)
	assert.Equal(t, inner.Capabilities(), f.Capabilities())
	assert.Equal(t, inner.Location(), f.Location())
	f.SetCapabilities(providers.Capabilities{ConditionalCreate: true})
	assert.Equal(t, providers.Capabilities{ConditionalCreate: true}, f.Capabilities())
	assert.True(t, inner.Capabilities().Immutable(), "the store itself is unchanged")
}
