package config

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// ParseDuration parses a duration in Go syntax (90s, 15m, 1h30m) extended with a day unit
// (7d, 1d12h, 1.5d), because recovery objectives and schedules are naturally written in days.
// A day is 24 hours; drflow's objectives are elapsed time, not calendar days.
func ParseDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %s (write e.g. 15m, 4h, 7d or 1d12h): %w", quoteTrunc(s), err)
	}
	return d, nil
}

//nolint:gocyclo // a hand-written parser of the d/w/y units time.ParseDuration lacks
func parseDuration(s string) (time.Duration, error) {
	if !strings.Contains(s, "d") {
		return time.ParseDuration(s)
	}
	body, neg := s, false
	if body != "" && (body[0] == '-' || body[0] == '+') {
		neg = body[0] == '-'
		body = body[1:]
	}
	if body == "" {
		return 0, fmt.Errorf("no number")
	}
	// Split body into number+unit components; sum the day components here and hand the rest
	// to time.ParseDuration unchanged.
	var days time.Duration
	var rest strings.Builder
	for i := 0; i < len(body); {
		j := i
		for j < len(body) && (isDigit(body[j]) || body[j] == '.') {
			j++
		}
		k := j
		for k < len(body) && !isDigit(body[k]) && body[k] != '.' {
			k++
		}
		num, unit := body[i:j], body[j:k]
		if num == "" {
			return 0, fmt.Errorf("unit %q has no number", unit)
		}
		if unit != "d" {
			rest.WriteString(body[i:k])
			i = k
			continue
		}
		// Parse the number as hours, which time.ParseDuration does exactly, then scale.
		h, err := time.ParseDuration(num + "h")
		if err != nil {
			return 0, err
		}
		if h > math.MaxInt64/24 || days > math.MaxInt64-24*h {
			return 0, fmt.Errorf("out of range")
		}
		days += 24 * h
		i = k
	}
	var d time.Duration
	if rest.Len() > 0 {
		var err error
		if d, err = time.ParseDuration(rest.String()); err != nil {
			return 0, err
		}
	}
	if d > math.MaxInt64-days {
		return 0, fmt.Errorf("out of range")
	}
	d += days
	if neg {
		d = -d
	}
	return d, nil
}

// FormatDuration renders d with the day unit where it helps (7d, 1d12h), the inverse of
// ParseDuration for messages.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d < day && d > -day {
		return shortDuration(d)
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	days, rest := d/day, d%day
	if rest == 0 {
		return fmt.Sprintf("%s%dd", sign, days)
	}
	return fmt.Sprintf("%s%dd%s", sign, days, shortDuration(rest))
}

// shortDuration drops the zero units time.Duration.String writes ("4h0m0s" -> "4h").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
