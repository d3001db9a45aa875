// Package stattest holds the hypothesis tests loadtest uses to decide whether what the
// mesh did matches what it was told to do: a chi-square goodness-of-fit test for
// version splits and an exact binomial test for status mixes.
//
// A fixed tolerance ("80% ± 5") is wrong at both ends: with 50 requests it fails a
// correct split by chance, with 50,000 it accepts a broken one. A test with a stated
// significance level fails a correct configuration with probability alpha whatever the
// sample size, and the power calculation says how many requests are needed before a
// real deviation shows.
package stattest

import "math"

// regGammaP is the regularized lower incomplete gamma function P(a, x).
func regGammaP(a, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case math.IsInf(x, 1):
		return 1
	case x < a+1:
		return gammaSeries(a, x)
	default:
		return 1 - gammaContinuedFraction(a, x)
	}
}

// regGammaQ is the regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x),
// computed directly in the tail so that tiny p-values keep their precision.
func regGammaQ(a, x float64) float64 {
	switch {
	case x <= 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	case x < a+1:
		return 1 - gammaSeries(a, x)
	default:
		return gammaContinuedFraction(a, x)
	}
}

// gammaSeries evaluates P(a, x) by its power series, which converges fast for x < a+1.
func gammaSeries(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	sum := 1 / a
	term := sum
	for n := 1; n < 10000; n++ {
		term *= x / (a + float64(n))
		sum += term
		if math.Abs(term) < math.Abs(sum)*1e-15 {
			break
		}
	}
	return sum * math.Exp(-x+a*math.Log(x)-lg)
}

// gammaContinuedFraction evaluates Q(a, x) by its continued fraction (modified Lentz),
// which converges fast for x >= a+1.
func gammaContinuedFraction(a, x float64) float64 {
	const tiny = 1e-300
	lg, _ := math.Lgamma(a)
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		h *= delta
		if math.Abs(delta-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// ChiSquareSF is the survival function (upper tail probability) of the chi-square
// distribution with df degrees of freedom: the p-value of a statistic x.
func ChiSquareSF(x float64, df int) float64 {
	return regGammaQ(float64(df)/2, x/2)
}

// ChiSquareCritical is the value the statistic must exceed for a test at level alpha
// to reject, found by bisection on ChiSquareSF.
func ChiSquareCritical(alpha float64, df int) float64 {
	lo, hi := 0.0, 1.0
	for ChiSquareSF(hi, df) > alpha {
		hi *= 2
	}
	for range 200 {
		mid := (lo + hi) / 2
		if ChiSquareSF(mid, df) > alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// noncentralChiSquareCDF is P(X <= x) for X ~ chi-square(df, lambda), as the Poisson
// mixture of central chi-square distributions with df+2j degrees of freedom.
func noncentralChiSquareCDF(x float64, df int, lambda float64) float64 {
	if lambda == 0 {
		return 1 - ChiSquareSF(x, df)
	}
	half := lambda / 2
	var sum, weightSum float64
	for j := 0; j < 100000; j++ {
		lw := -half + float64(j)*math.Log(half)
		lf, _ := math.Lgamma(float64(j) + 1)
		w := math.Exp(lw - lf)
		sum += w * regGammaP(float64(df)/2+float64(j), x/2)
		weightSum += w
		if float64(j) > half && 1-weightSum < 1e-14 {
			break
		}
	}
	return sum
}
