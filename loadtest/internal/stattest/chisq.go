package stattest

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// GoF is the outcome of a chi-square goodness-of-fit test.
type GoF struct {
	Statistic float64 // Pearson's X² = Σ (observed-expected)² / expected
	DF        int     // degrees of freedom: categories - 1
	P         float64 // probability of an X² at least this large if the expectation holds
}

// GoodnessOfFit tests observed category counts against expected proportions. The
// proportions are normalised, so weights like 80 and 20 may be passed as they are.
// A category with weight 0 that was observed makes the p-value 0: the mesh sent
// traffic where it was told to send none.
func GoodnessOfFit(observed []int64, weights []float64) (GoF, error) {
	if len(observed) != len(weights) {
		return GoF{}, fmt.Errorf("%d observed counts for %d weights", len(observed), len(weights))
	}
	if len(observed) < 2 {
		return GoF{}, errors.New("a goodness-of-fit test needs at least two categories")
	}
	probs, err := normalise(weights)
	if err != nil {
		return GoF{}, err
	}
	var n int64
	for _, o := range observed {
		if o < 0 {
			return GoF{}, errors.New("negative count")
		}
		n += o
	}
	if n == 0 {
		return GoF{}, errors.New("no observations")
	}
	df := -1
	var x2 float64
	for i, o := range observed {
		e := probs[i] * float64(n)
		if e == 0 {
			if o > 0 {
				return GoF{Statistic: math.Inf(1), DF: len(observed) - 1, P: 0}, nil
			}
			continue // a category that can never occur carries no degree of freedom
		}
		df++
		d := float64(o) - e
		x2 += d * d / e
	}
	if df < 1 {
		return GoF{}, errors.New("a goodness-of-fit test needs at least two categories with weight")
	}
	return GoF{Statistic: x2, DF: df, P: ChiSquareSF(x2, df)}, nil
}

func normalise(weights []float64) ([]float64, error) {
	var sum float64
	for _, w := range weights {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("weight %v is not a finite non-negative number", w)
		}
		sum += w
	}
	if sum == 0 {
		return nil, errors.New("weights sum to zero")
	}
	probs := make([]float64, len(weights))
	for i, w := range weights {
		probs[i] = w / sum
	}
	return probs, nil
}

func effect(p0, p1 []float64) (w2 float64, df int) {
	df = -1
	for i := range p0 {
		if p0[i] == 0 {
			continue
		}
		df++
		d := p1[i] - p0[i]
		w2 += d * d / p0[i]
	}
	return w2, df
}

// Shifted returns the alternative that MinSamples guards against: the expected
// proportions with shift (an absolute share, 0.10 = ten percentage points) moved from
// the largest category to the smallest one that has weight. For 80/20 and 0.10 it is
// 70/30.
func Shifted(weights []float64, shift float64) ([]float64, error) {
	p, err := normalise(weights)
	if err != nil {
		return nil, err
	}
	hi, lo := -1, -1
	for i, v := range p {
		if v == 0 {
			continue
		}
		if hi < 0 || v > p[hi] {
			hi = i
		}
		if lo < 0 || v < p[lo] || (v == p[lo] && i != hi) {
			lo = i
		}
	}
	if hi == lo || lo < 0 {
		return nil, errors.New("need at least two categories with weight")
	}
	if shift <= 0 || shift > p[hi] {
		return nil, fmt.Errorf("shift %.3f must be in (0, %.3f]", shift, p[hi])
	}
	alt := append([]float64(nil), p...)
	alt[hi] -= shift
	alt[lo] += shift
	return alt, nil
}

