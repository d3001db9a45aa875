package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

// doH is do with request headers.
func doH(t *testing.T, h http.Handler, c call, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.ct != "" {
		req.Header.Set("Content-Type", c.ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func problemDetail(t *testing.T, body string) string {
	t.Helper()
	var p struct {
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a problem body: %s", body)
	}
	return p.Detail
}

// TestInputIntegrity: what a black-box run found accepted. Each case is a 4xx with a
// problem body and no state change (the seed user keeps its name and revision).
func TestInputIntegrity(t *testing.T) {
	t.Parallel()
	const js = "application/json"
	tests := []struct {
		name     string
		c        call
		wantCode int
		detail   string
	}{
		{"plus-signed id PUT", call{"PUT", "/api/users/+1", js, `{"username":"x"}`}, 400, "canonical"},
		{"plus-signed id DELETE", call{"DELETE", "/api/users/+1", "", ""}, 400, "canonical"},
		{"plus-signed id GET", call{"GET", "/api/users/+1", "", ""}, 400, "canonical"},
		{"leading zero", call{"GET", "/api/users/01", "", ""}, 400, "canonical"},
		{"leading zeros DELETE", call{"DELETE", "/api/users/001", "", ""}, 400, "canonical"},
		{"upper-case key", call{"POST", "/api/users", js, `{"USERNAME":"x"}`}, 400, "case-sensitive"},
		{"mixed-case key", call{"PUT", "/api/users/1", js, `{"userName":"x"}`}, 400, "case-sensitive"},
		{"duplicate key", call{"POST", "/api/users", js, `{"username":"a","username":"b"}`}, 400, "duplicate"},
		{"duplicate key PUT", call{"PUT", "/api/users/1", js, `{"username":"a","username":"b"}`}, 400, "duplicate"},
		{"invalid UTF-8", call{"POST", "/api/users", js, "{\"username\":\"a\xffb\"}"}, 400, "UTF-8"},
		{"invalid UTF-8 PUT", call{"PUT", "/api/users/1", js, "{\"username\":\"\xc3\"}"}, 400, "UTF-8"},
		{"lone high surrogate", call{"POST", "/api/users", js, `{"username":"a\ud800b"}`}, 400, "surrogate"},
		{"lone low surrogate", call{"POST", "/api/users", js, `{"username":"\udc00"}`}, 400, "surrogate"},
		{"high surrogate at end", call{"PUT", "/api/users/1", js, `{"username":"a\ud83d"}`}, 400, "surrogate"},
		{"reversed pair", call{"POST", "/api/users", js, `{"username":"\ude00\ud83d"}`}, 400, "surrogate"},
		{"bidi override", call{"POST", "/api/users", js, "{\"username\":\"abc\u202Egpj.exe\"}"}, 400, "format"},
		{"bidi isolate escaped", call{"PUT", "/api/users/1", js, `{"username":"a\u2067b"}`}, 400, "format"},
		{"zero-width space", call{"POST", "/api/users", js, "{\"username\":\"a\u200Bb\"}"}, 400, "format"},
		{"line separator", call{"POST", "/api/users", js, "{\"username\":\"a\u2028b\"}"}, 400, "separator"},
		{"latin1 charset", call{"POST", "/api/users", "application/json; charset=iso-8859-1", `{"username":"x"}`}, 415, "charset"},
		{"utf-16 charset PUT", call{"PUT", "/api/users/1", "application/json; charset=utf-16", `{"username":"x"}`}, 415, "charset"},
		{"limit zero", call{"GET", "/api/users?limit=0", "", ""}, 400, "limit"},
		{"limit over max", call{"GET", "/api/users?limit=1001", "", ""}, 400, "limit"},
		{"limit not a number", call{"GET", "/api/users?limit=ten", "", ""}, 400, "limit"},
		{"limit twice", call{"GET", "/api/users?limit=1&limit=2", "", ""}, 400, "once"},
		{"limit signed", call{"GET", "/api/users?limit=%2B5", "", ""}, 400, "limit"},
		{"after negative", call{"GET", "/api/users?after=-1", "", ""}, 400, "after"},
		{"after leading zero", call{"GET", "/api/users?after=01", "", ""}, 400, "after"},
		{"bad query escape", call{"GET", "/api/users?limit=%zz", "", ""}, 400, "query"},
		{"If-Match not a tag", call{"PUT", "/api/users/1", js, `{"username":"x"}`}, 400, "entity tag"},
		{"Idempotency-Key too long", call{"POST", "/api/users", js, `{"username":"x"}`}, 400, "Idempotency-Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, store := newUsers(t, "v1")
			seed, _, _ := store.Create(context.Background(), userstore.NewUser{Username: "seed", Version: "v0"})
			hdr := map[string]string{}
			switch tc.name {
			case "If-Match not a tag":
				hdr["If-Match"] = "1"
			case "Idempotency-Key too long":
				hdr["Idempotency-Key"] = strings.Repeat("k", 256)
			}
			code, body, rh := doH(t, h, tc.c, hdr)
			if code != tc.wantCode || rh.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %q %s, want %d problem", code, rh.Get("Content-Type"), body, tc.wantCode)
			}
			if d := problemDetail(t, body); !strings.Contains(d, tc.detail) {
				t.Fatalf("detail %q, want it to mention %q", d, tc.detail)
			}
			if users := all(t, store); len(users) != 1 || users[0] != seed {
				t.Fatalf("state changed: %+v", users)
			}
		})
	}
}

// TestInputAccepted: what stays accepted.
func TestInputAccepted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, ct, body, want string }{
		{"charset UTF-8 any case", "application/json; charset=UTF-8", `{"username":"a"}`, "a"},
		{"quoted charset", `application/json; charset="utf-8"`, `{"username":"a"}`, "a"},
		{"escaped surrogate pair", "application/json", `{"username":"\ud83d\ude00"}`, "😀"},
		{"escaped key", "application/json", `{"usern\u0061me":"a"}`, "a"},
		{"non-Latin", "application/json", `{"username":"Müller 张伟"}`, "Müller 张伟"},
		{"literal U+FFFD", "application/json", `{"username":"a\ufffdb"}`, "a\ufffdb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newUsers(t, "v1")
			code, body, _ := do(t, h, call{"POST", "/api/users", tc.ct, tc.body})
			var u userstore.User
			if code != 201 || json.Unmarshal([]byte(body), &u) != nil || u.Username != tc.want {
				t.Fatalf("%d %s, want 201 with %q", code, body, tc.want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	h, store := newUsers(t, "v1")
	for i := range 7 {
		store.Create(context.Background(), userstore.NewUser{Username: fmt.Sprint("u", i), Version: "v1"})
	}
	next := "/api/users?limit=3"
	var ids []int64
	var links []string
	for next != "" {
		code, body, hdr := do(t, h, call{"GET", next, "", ""})
		var page []userstore.User
		if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page) > 3 {
			t.Fatalf("GET %s: %d %s", next, code, body)
		}
		for _, u := range page {
			ids = append(ids, u.ID)
		}
		next = ""
		if l := hdr.Get("Link"); l != "" {
			links = append(links, l)
			if !strings.HasSuffix(l, `>; rel="next"`) {
				t.Fatalf("Link %q", l)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	if fmt.Sprint(ids) != "[1 2 3 4 5 6 7]" || fmt.Sprint(links) != `[</api/users?limit=3&after=3>; rel="next" </api/users?limit=3&after=6>; rel="next"]` {
		t.Fatalf("ids %v links %v", ids, links)
	}
	// The default page is 100 and names its limit in the link.
	for i := range 100 {
		store.Create(context.Background(), userstore.NewUser{Username: fmt.Sprint("more", i), Version: "v1"})
	}
	_, body, hdr := do(t, h, call{"GET", "/api/users", "", ""})
	var page []userstore.User
	json.Unmarshal([]byte(body), &page)
	if len(page) != 100 || hdr.Get("Link") != `</api/users?limit=100&after=100>; rel="next"` {
		t.Fatalf("default page: %d users, Link %q", len(page), hdr.Get("Link"))
	}
}

// TestETagIfMatch: two clients edit one user; the second, holding a stale ETag, gets
// 412 and the first one's update stays.
func TestETagIfMatch(t *testing.T) {
	t.Parallel()
	h, store := newUsers(t, "v1")
	const js = "application/json"
	_, _, hdr := do(t, h, call{"POST", "/api/users", js, `{"username":"mick"}`})
	created := hdr.Get("ETag")
	_, _, hdr = do(t, h, call{"GET", "/api/users/1", "", ""})
	if hdr.Get("ETag") != created || created == "" {
		t.Fatalf("GET ETag %q, POST ETag %q", hdr.Get("ETag"), created)
	}
	code, _, hdr := doH(t, h, call{"PUT", "/api/users/1", js, `{"username":"alice"}`}, map[string]string{"If-Match": created})
	if code != 200 || hdr.Get("ETag") == created {
		t.Fatalf("first editor: %d ETag %q", code, hdr.Get("ETag"))
	}
	current := hdr.Get("ETag")
	code, body, _ := doH(t, h, call{"PUT", "/api/users/1", js, `{"username":"bob"}`}, map[string]string{"If-Match": created})
	if code != 412 || !strings.Contains(problemDetail(t, body), "If-Match") {
		t.Fatalf("second editor: %d %s", code, body)
	}
	if u, _ := store.Get(context.Background(), 1); u.Username != "alice" {
		t.Fatalf("lost update: %+v", u)
	}
	for _, tc := range []struct {
		method, ifMatch string
		code            int
	}{
		{"DELETE", created, 412},
		{"DELETE", `W/` + current, 412}, // weak tags never match
		{"PUT", `"x", ` + current, 200}, // a list matches when one member does
		{"DELETE", "*", 204},
		{"DELETE", "*", 404},
	} {
		c := call{tc.method, "/api/users/1", "", ""}
		if tc.method == "PUT" {
			c = call{"PUT", "/api/users/1", js, `{"username":"carol"}`}
		}
		if code, body, _ := doH(t, h, c, map[string]string{"If-Match": tc.ifMatch}); code != tc.code {
			t.Fatalf("%s If-Match %s: %d %s, want %d", tc.method, tc.ifMatch, code, body, tc.code)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	h, store := newUsers(t, "v1")
	const js = "application/json"
	key := map[string]string{"Idempotency-Key": "order-42"}
	code1, body1, hdr1 := doH(t, h, call{"POST", "/api/users", js, `{"username":"mick"}`}, key)
	code2, body2, hdr2 := doH(t, h, call{"POST", "/api/users", js, `{ "username" : "mick" }`}, key)
	if code1 != 201 || code2 != 201 || body1 != body2 || hdr2.Get("Location") != hdr1.Get("Location") || hdr2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s / %d %s %v", code1, body1, code2, body2, hdr2)
	}
	code, body, _ := doH(t, h, call{"POST", "/api/users", js, `{"username":"other"}`}, key)
	if code != 422 || !strings.Contains(problemDetail(t, body), "Idempotency-Key") {
		t.Fatalf("same key, other body: %d %s", code, body)
	}
	if n := len(all(t, store)); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
}

func TestMemoryFull(t *testing.T) {
	t.Parallel()
	h, _ := newUsersWith(t, "v1", userstore.NewMemory(userstore.MemoryLimits{Users: 1, Keys: 1}, nil))
	do(t, h, call{"POST", "/api/users", "application/json", `{"username":"a"}`})
	code, body, hdr := do(t, h, call{"POST", "/api/users", "application/json", `{"username":"b"}`})
	if code != 507 || hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, "USER_STORE_MAX_USERS") {
		t.Fatalf("%d %s", code, body)
	}
}

// downStore fails every call like a lost database.
type downStore struct{ userstore.Store }

var errDown = fmt.Errorf("%w: dial tcp 10.0.0.1:5432: connection refused", userstore.ErrUnavailable)

func (downStore) Ready(context.Context) error { return errDown }
func (downStore) List(context.Context, int64, int) ([]userstore.User, bool, error) {
	return nil, false, errDown
}
func (downStore) Get(context.Context, int64) (userstore.User, error) {
	return userstore.User{}, errDown
}
func (downStore) Create(context.Context, userstore.NewUser) (userstore.User, bool, error) {
	return userstore.User{}, false, errDown
}
func (downStore) Update(context.Context, int64, string, string, *userstore.Match) (userstore.User, error) {
	return userstore.User{}, errors.New("some driver error")
}
func (downStore) Delete(context.Context, int64, *userstore.Match) error { return errDown }

// TestStoreDown: a lost database is 503 problem JSON without the driver's words, and
// readiness follows.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	h, _ := newUsersWith(t, "v1", downStore{})
	const js = "application/json"
	for _, c := range []call{
		{"GET", "/api/users", "", ""}, {"GET", "/api/users/1", "", ""}, {"POST", "/api/users", js, `{"username":"a"}`},
		{"PUT", "/api/users/1", js, `{"username":"a"}`}, {"DELETE", "/api/users/1", "", ""},
	} {
		code, body, hdr := do(t, h, c)
		if code != 503 || hdr.Get("Content-Type") != "application/problem+json" || strings.Contains(body, "10.0.0.1") || strings.Contains(body, "driver") {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, body)
		}
		if ra := hdr.Get("Retry-After"); ra != "1" {
			t.Errorf("%s %s: Retry-After %q, want 1", c.method, c.path, ra)
		}
	}
}

// TestMemoryKeysFull: idempotency keys have their own bound; when it is reached with no
// user stored, the 507 says which limit and what helps (deleting users does not), and a
// create without a key still succeeds.
func TestMemoryKeysFull(t *testing.T) {
	t.Parallel()
	h, _ := newUsersWith(t, "v1", userstore.NewMemory(userstore.MemoryLimits{Users: 5, Keys: 1}, nil))
	create := func(key string) (int, string) {
		req := httptest.NewRequest("POST", "/api/users", strings.NewReader(`{"username":"a"}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := create("k-1"); code != 201 {
		t.Fatalf("first create: %d %s", code, body)
	}
	if code, body, _ := do(t, h, call{"DELETE", "/api/users/1", "", ""}); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	code, body := create("k-2")
	if code != 507 || !strings.Contains(body, "USER_STORE_MAX_IDEMPOTENCY_KEYS") || strings.Contains(body, "delete users") ||
		!strings.Contains(body, "without an Idempotency-Key") {
		t.Fatalf("keys full, no user stored: %d %s", code, body)
	}
	if code, body := create(""); code != 201 {
		t.Fatalf("create without a key: %d %s", code, body)
	}
}
