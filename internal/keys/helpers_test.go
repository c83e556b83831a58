package keys

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/internal/audit"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
)

// recorder collects audit events and can be told to fail. Like the real trail, it refuses
// events that audit.Validate rejects.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	fail   error
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if err := audit.Validate(e); err != nil {
		return err
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) all() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

// ops summarises events as "operation outcome".
func (r *recorder) ops() []string {
	var out []string
	for _, e := range r.all() {
		out = append(out, e.Operation+" "+e.Outcome)
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

func (r *recorder) json(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(r.all())
	require.NoError(t, err)
	return string(b)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStore(t testing.TB, name string) *local.Store {
	t.Helper()
	st, err := local.Open(local.Options{Root: filepath.Join(t.TempDir(), name), Location: providers.Location{Name: name, Jurisdiction: "EU"}})
	require.NoError(t, err)
	return st
}

func keyringPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "keys", "eu.keyring")
}

func openKeyring(t testing.TB, path string, rec audit.Recorder, clk *clock) *Keyring {
	t.Helper()
	k, err := OpenKeyring(context.Background(), KeyringOptions{
		Path: path, Name: "eu-kek", Jurisdiction: "EU", Recorder: rec, Clock: clk.Now,
	})
	require.NoError(t, err)
	return k
}

func newManager(t testing.TB, kek KEK, rec audit.Recorder, clk *clock) *Manager {
	t.Helper()
	m, err := NewManager(ManagerOptions{KEK: kek, Recorder: rec, Clock: clk.Now, Actor: "test"})
	require.NoError(t, err)
	return m
}
