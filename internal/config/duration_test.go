package config

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		give string
		want time.Duration
	}{
		{"15m", 15 * time.Minute},
		{"4h", 4 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"90s", 90 * time.Second},
		{"1d", day},
		{"7d", 7 * day},
		{"1d12h", 36 * time.Hour},
		{"2d3h4m", 2*day + 3*time.Hour + 4*time.Minute},
		{"1.5d", 36 * time.Hour},
		{"0.1d", 144 * time.Minute},
		{"1d1d", 2 * day},
		{"12h1d", 36 * time.Hour},
		{"-1d", -day},
		{"+2d", 2 * day},
		{"0", 0},
		{"0d", 0},
		{"106751d", 106751 * day},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseDuration(tt.give)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseDurationRejects(t *testing.T) {
	tests := []string{
		"", "d", "-", "+d", "1", "15", "15x", "1 d", "1dd", "1d-2h", "d1", "1.2.3d", ".d",
		"106752d", "99999999999999999999d", "1d9223372036854775807ns", "3 days",
	}
	for _, give := range tests {
		t.Run(give, func(t *testing.T) {
			_, err := ParseDuration(give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid duration")
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		give time.Duration
		want string
	}{
		{15 * time.Minute, "15m"},
		{4 * time.Hour, "4h"},
		{90 * time.Minute, "1h30m"},
		{7*time.Minute + 30*time.Second, "7m30s"},
		{24 * time.Hour, "1d"},
		{36 * time.Hour, "1d12h"},
		{7*24*time.Hour + 90*time.Minute, "7d1h30m"},
		{-48 * time.Hour, "-2d"},
		{0, "0s"},
		{time.Duration(math.MaxInt64), "106751d23h47m16.854775807s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := FormatDuration(tt.give)
			assert.Equal(t, tt.want, got)
			back, err := ParseDuration(got)
			require.NoError(t, err)
			assert.Equal(t, tt.give, back, "FormatDuration and ParseDuration round-trip")
		})
	}
}
