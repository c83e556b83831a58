// Package storetest is the conformance suite that every providers.Store adapter runs against
// its real server or emulator. A case that depends on a capability runs its enforcement branch
// when the store claims the capability and its refusal branch (ErrNotSupported) when it does
// not, so a capability report that lies fails the suite.
//
// Faulty wraps any store and injects faults into it (errors, connection resets, latency,
// short reads, partial and ambiguous writes, hooks that race the caller), by rule or at a
// seeded random rate: the tests of the repository, audit log, holds and sources, and the
// chaos trials, use it instead of ad-hoc failing stores.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// Factory returns a store confined to a fresh, empty namespace (a new bucket or prefix) and
// registers its cleanup with t.
type Factory func(t *testing.T) providers.Store

// Options tune the suite for one server.
type Options struct {
	// LargeObjectSize is the size of the streamed round trip (default 96 MiB).
	LargeObjectSize int64
	// MaxHeapGrowth bounds heap growth during the large round trip (default 64 MiB), proving
	// that adapters stream instead of buffering whole objects.
	MaxHeapGrowth uint64
	// ListCount is how many objects the listing case writes (default 1100: more than one
	// 1000-entry page on every backend).
	ListCount int
	// ImmutabilityUnenforced, when non-empty, says that this server accepts the adapter's
	// hold and retention calls without enforcing them (an emulator gap) and names the test
	// that covers those calls instead. The enforcement cases are then not run here, so
	// nothing is reported as verified on a server that does not enforce it.
	ImmutabilityUnenforced string
}

func (o Options) withDefaults() Options {
	if o.LargeObjectSize == 0 {
		o.LargeObjectSize = 96 << 20
	}
	if o.MaxHeapGrowth == 0 {
		o.MaxHeapGrowth = 64 << 20
	}
	if o.ListCount == 0 {
		o.ListCount = 1100
	}
	return o
}

// Run runs the conformance suite.
func Run(t *testing.T, newStore Factory, opts Options) {
	opts = opts.withDefaults()
	s := suite{newStore: newStore, opts: opts}

	// Memory is measured while nothing else runs, so the large round trip goes first and
	// alone; the remaining cases run in parallel, each in its own namespace.
	t.Run("LargeStreamedRoundTrip", s.largeRoundTrip)
	t.Run("Parallel", func(t *testing.T) {
		cases := []struct {
			name string
			fn   func(*testing.T)
		}{
			{"SmallRoundTrip", s.smallRoundTrip},
			{"EmptyObject", s.emptyObject},
			{"RangeReads", s.rangeReads},
			{"NotFound", s.notFound},
			{"InvalidKeys", s.invalidKeys},
			{"ListPrefixPaginated", s.listPrefix},
			{"ListCallbackError", s.listCallbackError},
			{"Overwrite", s.overwrite},
			{"ConditionalCreate", s.conditionalCreate},
			{"Delete", s.delete},
			{"ConcurrentWriters", s.concurrentWriters},
			{"CancelMidUpload", s.cancelMidUpload},
			{"LegalHold", s.legalHold},
			{"Retention", s.retention},
			{"CapabilitiesReport", s.capabilitiesReport},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.fn(t)
			})
		}
	})
}

type suite struct {
	newStore Factory
	opts     Options
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, st providers.Store, key string, data []byte) providers.ObjectInfo {
	t.Helper()
	info, err := st.Put(ctxFor(t), key, bytes.NewReader(data), providers.PutOptions{})
	require.NoError(t, err, "put %s", key)
	return info
}

func get(t *testing.T, st providers.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(ctxFor(t), key, providers.GetOptions{})
	require.NoError(t, err, "get %s", key)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %s", key)
	return data
}

func (s suite) smallRoundTrip(t *testing.T) {
	st := s.newStore(t)
	data := []byte("restore point manifest v1\n")
	before := time.Now()
	info := put(t, st, "dir/sub/small.txt", data)
	assert.Equal(t, "dir/sub/small.txt", info.Key)
	assert.Equal(t, int64(len(data)), info.Size)

	assert.Equal(t, data, get(t, st, "dir/sub/small.txt"))

	stat, err := st.Stat(ctxFor(t), "dir/sub/small.txt")
	require.NoError(t, err)
	assert.Equal(t, "dir/sub/small.txt", stat.Key)
	assert.Equal(t, int64(len(data)), stat.Size)
	// Same machine, so clocks agree up to the backend's timestamp resolution.
	assert.WithinDuration(t, before, stat.ModTime, time.Minute, "mod time")
	assert.False(t, stat.LegalHold)
	assert.True(t, stat.Retention.Until.IsZero(), "no retention expected, got %+v", stat.Retention)
}

