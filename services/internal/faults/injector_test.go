package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/problem"
)

// sleepLog is a WithSleep hook that records every delay instead of waiting.
type sleepLog struct {
	mu  sync.Mutex
	got []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepLog) delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.got...)
}

// injLog is a WithOnInject hook.
type injLog struct {
	mu  sync.Mutex
	got []faults.Injection
}

func (l *injLog) record(_ *http.Request, in faults.Injection) {
	l.mu.Lock()
	l.got = append(l.got, in)
	l.mu.Unlock()
}

func (l *injLog) all() []faults.Injection {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]faults.Injection(nil), l.got...)
}

func newInjector(t testing.TB, cfg faults.Config, service string, opts ...faults.Option) *faults.Injector {
	t.Helper()
	inj, err := faults.New(cfg, service, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return inj
}

// okHandler stands for the workload handler.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
})

func serve(h http.Handler, header string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/server2/end", nil)
	if header != "" {
		req.Header.Set(headers.Fault, header)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeProblem(t testing.TB, rec *httptest.ResponseRecorder) problem.Details {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q (body %q)", ct, problem.ContentType, rec.Body.String())
	}
	var d problem.Details
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body.String(), err)
	}
	if d.Status != rec.Code {
		t.Errorf("problem status %d, response status %d", d.Status, rec.Code)
	}
	return d
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     faults.Config
		service string
		wantErr string
	}{
		{name: "ok", cfg: faults.DefaultConfig(), service: "server2"},
		{name: "invalid config", cfg: faults.Config{}, service: "server2", wantErr: "faults config: FAULT_MAX_DELAY"},
		{name: "empty service", cfg: faults.DefaultConfig(), service: "", wantErr: "missing target"},
		{name: "untargetable service", cfg: faults.DefaultConfig(), service: "server 2", wantErr: "cannot be targeted by X-Meshdemo-Fault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inj, err := faults.New(tt.cfg, tt.service)
			if tt.wantErr == "" {
				if err != nil || inj == nil || inj.Service() != tt.service {
					t.Fatalf("New = %v, %v", inj, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestMiddleware covers each fault kind, its bounds and bad header input, with the
// sleep recorded rather than waited for.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	cfg := func(f func(*faults.Config)) faults.Config {
		c := faults.DefaultConfig()
		if f != nil {
			f(&c)
		}
		return c
	}
	tests := []struct {
		name       string
		cfg        faults.Config
		header     string
		wantStatus int
		wantType   string   // problem type; "" means the handler answered
		wantDetail string   // substring of the problem detail
		wantSleeps []string // recorded delays, in order
		wantKinds  []string // "kind/source" reported to OnInject, in order
	}{
		{name: "nothing configured passes through", cfg: cfg(nil), wantStatus: 200},
		{name: "sick answers its code", cfg: cfg(func(c *faults.Config) { c.Sick, c.SickCode = true, 500 }),
			wantStatus: 500, wantType: faults.TypeSick, wantDetail: "server2 is sick", wantKinds: []string{"sick/config"}},
		{name: "sick wins over everything", cfg: cfg(func(c *faults.Config) { c.Sick, c.Delay, c.ErrorRate = true, time.Second, 100 }),
			header: "server2=abort:404", wantStatus: 503, wantType: faults.TypeSick, wantKinds: []string{"sick/config"}},
		{name: "fixed delay", cfg: cfg(func(c *faults.Config) { c.Delay = 1500 * time.Millisecond }),
			wantStatus: 200, wantSleeps: []string{"1.5s"}, wantKinds: []string{"delay/config"}},
		{name: "error rate 100 answers its code", cfg: cfg(func(c *faults.Config) { c.ErrorRate, c.ErrorCode = 100, 429 }),
			wantStatus: 429, wantType: faults.TypeErrorRate, wantDetail: "FAULT_ERROR_RATE=100%", wantKinds: []string{"error-rate/config"}},
		{name: "delay comes before the error rate", cfg: cfg(func(c *faults.Config) { c.Delay, c.ErrorRate = time.Second, 100 }),
			wantStatus: 503, wantType: faults.TypeErrorRate, wantSleeps: []string{"1s"}, wantKinds: []string{"delay/config", "error-rate/config"}},
		{name: "header delay", cfg: cfg(nil), header: "server2=delay:5.5s",
			wantStatus: 200, wantSleeps: []string{"5.5s"}, wantKinds: []string{"delay/header"}},
		{name: "header abort", cfg: cfg(nil), header: "server2=abort:503",
			wantStatus: 503, wantType: faults.TypeAbort, wantDetail: "X-Meshdemo-Fault server2=abort:503", wantKinds: []string{"abort/header"}},
		{name: "header actions run in order", cfg: cfg(nil), header: "server2=delay:1s;delay:2s;abort:504;delay:3s",
			wantStatus: 504, wantType: faults.TypeAbort, wantSleeps: []string{"1s", "2s"},
			wantKinds: []string{"delay/header", "delay/header", "abort/header"}},
		{name: "config delay then header delay", cfg: cfg(func(c *faults.Config) { c.Delay = time.Second }), header: "server2=delay:2s",
			wantStatus: 200, wantSleeps: []string{"1s", "2s"}, wantKinds: []string{"delay/config", "delay/header"}},
		{name: "error rate before header abort", cfg: cfg(func(c *faults.Config) { c.ErrorRate = 100 }), header: "server2=abort:404",
			wantStatus: 503, wantType: faults.TypeErrorRate, wantKinds: []string{"error-rate/config"}},
		{name: "percent 0 never fires", cfg: cfg(nil), header: "server2=abort:500@0;delay:1s@0", wantStatus: 200},
		{name: "directive for another service ignored", cfg: cfg(nil), header: "server1=abort:500, client=delay:10s", wantStatus: 200},
		{name: "target match is exact", cfg: cfg(nil), header: "Server2=abort:500,server=abort:500,server2x=abort:500", wantStatus: 200},
		{name: "own directive among others", cfg: cfg(nil), header: "server1=abort:500, server2=abort:502", wantStatus: 502, wantType: faults.TypeAbort,
			wantKinds: []string{"abort/header"}},
		{name: "zero header delay does not sleep", cfg: cfg(nil), header: "server2=delay:0s", wantStatus: 200},
		{name: "header delay equal to max", cfg: cfg(func(c *faults.Config) { c.MaxDelay = 6 * time.Second }), header: "server2=delay:6s",
			wantStatus: 200, wantSleeps: []string{"6s"}, wantKinds: []string{"delay/header"}},
		{name: "header delay above max", cfg: cfg(nil), header: "server2=delay:31s", wantStatus: 400, wantType: faults.TypeInvalid,
			wantDetail: "delays for server2 add up to more than FAULT_MAX_DELAY=30s"},
		{name: "header delays summing above max", cfg: cfg(nil), header: "server2=delay:20s, server2=delay:11s@1", wantStatus: 400, wantType: faults.TypeInvalid,
			wantDetail: "add up to more than FAULT_MAX_DELAY"},
		{name: "delay above this max aimed at another service passes", cfg: cfg(nil), header: "server1=delay:1h", wantStatus: 200},
		{name: "overflowing delays rejected", cfg: cfg(nil), header: "server2=delay:2562047h;delay:2562047h", wantStatus: 400, wantType: faults.TypeInvalid},
		{name: "invalid header rejected before config delay", cfg: cfg(func(c *faults.Config) { c.Delay = time.Second }), header: "server2=delay:5.5",
			wantStatus: 400, wantType: faults.TypeInvalid, wantDetail: `X-Meshdemo-Fault: directive 1 "server2=delay:5.5": action "delay:5.5": time: missing unit`},
		{name: "invalid directive for another service still rejected", cfg: cfg(nil), header: "server1=abort:200",
			wantStatus: 400, wantType: faults.TypeInvalid, wantDetail: "status 200"},
		{name: "header too long", cfg: cfg(nil), header: "server2=delay:1s;" + strings.Repeat(" ", 1100), wantStatus: 400, wantType: faults.TypeInvalid,
			wantDetail: "at most 1024"},
		{name: "header disabled: directives ignored", cfg: cfg(func(c *faults.Config) { c.HeaderEnabled = false }), header: "server2=abort:500", wantStatus: 200},
		{name: "header disabled: garbage ignored", cfg: cfg(func(c *faults.Config) { c.HeaderEnabled = false }), header: "%%%", wantStatus: 200},
		{name: "header disabled: config faults still apply", cfg: cfg(func(c *faults.Config) { c.HeaderEnabled, c.ErrorRate = false, 100 }),
			header: "server2=delay:1s", wantStatus: 503, wantType: faults.TypeErrorRate, wantKinds: []string{"error-rate/config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var sl sleepLog
			var il injLog
			inj := newInjector(t, tt.cfg, "server2", faults.WithSleep(sl.sleep), faults.WithOnInject(il.record), faults.WithRand(rand.NewPCG(1, 2)))
			rec := serve(inj.Middleware(okHandler), tt.header)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body.String())
			}
			if tt.wantType == "" {
				if rec.Body.String() != `{"ok":true}` {
					t.Errorf("body = %q, want the handler's", rec.Body.String())
				}
			} else {
				d := decodeProblem(t, rec)
				if d.Type != tt.wantType || d.Service != "server2" || d.Instance != "/server2/end" {
					t.Errorf("problem = %+v, want type %q, service server2, instance /server2/end", d, tt.wantType)
				}
				if !strings.Contains(d.Detail, tt.wantDetail) {
					t.Errorf("detail = %q, want it to contain %q", d.Detail, tt.wantDetail)
				}
			}
			var sleeps []string
			for _, d := range sl.delays() {
				sleeps = append(sleeps, d.String())
			}
			if strings.Join(sleeps, " ") != strings.Join(tt.wantSleeps, " ") {
				t.Errorf("sleeps = %v, want %v", sleeps, tt.wantSleeps)
			}
			var kinds []string
			for _, in := range il.all() {
				kinds = append(kinds, string(in.Kind)+"/"+string(in.Source))
				if in.Kind == faults.KindDelay && in.Delay <= 0 || in.Kind != faults.KindDelay && in.Status != rec.Code {
					t.Errorf("injection %+v does not match the response %d", in, rec.Code)
				}
			}
			if strings.Join(kinds, " ") != strings.Join(tt.wantKinds, " ") {
				t.Errorf("injections = %v, want %v", kinds, tt.wantKinds)
			}
		})
	}
}

// TestMiddlewareMultipleHeaderLines: field lines of the header are one list.
func TestMiddlewareMultipleHeaderLines(t *testing.T) {
	t.Parallel()
	inj := newInjector(t, faults.DefaultConfig(), "server2")
	req := httptest.NewRequest(http.MethodGet, "/server2/end", nil)
	req.Header.Add(headers.Fault, "server1=delay:1s")
	req.Header.Add(headers.Fault, "server2=abort:418")
	rec := httptest.NewRecorder()
	inj.Middleware(okHandler).ServeHTTP(rec, req)
	if rec.Code != 418 {
		t.Fatalf("status = %d, want 418 from the second header line", rec.Code)
	}
}

// binomialTolerance is k standard deviations of the number of hits in n trials at
// probability p.
func binomialTolerance(n int, p float64, k float64) float64 {
	return k * math.Sqrt(float64(n)*p*(1-p))
}

// TestErrorRateStatistics counts injected errors over N requests. With a seeded
// source the count is deterministic and must sit within 4 binomial standard deviations
// of N*p; with the runtime source it must sit within 6 (false failure odds below 1e-8).
func TestErrorRateStatistics(t *testing.T) {
	t.Parallel()
	const n = 10000
	for _, rate := range []float64{0, 1, 30, 99.5, 100} {
		for _, seeded := range []bool{true, false} {
			if !seeded && (rate == 0 || rate == 100) {
				continue // no draw happens at the ends: the runtime source adds nothing
			}
			name := fmtRate(rate, seeded)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := faults.DefaultConfig()
				c.ErrorRate, c.ErrorCode = rate, 500
				var opts []faults.Option
				k := 6.0
				if seeded {
					opts, k = append(opts, faults.WithRand(rand.NewPCG(42, uint64(rate*10)))), 4
				}
				h := newInjector(t, c, "server1", opts...).Middleware(okHandler)
				var fails int
				for range n {
					switch rec := serve(h, ""); rec.Code {
					case 500:
						fails++
					case 200:
					default:
						t.Fatalf("unexpected status %d", rec.Code)
					}
				}
				p := rate / 100
				want, tol := n*p, binomialTolerance(n, p, k)
				if math.Abs(float64(fails)-want) > tol {
					t.Errorf("%d of %d requests failed, want %.0f ± %.1f (%.0fσ)", fails, n, want, tol, k)
				}
				if (rate == 0 || rate == 100) && float64(fails) != want {
					t.Errorf("rate %v%%: %d failures, want exactly %.0f", rate, fails, want)
				}
			})
		}
	}
}

