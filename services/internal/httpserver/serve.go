package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/health"
)

// Timeouts for both servers of a workload.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxHeaderBytes                int
}

// MaxStreams is the calls one HTTP/2 connection may have in flight
// (SETTINGS_MAX_CONCURRENT_STREAMS), the same on the gRPC port and for HTTP/2 on the
// HTTP ports. A conforming caller (grpc-go, Envoy) queues the rest or opens another
// connection; a stream beyond it is refused (REFUSED_STREAM). Without it 20 000
// concurrent calls on one gRPC connection took server1 from 18 MiB to 288 MiB, past the
// pod's 64 Mi limit; with it the peak was 32 MiB (docs/grpc.md, "Limits").
const MaxStreams = 100

// Lifecycle is everything Serve needs.
type Lifecycle struct {
	PublicAddr, AdminAddr string
	Public, Admin         http.Handler
	Timeouts              Timeouts
	State                 *health.State
	DrainDelay            time.Duration
	ShutdownTimeout       time.Duration
	Logger                *slog.Logger
	// OnListen is called with the bound addresses once both listeners are open (tests
	// use it to learn ephemeral ports).
	OnListen func(public, admin net.Addr)
	// Flush runs last, after both servers stopped (telemetry export).
	Flush func(context.Context) error
	// Extra servers (the gRPC listener) follow the same lifecycle: served alongside,
	// told the readiness phase, shut down with the HTTP servers.
	Extra []Extra
}

// Extra is a further server under a workload's lifecycle.
type Extra interface {
	Serve() error                       // blocks until Shutdown; nil after a clean stop
	SetPhase(health.Phase)              // follows readiness (gRPC health)
	Shutdown(ctx context.Context) error // in-flight calls finish until ctx ends
}

// Serve runs both servers until ctx is cancelled, then: readiness 503 → drain pause
// (the endpoints controller and sidecars stop sending new requests) → Shutdown on a
// fresh context so in-flight requests finish → Flush. It returns nil after a clean
// shutdown.
func Serve(ctx context.Context, l Lifecycle) error {
	publicLn, err := net.Listen("tcp", l.PublicAddr)
	if err != nil {
		return fmt.Errorf("listen public %s: %w", l.PublicAddr, err)
	}
	adminLn, err := net.Listen("tcp", l.AdminAddr)
	if err != nil {
		publicLn.Close()
		return fmt.Errorf("listen admin %s: %w", l.AdminAddr, err)
	}
	mk := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: l.Timeouts.ReadHeader,
			ReadTimeout:       l.Timeouts.Read,
			WriteTimeout:      l.Timeouts.Write,
			IdleTimeout:       l.Timeouts.Idle,
			MaxHeaderBytes:    l.Timeouts.MaxHeaderBytes,
			// Plain-text ports speak HTTP/1.1 unless HTTP/2 is enabled (Protocols); when
			// it is, a connection gets the gRPC port's stream budget.
			HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: MaxStreams},
			ErrorLog: slog.NewLogLogger(l.Logger.Handler(), slog.LevelWarn),
		}
	}
	public, admin := mk(l.Public), mk(l.Admin)
	errc := make(chan error, 2+len(l.Extra))
	go func() { errc <- public.Serve(publicLn) }()
	go func() { errc <- admin.Serve(adminLn) }()
	for _, x := range l.Extra {
		go func() {
			if err := x.Serve(); err != nil {
				errc <- err
			}
		}()
	}
	setPhase := func(p health.Phase) {
		l.State.Set(p)
		for _, x := range l.Extra {
			x.SetPhase(p)
		}
	}
	if l.OnListen != nil {
		l.OnListen(publicLn.Addr(), adminLn.Addr())
	}
	setPhase(health.Ready)
	l.Logger.Info("serving", "public", publicLn.Addr().String(), "admin", adminLn.Addr().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc: // a listener died: shut down the rest, report it
	}
	setPhase(health.Draining)
	if serveErr == nil && l.DrainDelay > 0 {
		l.Logger.Info("draining", "pause", l.DrainDelay.String())
		time.Sleep(l.DrainDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), l.ShutdownTimeout)
	defer cancel()
	errs := make(chan error, len(l.Extra))
	for _, x := range l.Extra {
		go func() { errs <- x.Shutdown(shutdownCtx) }()
	}
	err = errors.Join(public.Shutdown(shutdownCtx), admin.Shutdown(shutdownCtx))
	for range l.Extra {
		err = errors.Join(err, <-errs)
	}
	if l.Flush != nil {
		err = errors.Join(err, l.Flush(shutdownCtx))
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(fmt.Errorf("server failed: %w", serveErr), err)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	l.Logger.Info("stopped")
	return nil
}
