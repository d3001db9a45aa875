package httpclient_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/kittest"
)

// BenchmarkHop measures one middle hop (kit router + observer + faults + Relay) in
// front of a fixed upstream, over real loopback connections. Run with -benchmem:
// allocations per request are what drives the chain's GC cost.
func BenchmarkHop(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run(level.String(), func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Meshdemo-Path", "server2/v1@x")
				_, _ = io.WriteString(w, `{"firstName":"Mick","lastName":"Chung","service":"server2","version":"v1","instance":"x"}`)
			}))
			defer up.Close()
			c := kittest.Common("server1")
			c.LogLevel = level
			k := kittest.Kit(b, c, kittest.Default(b, "x").Faults.Config(), io.Discard)
			u, err := k.Upstream("server2", up.URL)
			if err != nil {
				b.Fatal(err)
			}
			r := k.Router()
			r.With(k.Faults.Middleware).Get("/server1/server2", func(w http.ResponseWriter, r *http.Request) {
				u.Relay(w, r, http.MethodGet, "/server2/end", nil, "")
			})
			req := httptest.NewRequest(http.MethodGet, "/server1/server2", nil)
			req.Header.Set("X-Request-Id", "bench")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
