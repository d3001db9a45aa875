// Package httpclient calls one upstream workload on behalf of an inbound request and
// relays its answer. It never copies upstream response headers wholesale (through
// Envoy, hop-by-hop and length headers copied back produce "502 protocol error"); it
// relays status, body, a content type and the path header.
//
// There are no hidden retries: retrying is the mesh's job, and app retries would
// multiply with Envoy's and hide what a VirtualService retry policy does.
package httpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
	"github.com/meshdemo/meshdemo/services/internal/telemetry"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// MaxBody bounds what is relayed from an upstream.
const MaxBody = 4 << 20

// BudgetMargin is kept back from the inbound request's remaining time on every
// outbound call, so the hop whose upstream is slow times out before its caller does
// and its 504 (naming that upstream) has time to travel back.
//
// The remaining time travels to the upstream in httpserver.HeaderBudget, not in
// Envoy's x-envoy-expected-rq-timeout-ms: Istio's routes carry no timeout unless a
// VirtualService sets one, and when one does, the sidecar overwrites that header
// with the route's timeout, so the budget would be lost exactly when it matters;
// and a value in Envoy's namespace would pass for Envoy's own at the next hop. A
// meshdemo header passes through the sidecars untouched.
const BudgetMargin = 100 * time.Millisecond

// Options configure an Upstream.
type Options struct {
	Name    string // upstream's service name, used in metrics, spans and errors
	BaseURL string
	// Timeout bounds each call; the inbound request's own deadline (Envoy's expected
	// timeout or the caller's budget) less BudgetMargin applies too, whichever is
	// sooner.
	Timeout time.Duration
	Metrics *telemetry.Metrics
	Logger  *slog.Logger
	Tracer  trace.Tracer
	TextMap propagation.TextMapPropagator
	Tracing bool
	// UserAgent is sent when the inbound request had none (the kit sets
	// "meshdemo-<service>"; the default Go UA says nothing useful).
	UserAgent string
	// Transport overrides the tuned default (tests).
	Transport http.RoundTripper
}

// Upstream is one long-lived client for one upstream. Safe for concurrent use.
type Upstream struct {
	opts     Options
	base     *url.URL
	basePath string // base.EscapedPath(), computed once
	// passIn and passOut are the extra headers relayed to the upstream and back
	// (canonical names; see PassHeaders).
	passIn, passOut []string
}

// PassHeaders returns a copy of u that also relays the named request headers to the
// upstream and the named response headers back. It is an allow-list on purpose: an
// API's own headers (ETag, Link, If-Match, ...) pass, while hop-by-hop and length
// headers never do.
func (u *Upstream) PassHeaders(request, response []string) *Upstream {
	c := *u
	c.passIn, c.passOut = canonical(request), canonical(response)
	return &c
}

func canonical(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out
}

// NewTransport is tuned for a hop that fans a whole workload's traffic into one
// upstream: the default of two idle connections per host makes most requests dial.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // a sidecar, not an HTTP proxy, carries traffic in the mesh
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bodies are relayed byte for byte; transparent gzip would re-encode them.
		DisableCompression: true,
	}
}

// New validates the base URL and builds the client.
func New(o Options) (*Upstream, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("upstream %s: bad base URL %q", o.Name, o.BaseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	// The transport is used without an http.Client: a relay must hand a 3xx back as it
	// came (a Client would follow it, cloning headers on every call to be able to), and
	// the per-call context carries the timeout, so a timeout can be told apart from a
	// caller that went away.
	return &Upstream{opts: o, base: u, basePath: u.EscapedPath()}, nil
}

// Name returns the upstream's service name.
func (u *Upstream) Name() string { return u.opts.Name }

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// callTrace learns whether the upstream sent any of its response, which tells an
// upstream that could not be reached from one that answered and broke HTTP.
type callTrace struct {
	httptrace.ClientTrace
	answered atomic.Bool // set on the transport's reading goroutine
}

// Limit is the time one outbound call may take and where it came from. Both
// transports' clients take it from CallLimit, so HTTP and gRPC hops share one budget.
type Limit struct {
	D        time.Duration
	ByCaller bool // the inbound request's remaining time, less BudgetMargin
}

// CallLimit is this hop's timeout or the inbound call's remaining time (ctx's
// deadline) less BudgetMargin, whichever is smaller. D <= 0 means no time is left:
// answer NoTimeLeft's 504 without calling.
func CallLimit(ctx context.Context, timeout time.Duration) Limit {
	l := Limit{D: timeout}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - BudgetMargin; left < l.D {
			l = Limit{D: left, ByCaller: true}
		}
	}
	return l
}

