// Command user-service keeps users in memory and stamps each with the SERVICE_VERSION
// that last wrote it, so a canary's writes are visible in the data itself.
package main

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/meshdemo/meshdemo/services/internal/config"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Config is user-service's whole configuration.
type Config struct {
	config.Common
	faults.Config
}

func (c *Config) Shared() (*config.Common, *faults.Config) { return &c.Common, &c.Config }
func (c *Config) Validate() error                          { return errors.Join(c.Common.Validate(), c.Config.Validate()) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:      "user-service",
		Settings:  &Config{},
		NewServer: func(k *workload.Kit) (http.Handler, error) { return NewServer(k, NewMemoryStore()), nil },
	})
}
