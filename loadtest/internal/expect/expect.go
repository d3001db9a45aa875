// Package expect turns what the user expects the mesh to do into checks on a
// run's counts (result.Counts): a version split per hop (chi-square goodness of fit), a share of a
// status code (exact binomial test), and a latency ceiling.
package expect

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/result"
	"github.com/meshdemo/meshdemo/loadtest/internal/stattest"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Settings are the statistical choices, stated in every result.
type Settings struct {
	// Alpha is the significance level: the probability that a check fails although the
	// mesh does exactly what was expected.
	Alpha float64
	// Power and Shift set the sample a split check requires: enough responses that a
	// split off by Shift (0.10 = ten points, 80/20 really 70/30) fails with probability
	// at least Power.
	Power float64
	Shift float64
}

// Defaults: a false alarm once in a thousand runs; a ten-point error caught 99 times
// in a hundred.
var Defaults = Settings{Alpha: 0.001, Power: 0.99, Shift: 0.10}

// Split is an expected version split for one service, from "server2=v1:80,v2:20".
type Split struct {
	Service  string
	Versions []string
	Weights  []float64
}

// ParseSplit reads "service=version:weight,version:weight".
func ParseSplit(s string) (Split, error) {
	svc, rest, ok := strings.Cut(s, "=")
	svc = strings.TrimSpace(svc)
	if !ok || !pathheader.IsToken(svc) {
		return Split{}, fmt.Errorf("expect %q: want service=version:weight,version:weight (e.g. server2=v1:80,v2:20)", s)
	}
	sp := Split{Service: svc}
	for _, part := range strings.Split(rest, ",") {
		v, w, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || !pathheader.IsToken(v) {
			return Split{}, fmt.Errorf("expect %q: %q is not version:weight", s, part)
		}
		weight, err := strconv.ParseFloat(w, 64)
		if err != nil || weight < 0 || weight > 1e9 {
			return Split{}, fmt.Errorf("expect %q: weight %q is not a non-negative number", s, w)
		}
		if slices.Contains(sp.Versions, v) {
			return Split{}, fmt.Errorf("expect %q: version %s listed twice", s, v)
		}
		sp.Versions = append(sp.Versions, v)
		sp.Weights = append(sp.Weights, weight)
	}
	var total float64
	for _, w := range sp.Weights {
		total += w
	}
	if total == 0 {
		return Split{}, fmt.Errorf("expect %q: weights sum to zero", s)
	}
	return sp, nil
}

// Status is an expected share of one status code, from "503:50".
type Status struct {
	Code    int
	Percent float64
}

// ParseStatus reads "code:percent[,code:percent...]".
func ParseStatus(s string) ([]Status, error) {
	var out []Status
	var total float64
	for _, part := range strings.Split(s, ",") {
		c, p, ok := strings.Cut(strings.TrimSpace(part), ":")
		code, err := strconv.Atoi(c)
		if !ok || err != nil || code < 100 || code > 599 {
			return nil, fmt.Errorf("expect-status %q: want code:percent (e.g. 503:50)", s)
		}
		pct, err := strconv.ParseFloat(p, 64)
		if err != nil || pct < 0 || pct > 100 {
			return nil, fmt.Errorf("expect-status %q: percent %q is not in [0, 100]", s, p)
		}
		total += pct
		out = append(out, Status{Code: code, Percent: pct})
	}
	if total > 100+1e-9 {
		return nil, fmt.Errorf("expect-status %q: shares add up to %.4g%%", s, total)
	}
	return out, nil
}

// Result is one check, as printed and as written to the JSON report.
type Result struct {
	Kind     string `json:"kind"` // split, status or p99
	Subject  string `json:"subject"`
	Expected string `json:"expected"`
	Observed string `json:"observed"`
	OK       bool   `json:"ok"`
	Message  string `json:"message"`
	// Statistical checks only.
	PValue     *float64 `json:"p_value,omitempty"`
	Alpha      float64  `json:"alpha,omitempty"`
	Samples    int64    `json:"samples,omitempty"`
	MinSamples int64    `json:"min_samples,omitempty"`
	// AcceptLow and AcceptHigh bound the share (percent) a status check accepts.
	AcceptLow  *float64 `json:"accept_low_percent,omitempty"`
	AcceptHigh *float64 `json:"accept_high_percent,omitempty"`
}

// Checks are the expectations of one run, checked at its end (the report) and every
// second while it runs (the live page) by the same code.
type Checks struct {
	Splits   []Split
	Statuses []Status
	MaxP99   time.Duration // 0: no latency check
	Settings Settings
}

// Evaluate checks every expectation against the counts so far and the run's p99
// latency in milliseconds, in a fixed order: splits, statuses, p99.
func (cs Checks) Evaluate(c result.Counts, p99MS float64) []Result {
	out := make([]Result, 0, len(cs.Splits)+len(cs.Statuses)+1)
	for _, sp := range cs.Splits {
		out = append(out, CheckSplit(sp, c, cs.Settings))
	}
	for _, st := range cs.Statuses {
		out = append(out, CheckStatus(st, c, cs.Settings))
	}
	if cs.MaxP99 > 0 {
		out = append(out, CheckP99(cs.MaxP99, p99MS, c.Requests))
	}
	return out
}