func (s suite) emptyObject(t *testing.T) {
	st := s.newStore(t)
	put(t, st, "empty", nil)
	assert.Empty(t, get(t, st, "empty"))
	stat, err := st.Stat(ctxFor(t), "empty")
	require.NoError(t, err)
	assert.Zero(t, stat.Size)
}

func (s suite) largeRoundTrip(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	size := s.opts.LargeObjectSize

	// A low GC target keeps garbage from masking (or imitating) real retention.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	runtime.GC()
	peak := watchHeap(t)

	src := &hashingReader{r: io.LimitReader(newRandomReader(1), size), h: sha256.New()}
	info, err := st.Put(ctx, "large/object.bin", src, providers.PutOptions{})
	require.NoError(t, err)
	assert.Equal(t, size, info.Size)
	assert.Equal(t, size, src.n, "Put must consume the whole reader")

	rc, err := st.Get(ctx, "large/object.bin", providers.GetOptions{})
	require.NoError(t, err)
	h := sha256.New()
	n, err := io.Copy(h, rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, size, n)
	assert.Equal(t, src.h.Sum(nil), h.Sum(nil), "content hash differs after round trip")

	growth := peak()
	t.Logf("peak heap growth during %d MiB round trip: %.1f MiB", size>>20, float64(growth)/(1<<20))
	assert.LessOrEqual(t, growth, s.opts.MaxHeapGrowth,
		"heap grew by %d bytes for a %d byte object: the adapter is buffering instead of streaming", growth, size)

	stat, err := st.Stat(ctx, "large/object.bin")
	require.NoError(t, err)
	assert.Equal(t, size, stat.Size)
}

func (s suite) rangeReads(t *testing.T) {
	st := s.newStore(t)
	data := make([]byte, 1<<20+17)
	_, _ = newRandomReader(2).Read(data)
	put(t, st, "ranged", data)

	tests := []struct {
		name string
		give providers.ByteRange
		want []byte
	}{
		{"head", providers.ByteRange{Offset: 0, Length: 10}, data[:10]},
		{"middle", providers.ByteRange{Offset: 1000, Length: 4096}, data[1000:5096]},
		{"to end", providers.ByteRange{Offset: 1 << 20, Length: -1}, data[1<<20:]},
		{"last byte", providers.ByteRange{Offset: int64(len(data) - 1), Length: 1}, data[len(data)-1:]},
		{"length past end", providers.ByteRange{Offset: int64(len(data) - 5), Length: 100}, data[len(data)-5:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.give
			rc, err := st.Get(ctxFor(t), "ranged", providers.GetOptions{Range: &r})
			require.NoError(t, err)
			defer rc.Close()
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(tt.want, got), "range %+v: got %d bytes, want %d", r, len(got), len(tt.want))
		})
	}

	for _, bad := range []providers.ByteRange{{Offset: -1, Length: 1}, {Offset: 0, Length: 0}} {
		_, err := st.Get(ctxFor(t), "ranged", providers.GetOptions{Range: &bad})
		assert.ErrorIs(t, err, providers.ErrInvalidArgument, "range %+v", bad)
	}
}

