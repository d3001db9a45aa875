package faults_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/faults"
)

// nopWriter keeps the writer's own cost out of the numbers.
type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w nopWriter) WriteHeader(int)             {}

var nop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

func benchHandler(b *testing.B, h http.Handler, header string) {
	req := httptest.NewRequest(http.MethodGet, "/server2/end", nil)
	if header != "" {
		req.Header.Set(headers.Fault, header)
	}
	w := nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// BenchmarkMiddleware: "no faults" is the price every request pays in production.
//
//	cd services && go test -run '^$' -bench Middleware -benchmem ./internal/faults
func BenchmarkMiddleware(b *testing.B) {
	inj, err := faults.New(faults.DefaultConfig(), "server2")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("bare handler", func(b *testing.B) { benchHandler(b, nop, "") })
	b.Run("no faults", func(b *testing.B) { benchHandler(b, inj.Middleware(nop), "") })
	b.Run("directive for another hop", func(b *testing.B) {
		benchHandler(b, inj.Middleware(nop), "server1=delay:200ms@20;abort:500@10,client=abort:503@5")
	})
	b.Run("own abort at 0 percent", func(b *testing.B) { benchHandler(b, inj.Middleware(nop), "server2=abort:503@0") })
}
