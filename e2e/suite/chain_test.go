//go:build e2e

package suite

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

type endBody struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
}

// TestChainBody: the client relays server2's answer through server1 byte for byte.
func TestChainBody(t *testing.T) {
	r := get(t, "/client/server1", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %s", chainStatus(r))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var b endBody
	decode(t, r, &b)
	want := endBody{FirstName: "Mick", LastName: "Chung", Service: "server2", Version: "v1", Instance: b.Instance}
	if b != want || b.Instance == "" {
		t.Errorf("body %+v, want %+v with an instance", b, want)
	}
	// Exactly the contract's fields, nothing else.
	var fields map[string]any
	decode(t, r, &fields)
	if len(fields) != 5 {
		t.Errorf("body has %d fields, want 5: %s", len(fields), r.body)
	}
}

// TestPathHeader: every hop adds itself, in call order, and server2's entry names the
// instance that wrote the body.
func TestPathHeader(t *testing.T) {
	r := get(t, "/client/server1", nil)
	hs := hops(t, r)
	if got := services(hs); got != "client,server1,server2" {
		t.Fatalf("hops %s, want client,server1,server2 (%s)", got, r.header.Get("X-Meshdemo-Path"))
	}
	for _, h := range hs {
		if h.Version != "v1" || h.Instance == "" {
			t.Errorf("hop %s: want version v1 and an instance", h)
		}
		if tgt.name != "kind" && h.Attrs["attempt"] != "" {
			t.Errorf("hop %s: an attempt count without Envoy", h)
		}
	}
	var b endBody
	decode(t, r, &b)
	if hs[2].Instance != b.Instance {
		t.Errorf("server2 hop instance %q, body instance %q", hs[2].Instance, b.Instance)
	}
	users := get(t, "/client/users", nil)
	if got := services(hops(t, users)); got != "client,user-service" {
		t.Errorf("users path %s, want client,user-service", got)
	}
}

type readyBody struct {
	Status  string `json:"status"`
	Sick    bool   `json:"sick"`
	Service string `json:"service"`
	Version string `json:"version"`
}

// TestProbes: every workload is alive and ready and serves metrics on its admin port. On kind
// the workloads' ports are not published: the client's probes are read through the gateway
// and every other pod answers its own healthcheck command (the image has no curl).
func TestProbes(t *testing.T) {
	if tgt.name == "kind" {
		if r := get(t, "/healthz", nil); r.status != http.StatusOK {
			t.Errorf("client /healthz through the gateway: %s", chainStatus(r))
		}
		for _, w := range workloads {
			for _, v := range []string{"v1", "v2"} {
				if w == "client" && v == "v2" {
					continue
				}
				tgt.kube.must(t, "exec", "deploy/"+w+"-"+v, "-c", w, "--", "/workload", "healthcheck")
			}
		}
		return
	}
	for _, w := range workloads {
		t.Run(w, func(t *testing.T) {
			ctx := t.Context()
			r, err := requestURL(ctx, tgt.public[w]+"/healthz", "", "GET", nil, nil)
			if err != nil || r.status != http.StatusOK {
				t.Errorf("/healthz: %v %d", err, r.status)
			}
			r, err = requestURL(ctx, tgt.public[w]+"/readyz", "", "GET", nil, nil)
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("/readyz: %v %d", err, r.status)
			}
			var rb readyBody
			decode(t, r, &rb)
			if rb.Status != "ready" || rb.Sick || rb.Service != w {
				t.Errorf("/readyz body %s", r.body)
			}
			m := adminGet(ctx, t, w, "/metrics")
			if m.status != http.StatusOK || !strings.Contains(string(m.body), "# TYPE ") {
				t.Errorf("admin /metrics: %d, %.200s", m.status, m.body)
			}
			f := adminGet(ctx, t, w, "/admin/faults")
			var state struct {
				Service string `json:"service"`
				Sick    bool   `json:"sick"`
			}
			if err := json.Unmarshal(f.body, &state); err != nil || f.status != 200 || state.Service != w {
				t.Errorf("admin /admin/faults: %d %s", f.status, f.body)
			}
		})
	}
}

func adminGet(ctx context.Context, t *testing.T, service, path string) response {
	t.Helper()
	r, err := requestURL(ctx, tgt.admin[service]+path, "", "GET", nil, nil)
	if err != nil {
		t.Fatalf("admin %s %s: %v", service, path, err)
	}
	return r
}
