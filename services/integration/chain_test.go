package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/nettest"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

func TestChain(t *testing.T) {
	t.Parallel()
	c := startChain(t, map[string]map[string]string{"server1": {"SERVICE_VERSION": "v2"}})

	direct := call(t, "GET", c.server2.URL+"/server2/end", nil, "")
	got := call(t, "GET", c.client.URL+"/client/server1", map[string]string{"X-Request-Id": "chain-1"}, "")
	if got.code != 200 || string(got.body) != string(direct.body) || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("chain: %d %q %s; server2 alone: %s", got.code, got.header.Get("Content-Type"), got.body, direct.body)
	}
	var body map[string]string
	if err := json.Unmarshal(got.body, &body); err != nil || body["firstName"] != "Mick" || body["lastName"] != "Chung" ||
		body["service"] != "server2" || body["version"] != "v1" || body["instance"] != "server2-it" {
		t.Fatalf("body %s (%v)", got.body, err)
	}
	hops, err := pathheader.Parse(got.header.Get(pathheader.Name))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"client/v1@client-it", "server1/v2@server1-it", "server2/v1@server2-it"}
	if len(hops) != 3 {
		t.Fatalf("hops %v", hops)
	}
	for i, h := range hops {
		if h.String() != want[i] {
			t.Errorf("hop %d = %s, want %s", i, h, want[i])
		}
	}
	// The request id reached every hop's log.
	for _, p := range []*proc{c.client, c.server1, c.server2} {
		if l := p.waitLog(t, "chain-1"); l["status"] != 200.0 {
			t.Errorf("%s logged %v", p.name, l)
		}
	}
	// Start-up is fast (the race detector slows this; the benchmark measures it properly).
	for _, p := range []*proc{c.client, c.server1, c.server2, c.users} {
		if p.readyWithin > 5*time.Second {
			t.Errorf("%s took %s to serve", p.name, p.readyWithin)
		}
	}
	// Probes and the admin port.
	for _, p := range []*proc{c.client, c.server1, c.server2, c.users} {
		if r := call(t, "GET", p.URL+"/readyz", nil, ""); r.code != 200 || !strings.Contains(string(r.body), `"sick":false`) {
			t.Errorf("%s /readyz %d %s", p.name, r.code, r.body)
		}
		if r := call(t, "GET", p.URL+"/healthz", nil, ""); r.code != 200 {
			t.Errorf("%s /healthz %d", p.name, r.code)
		}
		if r := call(t, "GET", p.URL+"/metrics", nil, ""); r.code != 404 {
			t.Errorf("%s serves /metrics on the public port (%d)", p.name, r.code)
		}
		r := call(t, "GET", p.Admin+"/metrics", nil, "")
		if r.code != 200 || !strings.Contains(string(r.body), `meshdemo_build_info{goversion=`) || !strings.Contains(string(r.body), "process_resident_memory_bytes") {
			t.Errorf("%s admin /metrics %d", p.name, r.code)
		}
	}
	m := string(call(t, "GET", c.server1.Admin+"/metrics", nil, "").body)
	for _, s := range []string{
		`meshdemo_http_server_request_duration_seconds_count{code="200",method="GET",route="/server1/server2",service="server1",version="v2"}`,
		`meshdemo_http_client_request_duration_seconds_count{code="200",service="server1",upstream="server2",version="v2"}`,
	} {
		if !strings.Contains(m, s) {
			t.Errorf("server1 metrics lack %s", s)
		}
	}
}

