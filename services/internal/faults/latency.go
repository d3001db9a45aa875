package faults

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxLatencyPoints bounds FAULT_LATENCY; a handful of percentiles describes any shape
// a demo needs.
const MaxLatencyPoints = 32

// Point is one percentile of a latency distribution: Percentile percent of requests
// are delayed by at most Value.
type Point struct {
	Percentile float64
	Value      time.Duration
}

// Latency is a delay distribution given by percentiles (FAULT_LATENCY), in the style
// of fake-service: "p50=20ms,p90=80ms,p99=300ms". A delay is drawn by feeding a
// uniform number into the inverse CDF, interpolated linearly between the given
// percentiles. The curve starts at 0 at p0 unless a p0 point is given, and is clamped
// to the highest given value above the highest percentile (so p99=300ms means the
// slowest 1% take exactly 300ms, never more).
//
// The zero value is "no latency". Latency implements encoding.TextUnmarshaler so
// caarlos0/env parses it straight from the environment.
type Latency struct {
	points []Point // sorted by Percentile, strictly increasing; Value non-decreasing
}

// ParseLatency parses the FAULT_LATENCY syntax:
//
//	latency    = [ point *( "," point ) ]            ; empty means no latency
//	point      = "p" percentile "=" duration
//	percentile = 1*DIGIT [ "." 1*DIGIT ]              ; 0 to 100
//	duration   = Go duration (time.ParseDuration), not negative
//
// Points may come in any order; each percentile may appear once, and the values must
// not decrease as the percentile grows (a CDF cannot go backwards). Whitespace around
// "," and "=" is ignored.
func ParseLatency(s string) (Latency, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Latency{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxLatencyPoints {
		return Latency{}, fmt.Errorf("%d points, at most %d allowed", len(parts), MaxLatencyPoints)
	}
	pts := make([]Point, 0, len(parts))
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			return Latency{}, fmt.Errorf("point %d is empty", i+1)
		}
		name, val, ok := strings.Cut(part, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || len(name) < 2 || name[0] != 'p' {
			return Latency{}, fmt.Errorf("point %q: want pNN=duration, for example p90=80ms", part)
		}
		p, err := parsePercent(name[1:])
		if err != nil {
			return Latency{}, fmt.Errorf("point %q: percentile: %w", part, err)
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			return Latency{}, fmt.Errorf("point %q: %w", part, err)
		}
		if d < 0 {
			return Latency{}, fmt.Errorf("point %q: duration must not be negative", part)
		}
		pts = append(pts, Point{Percentile: p, Value: d})
	}
	slices.SortStableFunc(pts, func(a, b Point) int {
		switch {
		case a.Percentile < b.Percentile:
			return -1
		case a.Percentile > b.Percentile:
			return 1
		}
		return 0
	})
	for i := 1; i < len(pts); i++ {
		prev, cur := pts[i-1], pts[i]
		if prev.Percentile == cur.Percentile {
			return Latency{}, fmt.Errorf("percentile p%s given twice", fmtPercent(cur.Percentile))
		}
		if cur.Value < prev.Value {
			return Latency{}, fmt.Errorf("p%s=%s is below p%s=%s: values must not decrease as the percentile grows",
				fmtPercent(cur.Percentile), cur.Value, fmtPercent(prev.Percentile), prev.Value)
		}
	}
	return Latency{points: pts}, nil
}

// MustParseLatency is ParseLatency for constants in tests and examples; it panics on
// a bad literal.
func MustParseLatency(s string) Latency {
	l, err := ParseLatency(s)
	if err != nil {
		panic("faults: bad latency literal " + strconv.Quote(s) + ": " + err.Error())
	}
	return l
}

// UnmarshalText lets caarlos0/env (and encoding/json) parse FAULT_LATENCY; errors name
// the variable, since env's own wrapping names only the Go field.
func (l *Latency) UnmarshalText(b []byte) error {
	v, err := ParseLatency(string(b))
	if err != nil {
		return fmt.Errorf("FAULT_LATENCY=%q: %w", b, err)
	}
	*l = v
	return nil
}

// MarshalText renders the canonical form, so /admin/faults shows what is in effect.
func (l Latency) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// String renders the canonical form: points sorted by percentile, Go durations.
func (l Latency) String() string {
	var b strings.Builder
	for i, p := range l.points {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('p')
		b.WriteString(fmtPercent(p.Percentile))
		b.WriteByte('=')
		b.WriteString(p.Value.String())
	}
	return b.String()
}

// IsZero reports whether no latency is configured.
func (l Latency) IsZero() bool { return len(l.points) == 0 }

// Points returns a copy of the percentiles, sorted.
func (l Latency) Points() []Point { return slices.Clone(l.points) }

// Max is the largest delay the distribution can produce.
func (l Latency) Max() time.Duration {
	if len(l.points) == 0 {
		return 0
	}
	return l.points[len(l.points)-1].Value
}

// Quantile is the inverse CDF: the delay for a uniform draw u in [0,1]. u is clamped
// into that range.
func (l Latency) Quantile(u float64) time.Duration {
	if len(l.points) == 0 {
		return 0
	}
	q := u * 100
	lo := Point{} // implicit p0=0 unless the first point is p0 itself
	for _, p := range l.points {
		if q <= p.Percentile {
			if p.Percentile == lo.Percentile { // only for an explicit p0
				return p.Value
			}
			if q <= lo.Percentile {
				return lo.Value
			}
			frac := (q - lo.Percentile) / (p.Percentile - lo.Percentile)
			return lo.Value + time.Duration(frac*float64(p.Value-lo.Value))
		}
		lo = p
	}
	return lo.Value
}

// parsePercent reads 1*DIGIT [ "." 1*DIGIT ] in [0,100]. The syntax is deliberately
// narrower than strconv.ParseFloat (no signs, exponents, hex, Inf or NaN).
func parsePercent(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	dot := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return 0, fmt.Errorf("%q is not a number like 50 or 99.9", s)
		}
	}
	if len(s) > 16 {
		return 0, fmt.Errorf("%q is too long", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	if v > 100 {
		return 0, fmt.Errorf("%s is above 100", s)
	}
	return v, nil
}

func fmtPercent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }
