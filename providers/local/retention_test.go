package local

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestDecideRetention(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	gov := func(d time.Duration) providers.Retention {
		return providers.Retention{Mode: providers.Governance, Until: now.Add(d)}
	}
	comp := func(d time.Duration) providers.Retention {
		return providers.Retention{Mode: providers.Compliance, Until: now.Add(d)}
	}
	none := providers.Retention{}
	tests := []struct {
		name    string
		cur     providers.Retention
		give    providers.Retention
		want    providers.Retention
		wantErr error
	}{
		{"set governance", none, gov(time.Hour), gov(time.Hour), nil},
		{"set compliance", none, comp(time.Hour), comp(time.Hour), nil},
		{"remove none", none, none, none, nil},
		{"mode without until is no retention", none, providers.Retention{Mode: providers.Compliance}, none, nil},
		{"unknown mode", none, providers.Retention{Mode: "forever", Until: now.Add(time.Hour)}, none, providers.ErrInvalidArgument},
		{"until without mode", none, providers.Retention{Until: now.Add(time.Hour)}, none, providers.ErrInvalidArgument},
		{"until in the past", none, gov(-time.Second), none, providers.ErrInvalidArgument},
		{"until now", none, gov(0), none, providers.ErrInvalidArgument},

		{"governance extend", gov(time.Hour), gov(2 * time.Hour), gov(2 * time.Hour), nil},
		{"governance shorten", gov(time.Hour), gov(time.Minute), gov(time.Minute), nil},
		{"governance remove", gov(time.Hour), none, none, nil},
		{"governance to compliance", gov(time.Hour), comp(time.Hour), comp(time.Hour), nil},

		{"compliance extend", comp(time.Hour), comp(2 * time.Hour), comp(2 * time.Hour), nil},
		{"compliance same again", comp(time.Hour), comp(time.Hour), comp(time.Hour), nil},
		{"compliance shorten", comp(time.Hour), comp(time.Minute), comp(time.Hour), providers.ErrImmutable},
		{"compliance shorten into the past", comp(time.Hour), comp(-time.Minute), comp(time.Hour), providers.ErrImmutable},
		{"compliance remove", comp(time.Hour), none, comp(time.Hour), providers.ErrImmutable},
		{"compliance to governance", comp(time.Hour), gov(2 * time.Hour), comp(time.Hour), providers.ErrImmutable},

		{"expired compliance remove", comp(-time.Second), none, none, nil},
		{"expired compliance to governance", comp(-time.Second), gov(time.Hour), gov(time.Hour), nil},
		{"compliance expiring now", comp(0), none, none, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decideRetention(tt.cur, tt.give, now)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRetentionFollowsInjectedClock(t *testing.T) {
	clock := newFakeClock()
	s := newStore(t, func(o *Options) { o.Clock = clock.Now })
	ctx := context.Background()
	until := clock.Now().Add(24 * time.Hour)

	_, err := s.Put(ctx, "locked", strings.NewReader("restore point"), providers.PutOptions{})
	require.NoError(t, err)
	require.NoError(t, s.SetRetention(ctx, "locked", providers.Retention{Mode: providers.Compliance, Until: until}))

	clock.Advance(24*time.Hour - time.Nanosecond) // the last instant of protection
	assert.ErrorIs(t, s.Delete(ctx, "locked"), providers.ErrImmutable)
	_, err = s.Put(ctx, "locked", strings.NewReader("tampered"), providers.PutOptions{})
	assert.ErrorIs(t, err, providers.ErrImmutable)
	assert.ErrorIs(t, s.SetRetention(ctx, "locked", providers.Retention{}), providers.ErrImmutable)
	assert.Equal(t, []byte("restore point"), read(t, s, "locked"))

	clock.Advance(time.Nanosecond)
	stat, err := s.Stat(ctx, "locked")
	require.NoError(t, err)
	assert.True(t, until.Equal(stat.Retention.Until), "an expired retention is still reported")
	assert.False(t, stat.Retention.Active(clock.Now()))
	require.NoError(t, s.Delete(ctx, "locked"))

	// A retention placed with the write expires the same way; a hold outlives it.
	_, err = s.Put(ctx, "held", strings.NewReader("x"), providers.PutOptions{
		LegalHold: true,
		Retention: providers.Retention{Mode: providers.Governance, Until: clock.Now().Add(time.Minute)},
	})
	require.NoError(t, err)
	clock.Advance(time.Hour)
	assert.ErrorIs(t, s.Delete(ctx, "held"), providers.ErrImmutable)
	require.NoError(t, s.SetLegalHold(ctx, "held", false))
	require.NoError(t, s.Delete(ctx, "held"))

	_, err = s.Put(ctx, "late", strings.NewReader("x"), providers.PutOptions{
		Retention: providers.Retention{Mode: providers.Governance, Until: clock.Now().Add(-time.Second)},
	})
	assert.ErrorIs(t, err, providers.ErrInvalidArgument)
}
