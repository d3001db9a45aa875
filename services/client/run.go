// Command client is the front door: GET /client/server1 starts the chain, and
// /client/users... proxies user-service, so gateway traffic reaches both through the
// mesh.
package main

import (
	"context"
	"errors"
	"io"
	"net/http"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/config"
	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Config is client's whole configuration.
type Config struct {
	workload.Base
	Server1URL     string `env:"SERVER1_URL" envDefault:"http://server1:8080"`
	UserServiceURL string `env:"USER_SERVICE_URL" envDefault:"http://user-service:8080"`
	workload.GRPC
	Server1GRPCAddr string `env:"SERVER1_GRPC_ADDR" envDefault:"server1:50051"`
}

func (c *Config) Validate() error {
	return errors.Join(c.Base.Validate(),
		config.ValidateURL("SERVER1_URL", c.Server1URL), config.ValidateURL("USER_SERVICE_URL", c.UserServiceURL),
		c.GRPC.Validate(), workload.ValidateAddr("SERVER1_GRPC_ADDR", c.Server1GRPCAddr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := &Config{}
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:     "client",
		Settings: cfg,
		NewServer: func(k *workload.Kit) (http.Handler, error) {
			server1, err := k.Upstream("server1", cfg.Server1URL)
			if err != nil {
				return nil, err
			}
			users, err := k.Upstream("user-service", cfg.UserServiceURL)
			if err != nil {
				return nil, err
			}
			grpc1, err := grpcworkload.Upstream(k, "server1", cfg.Server1GRPCAddr)
			if err != nil {
				return nil, err
			}
			return NewServer(k, server1, users, grpc1), nil
		},
		// client serves health and reflection on GRPC_PORT (no Chain service: it is
		// the front door, reached over HTTP).
		GRPC: grpcworkload.Serve(&cfg.GRPC, func(*workload.Kit, *grpc.Server) error { return nil }),
	})
}
