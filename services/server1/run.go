// Command server1 is the middle of the chain: GET /server1/server2 calls server2 and
// relays its answer.
package main

import (
	"context"
	"errors"
	"io"
	"net/http"

	"google.golang.org/grpc"

	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"

	"github.com/meshdemo/meshdemo/services/internal/config"
	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Config is server1's whole configuration.
type Config struct {
	workload.Base
	Server2URL string `env:"SERVER2_URL" envDefault:"http://server2:8080"`
	workload.GRPC
	Server2GRPCAddr string `env:"SERVER2_GRPC_ADDR" envDefault:"server2:50051"`
}

func (c *Config) Validate() error {
	return errors.Join(c.Base.Validate(), config.ValidateURL("SERVER2_URL", c.Server2URL),
		c.GRPC.Validate(), workload.ValidateAddr("SERVER2_GRPC_ADDR", c.Server2GRPCAddr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := &Config{}
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:     "server1",
		Settings: cfg,
		NewServer: func(k *workload.Kit) (http.Handler, error) {
			server2, err := k.Upstream("server2", cfg.Server2URL)
			if err != nil {
				return nil, err
			}
			return NewServer(k, server2), nil
		},
		GRPC: grpcworkload.Serve(&cfg.GRPC, func(k *workload.Kit, s *grpc.Server) error {
			server2, err := grpcworkload.Upstream(k, "server2", cfg.Server2GRPCAddr)
			if err != nil {
				return err
			}
			chainv1.RegisterChainServer(s, newChainRelay(chainv1.NewChainClient(server2.Conn())))
			return nil
		}),
	})
}