func fmtRate(rate float64, seeded bool) string {
	s := strconv.FormatFloat(rate, 'f', -1, 64) + "%"
	if seeded {
		return s + "/seeded"
	}
	return s + "/runtime"
}

// TestHeaderPercentStatistics: a directive's @percent fires like the error rate.
func TestHeaderPercentStatistics(t *testing.T) {
	t.Parallel()
	const n = 20000
	h := newInjector(t, faults.DefaultConfig(), "server1", faults.WithRand(rand.NewPCG(3, 4))).Middleware(okHandler)
	var aborted int
	for range n {
		if serve(h, "server1=abort:503@25").Code == 503 {
			aborted++
		}
	}
	want, tol := n*0.25, binomialTolerance(n, 0.25, 4)
	if math.Abs(float64(aborted)-want) > tol {
		t.Errorf("%d of %d aborted, want %.0f ± %.1f", aborted, n, want, tol)
	}
}

// TestLatencyThroughMiddleware: delays drawn by the middleware follow FAULT_LATENCY
// (empirical CDF within 4 binomial standard deviations), shifted by FAULT_DELAY.
func TestLatencyThroughMiddleware(t *testing.T) {
	t.Parallel()
	const n = 20000
	c := faults.DefaultConfig()
	c.Delay, c.Latency = 100*time.Millisecond, faults.MustParseLatency("p50=20ms,p90=80ms,p99=300ms")
	var sl sleepLog
	h := newInjector(t, c, "server2", faults.WithSleep(sl.sleep), faults.WithRand(rand.NewPCG(5, 6))).Middleware(okHandler)
	for range n {
		if rec := serve(h, ""); rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	got := sl.delays()
	if len(got) != n {
		t.Fatalf("%d sleeps for %d requests", len(got), n)
	}
	shifted := make([]time.Duration, n)
	for i, d := range got {
		if d < 100*time.Millisecond || d > 400*time.Millisecond {
			t.Fatalf("delay %v outside [FAULT_DELAY, FAULT_DELAY+p99]", d)
		}
		shifted[i] = d - 100*time.Millisecond
	}
	checkCDF(t, shifted, []cdfPoint{{10 * time.Millisecond, 0.25}, {20 * time.Millisecond, 0.5},
		{50 * time.Millisecond, 0.7}, {80 * time.Millisecond, 0.9}, {300 * time.Millisecond, 1}})
}

// TestRealSleep: the default sleep really waits for the delay.
func TestRealSleep(t *testing.T) {
	t.Parallel()
	c := faults.DefaultConfig()
	c.Delay = 50 * time.Millisecond
	h := newInjector(t, c, "server2").Middleware(okHandler)
	start := time.Now()
	rec := serve(h, "server2=delay:30ms")
	if el := time.Since(start); el < 80*time.Millisecond || rec.Code != 200 {
		t.Fatalf("took %v with status %d, want at least 80ms and 200", el, rec.Code)
	}
}

// TestDeadlineDuringDelay: a deadline on the request context ends the delay and, since
// the caller may still be waiting, answers 504.
func TestDeadlineDuringDelay(t *testing.T) {
	t.Parallel()
	h := newInjector(t, faults.DefaultConfig(), "server2").Middleware(okHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/server2/end", nil)
	req.Header.Set(headers.Fault, "server2=delay:10s")
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("returned after %v, want right after the 50ms deadline", el)
	}
	if rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("status = %d, want 504", rec.Code)
	}
	if d := decodeProblem(t, rec); d.Type != faults.TypeDeadline {
		t.Errorf("type = %q, want %q", d.Type, faults.TypeDeadline)
	}
}

