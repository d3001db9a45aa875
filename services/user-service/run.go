// Command user-service keeps users in memory and stamps each with the SERVICE_VERSION
// that last wrote it, so a canary's writes are visible in the data itself.
package main

import (
	"context"
	"io"
	"net/http"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:      "user-service",
		Settings:  &workload.Base{},
		NewServer: func(k *workload.Kit) (http.Handler, error) { return NewServer(k, NewMemoryStore()), nil },
	})
}
