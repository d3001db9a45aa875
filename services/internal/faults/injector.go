package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/problem"
)

// Problem types of the responses this package writes, so a reader (or a test) can
// tell an injected failure from a real one in the relayed body.
const (
	TypeSick      = "urn:meshdemo:fault:sick"
	TypeErrorRate = "urn:meshdemo:fault:error-rate"
	TypeAbort     = "urn:meshdemo:fault:abort"
	TypeInvalid   = "urn:meshdemo:fault:invalid-directive"
	TypeDeadline  = "urn:meshdemo:fault:deadline-exceeded"
)

// Source says where an injected fault came from.
type Source string

// Fault sources.
const (
	SourceConfig Source = "config" // FAULT_* environment, or the admin sick switch
	SourceHeader Source = "header" // an X-Meshdemo-Fault directive
)

// Injection describes one fault as it is decided, before it takes effect (a delay is
// reported before the sleep, so a cancelled sleep is still counted).
type Injection struct {
	Kind   Kind
	Source Source
	Delay  time.Duration // KindDelay
	Status int           // KindAbort, KindSick, KindErrorRate
}

// Injector applies one workload's faults. It is safe for concurrent use; only the sick
// flag changes after New.
type Injector struct {
	cfg      Config
	service  string
	sick     atomic.Bool
	uniform  func() float64 // in [0,1)
	sleep    func(context.Context, time.Duration) error
	onInject func(*http.Request, Injection)
	log      *slog.Logger
}

// Option customises an Injector.
type Option func(*Injector)

// WithRand draws every random decision (error rate, latency, directive percents) from
// src instead of the runtime's generator, so tests are deterministic. Draws are
// serialised with a mutex; the default source needs none. A nil src keeps the default.
func WithRand(src rand.Source) Option {
	return func(i *Injector) {
		if src == nil {
			return
		}
		var mu sync.Mutex
		r := rand.New(src)
		i.uniform = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return r.Float64()
		}
	}
}

// WithSleep replaces the context-aware sleep. fn must return ctx.Err() (and nothing
// else) when ctx ends before d has passed, and nil otherwise. Tests use it to record
// delays without waiting for them.
func WithSleep(fn func(ctx context.Context, d time.Duration) error) Option {
	return func(i *Injector) {
		if fn != nil {
			i.sleep = fn
		}
	}
}

// WithOnInject calls fn for every injected fault, on the request's goroutine; the lead
// counts them in metrics (labels: kind, source). fn must be quick and must not write to
// the response.
func WithOnInject(fn func(r *http.Request, in Injection)) Option {
	return func(i *Injector) { i.onInject = fn }
}

// WithLogger logs admin switches and delays cut short by the caller (as status 499,
// nginx's "client closed request"). The logger is expected to carry the service's
// identity already; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(i *Injector) {
		if l != nil {
			i.log = l
		}
	}
}

// New checks cfg and returns the injector of service (the SERVICE_NAME directives
// target). The sick flag starts at cfg.Sick.
func New(cfg Config, service string, opts ...Option) (*Injector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("faults config: %w", err)
	}
	if err := checkTarget(service); err != nil {
		return nil, fmt.Errorf("faults: service name cannot be targeted by %s: %w", headers.Fault, err)
	}
	i := &Injector{
		cfg:     cfg,
		service: service,
		uniform: rand.Float64,
		sleep:   sleepContext,
		log:     slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(i)
	}
	i.sick.Store(cfg.Sick)
	return i, nil
}

// Config returns the configuration the injector was built with (Sick is the initial
// state; see Sick for the current one).
func (i *Injector) Config() Config { return i.cfg }

// Service is the name directives must use to target this workload.
func (i *Injector) Service() string { return i.service }

// SetSick turns the instance sick (every API request answers FAULT_SICK_CODE) or
// healthy. Probes are not affected: a sick instance stays Ready, so outlier detection,
// not Kubernetes, has to eject it.
func (i *Injector) SetSick(sick bool) {
	if i.sick.Swap(sick) != sick {
		i.log.Info("fault state changed", "sick", sick)
	}
}

// Sick reports the current sick state.
func (i *Injector) Sick() bool { return i.sick.Load() }

// Status is the fault part of /readyz's body. It never changes readiness itself.
type Status struct {
	Sick bool `json:"sick"`
}

// Status returns the current state for /readyz.
func (i *Injector) Status() Status { return Status{Sick: i.Sick()} }

