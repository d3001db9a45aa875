package workload

import (
	"fmt"
	"net"
	"strconv"
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
