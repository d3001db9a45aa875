package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/workload"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// TestUsersProxy: method, path, body and content type reach user-service; its status
// and body come back unchanged.
func TestUsersProxy(t *testing.T) {
	t.Parallel()
	type seen struct{ method, path, ct, body string }
	got := make(chan seen, 1)
	gotHeaders := make(chan http.Header, 1)
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), string(b)}
		gotHeaders <- r.Header.Clone()
		w.Header().Set(pathheader.Name, "user-service/v2@fake")
		w.Header().Set("ETag", `"7"`)
		w.Header().Add("Link", `</api/users?limit=2&after=4>; rel="next"`)
		w.Header().Set("Location", "/api/users/7")
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Set-Cookie", "session=leak")
		w.Header().Set("X-Internal", "no")
		w.WriteHeader(207)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer users.Close()
	_, srv := frontDoor(t, "http://"+unreachable, users.URL, unreachable)

	for _, tc := range []struct {
		method, path, body string
		want               seen
	}{
		{"GET", "/client/users", "", seen{"GET", "/api/users", "", ""}},
		{"POST", "/client/users", `{"username":"a"}`, seen{"POST", "/api/users", "application/json", `{"username":"a"}`}},
		{"PUT", "/client/users/7", `{"username":"b"}`, seen{"PUT", "/api/users/7", "application/json", `{"username":"b"}`}},
		{"DELETE", "/client/users/7", "", seen{"DELETE", "/api/users/7", "", ""}},
		{"GET", "/client/users/a%2F..%2Fx", "", seen{"GET", "/api/users/a%2F..%2Fx", "", ""}},
		{"GET", "/client/users?limit=2&after=4", "", seen{"GET", "/api/users?limit=2&after=4", "", ""}},
		{"GET", "/client/users?limit=%zz", "", seen{"GET", "/api/users?limit=%zz", "", ""}},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("If-Match", `"6"`)
		req.Header.Set("Idempotency-Key", "k-1")
		req.Header.Set("X-Not-Listed", "x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 207 || string(b) != `{"ok":true}` {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, b)
		}
		if p := resp.Header.Get(pathheader.Name); p != "client/v1@client-test, user-service/v2@fake" {
			t.Errorf("path header %q", p)
		}
		if s := <-got; s != tc.want {
			t.Errorf("%s %s: upstream saw %+v, want %+v", tc.method, tc.path, s, tc.want)
		}
		// The user API's headers pass both ways; nothing else does.
		in := <-gotHeaders
		if in.Get("If-Match") != `"6"` || in.Get("Idempotency-Key") != "k-1" || in.Get("X-Not-Listed") != "" {
			t.Errorf("%s %s: upstream got If-Match %q Idempotency-Key %q X-Not-Listed %q", tc.method, tc.path,
				in.Get("If-Match"), in.Get("Idempotency-Key"), in.Get("X-Not-Listed"))
		}
		if resp.Header.Get("ETag") != `"7"` || resp.Header.Get("Link") != `</api/users?limit=2&after=4>; rel="next"` ||
			resp.Header.Get("Location") != "/api/users/7" || resp.Header.Get("Retry-After") != "3" ||
			resp.Header.Get("Idempotent-Replayed") != "true" ||
			resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Internal") != "" {
			t.Errorf("%s %s: response headers %v", tc.method, tc.path, resp.Header)
		}
	}

	// A body over the limit is refused at the edge with 413, not streamed through.
	req, _ := http.NewRequest("POST", srv.URL+"/client/users", strings.NewReader(strings.Repeat("a", 1<<20+1)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || len(got) != 0 {
		t.Fatalf("oversized body: %d (upstream calls %d)", resp.StatusCode, len(got))
	}
	// PATCH is not part of the API.
	req, _ = http.NewRequest("PATCH", srv.URL+"/client/users/1", nil)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD, PUT, DELETE" {
		t.Fatalf("PATCH: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestUsersProxyHead: HEAD on a GET route asks user-service for the GET (so the length
// it answers is the GET's) and passes its status and headers on without the body.
func TestUsersProxyHead(t *testing.T) {
	t.Parallel()
	methods := make(chan string, 1)
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods <- r.Method
		w.Header().Set("ETag", `"7"`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":7,"username":"a","version":"v1"}`)
	}))
	defer users.Close()
	_, srv := frontDoor(t, "http://"+unreachable, users.URL, unreachable)
	resp, err := http.Head(srv.URL + "/client/users/7")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := <-methods; m != "GET" || resp.StatusCode != 200 || len(b) != 0 ||
		resp.ContentLength != int64(len(`{"id":7,"username":"a","version":"v1"}`)) || resp.Header.Get("ETag") != `"7"` {
		t.Fatalf("HEAD: upstream saw %s; %d length %d ETag %q body %q", m, resp.StatusCode, resp.ContentLength, resp.Header.Get("ETag"), b)
	}
}

// unreachable is an address where nothing listens.
const unreachable = "127.0.0.1:1"

// frontDoor serves client's real handler on loopback with its three upstreams at
// server1URL, usersURL (HTTP) and grpcAddr; it returns the kit (metrics) and the server,
// closed when the test ends.
func frontDoor(t *testing.T, server1URL, usersURL, grpcAddr string) (*workload.Kit, *httptest.Server) {
	t.Helper()
	k := kittest.Default(t, "client")
	s1, err := k.Upstream("server1", server1URL)
	if err != nil {
		t.Fatal(err)
	}
	us, err := k.Upstream("user-service", usersURL)
	if err != nil {
		t.Fatal(err)
	}
	g1, err := grpcworkload.Upstream(k, "server1", grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(k, s1, us, g1))
	t.Cleanup(srv.Close)
	return k, srv
}
