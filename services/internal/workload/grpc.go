package workload

import (
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/grpcclient"
	"github.com/meshdemo/meshdemo/services/internal/grpcserver"
)

// GRPC is the gRPC listener's setting; the workloads that serve the chain over gRPC
// (client, server1, server2) embed it in their config.
type GRPC struct {
	GRPCPort int `env:"GRPC_PORT" envDefault:"50051"`
}

// Validate checks the port range (0 = any free port).
func (g GRPC) Validate() error {
	if g.GRPCPort < 0 || g.GRPCPort > 65535 {
		return fmt.Errorf("GRPC_PORT=%d: must be between 0 (any free port) and 65535", g.GRPCPort)
	}
	return nil
}

// ValidateAddr checks a host:port upstream address (SERVER1_GRPC_ADDR, ...).
func ValidateAddr(name, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%s=%q: must be host:port such as server1:50051", name, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s=%q: port must be 1-65535", name, addr)
	}
	return nil
}

// GRPCSpec is a workload's gRPC side for Main.
type GRPCSpec struct {
	Settings *GRPC // inside the workload's config
	// Register adds the workload's services (health and reflection are added for it).
	Register func(k *Kit, s *grpc.Server) error
}

// GRPCUpstream builds the one connection to a gRPC upstream, with the shared timeout
// and telemetry (Upstream's gRPC twin).
func (k *Kit) GRPCUpstream(name, addr string) (*grpcclient.Upstream, error) {
	return grpcclient.New(grpcclient.Options{
		Name: name, Addr: addr, Timeout: k.Common.UpstreamTimeout, Metrics: k.Metrics, Logger: k.Logger,
		Tracing: k.Tracing.Enabled, TracerProvider: k.Tracing.Provider, TextMap: k.Tracing.Propagator,
		UserAgent: "meshdemo-" + k.Common.ServiceName,
	})
}

// GRPCServer builds the gRPC server on ln with the kit's interceptor; register adds the
// workload's services.
func (k *Kit) GRPCServer(ln net.Listener, register func(*grpc.Server)) *grpcserver.Server {
	return grpcserver.New(ln, grpcserver.Options{
		Observer: k.Observer, Faults: k.Faults,
		Tracing: k.Tracing.Enabled, TracerProvider: k.Tracing.Provider, TextMap: k.Tracing.Propagator,
		IdleTimeout: k.Common.IdleTimeout, Register: register,
	})
}

// serveGRPC opens GRPC_PORT and builds the server (Serve runs it under the lifecycle).
func serveGRPC(k *Kit, g *GRPCSpec) (*grpcserver.Server, error) {
	addr := net.JoinHostPort(k.Common.ListenHost, strconv.Itoa(g.Settings.GRPCPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen grpc %s: %w", addr, err)
	}
	var regErr error
	srv := k.GRPCServer(ln, func(s *grpc.Server) { regErr = g.Register(k, s) })
	if regErr != nil {
		ln.Close()
		return nil, regErr
	}
	k.Logger.Info("serving grpc", "grpc", ln.Addr().String())
	return srv, nil
}