// writeSpy records whether anything was written.
type writeSpy struct {
	h       http.Header
	mu      sync.Mutex
	written bool
}

func (w *writeSpy) Header() http.Header { return w.h }
func (w *writeSpy) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.written = true
	w.mu.Unlock()
	return len(b), nil
}
func (w *writeSpy) WriteHeader(int) { w.mu.Lock(); w.written = true; w.mu.Unlock() }

// TestCancelledDelayWritesNothing: when the caller goes away mid-delay the middleware
// returns at once, writes nothing and never reaches the handler.
func TestCancelledDelayWritesNothing(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"config", "header"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			c := faults.DefaultConfig()
			header := ""
			if source == "config" {
				c.Delay = 20 * time.Second
			} else {
				header = "server2=delay:20s"
			}
			started := make(chan struct{}, 1)
			reached := make(chan struct{}, 1)
			var logs kittest.Logs
			inj := newInjector(t, c, "server2", faults.WithOnInject(func(*http.Request, faults.Injection) { started <- struct{}{} }),
				faults.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			h := inj.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached <- struct{}{} }))
			ctx, cancel := context.WithCancel(context.Background())
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/server2/end", nil)
			if header != "" {
				req.Header.Set(headers.Fault, header)
			}
			w := &writeSpy{h: http.Header{}}
			done := make(chan struct{})
			go func() { h.ServeHTTP(w, req); close(done) }()
			<-started
			cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("middleware still sleeping 2s after cancellation")
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.written || len(w.h) > 0 {
				t.Errorf("wrote a response (headers %v) for a caller that went away", w.h)
			}
			select {
			case <-reached:
				t.Error("handler ran after a cancelled delay")
			default:
			}
			var entry map[string]any
			if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
				t.Fatalf("want one JSON log line, got %q: %v", logs.Bytes(), err)
			}
			if entry["status"] != 499.0 || entry["delay"] != "20s" || entry["source"] != source || entry["path"] != "/server2/end" {
				t.Errorf("log entry = %v, want status 499, delay 20s, source %s, path /server2/end", entry, source)
			}
		})
	}
}

