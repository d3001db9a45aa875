// Package stattest holds the hypothesis tests loadtest uses to decide whether what the
// mesh did matches what it was told to do: a chi-square goodness-of-fit test for
// version splits and an exact binomial test for status mixes.
//
// A fixed tolerance ("80% ± 5") is wrong at both ends: with 50 requests it fails a
// correct split by chance, with 50,000 it accepts a broken one. A test with a stated
// significance level fails a correct configuration with probability alpha whatever the
// sample size, and the power calculation says how many requests are needed before a
// real deviation shows.
//
// The distributions (chi-square, binomial, Poisson) are gonum's stat/distuv; this
// package only builds the tests from them.
package stattest
