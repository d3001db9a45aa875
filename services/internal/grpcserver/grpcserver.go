// Package grpcserver is the HTTP kit on a second listener: one gRPC server per workload
// whose interceptor does what httpserver's middleware and the fault injector do for HTTP
// (propagation in, Envoy's deadline, faults, metrics, access log, path header), with
// otelgrpc for spans, standard health (following the workload's readiness) and server
// reflection. The per-call logic is the HTTP kit's own, called through
// httpserver.Observer.Enter and faults.Injector.Check; this package only translates.
package grpcserver

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
	"google.golang.org/grpc/codes"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/grpcwire"
	"github.com/meshdemo/meshdemo/services/internal/health"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
	"github.com/meshdemo/meshdemo/services/internal/telemetry"
)

// Method is the HTTP method a gRPC call is recorded with in metrics and access logs:
// the one it travels as on the wire, so the series stay in the HTTP families.
const Method = "POST"

// streamWorkers is how many goroutines serve calls (grpc.NumStreamWorkers): more than a
// pod limited to a fraction of a CPU has in flight, and as many as make bench's 32
// closed-loop callers. Idle, each is a parked goroutine. Measured, the gRPC chain's
// throughput ratio rose from a median of about 0.78 to 0.82, and RSS did not move beyond
// noise (docs/benchmark.md, "Stream workers").
const streamWorkers = 32

// MaxHeaderBytes bounds a call's metadata as the HTTP servers bound headers.
const MaxHeaderBytes = 64 << 10

// Options are the server's dependencies, the HTTP kit's own.
type Options struct {
	Observer *httpserver.Observer
	Faults   *faults.Injector
	// Tracing on: otelgrpc records spans with the observer's tracer provider.
	Tracing        bool
	TracerProvider trace.TracerProvider
	TextMap        propagation.TextMapPropagator
	// IdleTimeout closes connections idle that long (like the HTTP server's).
	IdleTimeout time.Duration
	// Register adds the workload's services.
	Register func(*grpc.Server)
}

// Server is one gRPC listener under the workload's lifecycle (httpserver.Extra).
type Server struct {
	grpc   *grpc.Server
	health *grpchealth.Server
	ln     net.Listener
	o      Options
	// read maps the metadata keys the kit reads (the propagated list, Envoy's
	// headers) to their canonical header names; other metadata is not converted.
	read map[string]string
	self string // this hop's path entry without attributes
	// stopping is closed when Shutdown begins: long-lived streams end then.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

// New builds the server on an open listener (so callers learn an ephemeral port before
// serving). Health starts NOT_SERVING.
func New(ln net.Listener, o Options) *Server {
	s := &Server{ln: ln, o: o, health: grpchealth.NewServer(), read: map[string]string{}, self: o.Observer.Identity.String(),
		stopping: make(chan struct{})}
	for _, n := range append(o.Observer.Propagator.Names(),
		httpserver.HeaderExpectedTimeout, httpserver.HeaderBudget, httpserver.HeaderAttemptCount, "Traceparent", "Tracestate", "B3", "X-B3-Traceid") {
		c := http.CanonicalHeaderKey(n)
		s.read[strings.ToLower(c)] = c
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
		grpc.ConnectionTimeout(5 * time.Second),
		// Bounds, so one connection cannot take the pod's memory (grpc-go's defaults
		// are unlimited streams, 4 MiB sends, 16 MiB of headers): see httpserver.MaxStreams.
		grpc.MaxConcurrentStreams(httpserver.MaxStreams),
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.MaxSendMsgSize(1 << 20),
		grpc.MaxHeaderListSize(MaxHeaderBytes),
		// Pings more often than every 5 min (grpc-go's default policy, stated here) or
		// without a call in flight are abuse: the connection is closed (GOAWAY
		// ENHANCE_YOUR_CALM).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Minute, PermitWithoutStream: false}),
		// Calls run on long-lived workers whose stacks have already grown, instead of a
		// fresh 2 KiB goroutine that grows (a copy) on every call; a call that finds all
		// workers busy still gets its own goroutine. See streamWorkers.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: o.IdleTimeout, Time: 2 * time.Hour, Timeout: 20 * time.Second}),
	}
	if o.Tracing {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(o.TracerProvider), otelgrpc.WithPropagators(o.TextMap))))
	}
	s.grpc = grpc.NewServer(opts...)
	if o.Register != nil {
		o.Register(s.grpc)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.SetPhase(health.Starting)
	return s
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve blocks until Shutdown.
func (s *Server) Serve() error {
	err := s.grpc.Serve(s.ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// SetPhase follows the workload's readiness: SERVING when Ready, NOT_SERVING while
// starting or draining, for the whole server ("") and every registered service.
func (s *Server) SetPhase(p health.Phase) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if p == health.Ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		if name != healthpb.Health_ServiceDesc.ServiceName {
			s.health.SetServingStatus(name, st)
		}
	}
}

// Shutdown ends the long-lived streams (health Watch, reflection: see stream), lets
// in-flight calls finish (GracefulStop) until ctx ends, then cuts them (Stop) and
// reports that it had to.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stoppingOnce.Do(func() { close(s.stopping) })
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return fmt.Errorf("grpc: in-flight calls cut at the shutdown deadline: %w", ctx.Err())
	}
}