func (l Limit) String() string {
	if l.ByCaller {
		return fmt.Sprintf("%s (the time its caller had left, less a %s margin)", l.D.Round(time.Millisecond), BudgetMargin)
	}
	return fmt.Sprintf("%s (this hop's upstream timeout)", l.D)
}

// NoTimeLeft is the 504 detail for a call CallLimit left no time for.
func NoTimeLeft(upstream string) string {
	return fmt.Sprintf("no time left to call upstream %s: the caller's deadline is less than the %s margin away", upstream, BudgetMargin)
}

// TimedOut is the 504 detail for an upstream that did not answer within l.
func TimedOut(upstream string, l Limit) string {
	return fmt.Sprintf("upstream %s did not answer within %s", upstream, l)
}

// Call is one outbound request.
type Call struct {
	Method string
	// Path is already percent-encoded, optionally followed by "?" and a raw query.
	Path        string
	Body        io.Reader // nil for none
	ContentType string    // sent when not empty
}

// Relay makes c on the upstream with the inbound request's context and propagated
// headers, then writes the upstream's status and body to w. Transport failures become
// 502 (unreachable, or a bad response) or 504 (timed out); a caller that went away
// gets nothing written.
//
// The call gets this hop's Timeout or the inbound request's remaining time less
// BudgetMargin, whichever is smaller, and tells the upstream that budget in
// httpserver.HeaderBudget. Each hop down the chain thus gives up a margin before
// its caller, and a timeout is answered by the hop whose upstream was slow.
//
// Three steps: request builds the outbound request, send makes it and reads the
// answer, write relays it; each failure is answered by the relay's fail.
func (u *Upstream) Relay(w http.ResponseWriter, r *http.Request, c Call) {
	x := relay{u: u, w: w, in: r, self: httpserver.SelfHop(r.Context()), start: time.Now(),
		lim: CallLimit(r.Context(), u.opts.Timeout), trace: &callTrace{}}
	if x.lim.D <= 0 {
		x.fail(http.StatusGatewayTimeout, NoTimeLeft(u.opts.Name))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), x.lim.D)
	defer cancel()
	tr := x.trace
	tr.GotFirstResponseByte = func() { tr.answered.Store(true) }
	ctx = httptrace.WithClientTrace(ctx, &tr.ClientTrace)
	var span trace.Span
	if u.opts.Tracing {
		ctx, span = u.opts.Tracer.Start(ctx, c.Method+" "+u.opts.Name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(semconv.PeerService(u.opts.Name), semconv.HTTPRequestMethodKey.String(c.Method)))
		defer span.End()
	}

	out, code, err := x.request(ctx, c)
	if err != nil {
		x.fail(code, err.Error())
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	resp, err := x.send(out, buf)
	if err != nil {
		x.failCall(err)
		return
	}
	if span != nil {
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	}
	u.opts.Metrics.ObserveClient(u.opts.Name, resp.StatusCode, time.Since(x.start).Seconds())
	x.write(resp, buf.Bytes())
}

// relay is one Relay in progress: what its steps and its failure answers share.
type relay struct {
	u     *Upstream
	w     http.ResponseWriter
	in    *http.Request // the inbound request
	self  pathheader.Hop
	start time.Time
	lim   Limit
	trace *callTrace
}

// request builds the outbound request for c on ctx (which carries the limit, the
// client trace and the span): the upstream's URL, the inbound request's propagated
// and passed headers, and the budget. On error, code is the status to answer with:
// 400 for a path that does not unescape, 500 for a request net/http refuses.
func (x *relay) request(ctx context.Context, c Call) (out *http.Request, code int, err error) {
	u := x.u
	target := *u.base
	// A '?' cannot be literal in an escaped path: what follows it is the query.
	var escapedPath string
	escapedPath, target.RawQuery, _ = strings.Cut(c.Path, "?")
	target.RawPath = u.basePath + escapedPath
	if target.Path, err = url.PathUnescape(target.RawPath); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("bad path %q: %v", escapedPath, err)
	}
	// The URL is set after construction so it is not rendered and parsed again.
	out, err = http.NewRequestWithContext(ctx, c.Method, "", c.Body)
	if err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("building request to %s: %v", u.opts.Name, err)
	}
	out.URL = &target
	httpserver.Carried(x.in.Context()).Apply(out.Header)
	if u.opts.Tracing {
		u.opts.TextMap.Inject(ctx, propagation.HeaderCarrier(out.Header))
	}
	for _, name := range u.passIn {
		if vs := x.in.Header[name]; len(vs) > 0 {
			out.Header[name] = vs
		}
	}
	if c.ContentType != "" {
		out.Header.Set("Content-Type", c.ContentType)
	}
	if u.opts.UserAgent != "" && out.Header.Get("User-Agent") == "" {
		out.Header.Set("User-Agent", u.opts.UserAgent)
	}
	// Rounded up, so the upstream's own deadline never comes before this call's: with
	// the late-answer check in send, the 504 is then always this hop's, naming the
	// upstream.
	out.Header[httpserver.HeaderBudget] = []string{strconv.FormatInt(int64((x.lim.D+time.Millisecond-1)/time.Millisecond), 10)}
	return out, 0, nil
}

