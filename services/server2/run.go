// Command server2 is the end of the chain: it answers GET /server2/end with a JSON
// object naming itself.
package main

import (
	"context"
	"io"
	"net/http"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:      "server2",
		Settings:  &workload.Base{},
		NewServer: func(k *workload.Kit) (http.Handler, error) { return NewServer(k), nil },
	})
}
