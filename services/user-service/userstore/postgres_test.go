package userstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3/lock"

	"github.com/meshdemo/meshdemo/services/internal/pgtest"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
	"github.com/meshdemo/meshdemo/services/user-service/userstore/storetest"
)

// openPostgres opens a store for a contract or behaviour test. The contract is about results,
// not about a slow machine: a connection may take seconds while `make test` compiles beside it
// (a 1 s connect timeout failed a cold CI run). TestPostgresLostDatabase sets its own short
// timeouts, which it measures.
func openPostgres(t *testing.T, url string, now func() time.Time) *userstore.Postgres {
	t.Helper()
	return open(t, userstore.PostgresConfig{URL: parseURL(t, url), ConnectTimeout: 15 * time.Second, StatementTimeout: 15 * time.Second, Now: now})
}

func parseURL(t *testing.T, raw string) userstore.PostgresURL {
	t.Helper()
	u, err := userstore.ParsePostgresURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func open(t *testing.T, cfg userstore.PostgresConfig) *userstore.Postgres {
	t.Helper()
	cfg.MaxConns = 8
	s, err := userstore.OpenPostgres(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestPostgresContract(t *testing.T) {
	t.Parallel()
	pgtest.AdminURL(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) userstore.Store {
		s := openPostgres(t, pgtest.NewDatabase(t), now)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPostgresConcurrentMigrate: several instances (v1 and v2 rolling out together)
// migrate one database at once; the advisory lock lets each succeed and the schema is
// applied once.
func TestPostgresConcurrentMigrate(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		s := openPostgres(t, url, nil)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Migrate(context.Background()) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	s := openPostgres(t, url, nil)
	var applied int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil || applied != 1 {
		t.Fatalf("migrations recorded %d times (%v), want once", applied, err)
	}
	// Migrating again is a no-op.
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresNotReadyBeforeMigrate: nothing is served until the schema is there.
func TestPostgresNotReadyBeforeMigrate(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.NewDatabase(t), nil)
	ctx := context.Background()
	if err := s.Ready(ctx); !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("Ready before migrating: %v", err)
	}
	if _, err := s.Get(ctx, 1); !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("Get before migrating: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.Start(runCtx)
	deadline := time.Now().Add(20 * time.Second)
	for s.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after Start: %v", s.Ready(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresLostDatabase: with the database cut off or silent, every call fails
// fast with ErrUnavailable (never hangs), Ready follows, and service resumes when the
// database is back.
func TestPostgresLostDatabase(t *testing.T) {
	t.Parallel()
	proxy, url := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	s := open(t, userstore.PostgresConfig{URL: parseURL(t, url), ConnectTimeout: time.Second, StatementTimeout: 2 * time.Second})
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, _, err := s.Create(ctx, userstore.NewUser{Username: "before", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"ready":  func() error { return s.Ready(ctx) },
		"get":    func() error { _, err := s.Get(ctx, u.ID); return err },
		"list":   func() error { _, _, err := s.List(ctx, 0, 10); return err },
		"create": func() error { _, _, err := s.Create(ctx, userstore.NewUser{Username: "x", Version: "v1"}); return err },
		"keyed": func() error {
			_, _, err := s.Create(ctx, userstore.NewUser{Username: "x", Version: "v1", Key: "k", Fingerprint: []byte("f")})
			return err
		},
		"update": func() error { _, err := s.Update(ctx, u.ID, "y", "v1", nil); return err },
		"delete": func() error { return s.Delete(ctx, u.ID, nil) },
	}
	for _, mode := range []struct {
		name string
		lose func()
	}{{"cut", proxy.Cut}, {"stall", proxy.Stall}} {
		mode.lose()
		for name, call := range calls {
			start := time.Now()
			err := call()
			// bound: connect timeout (1 s) + statement timeout (2 s), plus slack
			if took := time.Since(start); !errors.Is(err, userstore.ErrUnavailable) || took > 4*time.Second {
				t.Errorf("%s, %s: %v after %s; want ErrUnavailable within 4s", mode.name, name, err, took)
			}
		}
		proxy.Restore()
		deadline := time.Now().Add(10 * time.Second)
		for s.Ready(ctx) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got, err := s.Get(ctx, u.ID); err != nil || got != u {
			t.Fatalf("after %s and restore: %+v %v", mode.name, got, err)
		}
	}
}

// TestPostgresPurgeKeys: purging removes the keys older than a day and only those: a
// key 12 h old still replays afterwards.
func TestPostgresPurgeKeys(t *testing.T) {
	t.Parallel()
	c := storetest.NewClock()
	s := openPostgres(t, pgtest.NewDatabase(t), c.Now)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	old := userstore.NewUser{Username: "old", Version: "v1", Key: "old", Fingerprint: []byte("a")}
	live := userstore.NewUser{Username: "live", Version: "v1", Key: "live", Fingerprint: []byte("b")}
	if _, _, err := s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	c.Advance(12 * time.Hour)
	first, _, err := s.Create(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(12 * time.Hour) // old is 24 h old, live 12 h
	if n, err := s.PurgeKeys(ctx); err != nil || n != 1 {
		t.Fatalf("purged %d (%v), want the one expired key", n, err)
	}
	var left int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM idempotency_keys`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("%d keys left (%v), want 1", left, err)
	}
	if u, replayed, err := s.Create(ctx, live); err != nil || !replayed || u != first {
		t.Fatalf("the live key after a purge: %+v replayed=%v %v", u, replayed, err)
	}
}

// TestPostgresMigrateWaitsForLock: migration runs under the advisory lock, checked
// deterministically: while another session holds goose's lock, Migrate waits and
// creates nothing; once it is released, Migrate completes.
func TestPostgresMigrateWaitsForLock(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	s := openPostgres(t, url, nil)
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Migrate finished (%v) while another session held the migration lock", err)
	case <-time.After(1500 * time.Millisecond):
	}
	var users *string
	if err := holder.QueryRow(ctx, `SELECT to_regclass('users')::text`).Scan(&users); err != nil || users != nil {
		t.Fatalf("users table while the lock is held: %v (%v)", users, err)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Migrate did not finish after the lock was released")
	}
}
