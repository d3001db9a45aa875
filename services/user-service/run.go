// Command user-service keeps users and stamps each with the SERVICE_VERSION that last
// wrote it, so a canary's writes are visible in the data itself. With DATABASE_URL it
// keeps them in PostgreSQL, shared by every version; without, in a bounded in-memory
// store.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/workload"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

// Config is user-service's whole configuration.
type Config struct {
	workload.Base
	// Database (DATABASE_URL, postgres://...) selects PostgreSQL, parsed once here and
	// handed to the store as parsed; unset keeps users in memory.
	Database userstore.PostgresURL `env:"DATABASE_URL"`
	// The pool's settings start from the store's defaults (see run).
	DatabaseMaxConns         int32         `env:"DATABASE_MAX_CONNS"`
	DatabaseConnectTimeout   time.Duration `env:"DATABASE_CONNECT_TIMEOUT"`
	DatabaseStatementTimeout time.Duration `env:"DATABASE_STATEMENT_TIMEOUT"`
	// MaxUsers bounds the in-memory store so a load test cannot exhaust the pod's memory.
	MaxUsers int `env:"USER_STORE_MAX_USERS" envDefault:"100000"`
	// MaxKeys bounds the idempotency keys of the last 24 h the in-memory store remembers.
	MaxKeys int `env:"USER_STORE_MAX_IDEMPOTENCY_KEYS" envDefault:"100000"`
}

func (c *Config) Validate() error {
	errs := []error{c.Base.Validate()}
	if c.DatabaseMaxConns < 1 || c.DatabaseMaxConns > 1000 {
		errs = append(errs, fmt.Errorf("DATABASE_MAX_CONNS=%d: must be 1-1000", c.DatabaseMaxConns))
	}
	if c.DatabaseConnectTimeout <= 0 || c.DatabaseStatementTimeout <= 0 {
		errs = append(errs, errors.New("DATABASE_CONNECT_TIMEOUT and DATABASE_STATEMENT_TIMEOUT must be positive"))
	}
	if c.MaxUsers < 1 {
		errs = append(errs, fmt.Errorf("USER_STORE_MAX_USERS=%d: must be at least 1", c.MaxUsers))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("USER_STORE_MAX_IDEMPOTENCY_KEYS=%d: must be at least 1", c.MaxKeys))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// Variables left unset keep these values (caarlos0/env sets only what it is given).
	cfg := &Config{
		DatabaseMaxConns:         userstore.DefaultMaxConns,
		DatabaseConnectTimeout:   userstore.DefaultConnectTimeout,
		DatabaseStatementTimeout: userstore.DefaultStatementTimeout,
	}
	var closeStore func()
	defer func() {
		if closeStore != nil {
			closeStore()
		}
	}()
	return workload.Main(ctx, args, getenv, stdout, stderr, workload.Spec{
		Name:     "user-service",
		Settings: cfg,
		NewServer: func(k *workload.Kit) (http.Handler, error) {
			if cfg.Database.IsZero() {
				return NewServer(k, userstore.NewMemory(userstore.MemoryLimits{Users: cfg.MaxUsers, Keys: cfg.MaxKeys}, nil)), nil
			}
			pg, err := userstore.OpenPostgres(userstore.PostgresConfig{
				URL: cfg.Database, MaxConns: cfg.DatabaseMaxConns,
				ConnectTimeout: cfg.DatabaseConnectTimeout, StatementTimeout: cfg.DatabaseStatementTimeout,
				Logger: k.Logger,
			})
			if err != nil {
				return nil, err
			}
			closeStore = pg.Close
			pg.Start(ctx)
			return NewServer(k, pg), nil
		},
	})
}