func (s suite) notFound(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	_, err := st.Get(ctx, "missing/object", providers.GetOptions{})
	assert.ErrorIs(t, err, providers.ErrNotFound, "get")
	_, err = st.Stat(ctx, "missing/object")
	assert.ErrorIs(t, err, providers.ErrNotFound, "stat")
	assert.ErrorIs(t, st.Delete(ctx, "missing/object"), providers.ErrNotFound, "delete")
	r := providers.ByteRange{Offset: 1, Length: 1}
	_, err = st.Get(ctx, "missing/object", providers.GetOptions{Range: &r})
	assert.ErrorIs(t, err, providers.ErrNotFound, "ranged get")

	caps := st.Capabilities()
	if caps.LegalHold && s.opts.ImmutabilityUnenforced == "" {
		assert.ErrorIs(t, st.SetLegalHold(ctx, "missing/object", true), providers.ErrNotFound, "hold")
	}
	if caps.Retention && s.opts.ImmutabilityUnenforced == "" {
		err := st.SetRetention(ctx, "missing/object", providers.Retention{Mode: providers.Governance, Until: time.Now().Add(time.Hour)})
		assert.ErrorIs(t, err, providers.ErrNotFound, "retention")
	}
	var count int
	require.NoError(t, st.List(ctx, "missing/", func(providers.ObjectInfo) error { count++; return nil }))
	assert.Zero(t, count)
}

func (s suite) invalidKeys(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	for _, key := range []string{"", "/abs", "a/../b", "a//b", "trailing/", "ctl\x01char"} {
		_, err := st.Put(ctx, key, strings.NewReader("x"), providers.PutOptions{})
		assert.ErrorIs(t, err, providers.ErrInvalidArgument, "put %q", key)
		_, err = st.Get(ctx, key, providers.GetOptions{})
		assert.ErrorIs(t, err, providers.ErrInvalidArgument, "get %q", key)
	}
}

func (s suite) listPrefix(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	n := s.opts.ListCount

	want := make([]string, 0, n)
	for i := range n {
		want = append(want, fmt.Sprintf("chunks/%02x/%06d", i%256, i))
	}
	parallel(t, 16, len(want), func(i int) error {
		_, err := st.Put(ctx, want[i], strings.NewReader(want[i]), providers.PutOptions{})
		return err
	})
	// Neighbours that a sloppy prefix match would include.
	put(t, st, "chunksx/outside", []byte("x"))
	put(t, st, "other/outside", []byte("x"))
	sort.Strings(want)

	var got []string
	require.NoError(t, st.List(ctx, "chunks/", func(o providers.ObjectInfo) error {
		if o.Size != int64(len(o.Key)) {
			return fmt.Errorf("list %s: size %d, want %d", o.Key, o.Size, len(o.Key))
		}
		got = append(got, o.Key)
		return nil
	}))
	require.Len(t, got, n)
	assert.Equal(t, want, got, "listing must be complete and in lexical order")

	var sub []string
	require.NoError(t, st.List(ctx, "chunks/0a/", func(o providers.ObjectInfo) error {
		sub = append(sub, o.Key)
		return nil
	}))
	var wantSub []string
	for _, k := range want {
		if strings.HasPrefix(k, "chunks/0a/") {
			wantSub = append(wantSub, k)
		}
	}
	assert.Equal(t, wantSub, sub)

	var all int
	require.NoError(t, st.List(ctx, "", func(providers.ObjectInfo) error { all++; return nil }))
	assert.Equal(t, n+2, all, "empty prefix lists everything in the namespace")
}

func (s suite) listCallbackError(t *testing.T) {
	st := s.newStore(t)
	for i := range 5 {
		put(t, st, fmt.Sprintf("k/%d", i), []byte("x"))
	}
	stop := errors.New("enough")
	var seen int
	err := st.List(ctxFor(t), "k/", func(providers.ObjectInfo) error {
		seen++
		if seen == 2 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 2, seen, "listing must stop at the callback's error")
}

func (s suite) overwrite(t *testing.T) {
	st := s.newStore(t)
	put(t, st, "obj", []byte("first version"))
	put(t, st, "obj", []byte("second, longer version"))
	assert.Equal(t, []byte("second, longer version"), get(t, st, "obj"))
	stat, err := st.Stat(ctxFor(t), "obj")
	require.NoError(t, err)
	assert.Equal(t, int64(len("second, longer version")), stat.Size)

	var count int
	require.NoError(t, st.List(ctxFor(t), "obj", func(providers.ObjectInfo) error { count++; return nil }))
	assert.Equal(t, 1, count, "an overwrite must not leave a second listed object")
}

func (s suite) conditionalCreate(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	create := providers.PutOptions{IfNotExists: true}
	if !st.Capabilities().ConditionalCreate {
		_, err := st.Put(ctx, "cond", strings.NewReader("x"), create)
		assert.ErrorIs(t, err, providers.ErrNotSupported)
		return
	}
	_, err := st.Put(ctx, "cond", strings.NewReader("winner"), create)
	require.NoError(t, err)
	_, err = st.Put(ctx, "cond", strings.NewReader("loser"), create)
	assert.ErrorIs(t, err, providers.ErrExists)
	assert.Equal(t, []byte("winner"), get(t, st, "cond"))

	// Racing creators: exactly one wins.
	const racers = 8
	var mu sync.Mutex
	var wins, exists int
	parallel(t, racers, racers, func(i int) error {
		_, err := st.Put(ctx, "race", strings.NewReader(fmt.Sprintf("racer %d", i)), create)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case errors.Is(err, providers.ErrExists):
			exists++
		default:
			return err
		}
		return nil
	})
	assert.Equal(t, 1, wins, "exactly one conditional create may win")
	assert.Equal(t, racers-1, exists)
}

