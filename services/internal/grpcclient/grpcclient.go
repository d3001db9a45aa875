// Package grpcclient is httpclient's gRPC counterpart: one long-lived connection per
// upstream, and an interceptor that forwards the inbound call's propagated headers as
// metadata, bounds the call with UPSTREAM_TIMEOUT (the caller's deadline travels as the
// gRPC deadline), records client metrics and spans, and turns the answer into its HTTP
// view (grpcwire) so every hop and the front door answer what the HTTP chain answers.
package grpcclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/internal/grpcwire"
	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
	"github.com/meshdemo/meshdemo/services/internal/telemetry"
)

// Options for one upstream.
type Options struct {
	Name    string // upstream's service name (metrics, errors)
	Addr    string // host:port
	Timeout time.Duration
	Metrics *telemetry.Metrics
	Logger  *slog.Logger
	// Tracing on: otelgrpc records client spans and injects the trace context.
	Tracing        bool
	TracerProvider trace.TracerProvider
	TextMap        propagation.TextMapPropagator
	UserAgent      string
	// Dial replaces the network dial (tests: bufconn).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// reconnect is how the connection comes back after its upstream was lost. grpc-go's
// default waits 1 s after the first failed attempt and 1.6 times longer after each
// (up to 2 min), so a server back after a few seconds answers only seconds later, while
// the HTTP client dials per request and answers at once. The peer is a sidecar or a pod
// on the cluster network: retrying every 50 ms growing to 250 ms costs nothing, and
// calls made meanwhile still fail fast (502) rather than waiting.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 250 * time.Millisecond},
	MinConnectTimeout: 3 * time.Second, // the HTTP transport's dial timeout
}

// Upstream is one connection to one upstream, made once and reused by every call: the
// client side of the balancing demo (a plain dns:/// target with pick_first pins every
// call to one backend; a sidecar balances them per request).
type Upstream struct {
	o       Options
	conn    *grpc.ClientConn
	lowered sync.Map // canonical header name → metadata key; the names are a bounded list
}

// lower is strings.ToLower, remembered: the same few names go out on every call.
func (u *Upstream) lower(name string) string {
	if v, ok := u.lowered.Load(name); ok {
		return v.(string)
	}
	l := strings.ToLower(name)
	u.lowered.Store(name, l)
	return l
}

// New creates the connection (lazily connected by gRPC on the first call).
func New(o Options) (*Upstream, error) {
	if o.Name == "" || o.Addr == "" || o.Timeout <= 0 {
		return nil, fmt.Errorf("grpc upstream %q: name, address and timeout are required", o.Name)
	}
	u := &Upstream{o: o}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the mesh does mTLS
		grpc.WithChainUnaryInterceptor(u.unary),
		grpc.WithConnectParams(reconnect),
	}
	if o.UserAgent != "" {
		opts = append(opts, grpc.WithUserAgent(o.UserAgent))
	}
	if o.Tracing {
		opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(o.TracerProvider), otelgrpc.WithPropagators(o.TextMap))))
	}
	target := "dns:///" + o.Addr
	if o.Dial != nil {
		target = "passthrough:///" + o.Addr
		opts = append(opts, grpc.WithContextDialer(o.Dial))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpc upstream %s (%s): %w", o.Name, o.Addr, err)
	}
	u.conn = conn
	return u, nil
}

// Conn is the connection for generated clients.
func (u *Upstream) Conn() *grpc.ClientConn { return u.conn }

// Name is the upstream's service name.
func (u *Upstream) Name() string { return u.o.Name }

// Close closes the connection.
func (u *Upstream) Close() error { return u.conn.Close() }

// unary runs one outbound call. Like the server interceptor it keeps its own frame
// small (the work before and after the call is in prepare and settle, not inlined):
// grpc-go's whole client stack runs beneath it on the handler goroutine.
func (u *Upstream) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	var call outbound
	if err := u.prepare(ctx, &call, start); err != nil {
		return err
	}
	defer call.cancel()
	var tr metadata.MD
	err := invoker(call.ctx, method, req, reply, cc, append(opts, grpc.Trailer(&tr))...)
	return u.settle(ctx, &call, start, tr, err)
}

// outbound is one call's context and time limit.
type outbound struct {
	ctx    context.Context
	cancel context.CancelFunc
	lim    httpclient.Limit
}