// TestPropagationAcrossProcesses: every listed header sent to client arrives at the
// end of the chain, through two real hops with trace export on: the trace id
// continues and the span id is new.
func TestPropagationAcrossProcesses(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var atEnd http.Header
	end := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		atEnd = r.Header.Clone()
		mu.Unlock()
		w.Header().Set(pathheader.Name, "server2/v1@recorder")
		_, _ = io.WriteString(w, `{}`)
	}))
	defer end.Close()
	spans := make(chan *collogs.ExportTraceServiceRequest, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collogs.ExportTraceServiceRequest
		if r.URL.Path == "/v1/traces" && proto.Unmarshal(b, &req) == nil {
			spans <- &req
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer collector.Close()

	tracing := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "PROPAGATE_HEADERS": "x-tenant"}
	s1env := map[string]string{"SERVER2_URL": end.URL}
	for k, v := range tracing {
		s1env[k] = v
	}
	s1 := start(t, "server1", s1env)
	clEnv := map[string]string{"SERVER1_URL": s1.URL}
	for k, v := range tracing {
		clEnv[k] = v
	}
	cl := start(t, "client", clEnv)

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	sent := map[string]string{"X-Tenant": "acme"}
	for _, h := range headers.Propagated() {
		sent[h] = "v-" + h
	}
	sent["traceparent"] = "00-" + traceID + "-b7ad6b7169203331-01"
	sent["x-b3-traceid"] = traceID
	sent["x-b3-spanid"] = "b7ad6b7169203331"
	sent["x-b3-sampled"] = "1"
	sent["b3"] = traceID + "-b7ad6b7169203331-1"
	sent["baggage"] = "tenant=acme"
	sent[headers.Fault] = "nobody=delay:1ms"
	r := call(t, "GET", cl.URL+"/client/server1", sent, "")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	mu.Lock()
	got := atEnd
	mu.Unlock()
	traceHeaders := map[string]bool{"traceparent": true, "tracestate": true, "b3": true, "x-b3-traceid": true,
		"x-b3-spanid": true, "x-b3-parentspanid": true, "x-b3-sampled": true, "x-b3-flags": true}
	for name, v := range sent {
		if traceHeaders[strings.ToLower(name)] {
			continue
		}
		if got.Get(name) != v {
			t.Errorf("%s: %q arrived, want %q", name, got.Get(name), v)
		}
	}
	tp := strings.Split(got.Get("Traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID || tp[2] == "b7ad6b7169203331" {
		t.Errorf("traceparent %q: want trace %s with a new span id", got.Get("Traceparent"), traceID)
	}
	if got.Get("X-B3-Traceid") != traceID || got.Get("X-B3-Spanid") == "b7ad6b7169203331" {
		t.Errorf("b3 headers %q %q: want the same trace, a new span", got.Get("X-B3-Traceid"), got.Get("X-B3-Spanid"))
	}
	// Both hops exported spans of that trace, with service.name and service.version.
	seen := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for len(seen) < 2 {
		select {
		case req := <-spans:
			for _, rs := range req.GetResourceSpans() {
				attrs := map[string]string{}
				for _, kv := range rs.GetResource().GetAttributes() {
					attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
				}
				for _, ss := range rs.GetScopeSpans() {
					for _, sp := range ss.GetSpans() {
						if fmt.Sprintf("%x", sp.GetTraceId()) == traceID && attrs["service.version"] == "v1" {
							seen[attrs["service.name"]] = true
						}
					}
				}
			}
		case <-deadline:
			t.Fatalf("spans of trace %s seen from %v only", traceID, seen)
		}
	}
}

func TestUsersThroughClient(t *testing.T) {
	t.Parallel()
	c := startChain(t, map[string]map[string]string{"user-service": {"SERVICE_VERSION": "v3"}})
	js := map[string]string{"Content-Type": "application/json"}
	base := c.client.URL + "/client/users"

	r := call(t, "POST", base, js, `{"username":"mick"}`)
	if r.code != 201 || strings.TrimSpace(string(r.body)) != `{"id":1,"username":"mick","version":"v3"}` {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if p := r.header.Get(pathheader.Name); p != "client/v1@client-it, user-service/v3@user-service-it" {
		t.Errorf("path %q", p)
	}
	for _, s := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/1", "", 200, `{"id":1,"username":"mick","version":"v3"}`},
		{"PUT", "/1", `{"username":"chung"}`, 200, `{"id":1,"username":"chung","version":"v3"}`},
		{"GET", "", "", 200, `[{"id":1,"username":"chung","version":"v3"}]`},
		{"DELETE", "/1", "", 204, ``},
		{"GET", "/1", "", 404, ``},
	} {
		r := call(t, s.method, base+s.path, js, s.body)
		if r.code != s.code || (s.want != "" && strings.TrimSpace(string(r.body)) != s.want) {
			t.Fatalf("%s %s: %d %s", s.method, s.path, r.code, r.body)
		}
	}
	for _, bad := range []struct {
		name, method, path, ct, body string
		code                         int
	}{
		{"malformed JSON", "POST", "", "application/json", `{"username"`, 400},
		{"unknown field", "POST", "", "application/json", `{"username":"a","role":"x"}`, 400},
		{"missing username", "POST", "", "application/json", `{}`, 400},
		{"empty username", "POST", "", "application/json", `{"username":""}`, 400},
		{"long username", "POST", "", "application/json", `{"username":"` + strings.Repeat("x", 65) + `"}`, 400},
		{"non-numeric id", "GET", "/abc", "", "", 400},
		{"non-positive id", "GET", "/0", "", "", 400},
		{"unknown id", "PUT", "/999", "application/json", `{"username":"a"}`, 404},
		{"wrong method", "PATCH", "/1", "", "", 405},
		{"wrong content type", "POST", "", "text/plain", `{"username":"a"}`, 415},
		{"body over 1 MiB", "POST", "", "application/json", `{"username":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
	} {
		hdr := map[string]string{}
		if bad.ct != "" {
			hdr["Content-Type"] = bad.ct
		}
		r := call(t, bad.method, base+bad.path, hdr, bad.body)
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if r.code != bad.code || json.Unmarshal(r.body, &p) != nil || p.Status != bad.code || p.Detail == "" ||
			r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %q %s", bad.name, r.code, r.header.Get("Content-Type"), r.body)
		}
	}
	if r := call(t, "GET", c.client.URL+"/nowhere", nil, ""); r.code != 404 || !strings.Contains(string(r.body), `"status":404`) {
		t.Errorf("unknown path: %d %s", r.code, r.body)
	}
	if r := call(t, "GET", base, nil, ""); strings.TrimSpace(string(r.body)) != `[]` {
		t.Errorf("bad input changed state: %s", r.body)
	}
}

func TestUpstreamDownAndSlow(t *testing.T) {
	t.Parallel()
	// server1 points at a port nobody listens on.
	s1 := start(t, "server1", map[string]string{"SERVER2_URL": nettest.RefusedURL(t)})
	r := call(t, "GET", s1.URL+"/server1/server2", nil, "")
	if r.code != 502 || !strings.Contains(string(r.body), `"upstream":"server2"`) {
		t.Errorf("down: %d %s", r.code, r.body)
	}
	// client gives server1 300ms; server2 is told to take 3s. server1 learns the
	// budget, gives server2 what is left less the margin, and is the one to time out:
	// its 504 names server2 and client relays it.
	c := startChain(t, map[string]map[string]string{"client": {"UPSTREAM_TIMEOUT": "300ms"}})
	warm(t, c, 1)
	start := time.Now()
	r = call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: "server2=delay:3s"}, "")
	if r.code != 504 || !strings.Contains(string(r.body), `"service":"server1","upstream":"server2"`) {
		t.Errorf("slow: %d %s", r.code, r.body)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("504 took %s, want about 300ms", el)
	}
	// server1 gives up upstream too when client went away: its log shows 499.
}

// TestCancellationReachesServer2: a caller that gives up at client stops server2's
// work: server2 logs the request as 499 long before its 5s delay would have ended.
func TestCancellationReachesServer2(t *testing.T) {
	t.Parallel()
	c := startChain(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.client.URL+"/client/server1", nil)
	req.Header.Set("X-Request-Id", "cancel-me")
	req.Header.Set(headers.Fault, "server2=delay:5s")
	start := time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request did not time out")
	}
	l := c.server2.waitLog(t, "cancel-me")
	if l["status"] != 499.0 || time.Since(start) > 3*time.Second {
		t.Fatalf("server2 logged %v after %s", l, time.Since(start))
	}
	for _, p := range []*proc{c.client, c.server1} {
		if l := p.waitLog(t, "cancel-me"); l["status"] != 499.0 {
			t.Errorf("%s logged %v", p.name, l)
		}
	}
}

// TestEnvoyDeadlineAcrossChain: x-envoy-expected-rq-timeout-ms at client bounds the
// whole chain.
func TestEnvoyDeadlineAcrossChain(t *testing.T) {
	t.Parallel()
	c := startChain(t, nil)
	start := time.Now()
	r := call(t, "GET", c.client.URL+"/client/server1", map[string]string{
		"X-Envoy-Expected-Rq-Timeout-Ms": "250", headers.Fault: "server2=delay:4s", "X-Request-Id": "deadline-1",
		"X-Envoy-Attempt-Count": "2"}, "")
	if r.code != 504 || time.Since(start) > 2*time.Second {
		t.Fatalf("%d after %s: %s", r.code, time.Since(start), r.body)
	}
	// server2 stops when server1 hangs up (499) or, if its own deadline (a hair
	// later than server1's) wins the race, answers nobody a 504; either way it did
	// not sleep out its 4s.
	if l := c.server2.waitLog(t, "deadline-1"); (l["status"] != 499.0 && l["status"] != 504.0) || l["duration_ms"].(float64) > 2000 {
		t.Errorf("server2 kept working: %v", l)
	}
	if l := c.client.waitLog(t, "deadline-1"); l["attempt"] != 2.0 {
		t.Errorf("client log lacks the attempt: %v", l)
	}
	hops, _ := pathheader.Parse(r.header.Get(pathheader.Name))
	if len(hops) == 0 || hops[0].Attrs["attempt"] != "2" {
		t.Errorf("path %q lacks attempt=2 on the client hop", r.header.Get(pathheader.Name))
	}
}

// TestTimeoutNamesTheSlowHop: every hop has the default 15s UPSTREAM_TIMEOUT. The
// budget each hop passes on makes the hop whose upstream is slow answer the 504,
// naming that upstream, and every hop before it relays that answer unchanged.
func TestTimeoutNamesTheSlowHop(t *testing.T) {
	t.Parallel()
	c := startChain(t, nil)
	warm(t, c, 2)
	for _, tc := range []struct {
		fault             string
		answers, upstream string   // the problem body's service and upstream
		path              []string // the path header's services
		within            string   // which limit the detail names
		slow              *proc    // the slow hop, whose request is cancelled
	}{
		// client's call has 15s and tells server1 so; server1's call gets 15s less
		// the 100ms margin, runs out first, and server1 answers.
		{"server2=delay:16s", "server1", "server2", []string{"client", "server1"}, "the time its caller had left, less a 100ms margin", c.server2},
		// server1 itself is slow: client's own 15s run out; client answers.
		{"server1=delay:16s", "client", "server1", []string{"client"}, "15s (this hop's upstream timeout)", c.server1},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			id := "slow-" + tc.fault
			start := time.Now()
			r := call(t, "GET", c.client.URL+"/client/server1", map[string]string{headers.Fault: tc.fault, "X-Request-Id": id}, "")
			el := time.Since(start)
			var p struct {
				Status            int
				Service, Upstream string
				Detail            string
			}
			if err := json.Unmarshal(r.body, &p); err != nil || r.code != 504 || p.Status != 504 ||
				p.Service != tc.answers || p.Upstream != tc.upstream || !strings.Contains(p.Detail, tc.within) {
				t.Fatalf("%d %s (%v); want 504 from %s naming upstream %s", r.code, r.body, err, tc.answers, tc.upstream)
			}
			hops, _ := pathheader.Parse(r.header.Get(pathheader.Name))
			var services []string
			for _, h := range hops {
				services = append(services, h.Service)
			}
			if strings.Join(services, ",") != strings.Join(tc.path, ",") {
				t.Errorf("path %q, want the services %v", r.header.Get(pathheader.Name), tc.path)
			}
			if el < 14*time.Second || el > 16*time.Second {
				t.Errorf("504 after %s, want about 15s", el)
			}
			for _, pr := range []*proc{c.client, c.server1} {
				if pr == tc.slow {
					continue
				}
				if l := pr.waitLog(t, id); l["status"] != 504.0 {
					t.Errorf("%s logged %v, want 504", pr.name, l)
				}
			}
			if l := tc.slow.waitLog(t, id); l["duration_ms"].(float64) > 15500 {
				t.Errorf("%s kept working after its caller gave up: %v", tc.slow.name, l)
			}
		})
	}
}

// warm opens n connections on every hop of the chain before a timed request. The
// budget's margin (100ms) must cover the time between a hop's call and its
// upstream's start, and under -race on a busy machine dialling a fresh connection
// can take longer than that: then the caller's timer fires first, which is the
// behaviour the margin is there to prevent, not the one under test.
func warm(t *testing.T, c *chain, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { // overlapping requests, so each takes its own connection
			req, _ := http.NewRequest("GET", c.client.URL+"/client/server1", nil)
			req.Header.Set(headers.Fault, "server2=delay:200ms")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// TestGracefulShutdown: SIGTERM while a request is in flight: readiness drops to 503
// during the drain pause, the request still completes, the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s2 := start(t, "server2", map[string]string{"DRAIN_DELAY": "600ms", "SHUTDOWN_TIMEOUT": "5s"})
	done := make(chan response, 1)
	go func() {
		done <- call(t, "GET", s2.URL+"/server2/end", map[string]string{headers.Fault: "server2=delay:1200ms"}, "")
	}()
	time.Sleep(200 * time.Millisecond) // let the request arrive
	_ = s2.cmd.Process.Signal(syscallTERM)
	time.Sleep(200 * time.Millisecond)
	if r := call(t, "GET", s2.URL+"/readyz", nil, ""); r.code != 503 || !strings.Contains(string(r.body), "draining") {
		t.Errorf("during drain /readyz = %d %s", r.code, r.body)
	}
	r := <-done
	if r.code != 200 || !strings.Contains(string(r.body), "Mick") {
		t.Fatalf("in-flight request: %d %s", r.code, r.body)
	}
	select {
	case <-s2.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit")
	}
	if s2.exitErr != nil {
		t.Fatalf("exit: %v", s2.exitErr)
	}
}
