package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/pgtest"
	"github.com/meshdemo/meshdemo/services/internal/workload"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

// pgUsers is user-service on a migrated database of its own, served on loopback, with
// its kit (metrics) and logs at info.
type pgUsers struct {
	kit   *workload.Kit
	store *userstore.Postgres
	srv   *httptest.Server
	url   string // the database, direct
	proxy *pgtest.Proxy
	logs  *kittest.Logs
}

func newPGUsers(t *testing.T, maxConns int32) *pgUsers {
	t.Helper()
	u := &pgUsers{url: pgtest.NewDatabase(t), logs: &kittest.Logs{}}
	var viaProxy string
	u.proxy, viaProxy = pgtest.NewProxy(t, u.url)
	pgURL, err := userstore.ParsePostgresURL(viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	u.store, err = userstore.OpenPostgres(userstore.PostgresConfig{
		URL: pgURL, MaxConns: maxConns, ConnectTimeout: time.Second, StatementTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.store.Close)
	if err := u.store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := kittest.Common("user-service")
	c.LogLevel = 0 // info: the access log
	u.kit = kittest.Kit(t, c, faults.DefaultConfig(), u.logs)
	u.srv = httptest.NewServer(NewServer(u.kit, u.store))
	t.Cleanup(u.srv.Close)
	return u
}

// lockUsers holds an exclusive lock on the users table from a connection of its own
// until the returned func is called: every query on users waits (a slow statement).
func lockUsers(t *testing.T, dbURL string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// TestPostgresCallerGoneIs499: a caller that half-closes its side while its create
// waits on the database is a caller that went away, not a database failure: no
// response is written (no 503 "database unavailable" for a healthy database), the
// metric and the access log say 499, nothing is logged as a store failure, and no
// user is created.
func TestPostgresCallerGoneIs499(t *testing.T) {
	t.Parallel()
	u := newPGUsers(t, 4)
	release := lockUsers(t, u.url)

	body := `{"username":"gone"}`
	got := kittest.HalfClose(t, u.srv.Listener.Addr().String(), "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body)
	if len(got) != 0 {
		s, _, _ := strings.Cut(string(got), "\r\n")
		t.Errorf("a caller that half-closed got %q", s)
	}
	var n uint64
	for deadline := time.Now().Add(2 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n = kittest.HistCount(t, u.kit, "meshdemo_http_server_request_duration_seconds", map[string]string{"route": "/api/users", "code": "499"})
	}
	if n != 1 {
		t.Errorf("metric code=499: %d observations, want 1; log:\n%s", n, u.logs)
	}
	logs := u.logs.String()
	if strings.Contains(logs, "store unavailable") || strings.Contains(logs, `"status":503`) || !strings.Contains(logs, `"status":499`) {
		t.Errorf("log should record 499 and no store failure:\n%s", logs)
	}
	release()
	if users := all(t, u.store); len(users) != 0 {
		t.Errorf("users after a cancelled create: %v", users)
	}
}

// TestPostgresReadinessIgnoresBusyPool: a slow statement holding every pooled
// connection is not a database that is down. /readyz answers 200 at once while the pool
// is full (it does not queue behind user traffic), and 503 when the database is really
// gone.
func TestPostgresReadinessIgnoresBusyPool(t *testing.T) {
	t.Parallel()
	u := newPGUsers(t, 2)
	ready := func() (int, time.Duration) {
		start := time.Now()
		resp, err := http.Get(u.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	if code, _ := ready(); code != 200 {
		t.Fatalf("idle: /readyz %d", code)
	}
	release := lockUsers(t, u.url)
	var wg sync.WaitGroup
	for range 6 { // three times the pool: every connection waits on the lock
		wg.Go(func() {
			resp, err := http.Get(u.srv.URL + "/api/users")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	defer wg.Wait()
	defer release()
	for deadline := time.Now().Add(3 * time.Second); u.store.Pool().Stat().AcquiredConns() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not fill: %d acquired", u.store.Pool().Stat().AcquiredConns())
		}
	}
	for range 3 {
		if code, took := ready(); code != 200 || took > 500*time.Millisecond {
			t.Fatalf("pool busy, database fine: /readyz %d after %s, want 200 at once", code, took)
		}
	}
	release()
	wg.Wait()
	u.proxy.Cut()
	if code, took := ready(); code != 503 || took > 2*time.Second {
		t.Fatalf("database gone: /readyz %d after %s, want 503", code, took)
	}
	u.proxy.Restore()
	var code int
	for deadline := time.Now().Add(3 * time.Second); code != 200 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, _ = ready()
	}
	if code != 200 {
		t.Fatalf("database back: /readyz %d", code)
	}
}
