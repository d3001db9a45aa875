package httpserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/kittest"
)

// TestHeadOnGetRoutes: every GET route answers HEAD (RFC 9110 §9.3.2) with GET's status
// and headers and no body, probes included; a route without GET still refuses HEAD, and
// 405's Allow lists HEAD wherever GET is allowed.
func TestHeadOnGetRoutes(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "server2")
	r := k.Router()
	r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"3"`)
		_, _ = io.WriteString(w, `{"id":1}`)
	})
	r.Post("/things", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) })
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, path := range []string{"/things/1", "/healthz", "/readyz"} {
		get, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		getBody, _ := io.ReadAll(get.Body)
		get.Body.Close()
		head, err := http.Head(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		headBody, _ := io.ReadAll(head.Body)
		head.Body.Close()
		if head.StatusCode != get.StatusCode || get.StatusCode != 200 || len(headBody) != 0 ||
			head.ContentLength != int64(len(getBody)) || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") ||
			head.Header.Get("ETag") != get.Header.Get("ETag") {
			t.Errorf("HEAD %s: %d length %d type %q etag %q body %q; GET: %d length %d type %q etag %q", path,
				head.StatusCode, head.ContentLength, head.Header.Get("Content-Type"), head.Header.Get("ETag"), headBody,
				get.StatusCode, len(getBody), get.Header.Get("Content-Type"), get.Header.Get("ETag"))
		}
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"HEAD", "/things", "POST"},
		{"DELETE", "/things/1", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
	}
}
