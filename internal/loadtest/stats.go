package loadtest

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Durations summarises a set of measured durations.
type Durations struct {
	N                  int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
}

// Summarize computes the nearest-rank quantiles of ds (which it does not modify).
func Summarize(ds []time.Duration) Durations {
	if len(ds) == 0 {
		return Durations{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Durations{
		N:    len(s),
		P50:  nearestRank(s, 0.50),
		P90:  nearestRank(s, 0.90),
		P99:  nearestRank(s, 0.99),
		Max:  s[len(s)-1],
		Mean: sum / time.Duration(len(s)),
	}
}

// nearestRank is the smallest value with at least q of the sorted values at or below it.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// String renders "p50 … p90 … p99 … max … (n=…)".
func (d Durations) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", short(d.P50), short(d.P90), short(d.P99), short(d.Max), d.N)
}

// short prints a duration with about three significant digits.
func short(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + short(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%dm%04.1fs", int(d.Minutes()), d.Seconds()-60*math.Floor(d.Minutes()))
	}
}

// seconds turns a float number of seconds (NaN for unknown) into a duration.
func seconds(s float64) time.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// ExpectedActions counts the nominal action times of an interval schedule (every, aligned to
// the Unix epoch as Temporal aligns interval specs without an offset) in (after, until].
func ExpectedActions(every time.Duration, after, until time.Time) int {
	if every <= 0 || !until.After(after) {
		return 0
	}
	return int(floorDiv(until.UnixNano(), int64(every)) - floorDiv(after.UnixNano(), int64(every)))
}

// Nominal is the unjittered schedule time of an action taken at the jittered time t of an
// interval schedule: jitter is always shorter than the interval.
func Nominal(every time.Duration, t time.Time) time.Time {
	n := floorDiv(t.UnixNano(), int64(every)) * int64(every)
	return time.Unix(0, n).UTC()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// RPOWindow is the data-loss exposure of one dataset over a run, from its restore points.
type RPOWindow struct {
	// Worst is the largest exposure: just before each new point became durable, the data
	// since the previous point's data_as_of was at risk; at the end, since the newest one's.
	Worst time.Duration
	// MaxGap is the largest distance between the data_as_of of consecutive points.
	MaxGap time.Duration
	Points int
}

// Point is one restore point as a backup workflow reported it.
type Point struct {
	DataAsOf time.Time
	// Durable is when the point counted as written: the backup workflow's close time.
	Durable time.Time
}

// ExposureOf computes the RPO window of one dataset's points (any order) as seen at end.
// Points that became durable after end do not count. Before the first point there is no
// measure (the dataset was new).
func ExposureOf(points []Point, end time.Time) RPOWindow {
	ps := make([]Point, 0, len(points))
	for _, p := range points {
		if !p.Durable.After(end) {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b Point) int { return a.DataAsOf.Compare(b.DataAsOf) })
	w := RPOWindow{Points: len(ps)}
	if len(ps) == 0 {
		return w
	}
	for i := 1; i < len(ps); i++ {
		w.MaxGap = max(w.MaxGap, ps[i].DataAsOf.Sub(ps[i-1].DataAsOf))
		w.Worst = max(w.Worst, ps[i].Durable.Sub(ps[i-1].DataAsOf))
	}
	w.Worst = max(w.Worst, end.Sub(ps[len(ps)-1].DataAsOf))
	return w
}
