package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/engine"
	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/metrics"
	"github.com/meshdemo/meshdemo/loadtest/internal/report"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

// Exit codes, as documented in the README.
const (
	exitOK       = 0 // every expectation held
	exitExpected = 1 // the run completed and an expectation failed
	exitUsage    = 2 // bad flags, unreachable target, target answering nothing, unwritable report, interrupted
)

// exitError carries the exit code for main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fail(exitUsage, "%w (run loadtest -h for usage)", err)
	}
	cfg := opts.engine

	const probeTimeout = 5 * time.Second
	if err := engine.Probe(ctx, cfg.URL, probeTimeout); err != nil {
		return fail(exitUsage, "target %s unreachable: %w", cfg.URL, err)
	}

	var obs result.Observer
	if opts.metricsAddr != "" {
		exp := metrics.New()
		obs = exp
		stopMetrics, err := serveMetrics(opts.metricsAddr, exp.Handler(), stderr)
		if err != nil {
			return fail(exitUsage, "metrics: %w", err)
		}
		defer stopMetrics()
	}

	started := time.Now()
	rec := result.NewRecorder(started, obs)
	stopProgress := progress(rec, cfg, opts.progress, stderr)
	elapsed, runErr := engine.Run(ctx, cfg, rec)
	stopProgress()
	if runErr != nil {
		return fail(exitUsage, "%w", runErr)
	}

	sum := rec.Summary(elapsed)
	doc := report.Document{Tool: report.ToolName, Run: describe(cfg, started), Summary: sum, Passed: true}
	for _, sp := range opts.splits {
		doc.Expectations = append(doc.Expectations, expect.CheckSplit(sp, sum, opts.settings))
	}
	for _, st := range opts.statuses {
		doc.Expectations = append(doc.Expectations, expect.CheckStatus(st, sum, opts.settings))
	}
	if opts.maxP99 > 0 {
		doc.Expectations = append(doc.Expectations, expect.CheckP99(opts.maxP99, sum))
	}
	failed := 0
	for _, e := range doc.Expectations {
		if !e.OK {
			failed++
		}
	}
	answered := int64(0)
	for _, n := range sum.Status {
		answered += n
	}
	doc.Passed = failed == 0 && answered > 0

	if err := report.WriteText(stdout, doc); err != nil {
		return fail(exitUsage, "writing summary: %w", err)
	}
	if opts.jsonOut != "" {
		if err := report.WriteJSON(opts.jsonOut, doc); err != nil {
			return fail(exitUsage, "%w", err)
		}
	}
	if opts.htmlOut != "" {
		if err := report.WriteHTML(opts.htmlOut, doc); err != nil {
			return fail(exitUsage, "%w", err)
		}
	}
	switch {
	case ctx.Err() != nil:
		return fail(exitUsage, "interrupted: the report covers the %d requests sent before", sum.Requests)
	case sum.Requests > 0 && answered == 0:
		return fail(exitUsage, "target %s answered none of %d requests (errors: %s)", cfg.URL, sum.Requests, formatErrors(sum.Errors))
	case failed > 0:
		return fail(exitExpected, "%d of %d expectations failed", failed, len(doc.Expectations))
	}
	return nil
}

func describe(cfg engine.Config, started time.Time) report.Run {
	r := report.Run{URL: cfg.URL, Host: cfg.Host, Headers: cfg.Headers, Requests: cfg.Requests, Timeout: cfg.Timeout.String(), Started: started}
	if cfg.Duration > 0 {
		r.Duration = cfg.Duration.String()
	}
	if cfg.Rate > 0 {
		r.Model, r.Rate, r.MaxInFlight = "open", cfg.Rate, cfg.MaxInFlight
	} else {
		r.Model, r.Concurrency = "closed", cfg.Concurrency
	}
	return r
}

func formatErrors(m map[string]int64) string {
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// progress prints a line to w every interval until the returned stop is called.
func progress(rec *result.Recorder, cfg engine.Config, every time.Duration, w io.Writer) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		var last int64
		lastAt := rec.Start()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				p := rec.Progress()
				rate := float64(p.Requests-last) / now.Sub(lastAt).Seconds()
				last, lastAt = p.Requests, now
				done := fmt.Sprintf("%s/%s, %d requests", now.Sub(rec.Start()).Round(time.Second), cfg.Duration, p.Requests)
				if cfg.Requests > 0 {
					done = fmt.Sprintf("%d/%d requests", p.Requests, cfg.Requests)
				}
				codes := make([]string, 0, len(p.Codes))
				for _, c := range slices.Sorted(maps.Keys(p.Codes)) {
					codes = append(codes, fmt.Sprintf("%d:%d", c, p.Codes[c]))
				}
				fmt.Fprintf(w, "loadtest: %s, %.1f req/s, status %s, errors %d\n",
					done, rate, strings.Join(codes, " "), p.Errors)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// serveMetrics serves /metrics on addr until stop is called.
func serveMetrics(addr string, h http.Handler, stderr io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    1 << 16,
	}
	fmt.Fprintf(stderr, "loadtest: metrics at http://%s/metrics\n", ln.Addr())
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
