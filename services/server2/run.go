// Command server2 is the end of the chain: it answers GET /server2/end with a JSON
// object naming itself.
package main

import (
	"context"
	"errors"
	"io"
	"net/http"

	"google.golang.org/grpc"

	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"

	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Config is server2's whole configuration.
type Config struct {
	workload.Base
	workload.GRPC
}

func (c *Config) Validate() error { return errors.Join(c.Base.Validate(), c.GRPC.Validate()) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := &Config{}
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:      "server2",
		Settings:  cfg,
		NewServer: func(k *workload.Kit) (http.Handler, error) { return NewServer(k), nil },
		GRPC: grpcworkload.Serve(&cfg.GRPC, func(k *workload.Kit, s *grpc.Server) error {
			chainv1.RegisterChainServer(s, newChainEnd(k))
			return nil
		}),
	})
}
