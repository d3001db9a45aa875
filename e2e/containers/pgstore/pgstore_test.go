// Package pgstore runs user-service's store contract (the suite services' tests run on
// a throw-away local PostgreSQL) against PostgreSQL in a container started by
// testcontainers-go's Postgres module. No Docker engine: skip (CI: fail, as every
// container test). An engine that cannot pull the image: skip saying so.
package pgstore

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/meshdemo/meshdemo/e2e/internal/dockerenv"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
	"github.com/meshdemo/meshdemo/services/user-service/userstore/storetest"
)

// image is the PostgreSQL the deployment runs (Debian's is 15 too).
const image = "postgres:15-alpine"

func TestUserStoreContractInContainer(t *testing.T) {
	for k, v := range map[string]string{"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1", "TESTCONTAINERS_RYUK_DISABLED": "true"} {
		if _, set := os.LookupEnv(k); !set {
			t.Setenv(k, v)
		}
	}
	ctx := context.Background()
	dockerenv.Require(t, dockerenv.Probe(ctx))

	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := tcpostgres.Run(startCtx, image,
		tcpostgres.WithDatabase("postgres"), tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword("test"),
		tcpostgres.BasicWaitStrategies())
	t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
	if err != nil {
		// The engine is there (Require passed); what fails here is nearly always the
		// pull of an image from a registry this machine cannot reach.
		t.Skipf("cannot start %s (no registry access to pull it?): %v", image, err)
	}
	admin, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, now func() time.Time) userstore.Store {
		db := newDatabase(t, admin, fmt.Sprintf("contract_%d", n.Add(1)))
		pgURL, err := userstore.ParsePostgresURL(db)
		if err != nil {
			t.Fatal(err)
		}
		s, err := userstore.OpenPostgres(userstore.PostgresConfig{URL: pgURL, MaxConns: 8, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func newDatabase(t *testing.T, admin, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