func (s suite) delete(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	put(t, st, "doomed", []byte("bye"))
	put(t, st, "kept", []byte("stay"))
	require.NoError(t, st.Delete(ctx, "doomed"))
	_, err := st.Stat(ctx, "doomed")
	assert.ErrorIs(t, err, providers.ErrNotFound)
	_, err = st.Get(ctx, "doomed", providers.GetOptions{})
	assert.ErrorIs(t, err, providers.ErrNotFound)
	assert.ErrorIs(t, st.Delete(ctx, "doomed"), providers.ErrNotFound, "second delete")
	assert.Equal(t, []byte("stay"), get(t, st, "kept"))

	var keys []string
	require.NoError(t, st.List(ctx, "", func(o providers.ObjectInfo) error { keys = append(keys, o.Key); return nil }))
	assert.Equal(t, []string{"kept"}, keys)
}

func (s suite) concurrentWriters(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	const writers = 8
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 256<<10+i) }

	parallel(t, writers, writers*2, func(i int) error {
		if i < writers { // distinct keys
			_, err := st.Put(ctx, fmt.Sprintf("own/%d", i), bytes.NewReader(payload(i)), providers.PutOptions{})
			return err
		}
		_, err := st.Put(ctx, "shared", bytes.NewReader(payload(i-writers)), providers.PutOptions{})
		return err
	})
	for i := range writers {
		assert.Equal(t, payload(i), get(t, st, fmt.Sprintf("own/%d", i)), "own/%d", i)
	}
	got := get(t, st, "shared")
	var whole bool
	for i := range writers {
		whole = whole || bytes.Equal(got, payload(i))
	}
	assert.True(t, whole, "concurrent writes to one key must leave one writer's whole content, got %d bytes", len(got))
}

func (s suite) cancelMidUpload(t *testing.T) {
	st := s.newStore(t)
	put(t, st, "previous", []byte("intact"))

	for _, key := range []string{"cancelled", "previous"} {
		ctx, cancel := context.WithCancel(context.Background())
		// The reader cancels once the upload is well under way (past the first part of every
		// adapter's multipart upload) and then reports the cancellation, like a source whose
		// caller gave up.
		r := &cancellingReader{r: newRandomReader(3), after: 24 << 20, cancel: cancel, ctx: ctx}
		_, err := st.Put(ctx, key, r, providers.PutOptions{})
		cancel()
		require.Error(t, err, "put %s must fail when its context is cancelled", key)
		assert.ErrorIs(t, err, context.Canceled, "put %s", key)
	}
	_, err := st.Stat(ctxFor(t), "cancelled")
	assert.ErrorIs(t, err, providers.ErrNotFound, "a cancelled upload must leave no object")
	assert.Equal(t, []byte("intact"), get(t, st, "previous"), "a cancelled overwrite must keep the previous object")
}