// Middleware wraps the workload API (never /healthz, /readyz or the admin port: the
// caller mounts it only there). Per request, in order:
//
//  1. sick: answer FAULT_SICK_CODE;
//  2. X-Meshdemo-Fault (when enabled) is parsed whole; an invalid header, or delays for
//     this service summing above FAULT_MAX_DELAY, answers 400 before anything sleeps;
//  3. FAULT_DELAY plus a FAULT_LATENCY draw is slept;
//  4. FAULT_ERROR_RATE percent of requests answer FAULT_ERROR_CODE;
//  5. this service's header actions run in order: delays sleep, the first abort that
//     fires answers its status;
//  6. next serves the request.
//
// Sleeps end as soon as the request context does. If the caller went away
// (context.Canceled) nothing is written and a 499 is logged; if a deadline set on the
// request context passed, 504 is written (a caller may still be listening).
// With no fault configured, a healthy instance and no header, the cost is a few
// loads and a map lookup.
func (i *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := i.check(r.Context(), r, r.Header[headers.Fault], r.URL.Path); f != nil {
			if f.Status != 0 {
				problem.Write(w, f.Problem(r.URL.Path))
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Failure is the answer a fault gives one call instead of serving it, in HTTP terms
// whatever the transport (the gRPC interceptor maps Status to a gRPC code). Status 0
// means the caller went away during a delay: answer nothing.
type Failure struct {
	Type, Title, Detail string
	Status              int
	Service             string // the injecting service
}

// Problem is the problem+json body of f for the request path instance.
func (f *Failure) Problem(instance string) problem.Details {
	return problem.Details{Type: f.Type, Title: f.Title, Status: f.Status, Detail: f.Detail, Instance: instance, Service: f.Service}
}

// Check runs the steps of Middleware for one call of another transport (gRPC):
// directives are the call's X-Meshdemo-Fault values (ignored unless
// FAULT_HEADER_ENABLED), where names the call in logs (a path or a gRPC method). A nil
// Failure means serve the call; sleeps end with ctx. The OnInject hook gets a nil
// request.
func (i *Injector) Check(ctx context.Context, directives []string, where string) *Failure {
	return i.check(ctx, nil, directives, where)
}

// check is Middleware's decision, transport-neutral; r is only handed to the hook.
func (i *Injector) check(ctx context.Context, r *http.Request, directives []string, where string) *Failure {
	if i.sick.Load() {
		return i.fail(r, Injection{Kind: KindSick, Source: SourceConfig, Status: i.cfg.SickCode},
			TypeSick, fmt.Sprintf("%s is sick (FAULT_SICK or POST /admin/sick); probes still pass", i.service))
	}
	var own []Action
	if i.cfg.HeaderEnabled && len(directives) > 0 {
		var err error
		if own, err = i.ownActions(directives); err != nil {
			return &Failure{Type: TypeInvalid, Title: "Invalid fault directive", Status: http.StatusBadRequest,
				Detail: err.Error(), Service: i.service}
		}
	}
	if !i.cfg.configured() && own == nil {
		return nil
	}
	if d := i.cfg.Delay + i.cfg.Latency.Quantile(i.draw(!i.cfg.Latency.IsZero())); d > 0 {
		if f := i.delay(ctx, r, where, Injection{Kind: KindDelay, Source: SourceConfig, Delay: d}); f != nil {
			return f
		}
	}
	if i.roll(i.cfg.ErrorRate) {
		return i.fail(r, Injection{Kind: KindErrorRate, Source: SourceConfig, Status: i.cfg.ErrorCode},
			TypeErrorRate, fmt.Sprintf("%s failed on purpose: FAULT_ERROR_RATE=%s%%", i.service, fmtPercent(i.cfg.ErrorRate)))
	}
	for _, a := range own {
		if !i.roll(a.Percent) {
			continue
		}
		switch a.Kind {
		case KindDelay:
			if a.Delay > 0 {
				if f := i.delay(ctx, r, where, Injection{Kind: KindDelay, Source: SourceHeader, Delay: a.Delay}); f != nil {
					return f
				}
			}
		case KindAbort:
			return i.fail(r, Injection{Kind: KindAbort, Source: SourceHeader, Status: a.Status},
				TypeAbort, fmt.Sprintf("%s aborted on purpose: %s %s=%s", i.service, headers.Fault, i.service, a))
		}
	}
	return nil
}

// ownActions parses the header and returns this service's actions; a nil slice with a
// nil error means none.
func (i *Injector) ownActions(vals []string) ([]Action, error) {
	raw := vals[0]
	if len(vals) > 1 {
		raw = strings.Join(vals, ",")
	}
	ds, err := ParseDirectives(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", headers.Fault, err)
	}
	own := ds.For(i.service)
	var total time.Duration
	for _, a := range own {
		if a.Kind == KindDelay {
			total += a.Delay
			if total > i.cfg.MaxDelay || total < 0 { // < 0: overflow
				return nil, fmt.Errorf("%s: delays for %s add up to more than FAULT_MAX_DELAY=%s", headers.Fault, i.service, i.cfg.MaxDelay)
			}
		}
	}
	return own, nil
}

// delay sleeps d; a non-nil Failure ends the call (Status 0: the caller went away).
func (i *Injector) delay(ctx context.Context, r *http.Request, where string, in Injection) *Failure {
	i.report(r, in)
	err := i.sleep(ctx, in.Delay)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Failure{Type: TypeDeadline, Status: http.StatusGatewayTimeout,
			Detail:  fmt.Sprintf("request deadline passed during an injected delay of %s", in.Delay),
			Service: i.service}
	}
	i.log.InfoContext(ctx, "injected delay cut short: caller went away",
		"status", 499, "delay", in.Delay.String(), "source", string(in.Source), "path", where)
	return &Failure{}
}

func (i *Injector) fail(r *http.Request, in Injection, typ, detail string) *Failure {
	i.report(r, in)
	return &Failure{Type: typ, Status: in.Status, Detail: detail, Service: i.service}
}

func (i *Injector) report(r *http.Request, in Injection) {
	if i.onInject != nil {
		i.onInject(r, in)
	}
}

// roll reports true with probability pct/100, drawing only when the outcome is open.
func (i *Injector) roll(pct float64) bool {
	switch {
	case pct <= 0:
		return false
	case pct >= 100:
		return true
	}
	return i.uniform()*100 < pct
}

// draw returns a uniform number when needed, else 0 (keeps seeded sequences aligned
// with what is configured).
func (i *Injector) draw(needed bool) float64 {
	if !needed {
		return 0
	}
	return i.uniform()
}

// sleepContext waits d or until ctx ends, whichever is first; the timer is stopped on
// the way out and no goroutine is started.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
