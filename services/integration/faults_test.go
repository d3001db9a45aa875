package integration

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// faultCount reads meshdemo_faults_injected_total{kind} from a workload's admin port.
func faultCount(t *testing.T, p *proc, kind string) int {
	t.Helper()
	body := string(call(t, "GET", p.Admin+"/metrics", nil, "").body)
	re := regexp.MustCompile(`meshdemo_faults_injected_total\{kind="` + kind + `"[^}]*\} (\d+)`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestDirectivesHitOnlyTheirHop: one header through the front door makes exactly one
// hop misbehave; the others forward it untouched.
func TestDirectivesHitOnlyTheirHop(t *testing.T) {
	t.Parallel()
	c := startChain(t, nil)

	r := call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: "server1=abort:503", "X-Request-Id": "abort-s1"}, "")
	if r.code != 503 || !strings.Contains(string(r.body), "urn:meshdemo:fault:abort") {
		t.Fatalf("abort at server1: %d %s", r.code, r.body)
	}
	hops, _ := pathheader.Parse(r.header.Get(pathheader.Name))
	if len(hops) != 2 || hops[1].Service != "server1" {
		t.Errorf("path %q: server2 must not be reached", r.header.Get(pathheader.Name))
	}
	if l := c.server2.logsFor("abort-s1"); len(l) != 0 {
		t.Errorf("server2 saw the request: %v", l)
	}

	start := time.Now()
	r = call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: "server2=delay:400ms, user-service=abort:500"}, "")
	if r.code != 200 || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("delay at server2: %d after %s", r.code, time.Since(start))
	}
	if n := faultCount(t, c.server2, "delay"); n != 1 {
		t.Errorf("server2 delays %d, want 1", n)
	}
	if n := faultCount(t, c.client, "delay") + faultCount(t, c.client, "abort") + faultCount(t, c.server1, "delay"); n != 0 {
		t.Errorf("client/server1 injected %d faults meant for another hop", n)
	}
	if n := faultCount(t, c.server1, "abort"); n != 1 {
		t.Errorf("server1 aborts %d, want 1 (from the first request)", n)
	}

	// A malformed directive is a 400 naming the problem, at the first hop.
	r = call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: "server2=delay:5.5"}, "")
	if r.code != 400 || !strings.Contains(string(r.body), "invalid-directive") {
		t.Errorf("bad directive: %d %s", r.code, r.body)
	}
	// Above the cap.
	r = call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: "server2=delay:31s"}, "")
	if r.code != 400 {
		t.Errorf("delay above FAULT_MAX_DELAY: %d %s", r.code, r.body)
	}
}

// TestHeaderDisabled: a hardened deployment ignores directives.
func TestHeaderDisabled(t *testing.T) {
	t.Parallel()
	off := map[string]string{"FAULT_HEADER_ENABLED": "false"}
	c := startChain(t, map[string]map[string]string{"client": off, "server1": off, "server2": off})
	r := call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: "server2=abort:503"}, "")
	if r.code != 200 {
		t.Fatalf("directive applied although disabled: %d %s", r.code, r.body)
	}
}

// TestSickSwitch: the admin port turns one instance sick without a restart; it stays
// Ready (outlier detection, not Kubernetes, must remove it).
func TestSickSwitch(t *testing.T) {
	t.Parallel()
	c := startChain(t, nil)
	if r := call(t, "POST", c.server2.Admin+"/admin/sick", nil, ""); r.code != 200 {
		t.Fatalf("POST /admin/sick: %d %s", r.code, r.body)
	}
	r := call(t, "GET", c.client.URL+"/client/server1", nil, "")
	if r.code != 503 || !strings.Contains(string(r.body), "urn:meshdemo:fault:sick") {
		t.Fatalf("sick server2 through the chain: %d %s", r.code, r.body)
	}
	ready := call(t, "GET", c.server2.URL+"/readyz", nil, "")
	if ready.code != 200 || !strings.Contains(string(ready.body), `"sick":true`) {
		t.Fatalf("sick instance /readyz: %d %s", ready.code, ready.body)
	}
	if r := call(t, "GET", c.server2.URL+"/admin/sick", nil, ""); r.code != 404 {
		t.Errorf("admin route on the public port: %d", r.code)
	}
	call(t, "POST", c.server2.Admin+"/admin/healthy", nil, "")
	if r := call(t, "GET", c.client.URL+"/client/server1", nil, ""); r.code != 200 {
		t.Fatalf("healthy again: %d %s", r.code, r.body)
	}
}

// TestConfiguredErrorRate: FAULT_ERROR_RATE=30 on server2, measured at the front door.
// With n=400 and p=0.3 the standard deviation of the count is sqrt(n p (1-p)) = 9.2;
// the test accepts 5 standard deviations (false-failure odds below 1e-6).
func TestConfiguredErrorRate(t *testing.T) {
	t.Parallel()
	c := startChain(t, map[string]map[string]string{"server2": {"FAULT_ERROR_RATE": "30", "FAULT_ERROR_CODE": "503"}})
	const n, p = 400, 0.3
	failed := 0
	for range n {
		switch r := call(t, "GET", c.client.URL+"/client/server1", nil, ""); r.code {
		case 503:
			failed++
		case 200:
		default:
			t.Fatalf("unexpected %d %s", r.code, r.body)
		}
	}
	sd := math.Sqrt(n * p * (1 - p))
	if d := math.Abs(float64(failed) - n*p); d > 5*sd {
		t.Fatalf("%d of %d failed; expected %.0f ± %.0f", failed, n, n*p, 5*sd)
	}
	if got := faultCount(t, c.server2, "error-rate"); got != failed {
		t.Errorf("metric says %d, responses say %d", got, failed)
	}
	t.Logf("%d/%d = %.3f (target %.2f)", failed, n, float64(failed)/n, p)
}
