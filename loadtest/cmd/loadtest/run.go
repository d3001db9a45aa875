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
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/engine"
	"github.com/meshdemo/meshdemo/loadtest/internal/live"
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

const probeTimeout = 5 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fail(exitUsage, "%w (run loadtest -h for usage)", err)
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
	if opts.ui != "" {
		return runUI(ctx, opts, obs, stdout, stderr)
	}

	cfg := opts.engine
	if err := engine.Probe(ctx, cfg.URL, probeTimeout); err != nil {
		return fail(exitUsage, "target %s unreachable: %w", cfg.URL, err)
	}
	// Snapshots are taken at the progress interval, or every second without progress
	// lines: each moves the workers' recent seconds into the bounded timeline.
	interval := opts.progress
	if interval <= 0 {
		interval = time.Second
	}
	doc, _, err := live.Execute(ctx, live.Spec{Engine: cfg, Checks: opts.checks}, obs, interval, func(ev live.Event) {
		if opts.progress > 0 {
			fmt.Fprint(stderr, live.ProgressLine(ev, cfg))
		}
	})
	if err != nil {
		return fail(exitUsage, "%w", err)
	}
	if err := writeReports(doc, opts, stdout); err != nil {
		return err
	}
	sum := doc.Summary
	failed := 0
	for _, e := range doc.Expectations {
		if !e.OK {
			failed++
		}
	}
	switch {
	case ctx.Err() != nil:
		return fail(exitUsage, "interrupted: the report covers the %d requests sent before", sum.Requests)
	case sum.Requests > 0 && live.Answered(sum.Counts) == 0:
		return fail(exitUsage, "target %s answered none of %d requests (errors: %s)", cfg.URL, sum.Requests, formatErrors(sum.Errors))
	case failed > 0:
		return fail(exitExpected, "%d of %d expectations failed", failed, len(doc.Expectations))
	}
	return nil
}

// writeReports writes the report files the flags ask for, then prints the summary:
// once the summary is out, the files are complete.
func writeReports(doc report.Document, opts options, stdout io.Writer) error {
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
	if err := report.WriteText(stdout, doc); err != nil {
		return fail(exitUsage, "writing summary: %w", err)
	}
	return nil
}

// runUI serves the live page until ctx is cancelled. A URL on the command line starts
// a run at once; every run's summary goes to stdout and its reports to --json/--html.
func runUI(ctx context.Context, opts options, obs result.Observer, stdout, stderr io.Writer) error {
	ln, err := net.Listen("tcp", opts.ui)
	if err != nil {
		return fail(exitUsage, "--ui: %w", err)
	}
	cfg := opts.engine
	form := live.Form{URL: cfg.URL, Host: cfg.Host, Rate: cfg.Rate, Headers: cfg.Headers, Expect: opts.expectRaw, ExpectStatus: opts.statusRaw}
	if cfg.Duration > 0 {
		form.Duration = cfg.Duration.String()
	}
	page := live.NewServer(ctx, live.Options{
		Defaults: form,
		Base:     live.Spec{Engine: cfg, Checks: opts.checks},
		Observer: obs,
		OnDone: func(doc report.Document, err error) {
			if err != nil {
				fmt.Fprintf(stderr, "loadtest: run failed: %v\n", err)
				return
			}
			if err := writeReports(doc, opts, stdout); err != nil {
				fmt.Fprintf(stderr, "loadtest: %v\n", err)
			}
		},
	})
	srv := &http.Server{
		Handler:           page.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // the event stream extends its own deadline per write
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    1 << 16,
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		page.Wait() // runs stop with ctx
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stderr, "loadtest: live page at http://%s/ (events at /events)\n", ln.Addr())
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(stderr, "loadtest: warning: the live page listens on %s, not on loopback: whoever reaches it can start load from this machine\n", ln.Addr())
	}
	if cfg.URL != "" {
		if err := engine.Probe(ctx, cfg.URL, probeTimeout); err != nil {
			return fail(exitUsage, "target %s unreachable: %w", cfg.URL, err)
		}
		if err := page.Start(live.Spec{Engine: cfg, Checks: opts.checks}, form); err != nil {
			return fail(exitUsage, "%w", err)
		}
	}
	<-ctx.Done()
	return nil
}

func formatErrors(m map[string]int64) string {
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
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