// stream runs the streaming methods: only health Watch and reflection, which a client
// keeps open for as long as it likes. GracefulStop waits for every stream, so one open
// Watch would hold a stop until SHUTDOWN_TIMEOUT and make it fail. When Shutdown begins
// the stream ends with UNAVAILABLE (the watcher already saw NOT_SERVING during the drain
// pause): Watch returns once its context ends; reflection waits in Recv, which the
// stream's end then fails, so its handler is not waited for.
func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- handler(srv, &stoppable{ServerStream: ss, ctx: ctx}) }()
	select {
	case err := <-done:
		return err
	case <-s.stopping:
		cancel()
		return status.Error(codes.Unavailable, "server is stopping; reconnect")
	}
}

// stoppable is a server stream whose context also ends when the server stops.
type stoppable struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppable) Context() context.Context { return s.ctx }

func statusText(code int) string {
	if code == 200 {
		return "200"
	}
	return strconv.Itoa(code)
}

// spared says whether faults skip a method: health and reflection are the probes of
// gRPC, spared like /healthz and /readyz.
func spared(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.") || strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// unary is the gRPC side of httpserver.Observer.Middleware plus faults.Injector.Middleware.
//
// Its own frame stays small on purpose: the work before and after the handler lives in
// begin and finish (not inlined), because a relaying hop's handler goroutine runs the
// whole outbound call (grpc-go's client stack) beneath this frame. With everything in
// one function its locals took about 1 KiB, enough to push each relayed call's fresh
// goroutine stack past 4 KiB, and the runtime then copied it a second time on every call
// (docs/benchmark.md, "Stack growth").
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	var in inbound
	s.begin(ctx, info.FullMethod, &in)
	if in.cancel != nil {
		defer in.cancel()
	}
	var resp any
	var err error
	if in.failure != nil {
		err = failureError(in.failure, info.FullMethod)
	} else {
		resp, err = handler(in.ctx, req)
	}
	return resp, s.finish(ctx, &in, start, info.FullMethod, err)
}

// inbound is what begin learns from a call for the handler and for finish.
type inbound struct {
	ctx     context.Context // the handler's context
	cancel  context.CancelFunc
	call    httpserver.Call
	reply   *grpcwire.Reply // what the handler's own upstream call answered
	failure *faults.Failure // an injected fault answers instead of the handler
}