// CheckSplit tests the versions that served sp.Service against the expected weights.
// It fails when the test rejects at set.Alpha, when a version outside the expectation
// served traffic, and when there were too few responses for the test to mean anything.
func CheckSplit(sp Split, sum result.Counts, set Settings) Result {
	r := Result{Kind: "split", Subject: sp.Service, Alpha: set.Alpha, Expected: formatWeights(sp.Versions, sp.Weights)}
	counts := sum.Hops[sp.Service]
	versions := slices.Clone(sp.Versions)
	weights := slices.Clone(sp.Weights)
	for _, v := range sum.Versions(sp.Service) {
		if !slices.Contains(versions, v) {
			versions = append(versions, v)
			weights = append(weights, 0)
		}
	}
	observed := make([]int64, len(versions))
	for i, v := range versions {
		observed[i] = counts[v]
		r.Samples += counts[v]
	}
	r.Observed = formatCounts(versions, observed)
	if r.Samples == 0 {
		r.Message = fmt.Sprintf("no response named %s in its %s header (missing on %d, unparsable on %d)",
			sp.Service, pathheader.Name, sum.PathMissing, sum.PathInvalid)
		return r
	}
	var withWeight int
	for _, w := range sp.Weights {
		if w > 0 {
			withWeight++
		}
	}
	if withWeight < 2 {
		// A single expected version: anything else is a failure, no statistics needed.
		var stray int64
		for i, w := range weights {
			if w == 0 {
				stray += observed[i]
			}
		}
		r.OK = stray == 0
		if r.OK {
			r.Message = fmt.Sprintf("all %d responses from the expected version", r.Samples)
		} else {
			r.Message = fmt.Sprintf("%d of %d responses from versions that should get no traffic", stray, r.Samples)
		}
		return r
	}
	gof, err := stattest.GoodnessOfFit(observed, weights)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	r.PValue = &gof.P
	r.MinSamples, err = stattest.MinSamples(sp.Weights, min(set.Shift, maxShare(sp.Weights)), set.Alpha, set.Power)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	switch {
	case gof.P < set.Alpha:
		r.Message = fmt.Sprintf("split differs from expected: chi-square %.2f (df %d), p=%.3g < alpha %g", gof.Statistic, gof.DF, gof.P, set.Alpha)
	case r.Samples < r.MinSamples:
		r.Message = fmt.Sprintf("too few responses to judge: %d, need %d to catch a %.0f-point error with %.0f%% power at alpha %g",
			r.Samples, r.MinSamples, set.Shift*100, set.Power*100, set.Alpha)
	default:
		r.OK = true
		r.Message = fmt.Sprintf("consistent with expected: chi-square %.2f (df %d), p=%.3g >= alpha %g; %d responses (need %d)",
			gof.Statistic, gof.DF, gof.P, set.Alpha, r.Samples, r.MinSamples)
	}
	return r
}

func maxShare(w []float64) float64 {
	var total, top float64
	for _, x := range w {
		total += x
		top = max(top, x)
	}
	return top / total
}

// CheckStatus tests the share of st.Code among all requests (errors included).
func CheckStatus(st Status, sum result.Counts, set Settings) Result {
	code := strconv.Itoa(st.Code)
	r := Result{Kind: "status", Subject: code, Alpha: set.Alpha, Expected: fmt.Sprintf("%g%%", st.Percent), Samples: sum.Requests}
	k := sum.Status[st.Code]
	if sum.Requests == 0 {
		r.Message = "no requests"
		return r
	}
	share := 100 * float64(k) / float64(sum.Requests)
	r.Observed = fmt.Sprintf("%d of %d (%.2f%%)", k, sum.Requests, share)
	b, err := stattest.BinomialTest(k, sum.Requests, st.Percent/100, set.Alpha)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	lo := 100 * float64(b.AcceptLo) / float64(sum.Requests)
	hi := 100 * float64(b.AcceptHi) / float64(sum.Requests)
	r.PValue, r.AcceptLow, r.AcceptHigh = &b.P, &lo, &hi
	r.OK = b.P >= set.Alpha
	verdict := "consistent with"
	if !r.OK {
		verdict = "differs from"
	}
	r.Message = fmt.Sprintf("%s %g%%: accepted %d..%d of %d (%.2f%%..%.2f%%) at alpha %g, p=%.3g",
		verdict, st.Percent, b.AcceptLo, b.AcceptHi, sum.Requests, lo, hi, set.Alpha, b.P)
	return r
}

// CheckP99 fails when the 99th percentile latency (p99MS, over requests requests)
// exceeds limit.
func CheckP99(limit time.Duration, p99MS float64, requests int64) Result {
	got := time.Duration(p99MS * float64(time.Millisecond))
	r := Result{Kind: "p99", Subject: "latency", Expected: "<= " + limit.String(), Observed: got.Round(10 * time.Microsecond).String(), Samples: requests}
	r.OK = requests > 0 && got <= limit
	switch {
	case requests == 0:
		r.Message = "no requests"
	case r.OK:
		r.Message = "p99 within limit"
	default:
		r.Message = fmt.Sprintf("p99 %s exceeds %s", r.Observed, limit)
	}
	return r
}

func formatWeights(vs []string, ws []float64) string {
	parts := make([]string, len(vs))
	for i := range vs {
		parts[i] = fmt.Sprintf("%s:%g", vs[i], ws[i])
	}
	return strings.Join(parts, ",")
}

func formatCounts(vs []string, cs []int64) string {
	parts := make([]string, len(vs))
	for i := range vs {
		parts[i] = fmt.Sprintf("%s:%d", vs[i], cs[i])
	}
	return strings.Join(parts, ",")
}