func (s suite) legalHold(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	put(t, st, "held", []byte("evidence"))
	if !st.Capabilities().LegalHold {
		assert.ErrorIs(t, st.SetLegalHold(ctx, "held", true), providers.ErrNotSupported)
		_, err := st.Put(ctx, "held-at-put", strings.NewReader("x"), providers.PutOptions{LegalHold: true})
		assert.ErrorIs(t, err, providers.ErrNotSupported)
		require.NoError(t, st.Delete(ctx, "held"), "without hold support the object stays deletable")
		return
	}
	if s.opts.ImmutabilityUnenforced != "" {
		t.Logf("hold enforcement is not run here: %s", s.opts.ImmutabilityUnenforced)
		return
	}

	require.NoError(t, st.SetLegalHold(ctx, "held", true))
	t.Cleanup(func() { _ = st.SetLegalHold(context.Background(), "held", false) })
	stat, err := st.Stat(ctx, "held")
	require.NoError(t, err)
	assert.True(t, stat.LegalHold, "stat must report the hold")

	assert.ErrorIs(t, st.Delete(ctx, "held"), providers.ErrImmutable, "delete under hold")
	_, err = st.Put(ctx, "held", strings.NewReader("tampered"), providers.PutOptions{})
	assert.ErrorIs(t, err, providers.ErrImmutable, "overwrite under hold")
	assert.Equal(t, []byte("evidence"), get(t, st, "held"), "content under hold must be unchanged")

	require.NoError(t, st.SetLegalHold(ctx, "held", false))
	stat, err = st.Stat(ctx, "held")
	require.NoError(t, err)
	assert.False(t, stat.LegalHold, "stat must report the release")
	require.NoError(t, st.Delete(ctx, "held"), "delete after release")

	_, err = st.Put(ctx, "held-at-put", strings.NewReader("x"), providers.PutOptions{LegalHold: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.SetLegalHold(context.Background(), "held-at-put", false) })
	stat, err = st.Stat(ctx, "held-at-put")
	require.NoError(t, err)
	assert.True(t, stat.LegalHold, "hold placed with the write")
	assert.ErrorIs(t, st.Delete(ctx, "held-at-put"), providers.ErrImmutable)
	require.NoError(t, st.SetLegalHold(ctx, "held-at-put", false))
	require.NoError(t, st.Delete(ctx, "held-at-put"))
}

func (s suite) retention(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxFor(t)
	caps := st.Capabilities()
	put(t, st, "locked", []byte("restore point"))
	if !caps.Retention {
		err := st.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Governance, Until: time.Now().Add(time.Hour)})
		assert.ErrorIs(t, err, providers.ErrNotSupported)
		_, err = st.Put(ctx, "locked-at-put", strings.NewReader("x"),
			providers.PutOptions{Retention: providers.Retention{Mode: providers.Governance, Until: time.Now().Add(time.Hour)}})
		assert.ErrorIs(t, err, providers.ErrNotSupported)
		return
	}
	if s.opts.ImmutabilityUnenforced != "" {
		t.Logf("retention enforcement is not run here: %s", s.opts.ImmutabilityUnenforced)
		return
	}

	bad := providers.Retention{Mode: "forever", Until: time.Now().Add(time.Hour)}
	assert.ErrorIs(t, st.SetRetention(ctx, "locked", bad), providers.ErrInvalidArgument)

	// Governance: enforced, readable, and removable by the privileged caller.
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	require.NoError(t, st.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Governance, Until: until}))
	stat, err := st.Stat(ctx, "locked")
	require.NoError(t, err)
	assert.Equal(t, providers.Governance, stat.Retention.Mode)
	assert.WithinDuration(t, until, stat.Retention.Until, time.Second)
	assert.ErrorIs(t, st.Delete(ctx, "locked"), providers.ErrImmutable, "delete under retention")
	_, err = st.Put(ctx, "locked", strings.NewReader("tampered"), providers.PutOptions{})
	assert.ErrorIs(t, err, providers.ErrImmutable, "overwrite under retention")
	assert.Equal(t, []byte("restore point"), get(t, st, "locked"))

	require.NoError(t, st.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Governance, Until: until.Add(time.Hour)}), "extend")
	require.NoError(t, st.SetRetention(ctx, "locked", providers.Retention{}), "governance retention can be removed")
	stat, err = st.Stat(ctx, "locked")
	require.NoError(t, err)
	assert.False(t, stat.Retention.Active(time.Now()), "retention removed, got %+v", stat.Retention)
	require.NoError(t, st.Delete(ctx, "locked"))

	// Retention placed with the write, short enough to watch it expire.
	expires := time.Now().Add(3 * time.Second)
	_, err = st.Put(ctx, "expiring", strings.NewReader("x"),
		providers.PutOptions{Retention: providers.Retention{Mode: providers.Governance, Until: expires}})
	require.NoError(t, err)
	assert.ErrorIs(t, st.Delete(ctx, "expiring"), providers.ErrImmutable, "delete before expiry")
	waitDeletable(t, st, "expiring", expires)

	if !caps.SupportsMode(providers.Compliance) {
		return
	}
	expires = time.Now().Add(3 * time.Second)
	put(t, st, "compliant", []byte("x"))
	require.NoError(t, st.SetRetention(ctx, "compliant", providers.Retention{Mode: providers.Compliance, Until: expires}))
	stat, err = st.Stat(ctx, "compliant")
	require.NoError(t, err)
	assert.Equal(t, providers.Compliance, stat.Retention.Mode)
	assert.ErrorIs(t, st.SetRetention(ctx, "compliant", providers.Retention{Mode: providers.Compliance, Until: expires.Add(-2 * time.Second)}),
		providers.ErrImmutable, "compliance retention cannot be shortened")
	assert.ErrorIs(t, st.SetRetention(ctx, "compliant", providers.Retention{}), providers.ErrImmutable, "compliance retention cannot be removed")
	assert.ErrorIs(t, st.Delete(ctx, "compliant"), providers.ErrImmutable)
	waitDeletable(t, st, "compliant", expires)
}

