package httpserver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// TestMetricsUseRoutePatterns: labels come from chi's pattern; unknown paths share one
// label, so scans cannot explode cardinality.
func TestMetricsUseRoutePatterns(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "user-service")
	r := k.Router()
	r.Get("/api/users/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	for _, p := range []string{"/api/users/1", "/api/users/2", "/scan/a", "/scan/b", "/scan/c"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/users/3", nil))
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("X-MADE-UP-1", "/api/users/4", nil))
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("X-MADE-UP-2", "/api/users/5", nil))
	// Every attempt series exists from the start, so the first retry shows as an increase.
	want := `
# HELP meshdemo_envoy_attempts_total Inbound requests by Envoy's x-envoy-attempt-count ("none" when absent, "5+" above 4): retries made visible.
# TYPE meshdemo_envoy_attempts_total counter
meshdemo_envoy_attempts_total{attempt="1",service="user-service",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="2",service="user-service",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="3",service="user-service",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="4",service="user-service",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="5+",service="user-service",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="none",service="user-service",version="v1"} 8
`
	if err := testutil.GatherAndCompare(k.Metrics.Registry, strings.NewReader(want), "meshdemo_envoy_attempts_total"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(k.Metrics.Registry, "meshdemo_http_server_request_duration_seconds")
	if err != nil || n != 4 { // {id} 204, unmatched GET 404, unmatched POST 405, both made-up methods as one
		t.Fatalf("series %d (%v), want 4", n, err)
	}
	mfs, _ := k.Metrics.Registry.Gather()
	var labels []string
	for _, mf := range mfs {
		if mf.GetName() != "meshdemo_http_server_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			labels = append(labels, strings.Join(parts, ","))
		}
	}
	joined := strings.Join(labels, "\n")
	for _, want := range []string{"code=204,method=GET,route=/api/users/{id},service=user-service,version=v1",
		"code=404,method=GET,route=unmatched", "code=405,method=POST,route=unmatched", "code=405,method=_OTHER,route=unmatched"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing series %s in\n%s", want, joined)
		}
	}
}

// TestAttemptAndLogs: Envoy's attempt count shows in the path header, the metrics and
// the access log, together with the request and trace ids.
func TestAttemptAndLogs(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	c := kittest.Common("server1")
	c.LogLevel = -4 // debug: the access log is at info
	k := kittest.Kit(t, c, faults.DefaultConfig(), &logs)
	r := k.Router()
	r.Get("/x", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Envoy-Attempt-Count", "3")
	req.Header.Set("X-Request-Id", "req-123")
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	hops, err := pathheader.Parse(rec.Header().Get(pathheader.Name))
	if err != nil || hops[0].Attrs["attempt"] != "3" {
		t.Fatalf("path header %q (%v)", rec.Header().Get(pathheader.Name), err)
	}
	want := `
# HELP meshdemo_envoy_attempts_total Inbound requests by Envoy's x-envoy-attempt-count ("none" when absent, "5+" above 4): retries made visible.
# TYPE meshdemo_envoy_attempts_total counter
meshdemo_envoy_attempts_total{attempt="1",service="server1",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="2",service="server1",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="3",service="server1",version="v1"} 1
meshdemo_envoy_attempts_total{attempt="4",service="server1",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="5+",service="server1",version="v1"} 0
meshdemo_envoy_attempts_total{attempt="none",service="server1",version="v1"} 0
`
	if err := testutil.GatherAndCompare(k.Metrics.Registry, strings.NewReader(want), "meshdemo_envoy_attempts_total"); err != nil {
		t.Error(err)
	}
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	for key, want := range map[string]any{"service": "server1", "version": "v1", "request_id": "req-123",
		"trace_id": "0af7651916cd43dd8448eb211c80319c", "attempt": 3.0, "route": "/x", "status": 200.0} {
		if line[key] != want {
			t.Errorf("log %s = %v, want %v", key, line[key], want)
		}
	}
}

// FuzzInboundHeaders: whatever a caller puts in the headers the middleware reads, the
// hop answers without panicking and with a path header that parses.
func FuzzInboundHeaders(f *testing.F) {
	f.Add("3", "150", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "id-1", "x=1")
	f.Add("-1", "99999999999999999999", "garbage", "", ";;;")
	f.Add("0", "0", "00-00000000000000000000000000000000-0000000000000000-00", "\x00", "")
	k := kittest.Default(f, "server1")
	r := k.Router()
	r.Get("/x", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Deadline(); ok {
			w.WriteHeader(202)
		}
	})
	f.Fuzz(func(t *testing.T, attempt, timeout, traceparent, reqID, baggage string) {
		req := httptest.NewRequest("GET", "/x", nil)
		for k, v := range map[string]string{"X-Envoy-Attempt-Count": attempt, "X-Envoy-Expected-Rq-Timeout-Ms": timeout,
			"Traceparent": traceparent, "X-Request-Id": reqID, "Baggage": baggage, "B3": traceparent} {
			req.Header[k] = []string{v}
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 202 {
			t.Fatalf("status %d", rec.Code)
		}
		if _, err := pathheader.Parse(rec.Header().Get(pathheader.Name)); err != nil {
			t.Fatalf("path header %q: %v", rec.Header().Get(pathheader.Name), err)
		}
	})
}

// TestPanicAnswers500: a panicking handler gets a problem body naming the service, the
// request is still counted, and the hop keeps serving.
func TestPanicAnswers500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	k := kittest.Kit(t, kittest.Common("server2"), faults.DefaultConfig(), &logs)
	r := k.Router()
	r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 500 {
		t.Fatalf("status %d body %q (%v)", rec.Code, rec.Body, err)
	}
	if body["service"] != "server2" || body["status"] != 500.0 {
		t.Errorf("body %v", body)
	}
	if !strings.Contains(logs.String(), `"msg":"panic"`) || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("logs lack the panic and the 500 line:\n%s", logs.String())
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("readyz after panic: %d", rec.Code)
	}
}
