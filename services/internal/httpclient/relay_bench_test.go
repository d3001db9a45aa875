package httpclient_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
)

// BenchmarkHop measures one middle hop (kit router + observer + faults + Relay) in
// front of a fixed upstream, over real loopback connections, at both log levels, and
// the same hop written as the minimal chain's relay (plain ServeMux and http.Client).
// Run with -benchmem: allocations per request are what drives the chain's GC cost,
// and the minimal hop in the same run is the yardstick.
func BenchmarkHop(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Meshdemo-Path", "server2/v1@x")
		_, _ = io.WriteString(w, `{"firstName":"Mick","lastName":"Chung","service":"server2","version":"v1","instance":"x"}`)
	}))
	defer up.Close()
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run(level.String(), func(b *testing.B) {
			c := kittest.Common("server1")
			c.LogLevel = level
			k := kittest.Kit(b, c, kittest.Default(b, "x").Faults.Config(), io.Discard)
			u, err := k.Upstream("server2", up.URL)
			if err != nil {
				b.Fatal(err)
			}
			r := k.Router()
			r.With(k.Faults.Middleware).Get("/server1/server2", func(w http.ResponseWriter, r *http.Request) {
				u.Relay(w, r, httpclient.Call{Method: http.MethodGet, Path: "/server2/end"})
			})
			loop(b, r)
		})
	}
	b.Run("minimal", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 512, DisableCompression: true}}
		target := up.URL + "/server2/end"
		mux := http.NewServeMux()
		mux.HandleFunc("GET /server1/server2", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(body)
		})
		loop(b, mux)
	})
}

func loop(b *testing.B, h http.Handler) {
	req := httptest.NewRequest(http.MethodGet, "/server1/server2", nil)
	req.Header.Set("X-Request-Id", "bench")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