// waitDeletable waits for a retention to expire: it retries the delete, which must keep
// failing with ErrImmutable while the retention is clearly active, until it succeeds.
func waitDeletable(t *testing.T, st providers.Store, key string, until time.Time) {
	t.Helper()
	deadline := time.After(time.Until(until) + 30*time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		err := st.Delete(ctxFor(t), key)
		if err == nil {
			assert.False(t, now.Before(until.Add(-time.Second)), "deleted %s at %s, before its retention until %s", key, now, until)
			return
		}
		require.ErrorIs(t, err, providers.ErrImmutable, "delete %s while waiting for retention to expire", key)
		select {
		case <-deadline:
			t.Fatalf("%s still not deletable 30s after its retention expired at %s", key, until)
		case <-tick.C:
		}
	}
}

func (s suite) capabilitiesReport(t *testing.T) {
	st := s.newStore(t)
	caps := st.Capabilities()
	loc := st.Location()
	t.Logf("%s capabilities: %+v", loc, caps)
	assert.NotEmpty(t, loc.Provider, "location provider")
	assert.NotEmpty(t, caps.Note, "capabilities must say how they were established")
	if caps.Retention {
		assert.NotEmpty(t, caps.RetentionModes, "retention without modes")
	} else {
		assert.Empty(t, caps.RetentionModes, "modes without retention")
	}
	// Enforcement of each claimed capability is proven by the LegalHold, Retention and
	// ConditionalCreate cases; here the summary must agree with its parts.
	assert.Equal(t, caps.LegalHold && caps.Retention, caps.Immutable())
	if caps.ServerEnforced {
		assert.True(t, caps.LegalHold || caps.Retention, "server enforcement claimed without holds or retention")
	}
}

// parallel runs fn(0..n-1) on at most workers goroutines and fails t on the first error.
func parallel(t *testing.T, workers, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("item %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	require.NoError(t, first)
}

// newRandomReader returns an endless, seeded stream of incompressible bytes.
func newRandomReader(seed byte) io.Reader {
	var key [32]byte
	key[0] = seed
	return rand.NewChaCha8(key)
}

type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	_, _ = r.h.Write(p[:n])
	r.n += int64(n)
	return n, err
}

type cancellingReader struct {
	r      io.Reader
	after  int64
	n      int64
	cancel context.CancelFunc
	ctx    context.Context
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.n >= r.after {
		r.cancel()
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	if rest := r.after - r.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// watchHeap samples the heap until the returned function is called, which reports the peak
// growth over the starting heap.
func watchHeap(t *testing.T) func() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		peak := base
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				done <- peak - base
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	var growth uint64
	report := func() uint64 {
		once.Do(func() { close(stop); growth = <-done })
		return growth
	}
	t.Cleanup(func() { report() })
	return report
}
