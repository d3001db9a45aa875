//go:build e2e

package suite

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
)

// TestFaultDirective: an X-Meshdemo-Fault directive travels with the request and the hop
// it names (and only that hop) misbehaves; the error is relayed unchanged to the caller.
func TestFaultDirective(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		directive string
		status    int
		service   string // who answered the problem; "" for 200
		hops      string
		minDelay  time.Duration
	}{
		{"server2 aborts 503", "/client/server1", "server2=abort:503", 503, "server2", "client,server1,server2", 0},
		{"server1 aborts 429, server2 is never called", "/client/server1", "server1=abort:429", 429, "server1", "client,server1", 0},
		{"server2 delays", "/client/server1", "server2=delay:1s", 200, "", "client,server1,server2", time.Second},
		{"user-service aborts", "/client/users", "user-service=abort:500", 500, "user-service", "client,user-service", 0},
		{"a directive for nobody changes nothing", "/client/server1", "nobody=abort:500", 200, "", "client,server1,server2", 0},
		{"several directives, one per hop", "/client/server1", "server1=delay:300ms,server2=abort:502", 502, "server2", "client,server1,server2", 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, tt.path, hdr(headers.Fault, tt.directive))
			if tt.service == "" {
				if r.status != tt.status {
					t.Fatalf("status: %s", chainStatus(r))
				}
			} else {
				p := wantProblem(t, r, tt.status)
				if p.Service != tt.service || !strings.HasPrefix(p.Type, "urn:meshdemo:fault:") {
					t.Errorf("problem %+v, want a fault from %s", p, tt.service)
				}
			}
			if got := services(hops(t, r)); got != tt.hops {
				t.Errorf("hops %s, want %s", got, tt.hops)
			}
			if r.elapsed < tt.minDelay {
				t.Errorf("answered in %s, want at least %s", r.elapsed, tt.minDelay)
			}
		})
	}
}

// TestSickSwitch: POST /admin/sick makes server2 fail its API while its probes still pass;
// POST /admin/healthy heals it.
func TestSickSwitch(t *testing.T) {
	admin := adminURL(t, "server2")
	ctx := t.Context()
	post := func(path string) {
		t.Helper()
		r, err := requestURL(context.WithoutCancel(ctx), admin+path, "", http.MethodPost, nil, nil)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("POST %s: %v %s", path, err, chainStatus(r))
		}
	}
	post("/admin/sick")
	t.Cleanup(func() { post("/admin/healthy") })

	p := wantProblem(t, get(t, "/client/server1", nil), http.StatusServiceUnavailable)
	if p.Type != "urn:meshdemo:fault:sick" || p.Service != "server2" {
		t.Errorf("problem %+v, want server2's sick fault", p)
	}
	if tgt.public != nil {
		r, err := requestURL(ctx, tgt.public["server2"]+"/readyz", "", "GET", nil, nil)
		var rb readyBody
		if err == nil {
			decode(t, r, &rb)
		}
		if err != nil || r.status != http.StatusOK || !rb.Sick {
			t.Errorf("a sick instance stays ready and says it is sick: %v %s", err, chainStatus(r))
		}
	}
	post("/admin/healthy")
	if r := get(t, "/client/server1", nil); r.status != http.StatusOK {
		t.Errorf("after /admin/healthy: %s", chainStatus(r))
	}
}

// adminURL is a workload's admin base URL: published on local and compose, port-forwarded to
// the only v1 pod on kind.
func adminURL(t *testing.T, service string) string {
	t.Helper()
	if tgt.kube == nil {
		return tgt.admin[service]
	}
	pods := tgt.kube.pods(t, "app="+service+",version=v1")
	if len(pods) != 1 {
		t.Fatalf("want one %s v1 pod, have %v", service, pods)
	}
	return tgt.kube.portForward(t, pods[0], 9090)
}
