package httpserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
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

// TestWorkloadsLinkNoProfiler: no workload links net/http/pprof (chi's middleware package
// brings it: +0.55 MB, which took user-service's image past the 15 MiB cap, and its init
// registers /debug/pprof on http.DefaultServeMux).
func TestWorkloadsLinkNoProfiler(t *testing.T) {
	t.Parallel()
	args := []string{"list", "-tags", "grpcnotrace,nopgxregisterdefaulttypes", "-deps", "-f", "{{.ImportPath}}",
		"../../client", "../../server1", "../../server2", "../../user-service"}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 || !slices.Contains(deps, "github.com/go-chi/chi/v5") {
		t.Fatalf("go list printed %d packages without chi: not the workloads' dependencies", len(deps))
	}
	for _, banned := range []string{"net/http/pprof", "github.com/go-chi/chi/v5/middleware"} {
		if slices.Contains(deps, banned) {
			t.Errorf("a workload links %s", banned)
		}
	}
}
