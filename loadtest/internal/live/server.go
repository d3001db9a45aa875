package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/report"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

// Form is what the page sends to start a run (POST /api/run) and what GET /api/run
// returns to fill the form in.
type Form struct {
	URL      string  `json:"url"`
	Host     string  `json:"host"`
	Rate     float64 `json:"rate"`
	Duration string  `json:"duration"` // Go duration ("90s", "10m"); empty: until stopped
	// Headers are extra request headers, "Name: value".
	Headers []string `json:"headers"`
	// Expect and ExpectStatus are --expect and --expect-status values.
	Expect       []string `json:"expect"`
	ExpectStatus []string `json:"expect_status"`
}

// Limits on what the page may ask for.
const (
	MaxRate     = 100_000 // requests per second
	MaxDuration = 7 * 24 * time.Hour
)

// Options configure a Server.
type Options struct {
	// Defaults fill the form when the page opens, and Base gives what the form does not
	// set: in-flight cap, timeout, alpha, the p99 ceiling (all from the command line).
	Defaults Form
	Base     Spec
	// Observer (may be nil) sees every request, e.g. the Prometheus exporter.
	Observer result.Observer
	// OnDone is called when a run has ended, with its report (err set when it could
	// not run); the command prints the summary and writes the report files there.
	OnDone func(report.Document, error)
	// Interval between snapshots; one second on the page.
	Interval time.Duration
	// Window is how many recent events a page opened mid-run receives.
	Window int
}

// Server runs one load at a time on behalf of the page and streams its snapshots.
type Server struct {
	ctx  context.Context
	opts Options
	hub  *Hub
	seq  atomic.Int64

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	form    Form // the last run's form, or the defaults
	wg      sync.WaitGroup
}

// ErrBusy is returned by Start while a run is going on.
var ErrBusy = errors.New("a run is already going on: stop it first")

// NewServer returns a server whose runs stop when ctx is cancelled.
func NewServer(ctx context.Context, opts Options) *Server {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Window <= 0 {
		opts.Window = 300
	}
	if opts.OnDone == nil {
		opts.OnDone = func(report.Document, error) {}
	}
	return &Server{ctx: ctx, opts: opts, hub: NewHub(opts.Window), form: opts.Defaults}
}

// Handler is the page, its stream and its control endpoints. Cross-origin
// state-changing requests are refused, so another site open in the same browser
// cannot start load from this machine.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return http.NewCrossOriginProtection().Handler(mux)
}

// Hub is the server's event hub.
func (s *Server) Hub() *Hub { return s.hub }

// Wait returns when no run is going on any more.
func (s *Server) Wait() { s.wg.Wait() }

// Spec turns a form into a run, or says what is wrong with it.
func (s *Server) Spec(f Form) (Spec, error) {
	spec := s.opts.Base
	cfg := &spec.Engine
	cfg.URL, cfg.Host = strings.TrimSpace(f.URL), strings.TrimSpace(f.Host)
	cfg.Headers = nil
	for _, h := range f.Headers {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Headers = append(cfg.Headers, h)
		}
	}
	if !(f.Rate > 0 && f.Rate <= MaxRate) {
		return spec, fmt.Errorf("rate %g req/s is out of range: want more than 0 and at most %d", f.Rate, MaxRate)
	}
	cfg.Rate, cfg.Concurrency, cfg.Requests, cfg.Duration = f.Rate, 0, 0, 0
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = 1000
	}
	if d := strings.TrimSpace(f.Duration); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil || dur < time.Second || dur > MaxDuration {
			return spec, fmt.Errorf("duration %q: want a Go duration from 1s to %s (e.g. 90s, 10m), or none to run until stopped", d, MaxDuration)
		}
		cfg.Duration = dur
	}
	if err := cfg.Validate(); err != nil {
		return spec, err
	}
	spec.Checks.Splits, spec.Checks.Statuses = nil, nil
	for _, e := range f.Expect {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		sp, err := expect.ParseSplit(e)
		if err != nil {
			return spec, err
		}
		spec.Checks.Splits = append(spec.Checks.Splits, sp)
	}
	for _, e := range f.ExpectStatus {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		st, err := expect.ParseStatus(e)
		if err != nil {
			return spec, err
		}
		spec.Checks.Statuses = append(spec.Checks.Statuses, st...)
	}
	return spec, nil
}

// Start begins a run in the background; it returns ErrBusy while one is going on.
// form is what the page will show for it.
func (s *Server) Start(spec Spec, form Form) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return ErrBusy
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.running, s.cancel, s.form = true, cancel, form
	run := Describe(spec.Engine, time.Now())
	s.publish(Event{State: StateRunning, Run: &run}, true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		doc, last, err := Execute(ctx, spec, s.opts.Observer, s.opts.Interval, func(ev Event) { s.publish(ev, false) })
		if err != nil {
			last = Event{State: StateFailed, Run: &run, Error: err.Error()}
		}
		// Reports first, then the last event: whoever sees "finished" on the
		// stream can read the run's --json/--html files at once.
		s.opts.OnDone(doc, err)
		s.mu.Lock()
		s.running, s.cancel = false, nil
		s.publish(last, false)
		s.mu.Unlock()
	}()
	return nil
}

// Stop ends the run going on; it reports whether there was one.
func (s *Server) Stop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return false
	}
	s.cancel()
	return true
}

func (s *Server) encode(ev Event) []byte {
	ev.Seq = s.seq.Add(1)
	b, err := json.Marshal(ev)
	if err != nil { // the event holds maps and numbers only
		panic(err)
	}
	return b
}

func (s *Server) publish(ev Event, newRun bool) {
	s.hub.Publish(s.encode(ev), newRun)
}
