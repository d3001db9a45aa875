// Package httpserver holds what every hop does the same way: the request middleware
// (propagation in, deadline, span, metrics, access log, path header), JSON 404/405
// answers, probes, and the serve/drain/shutdown lifecycle.
package httpserver

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshdemo/meshdemo/services/internal/problem"
	prop "github.com/meshdemo/meshdemo/services/internal/propagation"
	"github.com/meshdemo/meshdemo/services/internal/telemetry"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Envoy's request headers this package reads.
const (
	HeaderRequestID       = "X-Request-Id"
	HeaderAttemptCount    = "X-Envoy-Attempt-Count"
	HeaderExpectedTimeout = "X-Envoy-Expected-Rq-Timeout-Ms"
)

// HeaderBudget carries, from one hop to the next, the milliseconds the callee has
// before its caller gives up. Envoy passes it through untouched; see httpclient.
const HeaderBudget = "X-Meshdemo-Budget-Ms"

// Observer is the per-hop middleware's dependencies.
type Observer struct {
	Identity   pathheader.Hop // service, version, instance (no attrs)
	Logger     *slog.Logger
	Access     *telemetry.AccessLog // the per-request line
	Metrics    *telemetry.Metrics
	Propagator *prop.Propagator
	Tracer     trace.Tracer
	TextMap    propagation.TextMapPropagator
	// Tracing says whether spans are exported; when false no span is started.
	Tracing bool

	identityOnce sync.Once
	identityHdr  []string // the path header value without attributes, shared by requests
}

// requestInfo is what the middleware hands down to the handler and the outbound
// client, stored as one context value (problem's, as it also names the service for
// error bodies).
type requestInfo struct {
	hop     pathheader.Hop
	carried prop.Carried
	path    string // the inbound path or gRPC method: a problem's instance
}

// AnsweringService implements problem.Answerer.
func (ri *requestInfo) AnsweringService() string { return ri.hop.Service }

// identity renders the hop without attributes once; it is the same for every request.
// The slice is shared by every response's header map: net/http only reads it, and a
// handler replacing the header (Relay, problem) installs a new slice.
func (o *Observer) identity() []string {
	o.identityOnce.Do(func() { o.identityHdr = []string{o.Identity.String()} })
	return o.identityHdr[:1:1]
}

func hasTraceHeader(h http.Header) bool {
	for _, k := range [...]string{"Traceparent", "B3", "X-B3-Traceid"} {
		if len(h[k]) > 0 {
			return true
		}
	}
	return false
}

// SelfHop returns this hop's path header entry for the request (with its attempt).
func SelfHop(ctx context.Context) pathheader.Hop {
	if ri, ok := problem.AnswererFrom(ctx).(*requestInfo); ok {
		return ri.hop
	}
	return pathheader.Hop{}
}

// Instance is the inbound call's path (HTTP) or full method (gRPC): the instance of a
// problem this hop answers about it, whichever transport carries the answer.
func Instance(ctx context.Context) string {
	if ri, ok := problem.AnswererFrom(ctx).(*requestInfo); ok {
		return ri.path
	}
	return ""
}

// Carried returns the propagated headers the request arrived with (plus a generated
// x-request-id), to be applied to every outbound call.
func Carried(ctx context.Context) prop.Carried {
	if ri, ok := problem.AnswererFrom(ctx).(*requestInfo); ok {
		return ri.carried
	}
	return prop.Carried{}
}

// Middleware wraps the whole public router. It is the single place where a request
// enters a hop, so every workload records and forwards the same way.
func (o *Observer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := r.Context()

		ctx, cancel, call := o.Enter(ctx, r.Header, r.URL.Path)
		if cancel != nil {
			defer cancel()
		}
		reqID, attempt, hopHdr := call.RequestID, call.Attempt, o.identity()
		if attempt > 0 {
			hopHdr = []string{call.Hop.String()}
		}
		w.Header()[pathheader.Name] = hopHdr

		// The remote span context gives logs a trace id even when export is off. The
		// propagators cost allocations on every call, so they only run when a trace
		// header is there to read.
		if hasTraceHeader(r.Header) {
			ctx = o.TextMap.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		var span trace.Span
		if o.Tracing {
			ctx, span = o.Tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
		}

		rec := &recorder{ResponseWriter: w}
		defer func() {
			abort := false
			if p := recover(); p != nil {
				if abort = p == http.ErrAbortHandler; !abort {
					o.Logger.LogAttrs(ctx, slog.LevelError, "panic", slog.String("request_id", reqID), slog.Any("panic", p))
					if !rec.wrote {
						problem.Error(rec, r.WithContext(ctx), http.StatusInternalServerError, "internal error")
					}
				}
			}
			// A handler that wrote nothing because the call's context ended (the caller
			// went away, or its time ran out) has no answer to give. Returning would let
			// net/http send an implicit 200 for work that never happened, and a caller
			// that only half-closed its side (shutdown(SHUT_WR): net/http reads EOF and
			// cancels the context) would still read it. The response is aborted instead:
			// the connection (HTTP/1) or stream (HTTP/2) is reset, and no status is
			// claimed that no one produced.
			abort = abort || (!rec.wrote && ctx.Err() != nil)
			o.finish(ctx, r, rec, span, reqID, attempt, start)
			if abort {
				panic(http.ErrAbortHandler)
			}
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

func (o *Observer) finish(ctx context.Context, r *http.Request, rec *recorder, span trace.Span, reqID string, attempt int, start time.Time) {
	elapsed := time.Since(start)
	route := telemetry.UnmatchedRoute
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" && !rec.unmatched {
			route = p
		}
	}
	code := rec.code
	switch {
	case !rec.wrote && ctx.Err() != nil:
		code = 499 // the caller went away before we answered (nginx's convention)
	case code == 0:
		code = http.StatusOK
	}
	o.Metrics.ObserveServer(route, r.Method, code, elapsed.Seconds())
	o.Metrics.CountAttempt(attempt)
	sc := trace.SpanContextFromContext(ctx)
	if span != nil {
		span.SetName(r.Method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(code), attribute.Int("envoy.attempt", attempt))
		span.End()
	}
	level := slog.LevelInfo
	switch {
	case code >= 500:
		level = slog.LevelWarn
	case code < 400 && (route == "/healthz" || route == "/readyz"):
		level = slog.LevelDebug // kubelet and Docker health checks every few seconds are noise
	}
	if !o.Access.Enabled(level) {
		return
	}
	e := telemetry.AccessEntry{
		Time: start.Add(elapsed), Level: level, RequestID: reqID, Method: r.Method, Route: route, Path: r.URL.Path,
		Status: code, Duration: elapsed, Bytes: rec.bytes, Attempt: attempt,
	}
	if sc.HasTraceID() {
		e.TraceID, e.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	o.Access.Log(e)
}

func newRequestID() string {
	var b [16]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(a >> (8 * i))
		b[8+i] = byte(c >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40 // UUID version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// recorder captures the status for metrics and logs. It keeps Flush and Unwrap so
// http.ResponseController keeps working through it.
type recorder struct {
	http.ResponseWriter
	code      int
	bytes     int64
	wrote     bool
	unmatched bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.code, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// markUnmatched lets the 404/405 handlers keep scan traffic on one metric label.
func markUnmatched(w http.ResponseWriter) {
	for {
		switch x := w.(type) {
		case *recorder:
			x.unmatched = true
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}
