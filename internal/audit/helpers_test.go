package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/storetest"
)

const region = "eu"

func newStore(t testing.TB) *local.Store {
	t.Helper()
	return openStore(t, t.TempDir())
}

func openStore(t testing.TB, root string) *local.Store {
	t.Helper()
	s, err := local.Open(local.Options{Root: root})
	require.NoError(t, err)
	return s
}

func newSigner(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return key
}

// fakeClock advances by step on every reading.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), step: time.Second}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// openLog opens a log that the test closes at its end.
func openLog(t testing.TB, opts Options) *Log {
	t.Helper()
	if opts.Region == "" {
		opts.Region = region
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	l, err := Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// event i is recognisable by its actor and bytes.
func event(i int) Event {
	return Event{
		Kind: KindCopy, Outcome: OutcomeOK, Actor: fmt.Sprintf("wf-%d", i),
		Dataset: "payroll", Location: "eu-primary", Jurisdiction: "EU",
		Destination: "us-replica", DestJurisdiction: "US", CopyMode: CopyModeEncrypted, LegalBasis: "SCC",
		Bytes: int64(i) * 100, Chunks: int64(i),
	}
}

func recordEvents(t testing.TB, l *Log, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		require.NoError(t, l.Record(context.Background(), event(i)))
	}
}

func verify(t testing.TB, s providers.Store, pub ed25519.PublicKey, opts ...VerifyOption) Report {
	t.Helper()
	rep, err := Verify(context.Background(), s, region, pub, opts...)
	require.NoError(t, err)
	return rep
}

// actors returns the actors of the verified log in order.
func actors(t testing.TB, s providers.Store, pub ed25519.PublicKey) []string {
	t.Helper()
	var got []string
	verify(t, s, pub, WithEntries(func(e Entry) error {
		got = append(got, e.Event.Actor)
		return nil
	}))
	return got
}

func getObject(t testing.TB, s providers.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key, providers.GetOptions{})
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

// putObject writes data at key, replacing what is there: what someone with write access to
// the store can do to objects without a hold or retention.
func putObject(t testing.TB, s providers.Store, key string, data []byte) {
	t.Helper()
	_, err := s.Put(context.Background(), key, bytes.NewReader(data), providers.PutOptions{})
	require.NoError(t, err)
}

func deleteObject(t testing.TB, s providers.Store, key string) {
	t.Helper()
	require.NoError(t, s.Delete(context.Background(), key))
}

func listKeys(t testing.TB, s providers.Store, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.List(context.Background(), prefix, func(info providers.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}))
	return keys
}

func segLines(t testing.TB, s providers.Store, key string) [][]byte {
	t.Helper()
	data := getObject(t, s, key)
	require.True(t, bytes.HasSuffix(data, []byte("\n")))
	return bytes.Split(data[:len(data)-1], []byte("\n"))
}

func putLines(t testing.TB, s providers.Store, key string, lines [][]byte) {
	t.Helper()
	putObject(t, s, key, append(bytes.Join(lines, []byte("\n")), '\n'))
}

func parseLine(t testing.TB, line []byte) record {
	t.Helper()
	var r record
	require.NoError(t, json.Unmarshal(line, &r))
	return r
}

func lineHash(line []byte) Hash { return sha256.Sum256(line) }

// forge signs r with key and returns its line.
func forge(t testing.TB, r record, key ed25519.PrivateKey) []byte {
	t.Helper()
	line, _, err := sealRecord(r, key)
	require.NoError(t, err)
	return line
}

// withCapabilities wraps s so that it reports caps instead of its own capabilities.
func withCapabilities(s providers.Store, caps providers.Capabilities) *storetest.Faulty {
	f := storetest.NewFaulty(s)
	f.SetCapabilities(caps)
	return f
}

// holdFirstPut makes the first Put through f close entered, then wait until release is closed
// before it reaches the store.
func holdFirstPut(f *storetest.Faulty, entered, release chan struct{}) {
	f.On(storetest.MethodPut).Times(1).Inject(storetest.Before(func(context.Context, storetest.Call) error {
		close(entered)
		<-release
		return nil
	}))
}
