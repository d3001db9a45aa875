// Package engine drives the load with fortio: fortio's periodic runner keeps the
// schedule and fortio's fast HTTP/1.1 client sends the requests; the engine decides
// which model the schedule follows and hands every response to a result.Shard.
//
// Open model (Rate > 0): a few fortio pacer threads tick at the target rate and each
// tick is handed to an idle worker; when none is idle a new one (a new connection) is
// started, up to MaxInFlight. A slow target therefore gets more requests in flight
// instead of fewer requests, and latency is counted from when the request was due, so
// it is not understated when the target slows down (no coordinated omission). Only at
// the MaxInFlight cap does a tick wait, and that wait is part of the latency.
//
// Closed model (Concurrency > 0): Concurrency fortio threads, each with its own
// connection, send back to back as fast as the target answers.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	"fortio.org/log"
	"golang.org/x/net/http/httpguts"

	"github.com/meshdemo/meshdemo/loadtest/internal/result"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Config says what to send and how fast.
type Config struct {
	URL     string
	Host    string   // Host header; empty means the URL's host
	Headers []string // extra request headers, "Name: value"

	Rate        float64 // requests per second, open model
	MaxInFlight int     // open model: cap on concurrent requests (connections)
	Concurrency int     // closed model: number of connections sending back to back

	Duration time.Duration // run length; with neither Duration nor Requests, until ctx is cancelled
	Requests int64         // exact number of requests
	Timeout  time.Duration // per request
}

// Validate reports a configuration the engine cannot run.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme must be http or https", c.URL)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q has no host", c.URL)
	}
	switch {
	case (c.Rate > 0) == (c.Concurrency > 0):
		return errors.New("exactly one of rate (open model) and concurrency (closed model) must be set")
	case c.Rate > 0 && c.MaxInFlight < 1:
		return errors.New("max in-flight must be at least 1")
	case c.Duration < 0 || c.Requests < 0:
		return errors.New("duration and requests cannot be negative")
	case c.Duration > 0 && c.Requests > 0:
		return errors.New("exactly one of duration and requests must be set")
	case c.Requests == 1:
		return errors.New("requests must be at least 2 (fortio's scheduler needs two points)")
	case c.Timeout <= 0:
		return errors.New("timeout must be positive")
	}
	for _, h := range c.Headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || !httpguts.ValidHeaderFieldName(strings.TrimSpace(name)) || !httpguts.ValidHeaderFieldValue(strings.TrimSpace(value)) {
			return fmt.Errorf("header %q: want \"Name: value\" (a token before the colon)", h)
		}
	}
	if c.Host != "" && !httpguts.ValidHostHeader(c.Host) {
		return fmt.Errorf("host %q is not a valid Host header", c.Host)
	}
	return nil
}

var quietFortio sync.Once

// Probe checks that the target accepts TCP connections, so that an unreachable target
// is reported once and clearly instead of as thousands of failed requests.
func Probe(ctx context.Context, rawURL string, timeout time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return err
	}
	return conn.Close()
}

// Run sends the load and records it; it returns the elapsed time from the first
// request due to the last response, and marks on rec (Finish) when the schedule
// ended, which is where the timeline's last second ends. Cancelling ctx stops the
// schedule; requests in flight finish (bounded by the request timeout).
func Run(ctx context.Context, cfg Config, rec *result.Recorder) (time.Duration, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	// fortio logs every failed request; loadtest counts them instead. Its logger is
	// process-wide, hence once.
	quietFortio.Do(func() { log.SetLogLevelQuiet(log.Critical) })

	opts, err := httpOptions(cfg)
	if err != nil {
		return 0, err
	}
	e := &engine{cfg: cfg, opts: opts, rec: rec, jobs: make(chan time.Time)}

	ro := periodic.RunnerOptions{
		RunType:  "meshdemo-loadtest",
		Out:      io.Discard,
		Duration: cfg.Duration,
		Exactly:  cfg.Requests,
	}
	if cfg.Duration == 0 && cfg.Requests == 0 {
		ro.Duration = -1 // fortio: until aborted (0 would mean its default of 5 s)
	}
	if cfg.Rate > 0 {
		ro.QPS = cfg.Rate
		ro.NumThreads = pacers(cfg.Rate)
		ro.Uniform = true
	} else {
		ro.QPS = -1 // fortio's "max qps": no pause between calls
		ro.NumThreads = cfg.Concurrency
		if cfg.Requests > 0 && int64(ro.NumThreads) > cfg.Requests {
			// fortio makes every thread send at least once
			ro.NumThreads = int(cfg.Requests)
		}
	}
	runner := periodic.NewPeriodicRunner(&ro)
	// NewPeriodicRunner moves the options: runners are set on the copy it returns, for
	// its (possibly adjusted) number of threads.
	ropts := runner.Options()
	for i := range ropts.NumThreads {
		if cfg.Rate > 0 {
			ropts.Runners[i] = e
			continue
		}
		w, err := e.newWorker()
		if err != nil {
			ropts.Abort()
			return 0, err
		}
		ropts.Runners[i] = closedRunner{w}
	}

	stop := context.AfterFunc(ctx, ropts.Abort)
	defer stop()
	start := time.Now()
	runner.Run()
	// The schedule is over: in the open model the last tick has been handed to a
	// worker, in the closed model the last request has been answered. No request is
	// due after this, so the timeline's last second ends here.
	rec.Finish(time.Now())
	close(e.jobs)
	e.wg.Wait()
	e.closeWorkers()
	if e.spawnErr != nil {
		return time.Since(start), e.spawnErr
	}
	return time.Since(start), nil
}

