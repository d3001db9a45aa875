package httpclient_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func BenchmarkMinimalHop(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Meshdemo-Path", "server2/v1@x")
		_, _ = io.WriteString(w, `{"firstName":"Mick","lastName":"Chung","service":"server2","version":"v1","instance":"x"}`)
	}))
	defer up.Close()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext, MaxIdleConnsPerHost: 512, DisableCompression: true}}
	target := up.URL + "/server2/end"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /server1/server2", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", target, nil)
		resp, err := client.Do(req)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	})
	req := httptest.NewRequest(http.MethodGet, "/server1/server2", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
