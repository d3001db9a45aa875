package stattest

import (
	"errors"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// Binomial is the outcome of an exact two-sided binomial test.
type Binomial struct {
	P float64 // p-value: probability of an outcome no more likely than the one observed
	// AcceptLo and AcceptHi bound the counts out of n that the test at the given alpha
	// accepts: the "± statistical bound" printed next to an expected share.
	AcceptLo, AcceptHi int64
}

// BinomialTest tests k successes out of n against success probability p at level alpha
// (the "minimum likelihood" two-sided p-value: the total probability of outcomes whose
// probability is at most that of k).
func BinomialTest(k, n int64, p, alpha float64) (Binomial, error) {
	if n <= 0 {
		return Binomial{}, errors.New("no observations")
	}
	if k < 0 || k > n {
		return Binomial{}, errors.New("count outside [0, n]")
	}
	if p < 0 || p > 1 || math.IsNaN(p) {
		return Binomial{}, errors.New("probability outside [0, 1]")
	}
	if p == 0 || p == 1 {
		// One outcome is certain and every other has probability 0 (gonum's Binomial
		// wants p strictly inside (0, 1) for its probabilities).
		certain := n * int64(p)
		res := Binomial{AcceptLo: certain, AcceptHi: certain}
		if k == certain {
			res.P = 1
		}
		return res, nil
	}
	dist := distuv.Binomial{N: float64(n), P: p}
	// Outcomes more than 40 standard deviations from the mean have probability far
	// below float64 resolution; leaving them out keeps the test linear in the window.
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	lo := max(int64(0), int64(math.Floor(mean-40*sd-10)))
	hi := min(n, int64(math.Ceil(mean+40*sd+10)))
	pmf := make([]float64, hi-lo+1)
	for i := range pmf {
		pmf[i] = dist.Prob(float64(lo + int64(i)))
	}
	at := func(i int64) float64 {
		if i < lo || i > hi {
			return 0
		}
		return pmf[i-lo]
	}
	const rel = 1 + 1e-7 // ties in floating point count as ties
	pk := at(k)
	var pval float64
	for _, v := range pmf {
		if v <= pk*rel {
			pval += v
		}
	}
	pval = min(pval, 1)

	// Acceptance region: walk outcomes from least to most likely; an outcome is
	// rejected while the mass of outcomes at most as likely (itself included) is
	// below alpha.
	order := make([]int, len(pmf))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return pmf[order[a]] < pmf[order[b]] })
	rejected := make([]bool, len(pmf))
	var mass float64
	for i := 0; i < len(order); {
		j := i
		group := 0.0
		for j < len(order) && pmf[order[j]] <= pmf[order[i]]*rel {
			group += pmf[order[j]]
			j++
		}
		if mass+group >= alpha {
			break
		}
		for _, idx := range order[i:j] {
			rejected[idx] = true
		}
		mass += group
		i = j
	}
	res := Binomial{P: pval, AcceptLo: -1, AcceptHi: -1}
	for i, r := range rejected {
		if r {
			continue
		}
		if res.AcceptLo < 0 {
			res.AcceptLo = lo + int64(i)
		}
		res.AcceptHi = lo + int64(i)
	}
	return res, nil
}
