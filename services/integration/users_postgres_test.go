package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/pgtest"
)

// waitReady polls /readyz until 200.
func waitReady(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := call(t, "GET", p.URL+"/readyz", nil, "")
		if r.code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %d %s", p.name, r.code, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type user struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Version  string `json:"version"`
}

func decodeUser(t *testing.T, r response) user {
	t.Helper()
	var u user
	if err := json.Unmarshal(r.body, &u); err != nil {
		t.Fatalf("%d %s: %v", r.code, r.body, err)
	}
	return u
}

// TestUsersV1V2SharedDatabase is the canary on one database: v1 and v2 start together
// (racing to migrate), each behind its own client; what one writes the other reads,
// the record names the version that last wrote it, and it all survives a restart.
func TestUsersV1V2SharedDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	v1 := start(t, "user-service", map[string]string{"DATABASE_URL": db, "SERVICE_VERSION": "v1", "HOSTNAME": "users-v1"})
	v2 := start(t, "user-service", map[string]string{"DATABASE_URL": db, "SERVICE_VERSION": "v2", "HOSTNAME": "users-v2"})
	waitReady(t, v1)
	waitReady(t, v2)
	c1 := start(t, "client", map[string]string{"USER_SERVICE_URL": v1.URL, "SERVER1_URL": "http://127.0.0.1:1"})
	c2 := start(t, "client", map[string]string{"USER_SERVICE_URL": v2.URL, "SERVER1_URL": "http://127.0.0.1:1"})
	via1, via2 := c1.URL+"/client/users", c2.URL+"/client/users"
	js := map[string]string{"Content-Type": "application/json"}
	with := func(k, v string) map[string]string {
		return map[string]string{"Content-Type": "application/json", k: v}
	}

	// Create through v1 with an Idempotency-Key; the "retry" lands on v2 and replays it.
	r := call(t, "POST", via1, with("Idempotency-Key", "create-mick"), `{"username":"mick"}`)
	created := decodeUser(t, r)
	if r.code != 201 || created.Version != "v1" || r.header.Get("ETag") == "" {
		t.Fatalf("create through v1: %d %s %v", r.code, r.body, r.header)
	}
	retry := call(t, "POST", via2, with("Idempotency-Key", "create-mick"), `{"username":"mick"}`)
	if retry.code != 201 || string(retry.body) != string(r.body) || retry.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry through v2: %d %s %v", retry.code, retry.body, retry.header)
	}
	if r := call(t, "POST", via2, with("Idempotency-Key", "create-mick"), `{"username":"other"}`); r.code != 422 {
		t.Fatalf("same key, other body: %d %s", r.code, r.body)
	}

	// Read through v2: the same record, the same ETag.
	got := call(t, "GET", fmt.Sprintf("%s/%d", via2, created.ID), nil, "")
	if got.code != 200 || decodeUser(t, got) != created || got.header.Get("ETag") != r.header.Get("ETag") {
		t.Fatalf("read through v2: %d %s ETag %q", got.code, got.body, got.header.Get("ETag"))
	}
	// Update through v2 with If-Match: the record now says v2. A stale If-Match through
	// v1 is refused: no lost update.
	up := call(t, "PUT", fmt.Sprintf("%s/%d", via2, created.ID), with("If-Match", got.header.Get("ETag")), `{"username":"chung"}`)
	if up.code != 200 || decodeUser(t, up) != (user{created.ID, "chung", "v2"}) {
		t.Fatalf("update through v2: %d %s", up.code, up.body)
	}
	stale := call(t, "PUT", fmt.Sprintf("%s/%d", via1, created.ID), with("If-Match", got.header.Get("ETag")), `{"username":"lost"}`)
	if stale.code != 412 || !strings.Contains(stale.header.Get("Content-Type"), "problem+json") {
		t.Fatalf("stale update through v1: %d %s", stale.code, stale.body)
	}
	if r := call(t, "GET", fmt.Sprintf("%s/%d", via1, created.ID), nil, ""); decodeUser(t, r) != (user{created.ID, "chung", "v2"}) {
		t.Fatalf("v1 reads %s", r.body)
	}

	// Pagination through the proxy: the Link header arrives.
	for i := range 4 {
		if r := call(t, "POST", via1, js, fmt.Sprintf(`{"username":"u%d"}`, i)); r.code != 201 {
			t.Fatalf("create u%d: %d %s", i, r.code, r.body)
		}
	}
	page := call(t, "GET", via2+"?limit=2", nil, "")
	var users []user
	if err := json.Unmarshal(page.body, &users); err != nil || len(users) != 2 || users[0].ID != created.ID ||
		page.header.Get("Link") != fmt.Sprintf(`</api/users?limit=2&after=%d>; rel="next"`, users[1].ID) {
		t.Fatalf("page: %d %s Link %q", page.code, page.body, page.header.Get("Link"))
	}

	// Bad input through the proxy: 4xx, nothing changes.
	before := call(t, "GET", via1+"?limit=1000", nil, "").body
	for _, bad := range []struct {
		method, path, ct, body string
		code                   int
	}{
		{"PUT", "/+1", "application/json", `{"username":"x"}`, 400},
		{"DELETE", "/+1", "", "", 400},
		{"DELETE", "/001", "", "", 400},
		{"POST", "", "application/json", `{"USERNAME":"x"}`, 400},
		{"POST", "", "application/json", `{"username":"a","username":"b"}`, 400},
		{"POST", "", "application/json", "{\"username\":\"a\xffb\"}", 400},
		{"POST", "", "application/json", `{"username":"a\ud800"}`, 400},
		{"POST", "", "application/json", "{\"username\":\"a\u202eb\"}", 400},
		{"POST", "", "application/json; charset=latin1", `{"username":"x"}`, 415},
		{"GET", "?limit=0", "", "", 400},
	} {
		hdr := map[string]string{}
		if bad.ct != "" {
			hdr["Content-Type"] = bad.ct
		}
		if r := call(t, bad.method, via2+bad.path, hdr, bad.body); r.code != bad.code {
			t.Errorf("%s %s %s: %d %s, want %d", bad.method, bad.path, bad.body, r.code, r.body, bad.code)
		}
	}
	if after := call(t, "GET", via1+"?limit=1000", nil, "").body; string(after) != string(before) {
		t.Fatalf("bad input changed the data:\n%s\n%s", before, after)
	}

	// Restart: both go away, a new v1 starts on the same database and sees everything.
	for _, p := range []*proc{v1, v2} {
		if err := p.stop(t); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	again := start(t, "user-service", map[string]string{"DATABASE_URL": db, "SERVICE_VERSION": "v1"})
	waitReady(t, again)
	if r := call(t, "GET", again.URL+"/api/users?limit=1000", nil, ""); string(r.body) != string(before) {
		t.Fatalf("after restart:\n%s\nwant\n%s", r.body, before)
	}
}

