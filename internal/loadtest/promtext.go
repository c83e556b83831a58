package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Sample is one line of the Prometheus text exposition format: a metric name, its labels and
// its value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParseText reads the Prometheus text exposition format (what a /metrics endpoint serves).
// Comments, HELP and TYPE lines are skipped; timestamps after the value are ignored.
func ParseText(r io.Reader) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		s, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w: %q", line, err, truncate(text, 120))
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

func parseLine(text string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(text, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("no value")
	}
	s.Name = text[:i]
	rest := text[i:]
	if rest[0] == '{' {
		var err error
		rest, err = parseLabels(rest[1:], s.Labels)
		if err != nil {
			return s, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return s, err
	}
	s.Value = v
	return s, nil
}

// parseLabels reads `name="value",...}` into labels and returns what follows the brace.
func parseLabels(in string, labels map[string]string) (string, error) {
	for {
		in = strings.TrimLeft(in, " \t")
		if in == "" {
			return "", fmt.Errorf("unterminated labels")
		}
		if in[0] == '}' {
			return in[1:], nil
		}
		eq := strings.IndexByte(in, '=')
		if eq <= 0 || len(in) < eq+2 || in[eq+1] != '"' {
			return "", fmt.Errorf("bad label")
		}
		name := strings.TrimSpace(in[:eq])
		in = in[eq+2:]
		var val strings.Builder
		closed := false
		for j := 0; j < len(in); j++ {
			c := in[j]
			if c == '\\' && j+1 < len(in) {
				j++
				switch in[j] {
				case 'n':
					val.WriteByte('\n')
				default: // \\ and \"
					val.WriteByte(in[j])
				}
				continue
			}
			if c == '"' {
				in = in[j+1:]
				closed = true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return "", fmt.Errorf("unterminated label value")
		}
		labels[name] = val.String()
		in = strings.TrimLeft(in, " \t")
		in = strings.TrimPrefix(in, ",")
	}
}

func parseValue(f string) (float64, error) {
	switch f {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", f)
	}
	return v, nil
}

// matches says whether labels has every label of want (an empty want value matches any).
func matches(labels, want map[string]string) bool {
	for k, v := range want {
		got, ok := labels[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

// Bucket is one cumulative histogram bucket: Count observations were at most UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Histogram is a Prometheus histogram, possibly summed over several series.
type Histogram struct {
	Buckets []Bucket // sorted by UpperBound, the last one +Inf
	Sum     float64
	Count   float64
}

// HistogramOf sums the series of histogram name (its _bucket, _sum and _count samples) whose
// labels include match. ok is false when no bucket matched.
func HistogramOf(samples []Sample, name string, match map[string]string) (h Histogram, ok bool) {
	byLE := map[float64]float64{}
	for _, s := range samples {
		if !matches(s.Labels, match) {
			continue
		}
		switch s.Name {
		case name + "_bucket":
			le, err := parseValue(s.Labels["le"])
			if err != nil {
				continue
			}
			byLE[le] += s.Value
			ok = true
		case name + "_sum":
			h.Sum += s.Value
		case name + "_count":
			h.Count += s.Value
		}
	}
	for le, c := range byLE {
		h.Buckets = append(h.Buckets, Bucket{UpperBound: le, Count: c})
	}
	sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].UpperBound < h.Buckets[j].UpperBound })
	return h, ok
}

// Sub returns what h observed since base, an earlier reading of the same series: counters
// only grow, so the difference is the histogram of the interval. Buckets missing from base
// count as zero there.
func (h Histogram) Sub(base Histogram) Histogram {
	prev := map[float64]float64{}
	for _, b := range base.Buckets {
		prev[b.UpperBound] = b.Count
	}
	out := Histogram{Sum: h.Sum - base.Sum, Count: h.Count - base.Count}
	for _, b := range h.Buckets {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: b.UpperBound, Count: max(0, b.Count-prev[b.UpperBound])})
	}
	return out
}

// Total is the number of observations: the +Inf bucket, or Count without buckets.
func (h Histogram) Total() float64 {
	if n := len(h.Buckets); n > 0 {
		return h.Buckets[n-1].Count
	}
	return h.Count
}

// Mean is Sum/Count, NaN without observations.
func (h Histogram) Mean() float64 {
	if h.Count <= 0 {
		return math.NaN()
	}
	return h.Sum / h.Count
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) the way Prometheus's histogram_quantile does:
// it finds the bucket holding rank q·total and interpolates linearly inside it, taking 0 as
// the lower bound of the first bucket. A quantile in the +Inf bucket is reported as the
// highest finite bound (a lower bound of the truth). NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Total()
	if len(h.Buckets) == 0 || total <= 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	rank := q * total
	lowerBound, lowerCount := 0.0, 0.0
	for i, b := range h.Buckets {
		if b.Count >= rank && b.Count > lowerCount {
			if math.IsInf(b.UpperBound, 1) {
				if i == 0 {
					return math.NaN()
				}
				return h.Buckets[i-1].UpperBound
			}
			if i == 0 && b.UpperBound <= 0 {
				return b.UpperBound
			}
			return lowerBound + (b.UpperBound-lowerBound)*(rank-lowerCount)/(b.Count-lowerCount)
		}
		lowerBound, lowerCount = b.UpperBound, b.Count
	}
	return lowerBound
}

// Gauge sums the samples of name whose labels include match.
func Gauge(samples []Sample, name string, match map[string]string) (float64, bool) {
	var v float64
	ok := false
	for _, s := range samples {
		if s.Name == name && matches(s.Labels, match) {
			v += s.Value
			ok = true
		}
	}
	return v, ok
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
