//go:build e2e

package suite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/pathheader"
)

// needMesh skips tests whose behaviour only Istio provides.
func needMesh(t *testing.T) {
	t.Helper()
	if tgt.name != "kind" {
		t.Skipf("needs Istio on a kind cluster (the mesh in one flavour, E2E_FLAVOUR=sidecar|gateway-api|ambient, and its ingress on 127.0.0.1:8880): "+
			"runs with E2E_TARGET=kind only (`make e2e FLAVOUR=...`), target is %s (no cluster here)", tgt.name)
	}
}

// eventually polls check until it returns nil or within passes; no fixed sleeps in tests.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, within, err)
		}
		// Not t.Context(): it is already cancelled when cleanups poll for the baseline.
		time.Sleep(250 * time.Millisecond)
	}
}

// get sends a request to the client's front door and fails the test on transport errors.
func get(t *testing.T, path string, header http.Header) response {
	t.Helper()
	return send(t, http.MethodGet, path, header, nil)
}

func send(t *testing.T, method, path string, header http.Header, body []byte) response {
	t.Helper()
	r, err := request(t.Context(), tgt, method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1]) // exact spelling: canary_id is not canonicalised
	}
	return h
}

// hops parses the response's path header.
func hops(t *testing.T, r response) []pathheader.Hop {
	t.Helper()
	v := r.header.Get(pathheader.Name)
	hs, err := pathheader.Parse(v)
	if err != nil {
		t.Fatalf("%s %q: %v", pathheader.Name, v, err)
	}
	return hs
}

func services(hs []pathheader.Hop) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Service)
	}
	return strings.Join(s, ",")
}

// versionOf returns the version that served service in r ("" when it is not in the path).
func versionOf(r response, service string) string {
	hs, err := pathheader.Parse(r.header.Get(pathheader.Name))
	if err != nil {
		return ""
	}
	h, _ := pathheader.Find(hs, service)
	return h.Version
}

func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// problemBody is the application/problem+json error of the contract.
type problemBody struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Service  string `json:"service"`
	Upstream string `json:"upstream"`
}

func wantProblem(t *testing.T, r response, status int) problemBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemBody
	decode(t, r, &p)
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	return p
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func chainStatus(r response) string { return fmt.Sprintf("%d %s", r.status, r.body) }

// parseHops is hops for polling functions, which report rather than fail.
func parseHops(r response) ([]pathheader.Hop, error) {
	return pathheader.Parse(r.header.Get(pathheader.Name))
}

// ctxBG is for cleanups, which run after the test's context is cancelled.
func ctxBG() context.Context { return context.Background() }
