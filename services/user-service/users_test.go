package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

type call struct {
	method, path, ct, body string
}

func do(t *testing.T, h http.Handler, c call) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req := httptest.NewRequest(c.method, c.path, body)
	if c.ct != "" {
		req.Header.Set("Content-Type", c.ct)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func newUsers(t *testing.T, version string) (http.Handler, userstore.Store) {
	return newUsersWith(t, version, userstore.NewMemory(userstore.MemoryLimits{Users: 1000, Keys: 1000}, nil))
}

func newUsersWith(t *testing.T, version string, store userstore.Store) (http.Handler, userstore.Store) {
	c := kittest.Common("user-service")
	c.ServiceVersion = version
	k := kittest.Kit(t, c, kittest.Default(t, "x").Faults.Config(), nil)
	return NewServer(k, store), store
}

// all lists every user (one page of up to 1000).
func all(t *testing.T, s userstore.Store) []userstore.User {
	t.Helper()
	users, _, err := s.List(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	h, _ := newUsers(t, "v7")
	const js = "application/json"

	code, body, hdr := do(t, h, call{"POST", "/api/users", "application/json; charset=utf-8", `{"username":"mick"}`})
	if code != 201 || strings.TrimSpace(body) != `{"id":1,"username":"mick","version":"v7"}` || hdr.Get("Location") != "/api/users/1" {
		t.Fatalf("create: %d %s %v", code, body, hdr)
	}
	steps := []struct {
		c        call
		wantCode int
		wantBody string
	}{
		{call{"GET", "/api/users/1", "", ""}, 200, `{"id":1,"username":"mick","version":"v7"}`},
		{call{"PUT", "/api/users/1", js, `{"username":"chung"}`}, 200, `{"id":1,"username":"chung","version":"v7"}`},
		{call{"POST", "/api/users", js, `{"username":"second"}`}, 201, `{"id":2,"username":"second","version":"v7"}`},
		{call{"GET", "/api/users", "", ""}, 200, `[{"id":1,"username":"chung","version":"v7"},{"id":2,"username":"second","version":"v7"}]`},
		{call{"DELETE", "/api/users/1", "", ""}, 204, ``},
		{call{"GET", "/api/users/1", "", ""}, 404, ``},
		{call{"DELETE", "/api/users/1", "", ""}, 404, ``},
		{call{"GET", "/api/users", "", ""}, 200, `[{"id":2,"username":"second","version":"v7"}]`},
	}
	for i, s := range steps {
		code, body, _ := do(t, h, s.c)
		if code != s.wantCode || (s.wantBody != "" && strings.TrimSpace(body) != s.wantBody) {
			t.Fatalf("step %d %v: got %d %s, want %d %s", i, s.c, code, body, s.wantCode, s.wantBody)
		}
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	const js = "application/json"
	long := strings.Repeat("é", 65)
	tests := []struct {
		name     string
		c        call
		wantCode int
		detail   string
	}{
		{"malformed JSON", call{"POST", "/api/users", js, `{"username":`}, 400, "malformed JSON"},
		{"not an object", call{"POST", "/api/users", js, `"mick"`}, 400, "malformed JSON"},
		{"two objects", call{"POST", "/api/users", js, `{"username":"a"}{"username":"b"}`}, 400, "more than one value"},
		{"trailing garbage", call{"POST", "/api/users", js, `{"username":"a"} x`}, 400, "malformed JSON"},
		{"unknown field", call{"POST", "/api/users", js, `{"username":"a","admin":true}`}, 400, "unknown field"},
		{"id is read-only", call{"POST", "/api/users", js, `{"id":9,"username":"a"}`}, 400, "unknown field"},
		{"missing username", call{"POST", "/api/users", js, `{}`}, 400, "required"},
		{"null username", call{"POST", "/api/users", js, `{"username":null}`}, 400, "required"},
		{"empty username", call{"POST", "/api/users", js, `{"username":""}`}, 400, "empty"},
		{"blank username", call{"POST", "/api/users", js, `{"username":"   "}`}, 400, "empty"},
		{"username too long", call{"POST", "/api/users", js, `{"username":"` + long + `"}`}, 400, "maximum is 64"},
		{"control character", call{"POST", "/api/users", js, `{"username":"a\u0007b"}`}, 400, "control"},
		{"wrong type", call{"POST", "/api/users", js, `{"username":42}`}, 400, "malformed JSON"},
		{"empty body", call{"POST", "/api/users", js, ``}, 400, "empty"},
		{"no content type", call{"POST", "/api/users", "", `{"username":"a"}`}, 415, "application/json"},
		{"text content type", call{"POST", "/api/users", "text/plain", `{"username":"a"}`}, 415, "application/json"},
		{"body over 1 MiB", call{"POST", "/api/users", js, `{"username":"` + strings.Repeat("a", 1<<20) + `"}`}, 413, "larger than"},
		{"non-numeric id", call{"GET", "/api/users/abc", "", ""}, 400, "positive integer"},
		{"zero id", call{"GET", "/api/users/0", "", ""}, 400, "positive integer"},
		{"negative id", call{"DELETE", "/api/users/-3", "", ""}, 400, "positive integer"},
		{"overflowing id", call{"GET", "/api/users/99999999999999999999", "", ""}, 400, "positive integer"},
		{"unknown id", call{"GET", "/api/users/12345", "", ""}, 404, "no user with id 12345"},
		{"put unknown id", call{"PUT", "/api/users/12345", js, `{"username":"a"}`}, 404, "no user"},
		{"put bad body", call{"PUT", "/api/users/1", js, `{"username":""}`}, 400, "empty"},
		{"wrong method on collection", call{"DELETE", "/api/users", "", ""}, 405, "not allowed"},
		{"wrong method on item", call{"POST", "/api/users/1", js, `{}`}, 405, "not allowed"},
		{"unknown path", call{"GET", "/api/nope", "", ""}, 404, "no route"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, store := newUsers(t, "v1")
			seed, _, _ := store.Create(context.Background(), userstore.NewUser{Username: "seed", Version: "v0"})
			code, body, hdr := do(t, h, tc.c)
			if code != tc.wantCode {
				t.Fatalf("got %d %s, want %d", code, body, tc.wantCode)
			}
			if hdr.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			var p struct {
				Status  int    `json:"status"`
				Detail  string `json:"detail"`
				Service string `json:"service"`
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != tc.wantCode || !strings.Contains(p.Detail, tc.detail) || p.Service != "user-service" {
				t.Fatalf("body %s (err %v), want detail containing %q", body, err, tc.detail)
			}
			// no state change
			if users := all(t, store); len(users) != 1 || users[0] != seed {
				t.Fatalf("store changed: %+v", all(t, store))
			}
		})
	}
}

func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	h, store := newUsers(t, "v1")
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				code, body, _ := do(t, h, call{"POST", "/api/users", "application/json", fmt.Sprintf(`{"username":"u%d-%d"}`, w, i)})
				if code != 201 {
					t.Errorf("create: %d %s", code, body)
					return
				}
				do(t, h, call{"GET", "/api/users", "", ""})
			}
		}()
	}
	wg.Wait()
	users := all(t, store)
	if len(users) != writers*each {
		t.Fatalf("%d users, want %d", len(users), writers*each)
	}
	for i, u := range users {
		if u.ID != int64(i+1) {
			t.Fatalf("ids not dense and ordered: %d at %d", u.ID, i)
		}
	}
}

// FuzzParseUserInput: any body either yields a valid username or an error; never a panic.
func FuzzParseUserInput(f *testing.F) {
	for _, s := range []string{`{"username":"mick"}`, `{}`, `{"username":""}`, `[]`, `{"username":"a"}x`, `{"username":"\u0000"}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, err := parseUserInput(body)
		if err != nil {
			if name != "" {
				t.Fatalf("error %v with name %q", err, name)
			}
			return
		}
		if strings.TrimSpace(name) == "" || len([]rune(name)) > maxUsernameLen {
			t.Fatalf("accepted invalid username %q", name)
		}
	})
}
