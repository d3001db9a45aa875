//go:build e2e

package suite

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
)

// findRequest polls a workload's logs for the request line carrying traceID.
func findRequest(t *testing.T, service, traceID string) logLine {
	t.Helper()
	var found logLine
	eventually(t, 30*time.Second, service+" logs a request with trace id "+traceID, func() error {
		lines, err := tgt.logs(t.Context(), service)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if l.Msg == "request" && l.TraceID == traceID {
				found = l
				return nil
			}
		}
		return fmt.Errorf("none of %d lines", len(lines))
	})
	return found
}

// TestPropagation proves that trace context and the request id reach server2, using what the
// workloads offer: each hop logs one JSON line per request with request_id and trace_id.
func TestPropagation(t *testing.T) {
	t.Run("b3 multi header and x-request-id reach every hop", func(t *testing.T) {
		traceID, spanID := randHex(16), randHex(8)
		reqID := "e2e-" + randHex(8)
		r := get(t, "/client/server1", hdr("X-Request-Id", reqID, "X-B3-Traceid", traceID, "X-B3-Spanid", spanID, "X-B3-Sampled", "1"))
		if r.status != http.StatusOK {
			t.Fatalf("chain: %s", chainStatus(r))
		}
		var ids []string
		for _, svc := range []string{"client", "server1", "server2"} {
			l := findRequest(t, svc, traceID)
			ids = append(ids, l.RequestID)
		}
		if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
			t.Fatalf("request ids per hop %v, want one id", ids)
		}
		// Envoy's gateway replaces an external x-request-id with its own; everywhere else
		// the caller's id is the one every hop logs.
		if tgt.name != "kind" && ids[2] != reqID {
			t.Errorf("server2 logged request id %q, want %q", ids[2], reqID)
		}
	})
	for _, tc := range []struct{ name, header, value string }{
		{"traceparent", "Traceparent", "00-%s-%s-01"},
		{"b3 single header", "B3", "%s-%s-1"},
	} {
		// On kind too. The mesh's tracer there (OpenTelemetry, istio/sidecar/install.yaml) continues
		// a traceparent with the same trace id; it reads no b3 header and passes it on
		// unchanged, and the workloads' propagator (W3C, then B3: the later one wins) continues
		// the caller's b3 trace. Without that install the pinned Istio has no tracer at all
		// (global.proxy.tracer "none") and both pass through untouched.
		t.Run(tc.name+" reaches server2", func(t *testing.T) {
			traceID := randHex(16)
			h := hdr(tc.header, fmt.Sprintf(tc.value, traceID, randHex(8)))
			if r := get(t, "/client/server1", h); r.status != http.StatusOK {
				t.Fatalf("chain: %s", chainStatus(r))
			}
			findRequest(t, "server2", traceID)
		})
	}
}

// listedHeaders is the propagation list of the contract (services/headers), with a
// well-formed value for each. The test states it again on purpose: a change to the list is a
// change to the contract; TestListedHeadersMatchContract keeps the two equal.
var listedHeaders = [][2]string{
	{"x-request-id", "e2e-req-1"},
	{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	{"tracestate", "vendor=e2e"},
	{"baggage", "tenant=e2e"},
	{"b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
	{"x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"},
	{"x-b3-spanid", "00f067aa0ba902b7"},
	{"x-b3-parentspanid", "00f067aa0ba902b6"},
	{"x-b3-sampled", "1"},
	{"x-b3-flags", "0"},
	{"x-ot-span-context", "e2e-ot"},
	{"x-cloud-trace-context", "105445aa7843bc8bf206b12000100000/1;o=1"},
	{"grpc-trace-bin", "AAECAwQFBgcICQoLDA0ODwABAgMEBQYHAgE"},
	{"sw8", "1-e2e-sw8"},
	{"x-datadog-trace-id", "1234567890"},
	{"x-datadog-parent-id", "987654321"},
	{"x-datadog-sampling-priority", "1"},
	{"end-user", "jason"},
	{"user-agent", "meshdemo-e2e/1"},
	{"cookie", "session=e2e"},
	{"canary_id", "v2"},
	{"x-canary", "true"},
	{headers.Fault, "nobody=abort:500"},
}

// TestListedHeadersMatchContract: the table above is exactly the workloads' list.
func TestListedHeadersMatchContract(t *testing.T) {
	want := map[string]bool{}
	for _, n := range headers.Propagated() {
		want[strings.ToLower(n)] = true
	}
	got := map[string]bool{}
	for _, h := range listedHeaders {
		got[strings.ToLower(h[0])] = true
		if !want[strings.ToLower(h[0])] {
			t.Errorf("%s is tested but not in the propagation list", h[0])
		}
	}
	for n := range want {
		if !got[n] {
			t.Errorf("listed header %s is not tested", n)
		}
	}
}

// TestEveryListedHeaderReachesServer2 puts a recorder in server2's place behind a real client
// and server1 (the images on compose), sends every listed header with a
// distinct value, and checks each arrives unchanged two hops down, that PROPAGATE_HEADERS
// extends the list and that an unlisted header does not travel.
func TestEveryListedHeaderReachesServer2(t *testing.T) {
	if tgt.name == "kind" {
		t.Skip("needs a recorder in server2's place, which the cluster cannot reach; TestPropagation and TestHeaderRouting cover kind")
	}
	var mu sync.Mutex
	var got http.Header
	rec := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Meshdemo-Path", "server2/v1@recorder")
		_, _ = w.Write([]byte(`{"firstName":"Mick","lastName":"Chung","service":"server2","version":"v1","instance":"recorder"}`))
	}))
	if tgt.name == "compose" {
		// Containers reach the host through the Docker bridge, not loopback.
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		rec.Listener = l
	}
	rec.Start()
	defer rec.Close()

	extra := "PROPAGATE_HEADERS=x-e2e-extra"
	clientURL := dockerChain(t, rec.Listener.Addr().(*net.TCPAddr).Port, extra)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, clientURL+"/client/server1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range listedHeaders {
		req.Header.Set(kv[0], kv[1]) // canonical keys, so the transport adds no second User-Agent
	}
	req.Header.Set("X-E2e-Extra", "extra-value")
	req.Header.Set("X-Not-Listed", "must-stay")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if p := resp.Header.Get("X-Meshdemo-Path"); !strings.HasSuffix(p, "server2/v1@recorder") || !strings.HasPrefix(p, "client/") {
		t.Errorf("path %q: the recorder's hop should close the path", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("the recorder saw no request")
	}
	for _, kv := range listedHeaders {
		if v := headerValue(got, kv[0]); v != kv[1] {
			t.Errorf("%s at server2: %q, want %q", kv[0], v, kv[1])
		}
	}
	if v := got.Get("X-E2e-Extra"); v != "extra-value" {
		t.Errorf("PROPAGATE_HEADERS=x-e2e-extra: got %q at server2", v)
	}
	if v := got.Get("X-Not-Listed"); v != "" {
		t.Errorf("an unlisted header travelled: X-Not-Listed=%q", v)
	}
}

// headerValue reads a header whatever the spelling it travelled under (canary_id has an
// underscore, which canonicalisation leaves alone).
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