// errBodyTooBig is an answer whose body is over MaxBody.
var errBodyTooBig = errors.New("body over MaxBody")

// callError is a call that got no complete, timely answer.
type callError struct {
	err      error
	answered bool // some of the upstream's response had arrived
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// send makes the call and reads the whole answer into body; the response's Body is
// closed when it returns. out's context must carry the call's deadline: an answer
// complete only after it is an error. Its errors are errBodyTooBig or a *callError.
func (x *relay) send(out *http.Request, body *bytes.Buffer) (*http.Response, error) {
	resp, err := x.u.opts.Transport.RoundTrip(out)
	if err != nil {
		return nil, &callError{err: err, answered: x.trace.answered.Load()}
	}
	defer resp.Body.Close()
	lr := io.LimitedReader{R: resp.Body, N: MaxBody + 1}
	n, err := body.ReadFrom(&lr)
	if err != nil {
		return nil, &callError{err: err, answered: true}
	}
	if n > MaxBody {
		return nil, errBodyTooBig
	}
	// An answer complete only after the deadline is this hop's timeout, even if the
	// timer has not fired yet: the upstream's deadline is a hair later than this
	// call's, and under load its own 504 could otherwise slip in and name the wrong
	// hop.
	if dl, _ := out.Context().Deadline(); !time.Now().Before(dl) {
		return nil, &callError{err: context.DeadlineExceeded, answered: true}
	}
	return resp, nil
}

// write relays an answer: its status and body, this hop prepended to its path
// header, its content type when it is a problem (application/json otherwise), and
// the response headers PassHeaders named.
func (x *relay) write(resp *http.Response, body []byte) {
	h := x.w.Header()
	h.Set(pathheader.Name, pathheader.Prepend(x.self, resp.Header.Get(pathheader.Name)))
	ct := "application/json"
	if rct := resp.Header.Get("Content-Type"); strings.HasPrefix(rct, problem.ContentType) {
		ct = problem.ContentType // keep an upstream error recognisable as one
	}
	for _, name := range x.u.passOut {
		if vs := resp.Header[name]; len(vs) > 0 {
			h[name] = vs
		}
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(resp.StatusCode)
	_, _ = x.w.Write(body)
}

// failCall answers for a call send could not complete.
func (x *relay) failCall(err error) {
	name := x.u.opts.Name
	var ce *callError
	if !errors.As(err, &ce) {
		x.fail(http.StatusBadGateway, fmt.Sprintf("%s answered with a body over %d bytes", name, MaxBody))
		return
	}
	var ne net.Error
	switch {
	case x.in.Context().Err() == context.Canceled:
		// The caller gave up; the cancellation already reached the upstream.
		x.u.opts.Metrics.ObserveClient(name, 499, time.Since(x.start).Seconds())
		x.u.opts.Logger.LogAttrs(x.in.Context(), slog.LevelInfo, "caller cancelled", slog.String("upstream", name))
	case errors.Is(ce.err, context.DeadlineExceeded) || (errors.As(ce.err, &ne) && ne.Timeout()):
		x.fail(http.StatusGatewayTimeout, TimedOut(name, x.lim))
	case ce.answered:
		x.fail(http.StatusBadGateway, fmt.Sprintf("upstream %s sent a bad response: %v", name, unwrapURLError(ce.err)))
	default:
		x.fail(http.StatusBadGateway, fmt.Sprintf("upstream %s unreachable: %v", name, unwrapURLError(ce.err)))
	}
}

// fail answers with a problem naming this hop and the upstream.
func (x *relay) fail(code int, detail string) {
	x.u.opts.Metrics.ObserveClient(x.u.opts.Name, code, time.Since(x.start).Seconds())
	x.w.Header().Set(pathheader.Name, x.self.String())
	problem.Write(x.w, problem.Details{Status: code, Detail: detail, Instance: x.in.URL.Path, Service: x.self.Service, Upstream: x.u.opts.Name})
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
