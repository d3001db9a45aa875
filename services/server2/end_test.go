package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/health"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

func TestServer2(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "server2")
	srv := httptest.NewServer(NewServer(k))
	defer srv.Close()

	tests := []struct {
		name, method, path string
		wantCode           int
		wantCT             string
	}{
		{"end", http.MethodGet, "/server2/end", 200, "application/json"},
		{"wrong method", http.MethodPost, "/server2/end", 405, "application/problem+json"},
		{"unknown path", http.MethodGet, "/server2/nope", 404, "application/problem+json"},
		{"liveness", http.MethodGet, "/healthz", 200, "application/json"},
		{"readiness", http.MethodGet, "/readyz", 200, "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.wantCode || resp.Header.Get("Content-Type") != tc.wantCT {
				t.Fatalf("got %d %q, want %d %q (body %v)", resp.StatusCode, resp.Header.Get("Content-Type"), tc.wantCode, tc.wantCT, body)
			}
			hops, err := pathheader.Parse(resp.Header.Get(pathheader.Name))
			if err != nil || len(hops) != 1 || hops[0].String() != "server2/v1@server2-test" {
				t.Fatalf("path header %q: %v", resp.Header.Get(pathheader.Name), err)
			}
			if tc.name == "end" {
				want := map[string]any{"firstName": "Mick", "lastName": "Chung", "service": "server2", "version": "v1", "instance": "server2-test"}
				for key, v := range want {
					if body[key] != v {
						t.Errorf("%s = %v, want %v", key, body[key], v)
					}
				}
			}
			if tc.wantCode == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q, want GET, HEAD", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestReadinessFollowsLifecycle(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "server2")
	h := NewServer(k)
	for _, tc := range []struct {
		phase health.Phase
		code  int
	}{{health.Starting, 503}, {health.Ready, 200}, {health.Draining, 503}} {
		k.Health.Set(tc.phase)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body struct {
			Status string `json:"status"`
			Sick   *bool  `json:"sick"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.code || body.Status != tc.phase.String() || body.Sick == nil {
			t.Errorf("phase %s: got %d %+v, want %d", tc.phase, rec.Code, body, tc.code)
		}
		// liveness never changes with the phase
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != 200 {
			t.Errorf("phase %s: /healthz %d", tc.phase, rec.Code)
		}
	}
}