// begin reads the call's metadata as the HTTP kit reads headers (Observer.Enter) and
// checks the fault directives.
//
//go:noinline
func (s *Server) begin(ctx context.Context, method string, in *inbound) {
	o := s.o.Observer
	// md is this call's own copy (FromIncomingContext copies), so the keys the kit reads
	// (the propagated list, Envoy's headers) are added to it under their canonical
	// names and it serves as the http.Header Observer.Enter reads: no second map per
	// call. Lower-case lookups (md.Get) still see the original keys.
	md, _ := metadata.FromIncomingContext(ctx)
	for k, v := range md {
		if c, ok := s.read[k]; ok {
			md[c] = v
		}
	}
	hdr := http.Header(md)
	in.ctx, in.cancel, in.call = o.Enter(ctx, hdr, method)
	if !s.o.Tracing && (len(hdr["Traceparent"]) > 0 || len(hdr["B3"]) > 0 || len(hdr["X-B3-Traceid"]) > 0) {
		// Logs carry the caller's trace id even with export off (otelgrpc extracts it
		// when tracing is on).
		in.ctx = o.TextMap.Extract(in.ctx, propagation.HeaderCarrier(hdr))
	}
	in.ctx, in.reply = grpcwire.WithReply(in.ctx)
	in.failure = s.check(in.ctx, md, method)
}

// finish answers the call's HTTP view in the trailer and records it (metrics, access
// log); it returns the error the call ends with.
//
//go:noinline
func (s *Server) finish(ctx context.Context, in *inbound, start time.Time, method string, err error) error {
	o := s.o.Observer
	code, prob, err := outcome(in.ctx, err, method, in.call.Hop.Service)
	path := s.self
	if in.call.Attempt > 0 {
		path = in.call.Hop.String()
	}
	if in.reply.Path != "" {
		path += ", " + in.reply.Path
	}
	tr := metadata.MD{grpcwire.PathKey: {path}, grpcwire.StatusKey: {statusText(code)}}
	if prob != nil {
		tr[grpcwire.ProblemKey] = []string{string(prob)}
	}
	_ = grpc.SetTrailer(ctx, tr) // fails only when the stream is gone

	elapsed := time.Since(start)
	o.Metrics.ObserveServer(method, Method, code, elapsed.Seconds())
	o.Metrics.CountAttempt(in.call.Attempt)
	level := slog.LevelInfo
	switch {
	case code >= 500:
		level = slog.LevelWarn
	case code < 400 && spared(method):
		level = slog.LevelDebug // health checks are noise
	}
	if o.Access.Enabled(level) {
		e := telemetry.AccessEntry{Time: start.Add(elapsed), Level: level, RequestID: in.call.RequestID, Method: Method,
			Route: method, Path: method, Status: code, Duration: elapsed, Attempt: in.call.Attempt}
		if sc := trace.SpanContextFromContext(in.ctx); sc.HasTraceID() {
			e.TraceID, e.SpanID = sc.TraceID().String(), sc.SpanID().String()
		}
		o.Access.Log(e)
	}
	return err
}

func (s *Server) check(ctx context.Context, md metadata.MD, method string) *faults.Failure {
	if s.o.Faults == nil || spared(method) {
		return nil
	}
	return s.o.Faults.Check(ctx, md.Get(headers.Fault), method)
}

func failureError(f *faults.Failure, method string) error {
	if f.Status == 0 { // the caller went away during a delay
		return grpcwire.NewError(status.New(codes.Canceled, "caller went away during an injected delay"), 499, nil)
	}
	d := f.Problem(method)
	return grpcwire.NewError(status.New(grpcwire.CodeForHTTP(f.Status), f.Detail), f.Status, problem.Marshal(&d))
}

// outcome is the HTTP view of a call's result: its status, the problem body on error,
// and the error to return (an error that knows its HTTP answer keeps it; any other gets
// one from its gRPC code).
func outcome(ctx context.Context, err error, method, service string) (int, []byte, error) {
	if err == nil {
		return 200, nil, nil
	}
	var he grpcwire.HTTPError
	if errors.As(err, &he) {
		return he.HTTPStatus(), he.ProblemJSON(), err
	}
	st := status.Convert(err)
	if st.Code() == codes.Canceled || (ctx.Err() == context.Canceled && st.Code() != codes.DeadlineExceeded) {
		return 499, nil, err
	}
	code := grpcwire.HTTPForCode(st.Code())
	d := problem.Details{Status: code, Detail: st.Message(), Instance: method, Service: service}
	return code, problem.Marshal(&d), err
}
