package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/drflow/drflow/internal/config"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestObjectivesFromTier(t *testing.T) {
	got := ObjectivesFromTier(config.Tier{Name: "gold", Level: 1, RPO: 15 * time.Minute, RTO: time.Hour, BackupEvery: 5 * time.Minute})
	assert.Equal(t, Objectives{RPO: 15 * time.Minute, RTO: time.Hour, Tier: 1}, got)
}

func TestBackupRPO(t *testing.T) {
	obj := Objectives{RPO: 15 * time.Minute, RTO: time.Hour, Tier: 1}
	tests := []struct {
		name        string
		now         time.Time
		previous    time.Time
		hasPrevious bool
		want        time.Duration
		wantKnown   bool
		wantMet     bool
		wantSkew    time.Duration
	}{
		{"well within", t0.Add(10 * time.Minute), t0, true, 10 * time.Minute, true, true, 0},
		{"exactly at objective is met", t0.Add(15 * time.Minute), t0, true, 15 * time.Minute, true, true, 0},
		{"just over", t0.Add(15*time.Minute + time.Millisecond), t0, true, 15*time.Minute + time.Millisecond, true, false, 0},
		{"skipped backups", t0.Add(3 * time.Hour), t0, true, 3 * time.Hour, true, false, 0},
		{"no previous point is unknown and not met", t0, time.Time{}, false, 0, false, false, 0},
		{"no previous point ignores the time given", t0, t0.Add(-time.Second), false, 0, false, false, 0},
		{"same instant", t0, t0, true, 0, true, true, 0},
		{"clock skew clamps to zero", t0, t0.Add(2 * time.Second), true, 0, true, true, 2 * time.Second},
		{"time zones do not matter", t0.In(time.FixedZone("CET", 3600)).Add(time.Minute), t0, true, time.Minute, true, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, known := BackupRPO(tt.now, tt.previous, tt.hasPrevious)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantKnown, known)
			assert.Equal(t, tt.wantMet, obj.RPOMet(got, known))
			assert.GreaterOrEqual(t, got, time.Duration(0))
			if tt.hasPrevious {
				assert.Equal(t, tt.wantSkew, ClockSkew(tt.now, tt.previous))
			}
		})
	}
}

func TestDrillFigures(t *testing.T) {
	obj := Objectives{RPO: time.Hour, RTO: 4 * time.Hour, Tier: 2}
	tests := []struct {
		name     string
		start    time.Time
		verified time.Time
		dataAsOf time.Time
		want     DrillMeasurement
	}{
		{
			name: "both met", start: t0, verified: t0.Add(time.Hour), dataAsOf: t0.Add(-30 * time.Minute),
			want: DrillMeasurement{RPO: 30 * time.Minute, RTO: time.Hour, RPOMet: true, RTOMet: true},
		},
		{
			name: "exactly at both objectives is met", start: t0, verified: t0.Add(4 * time.Hour), dataAsOf: t0.Add(-time.Hour),
			want: DrillMeasurement{RPO: time.Hour, RTO: 4 * time.Hour, RPOMet: true, RTOMet: true},
		},
		{
			name: "stale point misses RPO", start: t0, verified: t0.Add(time.Minute), dataAsOf: t0.Add(-25 * time.Hour),
			want: DrillMeasurement{RPO: 25 * time.Hour, RTO: time.Minute, RPOMet: false, RTOMet: true},
		},
		{
			name: "slow restore misses RTO", start: t0, verified: t0.Add(4*time.Hour + time.Second), dataAsOf: t0,
			want: DrillMeasurement{RPO: 0, RTO: 4*time.Hour + time.Second, RPOMet: true, RTOMet: false},
		},
		{
			name: "point after drill start is clock skew, clamped and reported", start: t0, verified: t0.Add(time.Minute), dataAsOf: t0.Add(3 * time.Second),
			want: DrillMeasurement{RPO: 0, RTO: time.Minute, RPOMet: true, RTOMet: true, ClockSkew: 3 * time.Second},
		},
		{
			name: "verified before start clamps RTO", start: t0, verified: t0.Add(-time.Second), dataAsOf: t0.Add(-time.Minute),
			want: DrillMeasurement{RPO: time.Minute, RTO: 0, RPOMet: true, RTOMet: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, DrillFigures(tt.start, tt.verified, tt.dataAsOf, obj))
		})
	}
}

func TestZeroObjectivesMeetOnlyZero(t *testing.T) {
	var obj Objectives
	assert.True(t, obj.RPOMet(0, true))
	assert.False(t, obj.RPOMet(time.Nanosecond, true))
	assert.False(t, obj.RPOMet(0, false))
	assert.False(t, obj.RTOMet(time.Nanosecond))
}