// pacers is the number of fortio threads keeping an open-model schedule: one thread
// sleeps between ticks, so very high rates are split across a few.
func pacers(rate float64) int {
	return min(8, max(1, int(rate/5000)+1))
}

func httpOptions(cfg Config) (*fhttp.HTTPOptions, error) {
	o := &fhttp.HTTPOptions{HTTPReqTimeOut: cfg.Timeout}
	if err := o.AddAndValidateExtraHeader("User-Agent: meshdemo-loadtest"); err != nil {
		return nil, err
	}
	if cfg.Host != "" {
		if err := o.AddAndValidateExtraHeader("Host: " + cfg.Host); err != nil {
			return nil, err
		}
	}
	for _, h := range cfg.Headers {
		if err := o.AddAndValidateExtraHeader(h); err != nil {
			return nil, err
		}
	}
	o.Init(cfg.URL)
	return o, nil
}

type engine struct {
	cfg  Config
	opts *fhttp.HTTPOptions
	rec  *result.Recorder
	jobs chan time.Time // unbuffered: a send succeeds only when a worker is idle
	wg   sync.WaitGroup

	mu       sync.Mutex
	workers  []*worker
	spawnErr error
}

// Run is one open-model tick: hand the due time to an idle worker, or start one.
func (e *engine) Run(_ context.Context, _ periodic.ThreadID) (bool, string) {
	due := time.Now()
	select {
	case e.jobs <- due:
		return true, ""
	default:
	}
	e.mu.Lock()
	if len(e.workers) < e.cfg.MaxInFlight && e.spawnErr == nil {
		w, err := e.newWorkerLocked()
		if err != nil {
			e.spawnErr = err
		} else {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				for due := range e.jobs {
					w.do(due)
				}
			}()
		}
	}
	none := len(e.workers) == 0
	e.mu.Unlock()
	if none {
		return false, "no worker"
	}
	e.jobs <- due
	return true, ""
}

func (e *engine) newWorker() (*worker, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.newWorkerLocked()
}

func (e *engine) newWorkerLocked() (*worker, error) {
	f, err := fhttp.NewFastClient(e.opts)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client for %s: %w", e.cfg.URL, err)
	}
	w := &worker{f: f, shard: e.rec.NewShard(), timeout: e.cfg.Timeout}
	e.workers = append(e.workers, w)
	return w, nil
}

func (e *engine) closeWorkers() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.workers {
		w.f.Close()
	}
}

type closedRunner struct{ w *worker }

func (c closedRunner) Run(_ context.Context, _ periodic.ThreadID) (bool, string) {
	return c.w.do(time.Now()), ""
}

// worker owns one fortio fast client (one connection) and one shard; a worker is used
// by one goroutine at a time.
type worker struct {
	f       fhttp.Fetcher
	shard   *result.Shard
	timeout time.Duration
}

func (w *worker) do(due time.Time) bool {
	_, connects := w.f.GetIPAddress()
	before := connects.Count
	//nolint:staticcheck // Fetch is the fast client's zero-copy access to the raw response, headers included.
	code, data, _ := w.f.Fetch(context.Background())
	latency := time.Since(due)
	if code > 0 {
		w.shard.Record(due, latency, code, "", header(data, pathheader.Name))
		return code < 500
	}
	kind := result.ErrTransport
	switch {
	case latency >= w.timeout-w.timeout/20:
		kind = result.ErrTimeout
	case connects.Count > before && len(data) == 0:
		kind = result.ErrConnect
	}
	w.shard.Record(due, latency, 0, kind, nil)
	return false
}

// header returns the value of the named header in a raw HTTP/1.x response, or nil.
// fortio's fast client stops reading after the status line for non-2xx codes, so the
// header block may be cut short; what was read is searched.
func header(raw []byte, name string) []byte {
	if end := bytes.Index(raw, []byte("\r\n\r\n")); end >= 0 {
		raw = raw[:end+2]
	}
	// skip the status line
	nl := bytes.Index(raw, []byte("\r\n"))
	if nl < 0 {
		return nil
	}
	raw = raw[nl+2:]
	for len(raw) > 0 {
		line := raw
		if i := bytes.Index(raw, []byte("\r\n")); i >= 0 {
			line, raw = raw[:i], raw[i+2:]
		} else {
			raw = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && bytes.EqualFold(line[:len(name)], []byte(name)) {
			return bytes.TrimSpace(line[len(name)+1:])
		}
	}
	return nil
}
