package repo

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// pointAt is a restore point with DataAsOf t (an RFC 3339 time) and a suffix made of i.
func pointAt(t *testing.T, ts string, i int) PointInfo {
	t.Helper()
	at, err := time.Parse(time.RFC3339, ts)
	require.NoError(t, err)
	return PointInfo{ID: at.UTC().Format(pointTimeLayout) + fmt.Sprintf("-%08x", i), DataAsOf: at.UTC()}
}

func TestSelectRetention(t *testing.T) {
	// Oldest first; several points on some days, across an ISO week that starts in the
	// previous calendar year (2024-12-30 is in 2025-W01) and across months.
	times := []string{
		"2024-11-30T10:00:00Z", // 0: Sat, 2024-W48, Nov
		"2024-12-28T09:00:00Z", // 1: Sat, 2024-W52, Dec
		"2024-12-29T23:59:59Z", // 2: Sun, 2024-W52, Dec
		"2024-12-30T00:00:00Z", // 3: Mon, 2025-W01, Dec
		"2024-12-31T08:00:00Z", // 4: Tue, 2025-W01, Dec
		"2024-12-31T20:00:00Z", // 5: Tue, 2025-W01, Dec
		"2025-01-01T01:00:00Z", // 6: Wed, 2025-W01, Jan
		"2025-01-01T02:00:00Z", // 7: Wed, 2025-W01, Jan
	}
	var points []PointInfo
	for i, ts := range times {
		points = append(points, pointAt(t, ts, i))
	}
	tests := []struct {
		name    string
		give    RetentionPolicy
		want    map[int][]string // kept index -> reasons
		wantErr string
	}{
		{"keep last 1", RetentionPolicy{KeepLast: 1}, map[int][]string{7: {"last 1"}}, ""},
		{"keep last 3", RetentionPolicy{KeepLast: 3}, map[int][]string{5: {"last 3"}, 6: {"last 2"}, 7: {"last 1"}}, ""},
		{"keep last more than there are", RetentionPolicy{KeepLast: 20}, map[int][]string{
			0: {"last 8"}, 1: {"last 7"}, 2: {"last 6"}, 3: {"last 5"}, 4: {"last 4"}, 5: {"last 3"}, 6: {"last 2"}, 7: {"last 1"}}, ""},
		{"daily keeps the newest of each day with a point", RetentionPolicy{KeepLast: 1, KeepDaily: 3}, map[int][]string{
			3: {"daily 2024-12-30"}, 5: {"daily 2024-12-31"}, 7: {"last 1", "daily 2025-01-01"}}, ""},
		{"weekly uses ISO weeks", RetentionPolicy{KeepLast: 1, KeepWeekly: 3}, map[int][]string{
			0: {"weekly 2024-W48"}, 2: {"weekly 2024-W52"}, 7: {"last 1", "weekly 2025-W01"}}, ""},
		{"monthly", RetentionPolicy{KeepLast: 1, KeepMonthly: 2}, map[int][]string{
			5: {"monthly 2024-12"}, 7: {"last 1", "monthly 2025-01"}}, ""},
		{"rules combine", RetentionPolicy{KeepLast: 2, KeepDaily: 2, KeepWeekly: 2, KeepMonthly: 3}, map[int][]string{
			0: {"monthly 2024-11"}, 2: {"weekly 2024-W52"}, 5: {"daily 2024-12-31", "monthly 2024-12"},
			6: {"last 2"}, 7: {"last 1", "daily 2025-01-01", "weekly 2025-W01", "monthly 2025-01"}}, ""},
		{"keep last zero is refused", RetentionPolicy{KeepDaily: 7}, nil, "keep_last must be at least 1"},
		{"negative counts are refused", RetentionPolicy{KeepLast: 1, KeepWeekly: -1}, nil, "keep_weekly must not be negative, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Input order does not matter.
			shuffled := append([]PointInfo{points[5], points[0], points[7]}, points[1:5]...)
			shuffled = append(shuffled, points[6])
			kept, prune, err := SelectRetention(shuffled, tt.give)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, providers.ErrInvalidArgument)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			got := map[int][]string{}
			for _, k := range kept {
				got[indexOf(t, points, k.ID)] = k.Reasons
			}
			assert.Equal(t, tt.want, got)
			assert.Len(t, prune, len(points)-len(kept))
			for i, p := range prune {
				_, isKept := tt.want[indexOf(t, points, p.ID)]
				assert.False(t, isKept, p.ID)
				if i > 0 {
					assert.True(t, prune[i-1].DataAsOf.Before(p.DataAsOf), "pruned points come oldest first")
				}
			}
			for i := 1; i < len(kept); i++ {
				assert.True(t, kept[i-1].DataAsOf.Before(kept[i].DataAsOf), "kept points come oldest first")
			}
		})
	}
}

func TestSelectRetentionEmptyAndTies(t *testing.T) {
	kept, prune, err := SelectRetention(nil, RetentionPolicy{KeepLast: 1})
	require.NoError(t, err)
	assert.Empty(t, kept)
	assert.Empty(t, prune)

	// Two points in the same millisecond: the ID breaks the tie, so the result is stable.
	a, b := pointAt(t, "2025-01-01T00:00:00Z", 1), pointAt(t, "2025-01-01T00:00:00Z", 2)
	kept, prune, err = SelectRetention([]PointInfo{b, a}, RetentionPolicy{KeepLast: 1, KeepDaily: 1})
	require.NoError(t, err)
	require.Len(t, kept, 1)
	assert.Equal(t, b.ID, kept[0].ID)
	assert.Equal(t, []string{"last 1", "daily 2025-01-01"}, kept[0].Reasons)
	assert.Equal(t, []PointInfo{a}, prune)
}

func indexOf(t *testing.T, points []PointInfo, id string) int {
	t.Helper()
	for i, p := range points {
		if p.ID == id {
			return i
		}
	}
	t.Fatalf("point %s not found", id)
	return -1
}
