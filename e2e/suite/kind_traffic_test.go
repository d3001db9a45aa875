//go:build e2e

package suite

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"slices"
	"testing"
)

// checkGrpcBalancing: /client/grpc runs the chain over gRPC, where the client keeps one HTTP/2
// connection to server1:50051. Kubernetes would pin it to one pod; the client's sidecar (the
// waypoint in ambient) routes each call on its own, so the calls spread over all three server1
// v1 pods.
func checkGrpcBalancing(t *testing.T, scenario string) {
	var pods []string
	withScenario(t, scenario, func() error {
		pods = tgt.kube.pods(t, "app=server1,version=v1")
		if len(pods) != 3 {
			return fmt.Errorf("server1 v1 pods %v, want 3", pods)
		}
		if r := get(t, "/client/grpc", nil); r.status != http.StatusOK {
			return fmt.Errorf("/client/grpc: %s", chainStatus(r))
		}
		return nil
	})
	const calls = 300
	counts := map[string]int64{}
	for i := range calls {
		r := get(t, "/client/grpc", nil)
		if r.status != http.StatusOK {
			t.Fatalf("call %d: %s", i, chainStatus(r))
		}
		hs := hops(t, r)
		if got := services(hs); got != "client,server1,server2" {
			t.Fatalf("call %d: path %s, want client,server1,server2", i, got)
		}
		if !slices.Contains(pods, hs[1].Instance) {
			t.Fatalf("call %d: server1 instance %q is not one of %v", i, hs[1].Instance, pods)
		}
		counts[hs[1].Instance]++
	}
	if len(counts) < 3 {
		t.Fatalf("%d calls reached %d server1 instances %v, want all 3", calls, len(counts), counts)
	}
	p := evenSpreadPValue(counts, pods, calls)
	t.Logf("server1 instances %v: chi-square p-value %.3g against an even spread", counts, p)
	// alpha 0.001 as loadtest's default: a correct mesh fails this one time in a thousand.
	if p < 0.001 {
		t.Errorf("calls per server1 pod %v are not consistent with an even spread (p = %.3g)", counts, p)
	}
}

// evenSpreadPValue is the p-value of Pearson's chi-square test of counts against an even split
// over three pods. With two degrees of freedom the chi-square survival function is exp(-x/2),
// so no table or library is needed (loadtest's stattest package is internal to its module).
func evenSpreadPValue(counts map[string]int64, pods []string, n int) float64 {
	if len(pods) != 3 {
		panic("evenSpreadPValue: exp(-x/2) holds for three categories (two degrees of freedom) only")
	}
	expected := float64(n) / 3
	x2 := 0.0
	for _, p := range pods {
		d := float64(counts[p]) - expected
		x2 += d * d / expected
	}
	return math.Exp(-x2 / 2)
}

// TestEvenSpreadPValue keeps the closed form honest where it runs: an even split has p = 1,
// a 2:1:0 split is rejected, a mild imbalance is not.
func TestEvenSpreadPValue(t *testing.T) {
	pods := []string{"a", "b", "c"}
	for _, tt := range []struct {
		counts map[string]int64
		reject bool
	}{
		{map[string]int64{"a": 100, "b": 100, "c": 100}, false},
		{map[string]int64{"a": 110, "b": 95, "c": 95}, false},
		{map[string]int64{"a": 200, "b": 100}, true},
		{map[string]int64{"a": 130, "b": 90, "c": 80}, true},
	} {
		p := evenSpreadPValue(tt.counts, pods, 300)
		if (p < 0.001) != tt.reject {
			t.Errorf("%v: p = %.3g, reject = %v", tt.counts, p, tt.reject)
		}
	}
	// x = 13.8155 is the 0.001 critical value of chi-square with 2 degrees of freedom.
	if p := math.Exp(-13.8155 / 2); math.Abs(p-0.001) > 1e-6 {
		t.Errorf("exp(-x/2) at the tabulated critical value: %g, want 0.001", p)
	}
}

// checkRateLimit: server2's sidecar (in ambient the waypoint, for server2's Service) admits 10
// requests per second; at 50 per second about 1 - 10/50 = 80 % of the chain's calls come back
// 429, relayed from that proxy.
func checkRateLimit(t *testing.T, scenario string) {
	withScenario(t, scenario, func() error {
		for range 30 {
			r := get(t, "/client/server1", nil)
			if r.status == http.StatusTooManyRequests {
				// Envoy's local reply, relayed byte for byte by server1 and the client.
				if !bytes.Contains(r.body, []byte("local_rate_limited")) {
					return fmt.Errorf("429 not from the local rate limit: %q", r.body)
				}
				return nil
			}
		}
		return fmt.Errorf("no 429 in 30 calls back to back")
	})
	rep, ok := loadtest(t, "/client/server1", "--rate", "50", "--duration", "10s", "--expect-status", "429:80")
	if !ok || !rep.Passed {
		t.Fatalf("429 share not consistent with 80%%: %v %+v", rep.Summary.Status, rep.Expectations)
	}
	if rep.Summary.Status["200"] == 0 {
		t.Errorf("no call admitted at all: %v", rep.Summary.Status)
	}
}