func TestInjectionHookAndSickSwitch(t *testing.T) {
	t.Parallel()
	inj := newInjector(t, faults.DefaultConfig(), "client")
	h := inj.Middleware(okHandler)
	steps := []struct {
		set        *bool
		wantStatus int
	}{
		{nil, 200},
		{ptr(true), 503},
		{ptr(true), 503},
		{ptr(false), 200},
	}
	for i, s := range steps {
		if s.set != nil {
			inj.SetSick(*s.set)
		}
		if got := serve(h, "").Code; got != s.wantStatus {
			t.Errorf("step %d: status %d, want %d", i, got, s.wantStatus)
		}
		if want := s.wantStatus == 503; inj.Sick() != want || inj.Status().Sick != want {
			t.Errorf("step %d: Sick() = %v, Status() = %+v, want %v", i, inj.Sick(), inj.Status(), want)
		}
	}
	started := newInjector(t, func() faults.Config { c := faults.DefaultConfig(); c.Sick = true; return c }(), "client")
	if !started.Sick() {
		t.Error("FAULT_SICK=true did not start sick")
	}
	b, _ := json.Marshal(started.Status())
	if string(b) != `{"sick":true}` {
		t.Errorf("Status JSON = %s", b)
	}
}

func ptr[T any](v T) *T { return &v }

var errSentinel = errors.New("sentinel")

// TestSleepHookError: an unexpected error from a custom sleep is treated as a caller
// gone (nothing written), never as success.
func TestSleepHookError(t *testing.T) {
	t.Parallel()
	c := faults.DefaultConfig()
	c.Delay = time.Second
	inj := newInjector(t, c, "server2", faults.WithSleep(func(context.Context, time.Duration) error { return errSentinel }))
	w := &writeSpy{h: http.Header{}}
	inj.Middleware(okHandler).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	if w.written {
		t.Error("handler ran or response written despite a failed sleep")
	}
}