// TestUsersDatabaseUnreachable: with no database, user-service starts and serves its
// probes, but is not ready and answers 503 problem JSON quickly, not a hang or a 500.
func TestUsersDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := start(t, "user-service", map[string]string{
		"DATABASE_URL": "postgres://u:secret@" + addr + "/db", "DATABASE_CONNECT_TIMEOUT": "500ms",
	})
	if r := call(t, "GET", p.URL+"/healthz", nil, ""); r.code != 200 {
		t.Fatalf("/healthz %d", r.code)
	}
	r := call(t, "GET", p.URL+"/readyz", nil, "")
	if r.code != 503 || !strings.Contains(string(r.body), `"status":"unavailable"`) {
		t.Fatalf("/readyz %d %s", r.code, r.body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/users", ""}, {"GET", "/api/users/1", ""}, {"POST", "/api/users", `{"username":"a"}`},
	} {
		start := time.Now()
		r := call(t, c.method, p.URL+c.path, map[string]string{"Content-Type": "application/json"}, c.body)
		if r.code != 503 || !strings.Contains(r.header.Get("Content-Type"), "problem+json") || strings.Contains(string(r.body), "secret") ||
			strings.Contains(string(r.body), addr) || time.Since(start) > 3*time.Second {
			t.Errorf("%s %s: %d %s after %s", c.method, c.path, r.code, r.body, time.Since(start))
		}
	}
}

// TestUsersDatabaseLost: the database goes away under a running user-service (a proxy
// cuts every connection, then swallows them): reads and writes answer 503 problem JSON
// within the timeouts, readiness turns 503, and both recover when it is back.
func TestUsersDatabaseLost(t *testing.T) {
	t.Parallel()
	proxy, db := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	p := start(t, "user-service", map[string]string{
		"DATABASE_URL": db, "DATABASE_CONNECT_TIMEOUT": "500ms", "DATABASE_STATEMENT_TIMEOUT": "1s",
	})
	waitReady(t, p)
	js := map[string]string{"Content-Type": "application/json"}
	if r := call(t, "POST", p.URL+"/api/users", js, `{"username":"before"}`); r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	for _, lose := range []struct {
		name string
		fn   func()
	}{{"cut", proxy.Cut}, {"stall", proxy.Stall}} {
		lose.fn()
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/api/users", ""}, {"GET", "/api/users/1", ""}, {"POST", "/api/users", `{"username":"a"}`},
			{"PUT", "/api/users/1", `{"username":"b"}`}, {"DELETE", "/api/users/1", ""},
		} {
			begin := time.Now()
			r := call(t, c.method, p.URL+c.path, js, c.body)
			if r.code != 503 || !strings.Contains(r.header.Get("Content-Type"), "problem+json") || time.Since(begin) > 3*time.Second {
				t.Errorf("%s: %s %s: %d %s after %s", lose.name, c.method, c.path, r.code, r.body, time.Since(begin))
			}
		}
		if r := call(t, "GET", p.URL+"/readyz", nil, ""); r.code != 503 {
			t.Errorf("%s: /readyz %d %s", lose.name, r.code, r.body)
		}
		proxy.Restore()
		waitReady(t, p)
		if r := call(t, "GET", p.URL+"/api/users/1", nil, ""); r.code != 200 || !strings.Contains(string(r.body), `"before"`) {
			t.Fatalf("%s: after restore: %d %s", lose.name, r.code, r.body)
		}
	}
}
