package stattest

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g ± %g", name, got, want, tol)
	}
}

func TestChiSquareSF(t *testing.T) {
	t.Parallel()
	// Reference values: textbook critical values, and the closed form exp(-x/2) for df=2.
	cases := []struct {
		name string
		x    float64
		df   int
		want float64
	}{
		{"df1 at 5%", 3.841458820694124, 1, 0.05},
		{"df1 at 0.1%", 10.827566170662733, 1, 0.001},
		{"df4 at 5%", 9.487729036781154, 4, 0.05},
		{"df2 closed form", 2, 2, math.Exp(-1)},
		{"df2 far tail", 60, 2, math.Exp(-30)},
		{"zero", 0, 3, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			near(t, "SF", ChiSquareSF(c.x, c.df), c.want, c.want*1e-6+1e-15)
		})
	}
	near(t, "critical(0.001, 1)", ChiSquareCritical(0.001, 1), 10.827566170662733, 1e-6)
	// A tiny alpha keeps its digits: for df=2 the critical value is -2 ln(alpha).
	near(t, "critical(1e-12, 2)", ChiSquareCritical(1e-12, 2), -2*math.Log(1e-12), 1e-9)
}

func TestGoodnessOfFit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		observed []int64
		weights  []float64
		stat     float64
		df       int
		reject   bool // at alpha 0.001
	}{
		{"exact 80/20", []int64{400, 100}, []float64{80, 20}, 0, 1, false},
		{"70/30 against 80/20", []int64{350, 150}, []float64{80, 20}, 31.25, 1, true},
		{"three-way near expectation", []int64{510, 290, 200}, []float64{50, 30, 20}, 0.2 + 100.0/300, 2, false},
		{"traffic to a zero-weight version", []int64{500, 1}, []float64{100, 0}, math.Inf(1), 1, true},
		{"zero-weight version unseen", []int64{400, 100, 0}, []float64{80, 20, 0}, 0, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g, err := GoodnessOfFit(c.observed, c.weights)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsInf(c.stat, 1) != math.IsInf(g.Statistic, 1) || (!math.IsInf(c.stat, 1) && math.Abs(g.Statistic-c.stat) > 1e-9) {
				t.Errorf("statistic = %v, want %v", g.Statistic, c.stat)
			}
			if g.DF != c.df {
				t.Errorf("df = %d, want %d", g.DF, c.df)
			}
			if got := g.P < 0.001; got != c.reject {
				t.Errorf("reject = %v (p=%g), want %v", got, g.P, c.reject)
			}
		})
	}
	for _, bad := range []struct {
		name string
		o    []int64
		w    []float64
	}{
		{"one category", []int64{3}, []float64{1}},
		{"length mismatch", []int64{3, 4}, []float64{1}},
		{"no observations", []int64{0, 0}, []float64{1, 1}},
		{"negative weight", []int64{1, 1}, []float64{-1, 2}},
	} {
		if _, err := GoodnessOfFit(bad.o, bad.w); err == nil {
			t.Errorf("%s: want error", bad.name)
		}
	}
}

