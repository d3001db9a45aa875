package faults_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/faults"
)

// TestCancelledDelaysLeaveNoGoroutine runs delayed requests through a real HTTP server
// whose clients give up after 50ms, and then checks that (a) every server handler
// returned within a second of its client leaving, and (b) no goroutine is left in the
// package's sleep and the goroutine count is back to where it started.
//
// Not parallel on purpose: goroutine counts are only comparable while no other test
// runs (parallel tests are paused until the serial ones finish).
func TestCancelledDelaysLeaveNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()

	returned := make(chan time.Duration, 16)
	inj := newInjector(t, faults.DefaultConfig(), "server2")
	mw := inj.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("handler reached although every delay was cancelled")
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		mw.ServeHTTP(w, r)
		returned <- time.Since(start)
	}))
	tr := &http.Transport{}
	client := &http.Client{Timeout: 50 * time.Millisecond, Transport: tr}

	const n = 8
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/server2/end", nil)
		req.Header.Set(headers.Fault, "server2=delay:25s")
		if i%2 == 1 {
			req.Header.Set(headers.Fault, "server1=abort:500,server2=delay:10s;abort:500")
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("request %d: got %s, want a client timeout", i, resp.Status)
		}
	}
	for i := range n {
		select {
		case d := <-returned:
			if d > 1500*time.Millisecond {
				t.Errorf("handler %d returned after %v: the delay did not stop with the caller", i, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d handlers returned; delays still sleeping", i, n)
		}
	}
	tr.CloseIdleConnections()
	srv.Close()

	deadline := time.Now().Add(5 * time.Second)
	for {
		now := runtime.NumGoroutine()
		stacks := allStacks()
		sleeping := strings.Contains(stacks, "faults.sleepContext") || strings.Contains(stacks, "faults.(*Injector)")
		if now <= before && !sleeping {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after; a faults frame still on a stack: %v\n%s", before, now, sleeping, stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// TestSleepContextStopsAtOnce measures the cancelled sleep alone: 200 cancelled 1h
// sleeps must all return promptly and leave the goroutine count unchanged.
func TestSleepContextStopsAtOnce(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newInjector(t, faults.DefaultConfig(), "server2").Middleware(okHandler)
	for range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/server2/end", nil)
		req.Header.Set(headers.Fault, "server2=delay:30s")
		done := make(chan struct{})
		go func() { h.ServeHTTP(httptest.NewRecorder(), req); close(done) }()
		time.Sleep(time.Millisecond)
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("cancelled delay did not return")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after 200 cancelled delays\n%s", before, runtime.NumGoroutine(), allStacks())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