// MinSamples is the smallest number of observations at which the goodness-of-fit test
// at level alpha detects the Shifted alternative with at least the given power, and at
// which every category expects at least five observations (below that the chi-square
// approximation does not hold).
//
// With two categories (the usual canary split) the power is computed exactly from the
// binomial distribution. With more it uses the non-central chi-square approximation,
// which is optimistic when the alternative's variance exceeds the null's (for 80/20
// against 70/30 it would say 505 where the exact answer is about 570), so the
// approximate answer is raised by a fifth.
func MinSamples(weights []float64, shift, alpha, power float64) (int64, error) {
	p0, err := normalise(weights)
	if err != nil {
		return 0, err
	}
	p1, err := Shifted(weights, shift)
	if err != nil {
		return 0, err
	}
	w2, df := effect(p0, p1)
	crit := ChiSquareCritical(alpha, df)
	powerAt := func(lambda float64) float64 { return 1 - noncentralChiSquareCDF(crit, df, lambda) }
	lo, hi := 0.0, 1.0
	for powerAt(hi) < power {
		hi *= 2
	}
	for range 100 {
		mid := (lo + hi) / 2
		if powerAt(mid) < power {
			lo = mid
		} else {
			hi = mid
		}
	}
	n := int64(math.Ceil(hi / w2))
	if idx := weighted(p0); len(idx) == 2 {
		a, b := idx[0], idx[1]
		exact := func(n int64) float64 { return exactPower2(n, p0[a]/(p0[a]+p0[b]), p1[a]/(p1[a]+p1[b]), crit) }
		for exact(n) < power {
			n++
		}
		for n > 1 && exact(n-1) >= power {
			n--
		}
	} else {
		n += n / 5
	}
	for _, p := range p0 {
		if p > 0 && p*float64(n) < 5 {
			n = int64(math.Ceil(5 / p))
		}
	}
	return n, nil
}

func weighted(p []float64) []int {
	var idx []int
	for i, v := range p {
		if v > 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// exactPower2 is the probability, when the first of two categories has probability
// p1, that the two-category X² = (k - n p0)² / (n p0 (1-p0)) exceeds crit, that is that
// k falls outside n p0 ± √(crit n p0 (1-p0)): the two tails of Binomial(n, p1).
func exactPower2(n int64, p0, p1, crit float64) float64 {
	mid := float64(n) * p0
	r := math.Sqrt(crit * mid * (1 - p0))
	alt := distuv.Binomial{N: float64(n), P: p1}
	below := math.Ceil(mid-r) - 1 // the largest k < mid - r
	above := math.Floor(mid + r)  // every k > mid + r is > above
	return alt.CDF(below) + alt.Survival(above)
}

// ChiSquareSF is the survival function (upper tail probability) of the chi-square
// distribution with df degrees of freedom: the p-value of a statistic x.
func ChiSquareSF(x float64, df int) float64 {
	return distuv.ChiSquared{K: float64(df)}.Survival(x)
}

// ChiSquareCritical is the value the statistic must exceed for a test at level alpha
// to reject: the inverse of ChiSquareSF. distuv.ChiSquared.Quantile(1-alpha) would
// lose alpha's digits in 1-alpha (at alpha 1e-12 its answer has a tail of 9.99978e-13),
// so the upper tail is inverted directly with the function Survival itself uses.
func ChiSquareCritical(alpha float64, df int) float64 {
	return 2 * mathext.GammaIncRegCompInv(float64(df)/2, alpha)
}

// noncentralChiSquareCDF is P(X <= x) for X ~ chi-square(df, lambda), as the Poisson
// mixture of central chi-square distributions with df+2j degrees of freedom (gonum has
// no non-central chi-square).
func noncentralChiSquareCDF(x float64, df int, lambda float64) float64 {
	if lambda == 0 {
		return distuv.ChiSquared{K: float64(df)}.CDF(x)
	}
	weight := distuv.Poisson{Lambda: lambda / 2}
	var sum, weightSum float64
	for j := 0; j < 100000; j++ {
		w := weight.Prob(float64(j))
		sum += w * distuv.ChiSquared{K: float64(df + 2*j)}.CDF(x)
		weightSum += w
		if float64(j) > lambda/2 && 1-weightSum < 1e-14 {
			break
		}
	}
	return sum
}