// prepare sets up the call: the same budget as httpclient.Relay (this hop's Timeout
// or the caller's remaining time less the margin, whichever is smaller; it travels on
// as the gRPC deadline, so the hop whose upstream is slow is the one that times out and
// names it) and the propagated headers as metadata. No time left is a 504 at once.
//
//go:noinline
func (u *Upstream) prepare(parent context.Context, c *outbound, start time.Time) error {
	c.lim = httpclient.CallLimit(parent, u.o.Timeout)
	if c.lim.D <= 0 {
		e := u.fail(parent, http.StatusGatewayTimeout, httpclient.NoTimeLeft(u.o.Name))
		u.o.Metrics.ObserveClient(u.o.Name, e.HTTPStatus(), time.Since(start).Seconds())
		return e
	}
	c.ctx, c.cancel = context.WithTimeout(parent, c.lim.D)
	if carried := httpserver.Carried(parent); carried.Len() > 0 {
		// As key/value pairs, not a metadata.MD: grpc-go reads both, and the pairs
		// spare a map per call.
		kv := make([]string, 0, 2*carried.Len())
		carried.Each(func(name string, values []string) {
			key := u.lower(name)
			for _, v := range values {
				kv = append(kv, key, v)
			}
		})
		c.ctx = metadata.AppendToOutgoingContext(c.ctx, kv...)
	}
	return nil
}

// settle leaves the upstream's answer (its trailer) for the inbound call, records the
// call and returns its error in both views.
//
//go:noinline
func (u *Upstream) settle(parent context.Context, c *outbound, start time.Time, tr metadata.MD, err error) error {
	var rep grpcwire.Reply
	rep.Fill(tr)
	if r := grpcwire.ReplyFrom(parent); r != nil {
		*r = rep
	}
	if err == nil {
		u.o.Metrics.ObserveClient(u.o.Name, 200, time.Since(start).Seconds())
		return nil
	}
	e := u.classify(parent, c.ctx, err, rep, c.lim)
	u.o.Metrics.ObserveClient(u.o.Name, e.HTTPStatus(), time.Since(start).Seconds())
	if e.HTTPStatus() == 499 {
		u.o.Logger.LogAttrs(parent, slog.LevelInfo, "caller cancelled", slog.String("upstream", u.o.Name))
	}
	return e
}

// classify keeps an upstream's own answer (it said which HTTP status and body) and
// turns transport failures into the HTTP client's 502/504 problems, naming the upstream.
// An answer that comes after this call's own deadline is this hop's timeout (as in
// httpclient), even when the upstream's own deadline-exceeded problem raced in first.
func (u *Upstream) classify(parent, call context.Context, err error, rep grpcwire.Reply, lim httpclient.Limit) *grpcwire.Error {
	st := status.Convert(err)
	if parent.Err() == context.Canceled {
		return grpcwire.NewError(status.New(codes.Canceled, "caller went away"), 499, nil)
	}
	// By the clock, not call.Err(): the upstream's own deadline is a hair after ours, and
	// under load its timer and answer can beat the goroutine that expires our context.
	dl, _ := call.Deadline()
	timedOut := !time.Now().Before(dl)
	if rep.Status >= 400 && !timedOut {
		return grpcwire.NewError(st, rep.Status, rep.Problem)
	}
	switch {
	case timedOut || st.Code() == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		return u.fail(parent, http.StatusGatewayTimeout, httpclient.TimedOut(u.o.Name, lim))
	case st.Code() == codes.Unavailable:
		return u.fail(parent, http.StatusBadGateway, fmt.Sprintf("upstream %s unreachable: %s", u.o.Name, st.Message()))
	}
	code := grpcwire.HTTPForCode(st.Code())
	return u.fail(parent, code, fmt.Sprintf("upstream %s failed: %s: %s", u.o.Name, st.Code(), st.Message()))
}

// fail is this hop's own problem about the upstream, in both views.
func (u *Upstream) fail(parent context.Context, code int, detail string) *grpcwire.Error {
	d := problem.Details{Status: code, Detail: detail, Instance: httpserver.Instance(parent),
		Service: httpserver.SelfHop(parent).Service, Upstream: u.o.Name}
	return grpcwire.NewError(status.New(grpcwire.CodeForHTTP(code), detail), code, problem.Marshal(&d))
}

// WriteError answers an HTTP request with a failed call's HTTP view, as httpclient.Relay
// does: the status and problem body the same failure has over HTTP (an upstream's own
// problem relayed byte for byte). A caller that went away gets nothing written.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var he grpcwire.HTTPError
	if !errors.As(err, &he) {
		problem.Error(w, r, http.StatusBadGateway, err.Error())
		return
	}
	body := he.ProblemJSON()
	if body == nil {
		if he.HTTPStatus() == 499 {
			return
		}
		d := problem.Details{Status: he.HTTPStatus(), Detail: err.Error(), Instance: r.URL.Path, Service: httpserver.SelfHop(r.Context()).Service}
		body = problem.Marshal(&d)
	}
	h := w.Header()
	h.Set("Content-Type", problem.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(he.HTTPStatus())
	_, _ = w.Write(body)
}
