package faults_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/faults"
)

func TestParseLatency(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name    string
		in      string
		want    []faults.Point
		canon   string
		wantErr string
	}{
		{name: "empty", in: "", want: nil, canon: ""},
		{name: "blank", in: "  ", want: nil, canon: ""},
		{name: "contract example", in: "p50=20ms,p90=80ms,p99=300ms",
			want:  []faults.Point{{50, 20 * ms}, {90, 80 * ms}, {99, 300 * ms}},
			canon: "p50=20ms,p90=80ms,p99=300ms"},
		{name: "unordered with spaces", in: " p99 = 1s , p50=100ms",
			want: []faults.Point{{50, 100 * ms}, {99, time.Second}}, canon: "p50=100ms,p99=1s"},
		{name: "decimal percentile and p0 and p100", in: "p0=5ms,p99.9=2s,p100=3s",
			want: []faults.Point{{0, 5 * ms}, {99.9, 2 * time.Second}, {100, 3 * time.Second}}, canon: "p0=5ms,p99.9=2s,p100=3s"},
		{name: "equal values allowed", in: "p50=10ms,p90=10ms", want: []faults.Point{{50, 10 * ms}, {90, 10 * ms}}, canon: "p50=10ms,p90=10ms"},
		{name: "missing p", in: "50=20ms", wantErr: "want pNN=duration"},
		{name: "uppercase P", in: "P50=20ms", wantErr: "want pNN=duration"},
		{name: "no equals", in: "p50", wantErr: "want pNN=duration"},
		{name: "percentile above 100", in: "p101=1s", wantErr: "above 100"},
		{name: "negative percentile", in: "p-1=1s", wantErr: "not a number"},
		{name: "exponent percentile", in: "p1e1=1s", wantErr: "not a number"},
		{name: "trailing dot", in: "p50.=1s", wantErr: "not a number"},
		{name: "bad duration", in: "p50=20", wantErr: "missing unit"},
		{name: "negative duration", in: "p50=-20ms", wantErr: "must not be negative"},
		{name: "duplicate percentile", in: "p50=1ms,p50.0=2ms", wantErr: "p50 given twice"},
		{name: "decreasing", in: "p50=100ms,p90=80ms", wantErr: "p90=80ms is below p50=100ms"},
		{name: "empty point", in: "p50=1ms,,p90=2ms", wantErr: "point 2 is empty"},
		{name: "too many points", in: strings.Repeat("p1=1ms,", 32) + "p2=1ms", wantErr: "33 points, at most 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := faults.ParseLatency(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLatency(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLatency(%q): %v", tt.in, err)
			}
			if !slices.Equal(got.Points(), tt.want) {
				t.Errorf("points = %v, want %v", got.Points(), tt.want)
			}
			if got.String() != tt.canon {
				t.Errorf("String() = %q, want %q", got.String(), tt.canon)
			}
			var back faults.Latency
			if err := back.UnmarshalText([]byte(got.String())); err != nil || !slices.Equal(back.Points(), got.Points()) {
				t.Errorf("round trip of %q = %v, %v", got.String(), back.Points(), err)
			}
		})
	}
}

func TestLatencyQuantile(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	l := faults.MustParseLatency("p50=20ms,p90=80ms,p99=300ms")
	withP0 := faults.MustParseLatency("p0=10ms,p50=20ms")
	tests := []struct {
		name string
		l    faults.Latency
		u    float64
		want time.Duration
	}{
		{"starts at 0", l, 0, 0},
		{"halfway to p50", l, 0.25, 10 * ms},
		{"at p50", l, 0.5, 20 * ms},
		{"between p50 and p90", l, 0.7, 50 * ms},
		{"at p90", l, 0.9, 80 * ms},
		{"at p99", l, 0.99, 300 * ms},
		{"clamped above p99", l, 0.9999, 300 * ms},
		{"clamped at 1", l, 1, 300 * ms},
		{"u above 1 clamped", l, 7, 300 * ms},
		{"u below 0 clamped", l, -1, 0},
		{"explicit p0 is the floor", withP0, 0, 10 * ms},
		{"explicit p0 interpolates", withP0, 0.25, 15 * ms},
		{"zero latency", faults.Latency{}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.l.Quantile(tt.u); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.u, got, tt.want)
			}
		})
	}
	if got := l.Max(); got != 300*ms {
		t.Errorf("Max() = %v, want 300ms", got)
	}
}

// TestLatencySampledDistribution draws N delays through Quantile and checks the
// empirical CDF at each configured percentile. Each check is P(X <= v_q) = q with a
// tolerance of 4 binomial standard deviations, sqrt(q(1-q)/N).
func TestLatencySampledDistribution(t *testing.T) {
	t.Parallel()
	const n = 20000
	l := faults.MustParseLatency("p50=20ms,p90=80ms,p99=300ms")
	rng := rand.New(rand.NewPCG(7, 11))
	samples := make([]time.Duration, n)
	for i := range samples {
		samples[i] = l.Quantile(rng.Float64())
	}
	checkCDF(t, samples, []cdfPoint{{10 * time.Millisecond, 0.25}, {20 * time.Millisecond, 0.50},
		{80 * time.Millisecond, 0.90}, {300 * time.Millisecond, 1.0}})
}

type cdfPoint struct {
	v time.Duration
	q float64
}

func checkCDF(t *testing.T, samples []time.Duration, want []cdfPoint) {
	t.Helper()
	n := float64(len(samples))
	for _, w := range want {
		var le int
		for _, s := range samples {
			if s <= w.v {
				le++
			}
		}
		got := float64(le) / n
		tol := 4 * math.Sqrt(w.q*(1-w.q)/n)
		if math.Abs(got-w.q) > tol {
			t.Errorf("P(delay <= %v) = %.4f, want %.4f ± %.4f", w.v, got, w.q, tol)
		}
	}
}