// TestMinSamplesDetects80Versus70 checks the documented numbers: at alpha 0.001 and 99%
// power, about 570 responses tell a true 80/20 split from a 70/30 one.
func TestMinSamplesDetects80Versus70(t *testing.T) {
	t.Parallel()
	n, err := MinSamples([]float64{80, 20}, 0.10, 0.001, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	// Normal approximation with each hypothesis' own variance:
	// 0.1 n = (3.29·0.40 + 2.33·0.458) √n gives n ≈ 567.
	if n < 555 || n > 580 {
		t.Fatalf("MinSamples = %d, want about 567", n)
	}

	// Monte Carlo with a fixed seed: the test must keep its promises on simulated data.
	rng := rand.New(rand.NewPCG(7, 11))
	const trials = 10000
	falseRejects, misses := 0, 0
	for range trials {
		if rejects(t, draw(rng, n, 0.8), n) {
			falseRejects++
		}
		if !rejects(t, draw(rng, n, 0.7), n) {
			misses++
		}
	}
	t.Logf("n=%d: true 80/20 rejected in %d of %d runs, 70/30 accepted in %d", n, falseRejects, trials, misses)
	// Expected: 0.1% false rejections (10 of 10000), at most 1% misses (99 of 10000); the
	// bounds are about three standard deviations above.
	if falseRejects > 25 {
		t.Errorf("true 80/20 rejected in %d of %d trials, want about %d", falseRejects, trials, trials/1000)
	}
	if misses > 130 {
		t.Errorf("70/30 accepted in %d of %d trials, want at most about %d", misses, trials, trials/100)
	}
}

func draw(rng *rand.Rand, n int64, p float64) int64 {
	var k int64
	for range n {
		if rng.Float64() < p {
			k++
		}
	}
	return k
}

func rejects(t *testing.T, first, n int64) bool {
	t.Helper()
	g, err := GoodnessOfFit([]int64{first, n - first}, []float64{80, 20})
	if err != nil {
		t.Fatal(err)
	}
	return g.P < 0.001
}

func TestShifted(t *testing.T) {
	t.Parallel()
	alt, err := Shifted([]float64{50, 30, 20}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.4, 0.3, 0.3}
	for i := range want {
		near(t, "alt", alt[i], want[i], 1e-12)
	}
	if _, err := Shifted([]float64{100}, 0.1); err == nil {
		t.Error("single category: want error")
	}
}

func TestBinomialTest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		k, n   int64
		p      float64
		alpha  float64
		pval   float64
		lo, hi int64
	}{
		{"fair coin, middle", 5, 10, 0.5, 0.05, 1, 2, 8},
		{"fair coin, all tails", 0, 10, 0.5, 0.05, 2.0 / 1024, 2, 8},
		{"fair coin, nine heads", 9, 10, 0.5, 0.05, 22.0 / 1024, 2, 8},
		{"skewed", 0, 20, 0.1, 0.05, 0.2545299784, 0, 4},
		{"share 0, none seen", 0, 10, 0, 0.05, 1, 0, 0},
		{"share 0, one seen", 1, 10, 0, 0.05, 0, 0, 0},
		{"share 1, all seen", 10, 10, 1, 0.05, 1, 10, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b, err := BinomialTest(c.k, c.n, c.p, c.alpha)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "p", b.P, c.pval, 1e-9)
			if b.AcceptLo != c.lo || b.AcceptHi != c.hi {
				t.Errorf("accept = [%d, %d], want [%d, %d]", b.AcceptLo, b.AcceptHi, c.lo, c.hi)
			}
			// The region and the p-value must agree at its edges.
			for _, k := range []int64{b.AcceptLo, b.AcceptHi} {
				e, _ := BinomialTest(k, c.n, c.p, c.alpha)
				if e.P < c.alpha {
					t.Errorf("edge %d has p=%g < alpha", k, e.P)
				}
			}
			for _, k := range []int64{b.AcceptLo - 1, b.AcceptHi + 1} {
				if k < 0 || k > c.n {
					continue
				}
				e, _ := BinomialTest(k, c.n, c.p, c.alpha)
				if e.P >= c.alpha {
					t.Errorf("outside edge %d has p=%g >= alpha", k, e.P)
				}
			}
		})
	}
	// Half of 500 responses 503 under an abort:503@50 fault: a 50.2% share passes,
	// 40% does not.
	ok, _ := BinomialTest(251, 500, 0.5, 0.001)
	bad, _ := BinomialTest(200, 500, 0.5, 0.001)
	if ok.P < 0.001 || bad.P >= 0.001 {
		t.Errorf("p(251/500)=%g p(200/500)=%g", ok.P, bad.P)
	}
	if _, err := BinomialTest(3, 2, 0.5, 0.05); err == nil {
		t.Error("k > n: want error")
	}
}

func FuzzGoodnessOfFit(f *testing.F) {
	f.Add(int64(400), int64(100), 80.0, 20.0)
	f.Fuzz(func(t *testing.T, a, b int64, wa, wb float64) {
		g, err := GoodnessOfFit([]int64{a, b}, []float64{wa, wb})
		if err != nil {
			return
		}
		if g.P < 0 || g.P > 1 || math.IsNaN(g.P) {
			t.Fatalf("p-value %v outside [0,1] for %d,%d / %v,%v", g.P, a, b, wa, wb)
		}
	})
}

func TestMinSamplesThreeWay(t *testing.T) {
	t.Parallel()
	n, err := MinSamples([]float64{50, 30, 20}, 0.10, 0.001, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50/30/20 needs %d", n)
	if n < 500 || n > 3000 {
		t.Errorf("MinSamples(50/30/20) = %d, outside a plausible range", n)
	}
	n2, _ := MinSamples([]float64{80, 20}, 0.10, 0.001, 0.99)
	t.Logf("80/20 needs %d", n2)
}
