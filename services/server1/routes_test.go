package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/nettest"
	"github.com/meshdemo/meshdemo/services/internal/workload"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// newServer1 starts server1 in front of upstream (a fake server2).
func newServer1(t *testing.T, upstreamURL string, timeout time.Duration) *httptest.Server {
	t.Helper()
	c := kittest.Common("server1")
	c.UpstreamTimeout = timeout
	k := kittest.Kit(t, c, kittest.Default(t, "x").Faults.Config(), nil)
	return startWith(t, k, upstreamURL)
}

func startWith(t *testing.T, k *workload.Kit, upstreamURL string) *httptest.Server {
	t.Helper()
	up, err := k.Upstream("server2", upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(k, up))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestRelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		upstream http.HandlerFunc
		wantCode int
		wantCT   string
		wantBody string
	}{
		{
			name: "body and status byte for byte, upstream headers not copied",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(pathheader.Name, "server2/v9@fake")
				w.Header().Set("X-Upstream-Only", "leak")
				w.Header().Set("Content-Type", "text/plain") // relayed as application/json
				w.WriteHeader(200)
				_, _ = io.WriteString(w, `{"firstName":"Mick",  "odd":"spacing"}`)
				w.(http.Flusher).Flush() // chunked encoding upstream
			},
			wantCode: 200, wantCT: "application/json", wantBody: `{"firstName":"Mick",  "odd":"spacing"}`,
		},
		{
			name: "upstream error relayed unchanged",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(503)
				_, _ = io.WriteString(w, `{"status":503,"title":"sick"}`)
			},
			wantCode: 503, wantCT: "application/problem+json", wantBody: `{"status":503,"title":"sick"}`,
		},
		{
			name: "redirect relayed, not followed",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/server2/end" {
					w.WriteHeader(500) // a followed redirect lands here
					return
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(302)
				_, _ = io.WriteString(w, `{"moved":true}`)
			},
			wantCode: 302, wantCT: "application/json", wantBody: `{"moved":true}`,
		},
		{
			name: "teapot relayed",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(418)
				_, _ = io.WriteString(w, "short and stout")
			},
			wantCode: 418, wantCT: "application/json", wantBody: "short and stout",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := httptest.NewServer(tc.upstream)
			defer up.Close()
			srv := newServer1(t, up.URL, 2*time.Second)
			resp, body := get(t, srv.URL+"/server1/server2", nil)
			if resp.StatusCode != tc.wantCode || string(body) != tc.wantBody || resp.Header.Get("Content-Type") != tc.wantCT {
				t.Fatalf("got %d %q %q, want %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.wantCode, tc.wantCT, tc.wantBody)
			}
			if resp.Header.Get("X-Upstream-Only") != "" {
				t.Error("upstream response header was copied")
			}
			if resp.ContentLength != int64(len(tc.wantBody)) {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(tc.wantBody))
			}
			hops, err := pathheader.Parse(resp.Header.Get(pathheader.Name))
			if err != nil || hops[0].Service != "server1" {
				t.Fatalf("path %q: %v", resp.Header.Get(pathheader.Name), err)
			}
			if tc.wantCode == 200 && (len(hops) != 2 || hops[1].String() != "server2/v9@fake") {
				t.Errorf("path %q does not end with the upstream's hop", resp.Header.Get(pathheader.Name))
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	closedURL := nettest.RefusedURL(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close) // not defer: the parallel subtests run after this function returns

	for _, tc := range []struct {
		name     string
		url      string
		wantCode int
		maxTime  time.Duration
	}{
		{"unreachable is 502", closedURL, 502, 2 * time.Second},
		{"slow is 504 at the upstream timeout", slow.URL, 504, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer1(t, tc.url, 300*time.Millisecond)
			start := time.Now()
			resp, body := get(t, srv.URL+"/server1/server2", nil)
			var p struct {
				Status   int    `json:"status"`
				Upstream string `json:"upstream"`
				Detail   string `json:"detail"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if resp.StatusCode != tc.wantCode || p.Status != tc.wantCode || p.Upstream != "server2" || !strings.Contains(p.Detail, "server2") {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
			if el := time.Since(start); el > tc.maxTime {
				t.Errorf("took %s", el)
			}
		})
	}
}

// TestEnvoyDeadline: Envoy's x-envoy-expected-rq-timeout-ms shortens the outbound
// deadline (less httpclient.BudgetMargin), and the downstream sees its request
// cancelled when it passes.
func TestEnvoyDeadline(t *testing.T) {
	t.Parallel()
	cancelledAfter := make(chan time.Duration, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			cancelledAfter <- time.Since(start)
		case <-time.After(5 * time.Second):
			cancelledAfter <- -1
		}
	}))
	defer up.Close()
	srv := newServer1(t, up.URL, 10*time.Second)
	resp, _ := get(t, srv.URL+"/server1/server2", map[string]string{"X-Envoy-Expected-Rq-Timeout-Ms": "350"})
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	// The call gets what the caller has left less the margin: about 250ms.
	if d := <-cancelledAfter; d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("downstream cancelled after %s, want about 350ms less %s", d, httpclient.BudgetMargin)
	}
}

// TestCallerCancellationReachesUpstream: a caller that gives up cancels the call.
func TestCallerCancellationReachesUpstream(t *testing.T) {
	t.Parallel()
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	}))
	defer up.Close()
	srv := newServer1(t, up.URL, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/server1/server2", nil)
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request succeeded after cancel")
	}
	select {
	case <-cancelled:
	case <-time.After(3 * time.Second):
		t.Fatal("upstream never saw the cancellation")
	}
}

func TestPropagation(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	defer up.Close()
	c := kittest.Common("server1")
	c.PropagateHeaders = []string{"x-tenant"}
	k := kittest.Kit(t, c, kittest.Default(t, "x").Faults.Config(), nil)
	srv := startWith(t, k, up.URL)

	sent := map[string]string{"X-Tenant": "acme", "X-Not-Listed": "nope"}
	for _, h := range headers.Propagated() {
		sent[h] = "value-of-" + h
	}
	sent["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sent[headers.Fault] = "nobody=delay:1ms" // aimed at no hop: forwarded unchanged
	resp, _ := get(t, srv.URL+"/server1/server2", sent)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, v := range sent {
		if name == "X-Not-Listed" {
			if got.Get(name) != "" {
				t.Errorf("%s forwarded but not listed", name)
			}
			continue
		}
		if got.Get(name) != v {
			t.Errorf("%s = %q upstream, want %q", name, got.Get(name), v)
		}
	}
}

// TestRequestIDGenerated: outside a mesh nobody sets x-request-id; the first hop does.
func TestRequestIDGenerated(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- r.Header.Get("X-Request-Id")
	}))
	defer up.Close()
	srv := newServer1(t, up.URL, time.Second)
	get(t, srv.URL+"/server1/server2", nil)
	if id := <-ids; len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Fatalf("generated request id %q is not a UUID", id)
	}
}

func TestBadBaseURL(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "server1")
	if _, err := httpclient.New(httpclient.Options{Name: "server2", BaseURL: "server2:8080", Metrics: k.Metrics, Logger: k.Logger}); err == nil {
		t.Fatal("accepted a base URL without scheme")
	}
}
