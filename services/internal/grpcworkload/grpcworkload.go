// Package grpcworkload is the gRPC side of a workload: the one connection to a gRPC
// upstream and the second listener, both built from the workload's Kit. It lives apart
// from package workload so that a workload without gRPC (user-service) does not link the
// gRPC server, its interceptors and reflection: the image size limit is 15 MiB.
package grpcworkload

import (
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/grpcclient"
	"github.com/meshdemo/meshdemo/services/internal/grpcserver"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Upstream builds the one connection to a gRPC upstream, with the shared timeout and
// telemetry (workload.Kit.Upstream's gRPC twin).
func Upstream(k *workload.Kit, name, addr string) (*grpcclient.Upstream, error) {
	return grpcclient.New(grpcclient.Options{
		Name: name, Addr: addr, Timeout: k.Common.UpstreamTimeout, Metrics: k.Metrics, Logger: k.Logger,
		Tracing: k.Tracing.Enabled, TracerProvider: k.Tracing.Provider, TextMap: k.Tracing.Propagator,
		UserAgent: "meshdemo-" + k.Common.ServiceName,
	})
}

// Server builds the gRPC server on ln with the kit's interceptor; register adds the
// workload's services (health and reflection are added for it).
func Server(k *workload.Kit, ln net.Listener, register func(*grpc.Server)) *grpcserver.Server {
	return grpcserver.New(ln, grpcserver.Options{
		Observer: k.Observer, Faults: k.Faults,
		Tracing: k.Tracing.Enabled, TracerProvider: k.Tracing.Provider, TextMap: k.Tracing.Propagator,
		IdleTimeout: k.Common.IdleTimeout, Register: register,
	})
}

// Serve is a workload.Spec's GRPC hook: it opens GRPC_PORT (from settings, inside the
// workload's config) and builds the server, which Main then serves under the lifecycle.
func Serve(settings *workload.GRPC, register func(k *workload.Kit, s *grpc.Server) error) func(*workload.Kit) (httpserver.Extra, error) {
	return func(k *workload.Kit) (httpserver.Extra, error) {
		addr := net.JoinHostPort(k.Common.ListenHost, strconv.Itoa(settings.GRPCPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen grpc %s: %w", addr, err)
		}
		var regErr error
		srv := Server(k, ln, func(s *grpc.Server) { regErr = register(k, s) })
		if regErr != nil {
			ln.Close()
			return nil, regErr
		}
		k.Logger.Info("serving grpc", "grpc", ln.Addr().String())
		return srv, nil
	}
}
